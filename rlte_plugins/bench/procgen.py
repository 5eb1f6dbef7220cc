"""Generalisation on Procgen: on-policy agents trained on ``num_levels`` levels of each game (easy mode), run as a
benchmark suite (:mod:`rlte_plugins.bench.suite`: resumable, every run stored), then scored on the training levels
and on the full level distribution (the test levels), normalised with Procgen's easy ranges, with the interquartile
mean and 95% stratified-bootstrap intervals of the evaluation toolbox beside the published references.

Every agent runs with the Procgen settings of its paper (PPO: those of Cobbe et al. 2020 and CleanRL's
``ppo_procgen.py``, which DrAC shares: 64 envs x 256 steps, 3 epochs of 8 minibatches, Adam at 5e-4, gamma 0.999;
DrAC with its best augmentation per game, DAAC with its authors' per-game value-phase settings) and the IMPALA-CNN
(``espeholt_resnet``), shared by actor and critic where the paper shares it. Scores are the mean
return of episodes with sampled actions, as the papers report them.

``--speed`` times the update loop instead: frames per second of each agent on one game, after a warm-up batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: PPO after 25M frames on 200 levels (easy), mean normalised score over the 16 games (OpenAI's training logs of
#: Cobbe et al. 2020, as the DrAC/DAAC/PPG papers quote them) and the test-score ratios to PPO the papers report
PUBLISHED = {"ppo": {"train": 0.61, "test": 0.36}}
PUBLISHED_TEST_RATIO = {"ppg": 1.5, "daac": 1.7}
#: the smallest normalised PPO test score a ratio is printed against
MIN_RATIO_BASE = 0.05

#: the paper-shared Procgen settings (PPO, DrAC): see :data:`rlte_plugins.agents.drac.PROCGEN_DEFAULTS`
AGENT_OPTIONS: dict[str, dict[str, Any]] = {
    "ppo": {"epochs": 3},
    "drac": {},
    "daac": {},
    "drdaac": {},
    # the suite restarts an interrupted run from its seed: the auxiliary buffer (up to 6 GiB) need not be saved
    "ppg": {"aux_buffer_in_checkpoint": False},
    "impala": {},
}


def per_game(agent: str, game: str) -> dict[str, Any]:
    """The paper's per-game settings of ``agent`` on ``game`` as suite overrides: DrAC's best augmentation
    (:data:`~rlte_plugins.agents.drac.BEST_AUGMENTATION`) and DAAC's value-phase and advantage-loss settings
    (:data:`~rlte_plugins.agents.daac.BEST_HYPERPARAMETERS`)."""
    from rlte_plugins.agents.daac import BEST_HYPERPARAMETERS
    from rlte_plugins.agents.drac import BEST_AUGMENTATION

    out: dict[str, Any] = {}
    if agent in ("drac", "drdaac"):
        aug = BEST_AUGMENTATION[game]
        out["augmentation"] = {"name": aug} if isinstance(aug, str) else dict(aug)
    if agent in ("daac", "drdaac"):
        out.update({f"agent.{k}": v for k, v in BEST_HYPERPARAMETERS.get(game, {}).items()})
    return out


SHARED_TRUNK = {"ppo", "drac", "impala"}  # the papers share the torso; DAAC and PPG separate it by design


def agent_config(agent: str, game: str, num_levels: int, num_envs: int, num_steps: int = 256) -> dict[str, Any]:
    """The run configuration of ``agent`` on ``game`` (a ``rlte train`` config mapping)."""
    from rlte_plugins.agents.drac import PROCGEN_DEFAULTS

    options = dict(PROCGEN_DEFAULTS) if agent in ("ppo", "drac") else {}
    options.update(AGENT_OPTIONS.get(agent, {}))
    options.pop("num_envs", None)
    config: dict[str, Any] = {
        "description": f"{agent} on Procgen {game} ({num_levels} levels, easy)",
        "agent": {"name": agent, **options, "num_steps": num_steps},
        "env": {"name": "procgen", "game": game, "num_envs": num_envs, "num_levels": num_levels,
                "distribution_mode": "easy"},
        "encoder": {"name": "espeholt_resnet"},
        "train": {"eval_episodes": 1, "logger": "csv"},
    }  # fmt: skip
    if agent in SHARED_TRUNK:
        config["policy"] = {"name": "actor_critic", "shared_encoder": True}
    return config


def suite(
    agents: Sequence[str],
    games: Sequence[str],
    frames: int,
    num_levels: int,
    seeds: int,
    num_envs: int = 64,
    num_steps: int = 256,
) -> dict[str, Any]:
    """The suite file (as a mapping): every agent on every game."""
    unknown = [a for a in agents if a not in AGENT_OPTIONS]
    if unknown:
        from rlte_plugins.errors import ComponentArgumentError

        raise ComponentArgumentError(f"rlte bench procgen: no Procgen settings for agent {unknown[0]!r} (known: "
                                     f"{', '.join(AGENT_OPTIONS)})")  # fmt: skip
    return {
        "name": "procgen",
        "description": f"{', '.join(agents)} on Procgen {', '.join(games)}: {num_levels} training levels, easy",
        "seeds": seeds,
        "set": {"train.progress": False},
        "tasks": {game: {"frames": frames, "normalize": "procgen_easy"} for game in games},
        "algorithms": {
            agent: {"config": agent_config(agent, games[0], num_levels, num_envs, num_steps),
                    "tasks": {game: {"set": {"env.game": game, **per_game(agent, game)}} for game in games}}
            for agent in agents
        },
    }  # fmt: skip


def _score(agent: Any, game: str, num_levels: int, episodes: int, seed: int) -> float:
    """Mean return of ``episodes`` sampled-action episodes on ``num_levels`` levels (0: the full distribution)."""
    import rlte_plugins

    env = rlte_plugins.make("env", "procgen", game=game, num_envs=min(episodes, 16), seed=seed,
                            num_levels=num_levels, distribution_mode="easy")  # fmt: skip
    try:
        return float(np.mean(agent.evaluate(episodes, deterministic=False, env=env)))
    finally:
        env.close()


def benchmark(
    agents: Sequence[str] = ("ppo", "drac", "daac", "ppg"),
    games: Sequence[str] = ("bigfish", "coinrun", "starpilot"),
    frames: int = 25_000_000,
    num_levels: int = 200,
    seeds: int = 3,
    eval_episodes: int = 100,
    output: str | Path | None = None,
    threads: int | None = None,
    num_envs: int = 64,
    num_steps: int = 256,
) -> dict[str, Any]:
    """Run (or resume) the suite, score every finished run on its training levels and on the test levels, and
    print the normalised scores per game and their IQM over runs and games; returns the table."""
    from rlte_plugins.agents.base import load_agent
    from rlte_plugins.bench.suite import load_suite, run_suite
    from rlte_plugins.evaluation import aggregate_iqm, aggregate_mean, get_interval_estimates
    from rlte_plugins.evaluation.normalization import score_range
    from rlte_plugins.training.runner import CHECKPOINT_FILE

    output = Path(output or Path("results") / "procgen")
    output.mkdir(parents=True, exist_ok=True)
    spec_file = output.parent / f"{output.name}.suite.yaml"
    spec = suite(agents, games, frames, num_levels, seeds, num_envs, num_steps)
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    results = run_suite(load_suite(spec_file), output, threads=threads)
    scored_file = output / "generalisation.json"
    scored = json.loads(scored_file.read_text(encoding="utf-8")) if scored_file.is_file() else {}
    raw: dict[str, dict[str, dict[str, list[float]]]] = {}
    speed: dict[str, list[float]] = {}
    for record in results.finished():
        key = f"{record['id']}@{record['config_hash']}:{eval_episodes}"
        if key not in scored:  # scoring is the slow part of a resumed benchmark: each run is scored once
            agent = load_agent(output / record["run_dir"] / CHECKPOINT_FILE)
            try:
                scored[key] = {split: _score(agent, record["task"], levels, eval_episodes, 10_000 + record["seed"])
                               for split, levels in (("train", num_levels), ("test", 0))}  # fmt: skip
            finally:
                agent.close()
            scored_file.write_text(json.dumps(scored, indent=2), encoding="utf-8")
        per = raw.setdefault(record["algorithm"], {})
        for split in ("train", "test"):
            per.setdefault(split, {}).setdefault(record["task"], []).append(scored[key][split])
        speed.setdefault(record["algorithm"], []).append(record["frames"] / record["wall_time"])
    return report(raw, speed, games, frames, num_levels, eval_episodes, output, score_range, get_interval_estimates,
                  aggregate_iqm, aggregate_mean)  # fmt: skip


def normalised(raw: dict[str, dict[str, list[float]]], games: Sequence[str], score_range: Any) -> np.ndarray:
    """``[runs, games]`` normalised scores from ``{game: [score per seed]}`` (seeds aligned by position; games
    with fewer runs are cut to the shortest)."""
    runs = min(len(raw[g]) for g in games)
    columns = []
    for game in games:
        low, high = score_range("procgen_easy", game)
        columns.append((np.asarray(raw[game][:runs]) - low) / (high - low))
    return np.stack(columns, axis=1)


def report(
    raw: dict[str, dict[str, dict[str, list[float]]]],
    speed: dict[str, list[float]],
    games: Sequence[str],
    frames: int,
    num_levels: int,
    eval_episodes: int,
    output: Path,
    score_range: Any,
    get_interval_estimates: Any,
    aggregate_iqm: Any,
    aggregate_mean: Any,
) -> dict[str, Any]:
    """Print and store the tables of :func:`benchmark`."""
    done = [g for g in games if all(g in raw[a]["train"] for a in raw)]
    if not raw or not done:
        print("no finished runs to score")
        return {}
    table: dict[str, Any] = {"frames": frames, "num_levels": num_levels, "games": done, "agents": {}}
    print(
        f"\nProcgen (easy), {num_levels} training levels, {frames:,} frames per run; normalised score (mean "
        f"over seeds) of {eval_episodes} sampled-action episodes on the training levels and on the test levels:"
    )
    print("{:10s} {:10s} {:>5s} {:>8s} {:>8s}".format("game", "agent", "runs", "train", "test"))
    matrices = {split: {a: normalised(raw[a][split], done, score_range) for a in raw} for split in ("train", "test")}
    for gi, game in enumerate(done):
        for agent in raw:
            train, test = matrices["train"][agent][:, gi], matrices["test"][agent][:, gi]
            print(f"{game:10s} {agent:10s} {len(train):5d} {train.mean():8.3f} {test.mean():8.3f}")
    print("\nAggregates over runs x games (95% stratified-bootstrap intervals); references: PPO at 25M frames, "
          "200 levels, mean over the 16 games; PPG and DAAC as the ratio of their test score to PPO's:")  # fmt: skip
    print("{:10s} {:>6s} {:>22s} {:>22s} {:>7s} {:>7s} {:>10s} {:>10s}".format(
        "agent", "metric", "train", "test", "pub.tr", "pub.te", "test/ppo", "frames/s"))  # fmt: skip
    for metric, fn in (("IQM", aggregate_iqm), ("mean", aggregate_mean)):
        points, intervals = {}, {}
        for split in ("train", "test"):
            points[split], intervals[split] = get_interval_estimates(matrices[split], fn, reps=2000, random_state=0)
        for agent in raw:
            row = table["agents"].setdefault(agent, {"frames_per_second": float(np.median(speed[agent]))})
            cells = []
            for split in ("train", "test"):
                low, high = intervals[split][agent][:, 0]
                row[f"{metric}_{split}"] = [float(points[split][agent]), float(low), float(high)]
                cells.append(f"{points[split][agent]:6.3f} [{low:6.3f},{high:6.3f}]")
            pub = PUBLISHED.get(agent, {})
            # a ratio to a PPO score near the random policy's (an early or failed run) would be noise
            base = points["test"].get("ppo", 0.0)
            ratio = points["test"][agent] / base if base >= MIN_RATIO_BASE else None
            row[f"{metric}_test_ratio_to_ppo"] = ratio
            shown = [f"{pub[s]:.2f}" if s in pub and metric == "mean" else "-" for s in ("train", "test")]
            ref = PUBLISHED_TEST_RATIO.get(agent)
            ratio_text = "-" if ratio is None else f"{ratio:.2f}" + (f" ({ref})" if ref and metric == "mean" else "")
            print(f"{agent:10s} {metric:>6s} {cells[0]:>22s} {cells[1]:>22s} {shown[0]:>7s} {shown[1]:>7s} "
                  f"{ratio_text:>10s} {row['frames_per_second']:10.0f}")  # fmt: skip
    (output / "procgen.json").write_text(json.dumps(table, indent=2), encoding="utf-8")
    return table


def speed(
    agents: Sequence[str] = ("ppo", "drac", "daac", "ppg"),
    game: str = "bigfish",
    num_envs: int = 64,
    num_steps: int = 256,
    iterations: int = 2,
    threads: int | None = None,
) -> dict[str, float]:
    """Frames per second of each agent's collect-and-update loop on ``game``, same run, same settings as
    :func:`benchmark` (DAAC: its default value phase every batch); printed beside PPO's.

    ``iterations`` batches are timed together after one untimed batch. PPG's phases are timed whole: its ``n_pi``
    becomes ``iterations`` and a whole cycle runs untimed first, so the timed batches hold one auxiliary phase,
    whose cost per frame is the paper's (``aux_epochs`` passes over every stored frame, whatever ``n_pi``)."""
    import torch

    from rlte_plugins.training.config import normalize_config
    from rlte_plugins.training.runner import build_agent

    if threads:
        torch.set_num_threads(threads)
    figures: dict[str, float] = {}
    print(f"Procgen {game}, {num_envs} envs x {num_steps} steps per batch, torch threads {torch.get_num_threads()}; "
          f"{iterations} timed batches after untimed ones:")  # fmt: skip
    print("{:10s} {:>10s} {:>8s}".format("agent", "frames/s", "vs ppo"))
    for name in agents:
        config = agent_config(name, game, 200, num_envs, num_steps)
        warmup = 1
        if name == "ppg":
            config["agent"]["n_pi"] = warmup = iterations
        agent = build_agent(normalize_config({**config, "train": {"seed": 0}}, "rlte bench procgen --speed"))
        try:
            for _ in range(warmup):
                agent.iteration()
            start = time.perf_counter()
            for _ in range(iterations):
                agent.iteration()
            elapsed = time.perf_counter() - start
        finally:
            agent.close()
        figures[name] = iterations * agent.frames_per_batch / elapsed
        ratio = figures[name] / figures["ppo"] if "ppo" in figures else float("nan")
        print(f"{name:10s} {figures[name]:10.0f} {ratio:8.2f}")
    return figures
