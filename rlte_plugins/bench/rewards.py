"""The price of each intrinsic reward: milliseconds of ``compute`` (the bonus of a rollout) and of ``update`` (one
optimiser step of its networks) per 1,000 transitions, on a rollout of 8 envs x 128 steps of vectors (64 floats)
and of 84 x 84 x 4 ``uint8`` frames, median over repeated calls after a warm-up call. Episodic memories carry over
between the calls, as in training."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical, Composite, Unbounded

#: observation key, per-sample shape and dtype of each kind of input
INPUTS = {"vectors": ("observation", (64,), torch.float32), "pixels": ("pixels", (4, 84, 84), torch.uint8)}


def _specs(kind: str, num_envs: int) -> tuple[Composite, Categorical]:
    key, shape, dtype = INPUTS[kind]
    spec = (Bounded(0, 255, shape=(num_envs, *shape), dtype=dtype) if dtype == torch.uint8
            else Unbounded(shape=(num_envs, *shape), dtype=dtype))  # fmt: skip
    return Composite({key: spec}, shape=(num_envs,)), Categorical(6, shape=(num_envs,))


def _rollout(kind: str, num_envs: int, num_steps: int, generator: torch.Generator) -> TensorDict:
    key, shape, dtype = INPUTS[kind]
    size = (num_envs, num_steps + 1, *shape)
    obs = (torch.randint(0, 256, size, generator=generator, dtype=torch.uint8) if dtype == torch.uint8
           else torch.randn(size, generator=generator))  # fmt: skip
    done = torch.rand(num_envs, num_steps, 1, generator=generator) < 0.01
    action = torch.randint(0, 6, (num_envs, num_steps), generator=generator)
    return TensorDict({key: obs[:, :-1], "action": action,
                       "next": {key: obs[:, 1:], "done": done, "terminated": done, "truncated": torch.zeros_like(done),
                                "reward": torch.zeros(num_envs, num_steps, 1)}},
                      batch_size=(num_envs, num_steps))  # fmt: skip


def _median_ms(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def benchmark(
    names: Sequence[str] | None = None,
    kinds: Sequence[str] = ("vectors", "pixels"),
    num_envs: int = 8,
    num_steps: int = 128,
    repeats: int = 3,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Print and return one row per (reward, input kind)."""
    import rlte_plugins
    from rlte_plugins.errors import ConfigError

    unknown = [k for k in kinds if k not in INPUTS]
    if unknown:
        raise ConfigError(f"unknown input kind {unknown[0]!r} (accepted: {', '.join(INPUTS)})")
    registered = sorted(s.name for s in rlte_plugins.list_components("reward") if s.name != "mixture")
    names = list(names or registered)
    missing = [n for n in names if n not in registered]
    if missing:
        raise ConfigError(f"unknown reward {missing[0]!r} (rewards: {', '.join(registered)})")
    per = 1000.0 / (num_envs * num_steps)
    print(f"{num_envs} envs x {num_steps} steps, median of {repeats} after a warm-up, device {device}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'reward':14s} {'input':8s} {'compute ms/1k':>14s} {'update ms/1k':>13s}")
    rows = []
    for kind in kinds:
        generator = torch.Generator().manual_seed(0)
        batch = _rollout(kind, num_envs, num_steps, generator).to(device)
        for name in names:
            reward = rlte_plugins.make("reward", name).build(*_specs(kind, num_envs)).to(device)
            reward(batch.clone(False))  # warm-up: first-batch statistics, lazy allocations
            reward.update(batch)
            compute = _median_ms(lambda r=reward, b=batch: r(b.clone(False)), repeats) * per
            update = _median_ms(lambda r=reward, b=batch: r.update(b), repeats) * per
            rows.append({"reward": name, "input": kind, "compute_ms_per_1k": compute, "update_ms_per_1k": update})
            print(f"{name:14s} {kind:8s} {compute:14.2f} {update:13.2f}", flush=True)
    return rows
