"""Scale-out: frames/s of one recipe (PPO, fixed budget) collected in-process and by Ray workers, in the same run.

Every row trains the ``ppo`` agent with the same options on the same env for the same frames; only ``collection``
changes: the in-process strategies (``auto``: ``direct`` for an rlte env; ``torchrl``: TorchRL's ``Collector``), then
``ray`` with each number of workers (TorchRL's ``RayCollector``, the learner's weights pushed before every batch).
``steady`` is the rate from the end of the first iteration to the last (for ``ray``: after the workers started);
``sps`` counts the whole :meth:`train` call, worker start included; ``ratio`` is ``steady`` over the first row's.
One local Ray instance (``ray.init(num_cpus=<CPUs>)``, started before the first ``ray`` row and timed apart) serves
every ``ray`` row; the learner runs in this process beside the workers, so on a machine with few cores they share
them.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any


def measure(collection: str, num_workers: int, env: str, num_envs: int, num_steps: int, frames: int,
            seed: int) -> dict[str, Any]:  # fmt: skip
    """One training run in this process: frames/s overall and in steady state."""
    import rlte_plugins

    agent = rlte_plugins.make("agent", "ppo", env=env, num_envs=num_envs, num_steps=num_steps, seed=seed,
                              collection=collection, num_workers=num_workers)  # fmt: skip
    try:
        out = agent.train(frames, progress=False)
    finally:
        agent.close()
    # the run loop logs charts/SPS since the start of train() at every iteration: the time of each iteration's end
    ends = [(h["frames"], h["frames"] / h["charts/SPS"]) for h in agent.history]
    steady = None
    if len(ends) > 1:
        (f0, t0), (f1, t1) = ends[0], ends[-1]
        steady = (f1 - f0) / (t1 - t0)
    return {"frames": int(out["frames"]), "train_s": out["wall_time"], "sps": out["frames"] / out["wall_time"],
            "steady_sps": steady, "first_s": ends[0][1]}  # fmt: skip


def benchmark(
    workers: list[int] = (1, 2),
    env: str = "torch_cartpole",
    num_envs: int = 8,
    num_steps: int = 128,
    frames: int = 20_480,
    seed: int = 0,
    in_process: list[str] = ("auto", "torchrl"),
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """One row per in-process strategy, then one per Ray worker count; returns the rows (see the module docstring).
    ``threads``: torch's thread count in the learner (default: torch's)."""
    import ray
    import torch

    from rlte_plugins.training.runner import quiet_torchrl

    quiet_torchrl()
    if threads:
        torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    for collection in in_process:
        rows.append({"run": collection, "workers": 0, **measure(collection, 1, env, num_envs, num_steps, frames, seed)})
    start = time.perf_counter()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    try:
        for n in workers:
            result = measure("ray", n, env, num_envs, num_steps, frames, seed)
            rows.append({"run": "ray", "workers": n, **result, "ray_start_s": ray_start if started else None})
    finally:
        if started:
            ray.shutdown()
    base = rows[0]["steady_sps"]
    for row in rows:
        row["ratio"] = None if base is None or row["steady_sps"] is None else row["steady_sps"] / base
    return rows


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def print_rows(rows: list[dict[str, Any]], env: str, num_envs: int, num_steps: int, frames: int) -> None:
    """The table of :func:`benchmark`'s rows."""
    import torch

    print(f"PPO on {env}, {num_envs} envs x {num_steps} steps a batch, {frames:,} frames; torch {torch.__version__}, "
          f"{platform.machine()} with {os.cpu_count()} CPUs, learner threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'collection':<12}{'workers':>8}{'sps':>9}{'steady':>9}{'first s':>9}{'train s':>9}{'ratio':>7}")
    for row in rows:
        print(f"{row['run']:<12}{row['workers']:>8}{_fmt(row['sps']):>9}{_fmt(row['steady_sps']):>9}"
              f"{row['first_s']:>9.1f}{row['train_s']:>9.1f}{_fmt(row['ratio'], '.2f'):>7}")  # fmt: skip
    started = [row["ray_start_s"] for row in rows if row.get("ray_start_s") is not None]
    if started:
        print(f"Ray started in {started[0]:.1f} s, before the ray rows (not in their figures)")
