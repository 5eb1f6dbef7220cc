"""Exploration bonuses on a sparse-reward task: PPO alone and PPO with each bonus on MiniGrid DoorKey (by default 8x8,
1M frames, 5 seeds), run as a benchmark suite (:mod:`rlte_plugins.bench.suite`, so it resumes and stores every run),
then the success rate of each with 95% stratified-bootstrap intervals beside the published figures.

The runs are ``recipes/ppo_rnd_minigrid.py``'s configuration (``rlte train ppo_rnd_minigrid``: PPO with CleanRL's
settings on the 7x7 view's codes) with the reward section swapped; every bonus is weighted as RLeXplore weights
them, ``0.05 * (1 - 2.5e-5) ** frames`` after its own normalisation, so that it leads early and fades. The published
figures are RLeXplore's (Yuan et al., 2024, "RLeXplore: accelerating research in intrinsically-motivated
reinforcement learning"), PPO on DoorKey-8x8 after 1M frames.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: success rate after 1M frames on MiniGrid-DoorKey-8x8 reported by RLeXplore
PUBLISHED = {"ppo": 0.22, "re3": 0.95, "icm": 0.83, "rnd": 0.0}


def suite(
    bonuses: Sequence[str],
    task: str,
    frames: int,
    seeds: int,
    eval_episodes: int,
    beta: float = 0.05,
    kappa: float = 2.5e-5,
) -> dict[str, Any]:
    """The suite file (as a mapping): ``ppo`` without a bonus and one algorithm per bonus, each bonus weighted
    ``beta * (1 - kappa) ** frames`` after its own normalisation."""
    algorithms: dict[str, Any] = {}
    for bonus in bonuses:
        reward = None if bonus in ("ppo", "none") else {"name": bonus, "beta": beta, "kappa": kappa}
        algorithms["ppo" if reward is None else bonus] = {"config": "ppo_rnd_minigrid", "set": {"reward": reward}}
    return {
        "name": "exploration",
        "description": f"PPO and PPO with exploration bonuses on {task}",
        "seeds": seeds,
        "set": {"train.eval_episodes": eval_episodes, "train.progress": False},
        "tasks": {task: {"env": {"name": "minigrid", "task": task, "num_envs": 16}, "frames": frames,
                         "score_range": [0, 1]}},
        "algorithms": algorithms,
    }  # fmt: skip


def benchmark(
    bonuses: Sequence[str] = ("ppo", "re3", "icm", "rnd"),
    task: str = "MiniGrid-DoorKey-8x8-v0",
    frames: int = 1_000_000,
    seeds: int = 5,
    eval_episodes: int = 32,
    output: str | Path | None = None,
    threads: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Run (or resume) the suite and print the success rate of each algorithm; returns the table."""
    from rlte_plugins.bench.suite import load_suite, run_suite
    from rlte_plugins.evaluation import aggregate_mean, get_interval_estimates

    output = Path(output or Path("results") / "exploration")
    output.mkdir(parents=True, exist_ok=True)
    spec_file = output.parent / f"{output.name}.suite.yaml"
    spec_file.write_text(yaml.safe_dump(suite(bonuses, task, frames, seeds, eval_episodes), sort_keys=False),
                         encoding="utf-8")  # fmt: skip
    results = run_suite(load_suite(spec_file), output, threads=threads)
    success: dict[str, list[float]] = {}
    training: dict[str, list[float]] = {}
    wall: dict[str, float] = {}
    for record in results.finished():
        scores = results.run_scores(record)
        alg = record["algorithm"]
        success.setdefault(alg, []).append(float(np.mean(scores.final_returns > 0)))  # DoorKey pays at the goal
        # the sampling policy's return over its last 10 logged iterations (the curves papers draw)
        training.setdefault(alg, []).append(float(np.mean(scores.curve("charts/episodic_return")[1][-10:])))
        wall[alg] = wall.get(alg, 0.0) + record["wall_time"]
    scores = {alg: np.array(rates)[:, None] for alg, rates in success.items()}
    points, intervals = get_interval_estimates(scores, aggregate_mean, reps=2000, random_state=0)
    print(f"\n{task}, {frames:,} frames, success rate over {eval_episodes} deterministic episodes per run "
          "(mean over seeds, 95% stratified-bootstrap interval):")  # fmt: skip
    header = ("algorithm", "runs", "success", "95% interval", "published", "train return", "wall s/run")
    print("{:10s} {:>4s} {:>8s} {:>16s} {:>10s} {:>13s} {:>11s}".format(*header))
    table = {}
    for alg in success:
        low, high = intervals[alg][:, 0]
        published = PUBLISHED.get(alg) if frames == 1_000_000 and task == "MiniGrid-DoorKey-8x8-v0" else None
        runs = len(success[alg])
        train = float(np.mean(training[alg]))
        table[alg] = {"runs": runs, "success": float(points[alg]), "ci": [float(low), float(high)],
                      "published": published, "train_return": train, "wall_time_per_run": wall[alg] / runs}  # fmt: skip
        shown = "-" if published is None else f"{published:.2f}"
        print(f"{alg:10s} {runs:4d} {points[alg]:8.2f} [{low:6.2f}, {high:5.2f}] {shown:>10s} {train:13.3f} "
              f"{wall[alg] / runs:11.0f}")  # fmt: skip
    (output / "exploration.json").write_text(json.dumps(table, indent=2), encoding="utf-8")
    return table
