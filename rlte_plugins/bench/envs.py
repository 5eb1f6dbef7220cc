"""Environment throughput: steps/s of each family through rlte's TorchRL envs, beside raw EnvPool in the same run.

Each row steps the env with uniformly random actions (sampled once per step from the action spec, on the env's
device) for a fixed wall-clock budget after a warm-up. ``rlte`` is the env as agents see it: ``env.step`` plus
``step_mdp`` plus the partial resets of finished envs (``step_and_maybe_reset``), with exact transitions.
``collect`` is the same env collected by a PPO agent's direct collection, policy in the loop (an MLP on vectors,
``mnih_cnn`` on pixels; the path it took, plain tensors or TensorDicts, is printed): what an iteration's
collection costs before the update. ``raw`` is EnvPool's own ``step`` on numpy actions with its next-step
auto-reset, the fastest it goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlte_plugins.envs.backends import check


@dataclass(frozen=True)
class Case:
    family: str
    label: str
    kwargs: dict[str, Any]
    backend: str  # which backend check must pass to run it
    raw: tuple[str, dict[str, Any]] | None = None  # EnvPool task id and options for the raw rate
    max_envs: int | None = None  # more is skipped: the rate no longer grows and making them takes minutes


CASES = (
    Case("atari", "Pong", {"game": "Pong", "backend": "envpool"}, "envpool",
         ("Pong-v5", {"episodic_life": False, "reward_clip": False, "repeat_action_probability": 0.25})),
    Case("atari", "Pong (gymnasium)", {"game": "Pong", "backend": "gymnasium"}, "ale-py"),
    Case("procgen", "coinrun", {"game": "coinrun", "backend": "envpool"}, "procgen-qt5", ("CoinrunEasy-v0", {})),
    Case("dmc", "cartpole_balance (state)", {"task": "cartpole_balance", "backend": "envpool"}, "envpool",
         ("CartpoleBalance-v1", {})),
    Case("dmc", "cartpole_balance (pixels)", {"task": "cartpole_balance", "from_pixels": True}, "dmc-egl",
         max_envs=64),
    Case("minigrid", "Empty-8x8", {"task": "Empty-8x8", "backend": "envpool"}, "envpool",
         ("MiniGrid-Empty-8x8-v0", {})),
    Case("minigrid", "DoorKey-8x8 (one_hot)", {"task": "DoorKey-8x8", "observation": "one_hot"}, "minigrid"),
    Case("bullet", "Hopper", {"task": "Hopper"}, "pybullet"),
    Case("gymnasium", "CartPole-v1 (gymnasium)", {"env_id": "CartPole-v1", "backend": "gymnasium"}, ""),
    Case("gymnasium", "CartPole-v1 (vector)", {"env_id": "CartPole-v1", "backend": "vector"}, ""),
    Case("gymnasium", "CartPole-v1 (envpool)", {"env_id": "CartPole-v1", "backend": "envpool"}, "envpool",
         ("CartPole-v1", {})),
    Case("torch_cartpole", "torch_cartpole", {}, ""),
    Case("dummy_discrete", "dummy_discrete", {}, ""),
)  # fmt: skip


def _rate(step: Callable[[], int], seconds: float) -> float:
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        frames += step()
    return frames / (time.perf_counter() - start)


def rlte_stepper(case: Case, num_envs: int, device: str) -> tuple[Callable[[], int], Callable[[], None]]:
    """One batched step of the env as agents see it, and its closer."""
    import rlte_plugins

    env = rlte_plugins.make("env", case.family, num_envs=num_envs, seed=0, device=device, **case.kwargs)
    td = env.reset()

    def step() -> int:
        nonlocal td
        td.set("action", env.action_spec.rand())
        _, td = env.step_and_maybe_reset(td)
        return num_envs

    return step, env.close


def collect_stepper(case: Case, num_envs: int, device: str) -> tuple[Callable[[], int], Callable[[], None], str]:
    """One ``collect()`` (16 steps of every env) of a PPO agent on the case's env, its closer and the path taken."""
    import rlte_plugins

    env = rlte_plugins.make("env", case.family, num_envs=num_envs, seed=0, device=device, **case.kwargs)
    pixels = "pixels" in env.observation_spec.keys()
    encoder = {"name": "mnih_cnn", "in_keys": ["pixels"]} if pixels else "mlp"
    agent = rlte_plugins.make("agent", "ppo", env=env, num_steps=16, seed=0, device=device, num_minibatches=1)
    agent.set(encoder=encoder).build()
    path = "plain" if getattr(agent.collection, "plain_tensors", False) else "tensordict"

    def step() -> int:
        agent.collect()
        return 16 * num_envs

    def close() -> None:
        agent.close()
        env.close()

    return step, close, path


def raw_stepper(task: str, options: dict[str, Any], num_envs: int) -> tuple[Callable[[], int], Callable[[], None]]:
    """One step of the same EnvPool task through EnvPool's own API (numpy actions, next-step auto-reset)."""
    import envpool

    pool = envpool.make(task, env_type="gymnasium", num_envs=num_envs, seed=0, **options)
    pool.reset()
    space = pool.action_space
    rng = np.random.default_rng(0)

    def step() -> int:
        if hasattr(space, "n"):
            action = rng.integers(0, space.n, num_envs)
        else:
            action = rng.uniform(space.low, space.high, (num_envs, *space.shape)).astype(space.dtype)
        pool.step(action)
        return num_envs

    return step, pool.close


def measure(steppers: list[Callable[[], int]], seconds: float, rounds: int = 5, warmup: int = 3) -> list[float]:
    """Median steps/s of each stepper over ``rounds`` interleaved slices of ``seconds / rounds`` each.

    Interleaving puts every stepper under the same background load (a shared machine drifts by tens of percent
    over seconds), and the median drops the slices that a hiccup hit.
    """
    for step in steppers:
        for _ in range(warmup):
            step()
    rates: list[list[float]] = [[] for _ in steppers]
    for _ in range(rounds):
        for i, step in enumerate(steppers):
            rates[i].append(_rate(step, seconds / rounds))
    return [float(np.median(r)) for r in rates]


def benchmark(
    families: list[str] | None, num_envs: list[int], seconds: float, device: str = "cpu"
) -> list[dict[str, Any]]:
    """Print one table row per (case, num_envs) and return the rows."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(
        f"device {device}, {seconds:g} s per figure (median of 5 slices, ours and raw interleaved), "
        f"random actions; torch {torch.__version__}"
    )
    print(f"{'family':<16}{'case':<28}{'envs':>6}{'rlte steps/s':>15}{'raw steps/s':>14}{'overhead':>10}"
          f"{'collect steps/s':>17}  path")  # fmt: skip
    rows = []
    for case in CASES:
        if families and case.family not in families:
            continue
        if case.backend:
            ok, detail = check(case.backend)
            if not ok:
                print(f"{case.family:<16}{case.label:<28}  skipped: backend {case.backend} missing ({detail})")
                continue
        for n in num_envs:
            if case.max_envs and n > case.max_envs:
                print(f"{case.family:<16}{case.label:<28}{n:>6}  skipped: over this case's {case.max_envs} envs")
                continue
            steppers = []
            try:
                steppers.append(rlte_stepper(case, n, device))
                *collector, path = collect_stepper(case, n, device)
                steppers.append(tuple(collector))
                if case.raw and device == "cpu":
                    steppers.append(raw_stepper(*case.raw, n))
                rates = measure([step for step, _ in steppers], seconds)
            finally:
                for _, close in steppers:
                    close()
            ours, collect, raw = rates[0], rates[1], (rates[2] if len(rates) > 2 else None)
            over = f"{100 * (1 - ours / raw):.1f}%" if raw else "-"
            raw_s = f"{raw:,.0f}" if raw else "-"
            row = f"{case.family:<16}{case.label:<28}{n:>6}{ours:>15,.0f}{raw_s:>14}{over:>10}{collect:>17,.0f}"
            print(f"{row}  {path}", flush=True)
            rows.append({"family": case.family, "case": case.label, "num_envs": n, "rlte": ours, "raw": raw,
                         "collect": collect, "path": path})  # fmt: skip
    return rows
