"""Learning benchmark: the default recipe (PPO on CartPole-v1) over several seeds.

Prints each seed's final mean return (deterministic evaluation of the final policy), the mean over seeds,
the last training episodes' mean return, and the wall time. Seeds run in parallel worker processes with one
torch thread each (small networks gain nothing from more threads).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import statistics
import time
from typing import Any


def run_seed(recipe: str, seed: int, frames: int, eval_episodes: int) -> dict[str, Any]:
    import torch

    from rlte_plugins.training.config import apply_overrides, load_config, normalize_config
    from rlte_plugins.training.runner import build_agent, quiet_torchrl

    torch.set_num_threads(1)
    quiet_torchrl()
    raw, source = load_config(recipe)
    config = normalize_config(apply_overrides(raw, [f"train.seed={seed}", f"train.total_frames={frames}"]), source)
    agent = build_agent(config)
    start = time.perf_counter()
    agent.train(frames, progress=False)
    wall = time.perf_counter() - start
    returns = agent.evaluate(eval_episodes)
    tail = [h["charts/episodic_return"] for h in agent.history[-10:] if "charts/episodic_return" in h]
    return {
        "seed": seed,
        "frames": agent.frames,
        "eval_return": statistics.fmean(returns),
        "train_return": statistics.fmean(tail) if tail else float("nan"),
        "wall_time": wall,
    }


def benchmark(
    recipe: str = "ppo_cartpole",
    seeds: int = 5,
    frames: int = 100_000,
    eval_episodes: int = 20,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    workers = workers or min(seeds, os.cpu_count() or 1)
    print(
        f"benchmark: recipe {recipe}, {seeds} seeds x {frames:,} frames, {eval_episodes} deterministic evaluation "
        f"episodes per seed, {workers} worker processes on {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()})",
        flush=True,
    )
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(run_seed, recipe, seed, frames, eval_episodes) for seed in range(seeds)]
        results = []
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            results.append(r)
            print(
                f"  seed {r['seed']}: final mean return {r['eval_return']:7.2f}   last training episodes "
                f"{r['train_return']:7.2f}   {r['frames']:,} frames in {r['wall_time']:.1f} s",
                flush=True,
            )
    wall = time.perf_counter() - start
    results.sort(key=lambda r: r["seed"])
    evals = [r["eval_return"] for r in results]
    spread = statistics.stdev(evals) if len(evals) > 1 else 0.0
    print(
        f"mean final return over {seeds} seeds: {statistics.fmean(evals):.2f} (std {spread:.2f}, min {min(evals):.2f})"
    )
    print(f"wall time: {wall:.1f} s in all")
    return results
