"""PPO at CleanRL ``ppo.py``'s CartPole settings, end to end: steps/s from process start and in steady state.

Every row trains the ``ppo`` agent with its defaults (CleanRL's: 128 steps per env, 4 epochs of 4 minibatches,
64x64 tanh MLPs, value clipping, lr 2.5e-4 annealed) through :meth:`Agent.train` (the run loop, its logging and
its per-iteration host transfer included) in a fresh Python process. ``sps`` is the frames over the wall time from
spawning that process to its exit (interpreter start, imports, env creation, compilation all included);
``steady`` is the rate from the end of the second iteration to the last (compilation and warm-up excluded);
``first s`` is the time from the start of :meth:`train` to the end of the first iteration, where a compiled
variant pays for its compilation (the ``compile`` variant also compiles a torch-native env's step, TorchRL's
``compile=True`` env option). ``collection`` says which path collected (``plain``: plain tensors, no
TensorDict per step; ``tensordict``; ``torchrl``: TorchRL's ``Collector``) and the env column which backend ran.

``--peer`` runs any other command the same way (its wall time from spawn to exit; its steady rate where it prints
``steady_sps=<number>``), e.g. a local copy of CleanRL's ``ppo.py``, for a ratio measured in the same run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from typing import Any

from rlte_plugins.bench import run_in_process, serve

#: what ``--variants`` names: the agent options of each row
VARIANTS: dict[str, dict[str, Any]] = {"eager": {}, "compile": {"compile": True}}


def measure(
    env: str, backend: str | None, num_envs: int, frames: int, seed: int, threads: int, options: dict[str, Any]
) -> dict[str, Any]:
    """One training run in this process (see :func:`isolated`)."""
    import torch

    torch.set_num_threads(threads)
    import rlte_plugins

    env_spec: Any = env if backend is None else {"name": "gymnasium", "env_id": env, "backend": backend}
    if backend is None and options.get("compile") and _torch_native(env):
        env_spec = {"name": env, "compile": True}  # the env's own step compiles too
    agent = rlte_plugins.make("agent", "ppo", env=env_spec, num_envs=num_envs, seed=seed, **options)
    out = agent.train(frames, progress=False)
    # the run loop logs charts/SPS since the start of train() at every iteration: the time of each iteration's end
    ends = [(h["frames"], h["frames"] / h["charts/SPS"]) for h in agent.history]
    steady = None
    if len(ends) > 2:
        (f0, t0), (f1, t1) = ends[1], ends[-1]
        steady = (f1 - f0) / (t1 - t0)
    returns = [h["charts/episodic_return"] for h in agent.history if "charts/episodic_return" in h]
    plain = getattr(agent.collection, "plain_tensors", None)
    path = "torchrl" if plain is None else "plain" if plain else "tensordict"
    result = {
        "frames": int(out["frames"]),
        "train_s": out["wall_time"],
        "first_s": ends[0][1],
        "steady_sps": steady,
        "return": sum(returns[-10:]) / len(returns[-10:]) if returns else float("nan"),
        "backend": getattr(agent.env, "backend", "torch"),
        "collection": path,
    }
    agent.close()
    return result


def _torch_native(name: str) -> bool:
    """Whether ``name`` is a registered torch-native env (whose step ``compile=True`` compiles)."""
    from rlte_plugins.envs.torch_native.base import TorchEnv
    from rlte_plugins.errors import RlteError
    from rlte_plugins.registry import get_spec

    try:
        factory = get_spec("env", name).load()
    except RlteError:
        return False  # a gymnasium id
    return isinstance(factory, type) and issubclass(factory, TorchEnv)


def isolated(spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """``measure(**spec)`` in a fresh Python process; returns its result and the wall time from spawn to exit."""
    return run_in_process("rlte_plugins.bench.ppo", spec)


def peer(command: str, num_envs: int, frames: int, threads: int, seed: int) -> tuple[float, float | None]:
    """Run ``command`` (``{num_envs}``, ``{frames}``, ``{threads}``, ``{seed}`` filled in); its wall time and, where
    it prints ``steady_sps=<number>``, its steady rate."""
    argv = shlex.split(command.format(num_envs=num_envs, frames=frames, threads=threads, seed=seed))
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the peer command failed (exit {proc.returncode}): {argv}\n{proc.stderr[-3000:]}")
    found = re.findall(r"steady_sps=([0-9.]+)", proc.stdout)
    return wall, float(found[-1]) if found else None


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def benchmark(
    num_envs: list[int],
    envs: list[str],
    frames: int = 100_000,
    variants: list[str] = ("eager",),
    threads: int = 2,
    seed: int = 1,
    peer_command: str | None = None,
    repeats: int = 1,
) -> list[dict[str, Any]]:
    """Print one row per env, env count and variant (and the peer's per env count), ``repeats`` times
    interleaved; returns the rows."""
    import platform

    import torch

    from rlte_plugins.errors import ConfigError

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant {unknown[0]!r} (variants: {', '.join(VARIANTS)})")
    print(
        f"PPO, CleanRL ppo.py's CartPole settings, {frames:,} frames, seed {seed}, {threads} threads; "
        f"torch {torch.__version__}, {platform.machine()} with {_cpus()} CPUs; each row in its own process"
    )
    print(f"{'run':<34}{'envs':>6}{'sps':>9}{'steady':>9}{'first s':>9}{'wall s':>8}{'return':>8}  ratios to peer")
    rows: list[dict[str, Any]] = []
    for _ in range(repeats):
        for n in num_envs:
            theirs = None
            if peer_command:
                wall, steady = peer(peer_command, n, frames, threads, seed)
                theirs = {"sps": frames / wall, "steady_sps": steady}
                print(f"{'peer':<34}{n:>6}{_fmt(theirs['sps']):>9}{_fmt(steady):>9}{'-':>9}{wall:>8.1f}", flush=True)
                rows.append({"run": "peer", "num_envs": n, "wall_s": wall, **theirs})
            for env in envs:
                name, _, backend = env.partition(":")
                for variant in variants:
                    spec = {"env": name, "backend": backend or None, "num_envs": n, "frames": frames, "seed": seed,
                            "threads": threads, "options": VARIANTS[variant]}  # fmt: skip
                    r, wall = isolated(spec)
                    sps = r["frames"] / wall
                    label = f"{name} [{r['backend']}, {r['collection']}] {variant}"
                    ratios = ""
                    if theirs is not None:
                        ratios = f"{sps / theirs['sps']:.2f}x from start"
                        if theirs["steady_sps"] and r["steady_sps"]:
                            ratios += f", {r['steady_sps'] / theirs['steady_sps']:.2f}x steady"
                    print(f"{label:<34}{n:>6}{sps:>9,.0f}{_fmt(r['steady_sps']):>9}{r['first_s']:>9.2f}{wall:>8.1f}"
                          f"{r['return']:>8.0f}  {ratios}", flush=True)  # fmt: skip
                    rows.append({"run": label, "num_envs": n, "wall_s": wall, "sps": sps, "variant": variant, **r})
    return rows


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":  # one isolated measurement (see ``isolated``)
    serve(lambda spec: measure(**spec))
