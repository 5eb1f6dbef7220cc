"""DrQ-v2 from pixels beside its authors' figures (facebookresearch/drqv2).

Returns mode: the ``drqv2`` agent with the authors' per-task settings (:func:`drqv2_settings`) and env settings
(``from_pixels=True, action_repeat=2, frame_stack=3``, 84x84) trains on each task; every ``eval_every`` frames it
is evaluated on ``eval_episodes`` episodes, and each task's table puts the mean over seeds beside the authors'
published mean at the same frames. Frames are the authors' unit: agent steps x action repeat. Our frames/s is the
training wall time's (evaluation excluded), beside the authors' ~95 (1M frames in 2.9 hours on one GPU).

Updates mode: updates/s of the DrQ-v2 update (critic, then actor, then target averaging) at ``batch_size`` on
``[9, image_size, image_size]`` uint8 observations, sampled from a replay of a few hundred real transitions,
eager and compiled (the agent's ``compile=True``); ``first s`` is the first update (where compilation happens),
``warm-up s`` the next few (recompilations). Then end-to-end frames/s, collection and updates at the authors'
ratio (an update every 2 agent steps), on pixel DMC and on a torch-native pixel task, from the end of the warm-up
updates to the last step (``warm-up s``: the time before, random steps and compilation included). Every row
runs in its own process (:func:`~rlte_plugins.bench.run_in_process`)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from rlte_plugins.bench import run_in_process, serve

#: mean evaluation return of the authors' seeds at these frames: the facebookresearch/drqv2 paper's curves as
#: summarised in the issue that asked for this benchmark
PUBLISHED: dict[str, dict[int, float]] = {
    "cartpole_swingup": {100_000: 626, 500_000: 846},  # per seed at 100k: 764, 210, 786, 810, 750
    "walker_walk": {100_000: 170, 500_000: 722},  # median ~930 at 500k
    "cheetah_run": {100_000: 273, 500_000: 603},
}
#: the authors' training speed: 1M frames in 2.9 hours on one GPU (the paper)
AUTHORS_FPS = 1_000_000 / (2.9 * 3600)
ACTION_REPEAT, FRAME_STACK = 2, 3
UPDATE_EVERY = 2  # agent steps per update: the authors' ratio (the agent's utd_ratio 0.5)
VARIANTS: dict[str, dict[str, Any]] = {"eager": {}, "compile": {"compile": True}}


def make_agent(
    env: str = "dmc",
    task: str = "cartpole_swingup",
    frames: int = 100_000,
    seed: int = 0,
    device: str = "cpu",
    image_size: int = 84,
    batch_size: int | None = None,
    seed_frames: int = 4000,
    **options: Any,
) -> Any:
    """``drqv2`` on ``env`` pixels with the authors' settings (a DMC task's from :func:`drqv2_settings`; other
    envs keep the agent's defaults) for a run of ``frames`` frames, acting randomly and not learning for the
    first ``seed_frames`` frames."""
    import rlte_plugins
    from rlte_plugins.agents.drq import DrQV2, drqv2_settings

    spec = {"name": env, "from_pixels": True, "action_repeat": ACTION_REPEAT, "frame_stack": FRAME_STACK,
            "image_size": image_size, **({"task": task} if env == "dmc" else {})}  # fmt: skip
    settings = drqv2_settings(task) if env == "dmc" else {}
    storage = dict(settings.get("storage", DrQV2.slots["storage"]))
    steps = frames // ACTION_REPEAT
    # a run never stores more than its steps: 1M in-memory 84x84x9 observations (and next ones) would be 127 GB
    storage["capacity"] = max(min(storage["capacity"], steps), 1)
    storage["batch_size"] = batch_size or storage["batch_size"]
    # n-step replay holds a run's last n steps back: a first batch needs that many more
    start = max(seed_frames // ACTION_REPEAT, storage["batch_size"] + storage.get("n", 0))
    agent = rlte_plugins.make("agent", "drqv2", env=spec, device=device, seed=seed, learning_starts=start,
                              random_frames=start, **options)  # fmt: skip
    return agent.set(**{**settings, "storage": storage})


def measure_returns(env: str, task: str, frames: int, seed: int, eval_every: int, eval_episodes: int,
                    threads: int, **agent: Any) -> dict[str, Any]:  # fmt: skip
    """One training run with periodic evaluation: ``{frames: mean return}`` and the training frames/s."""
    import torch

    torch.set_num_threads(threads)
    drq = make_agent(env, task, frames, seed, **agent)
    every = max(eval_every // (ACTION_REPEAT * drq.num_envs), 1)  # iterations: one agent step of each env
    drq.train(frames // ACTION_REPEAT, eval_every=every, eval_episodes=eval_episodes, progress=False)
    curve = {int(h["frames"]) * ACTION_REPEAT: h["eval/episodic_return"] for h in drq.history
             if "eval/episodic_return" in h}  # fmt: skip
    result = {"curve": curve, "fps": drq.frames * ACTION_REPEAT / drq.elapsed}  # elapsed: iterations, no evaluation
    drq.close()
    return result


def measure_updates(variant: str, threads: int, fill: int, warmup: int, updates: int, **agent: Any) -> dict[str, Any]:
    """Updates/s of ``agent.step()`` doing one update per call on a replay of ``fill`` real transitions."""
    import torch

    from rlte_plugins.training.loop import fetch

    torch.set_num_threads(threads)
    fill = max(fill, (agent.get("batch_size") or 256) + 8)  # a batch, and the steps n-step replay holds back
    drq = make_agent("torch_pendulum", frames=fill * ACTION_REPEAT, seed_frames=fill * ACTION_REPEAT,
                     utd_ratio=1 / UPDATE_EVERY, **agent, **VARIANTS[variant])  # fmt: skip
    while drq.frames < fill:
        drq.collect()
    times = []
    for _ in range(warmup + updates):
        drq.frames += UPDATE_EVERY  # owe exactly one update: time the update, not the collection
        start = time.perf_counter()
        fetch(drq.step())  # the one host transfer (a CUDA sync)
        times.append(time.perf_counter() - start)
    drq.close()
    return {"first_s": times[0], "warmup_s": sum(times[1:warmup]), "ups": updates / sum(times[warmup:])}


def measure_train(variant: str, env: str, threads: int, fill: int, warmup: int, updates: int,
                  **agent: Any) -> dict[str, Any]:  # fmt: skip
    """End-to-end frames/s of ``agent.train``: collection and an update every 2 agent steps, after ``warmup``
    updates past the first ``fill`` (random) steps."""
    import torch

    torch.set_num_threads(threads)
    fill = max(fill, (agent.get("batch_size") or 256) + 8)  # a batch, and the steps n-step replay holds back
    steps = fill + (warmup + updates) * UPDATE_EVERY
    drq = make_agent(env, "cartpole_swingup", steps * ACTION_REPEAT, seed_frames=fill * ACTION_REPEAT,
                     utd_ratio=1 / UPDATE_EVERY, **agent, **VARIANTS[variant])  # fmt: skip
    drq.train(steps, progress=False)
    # the run loop logs charts/SPS since the start of train() at every iteration: the time of each iteration's end
    ends = {int(h["frames"]): h["frames"] / h["charts/SPS"] for h in drq.history}
    f0 = fill + warmup * UPDATE_EVERY
    drq.close()
    return {"fps": (steps - f0) * ACTION_REPEAT / (ends[steps] - ends[f0]), "warmup_s": ends[f0]}


def _machine(threads: int, device: str) -> str:
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else ""
    return f"{cpu}, {threads} threads, torch {torch.__version__}, device {device}{gpu}"


def benchmark_updates(variants: list[str] = ("eager", "compile"), batch_size: int = 256, image_size: int = 84,
                      threads: int = 2, device: str = "cpu", fill: int = 300, warmup: int = 5, updates: int = 20,
                      envs: list[str] = ("dmc", "torch_pendulum")) -> list[dict[str, Any]]:  # fmt: skip
    """Print updates/s per variant, then end-to-end frames/s per env and variant; returns the rows."""
    from rlte_plugins.errors import ConfigError

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant {unknown[0]!r} (variants: {', '.join(VARIANTS)})")
    agent = {"batch_size": batch_size, "image_size": image_size, "device": device}
    common = {"threads": threads, "fill": fill, "warmup": warmup, "updates": updates, **agent}
    print(f"DrQ-v2 update, batch {batch_size}, [{3 * FRAME_STACK}, {image_size}, {image_size}] uint8; "
          f"{_machine(threads, device)}; each row in its own process")  # fmt: skip
    print(f"{'variant':<10}{'first s':>9}{'warm-up s':>11}{'updates/s':>11}{'wall s':>8}   ({updates} timed updates "
          f"after {warmup})")  # fmt: skip
    rows = []
    for variant in variants:
        r, wall = run_in_process(__name__, {"what": "updates", "variant": variant, **common}, "drqv2 updates")
        print(f"{variant:<10}{r['first_s']:>9.2f}{r['warmup_s']:>11.2f}{r['ups']:>11.3g}{wall:>8.1f}", flush=True)
        rows.append({"run": "updates", "variant": variant, "wall_s": wall, **r})
    print(f"\nend to end: collection + an update every {ACTION_REPEAT} agent steps, frames = agent steps x "
          f"{ACTION_REPEAT}; authors ~{AUTHORS_FPS:.0f} frames/s")  # fmt: skip
    print(f"{'env':<28}{'variant':<10}{'frames/s':>9}{'x authors':>10}{'warm-up s':>11}{'wall s':>8}")
    for env in envs:
        label = "dmc cartpole_swingup" if env == "dmc" else env
        for variant in variants:
            spec = {"what": "train", "variant": variant, "env": env, **common}
            r, wall = run_in_process(__name__, spec, "drqv2 end-to-end")
            print(f"{label:<28}{variant:<10}{r['fps']:>9.3g}{r['fps'] / AUTHORS_FPS:>10.3g}{r['warmup_s']:>11.1f}"
                  f"{wall:>8.1f}", flush=True)  # fmt: skip
            rows.append({"run": label, "variant": variant, "wall_s": wall, **r})
    return rows


def benchmark_returns(tasks: list[str] = ("cartpole_swingup", "walker_walk", "cheetah_run"), frames: int = 100_000,
                      seeds: int = 1, eval_every: int = 10_000, eval_episodes: int = 10, threads: int = 2,
                      device: str = "cpu", envs: list[str] = ("dmc",), **agent: Any) -> dict[str, Any]:  # fmt: skip
    """Train every task (``dmc``'s ``tasks``, and each other env in ``envs``) with ``seeds`` seeds and print its
    table; returns ``{task: {"curve": {frames: mean return}, "fps": frames/s}}``."""
    from rlte_plugins.training.runner import quiet_torchrl

    quiet_torchrl()
    print(f"DrQ-v2 (authors' settings), {frames:,} frames per run, {seeds} seed(s), eval every {eval_every:,} frames "
          f"({eval_episodes} episodes); {_machine(threads, device)}")  # fmt: skip
    results = {}
    for env, task in [(e, t) for e in envs for t in (tasks if e == "dmc" else [e])]:
        runs = [measure_returns(env, task, frames, seed, eval_every, eval_episodes, threads, device=device, **agent)
                for seed in range(seeds)]  # fmt: skip
        curve = {f: statistics.fmean(r["curve"][f] for r in runs) for f in sorted(runs[0]["curve"])}
        fps = statistics.fmean(r["fps"] for r in runs)
        published = PUBLISHED.get(task, {})
        print(f"\n{task}: {fps:.3g} frames/s in training (authors ~{AUTHORS_FPS:.0f}: {fps / AUTHORS_FPS:.3g}x)")
        print(f"{'frames':>9}{'ours':>9}{'authors':>9}")
        for f, ours in curve.items():
            theirs = published.get(f)
            print(f"{f:>9,}{ours:>9.1f}{'-' if theirs is None else format(theirs, '.0f'):>9}", flush=True)
        results[task] = {"curve": curve, "fps": fps}
    return results


def _serve(spec: dict[str, Any]) -> dict[str, Any]:
    what = spec.pop("what")
    return measure_updates(**spec) if what == "updates" else measure_train(**spec)


if __name__ == "__main__":  # one isolated measurement (see ``benchmark_updates``)
    serve(_serve)
