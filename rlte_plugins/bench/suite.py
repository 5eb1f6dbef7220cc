"""Benchmark suites: every (algorithm, task, seed) of a suite file trained, stored in one results folder
(:mod:`rlte_plugins.evaluation.results`) and optionally published to W&B (:mod:`rlte_plugins.evaluation.publish`).

A suite file (YAML)::

    name: classic_control            # the results folder defaults to results/NAME
    description: PPO and A2C on two classic-control tasks
    seeds: 5                         # seeds 0..4, or a list
    set: {train.eval_episodes: 20}   # overrides of every run (--set keys of rlte train)
    tasks:
      CartPole-v1:
        env: {name: gymnasium, env_id: CartPole-v1}   # merged into each config's env section
        frames: 50000                                 # train.total_frames
        score_range: [0, 500]                         # or normalize: atari | procgen_easy | procgen_hard | dmc
    algorithms:
      ppo:
        config: ppo_cartpole         # a packaged recipe, a YAML path (relative to the suite file) or a mapping
        set: {agent.lr: 0.001}
        tasks:                       # per task: another config and/or more overrides
          torch_pendulum: {config: configs/ppo_pendulum.yaml}

A run's configuration is its config, then the task's env and frames, then the suite's, the algorithm's and the
task entry's ``set``; then its seed and run folder. Runs execute one after another through a launcher (the seam
where parallel or Ray launchers plug in); a run that fails is recorded as failed and the suite goes on; running
the suite again skips the runs that finished with the same configuration (and retries the others).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation.normalization import TABLES, score_range
from rlte_plugins.evaluation.results import (
    FORMAT,
    MANIFEST,
    Results,
    run_id,
    write_json_atomic,
    write_run_scores,
)
from rlte_plugins.training.config import apply_overrides, load_config, normalize_config, parse_yaml

SUITE_KEYS = ("name", "description", "seeds", "output", "set", "tasks", "algorithms")
TASK_KEYS = ("env", "frames", "score_range", "normalize")
ALGORITHM_KEYS = ("config", "set", "tasks")
ENTRY_KEYS = ("config", "set")
#: the packages whose versions every run record holds
VERSIONED = ("rlte-plugins", "torch", "torchrl", "tensordict", "gymnasium", "numpy")
#: the parts of a run's config that do not change its result (left out of its config hash, so changing them
#: does not run a finished run again)
UNHASHED_TRAIN = ("seed", "output", "progress", "threads", "logger", "checkpoint_every")


@dataclass(frozen=True)
class Job:
    """One run of a suite: an algorithm on a task with a seed, and its full configuration."""

    algorithm: str
    task: str
    seed: int
    config: dict[str, Any]

    @property
    def id(self) -> str:
        return run_id(self.algorithm, self.task, self.seed)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: Mapping[str, Any]) -> str:
    """A short hash of a run's configuration without its seed, run folder and progress display: the seeds of
    one configuration share it, and a changed hyperparameter changes it."""
    stripped = {k: v for k, v in config.items() if k != "train"}
    stripped["train"] = {k: v for k, v in config["train"].items() if k not in UNHASHED_TRAIN}
    return hashlib.sha256(json.dumps(stripped, sort_keys=True, default=str).encode()).hexdigest()[:16]


def package_versions() -> dict[str, str | None]:
    """Python's and the benchmarked packages' versions."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _mapping(value: Any, where: str, keys: Iterable[str]) -> dict[str, Any]:
    """``value`` as a mapping whose keys are among ``keys`` (null is an empty mapping)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {value!r}")
    keys = tuple(keys)
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where} (accepted: {', '.join(keys)})")
    return dict(value)


def _overrides(value: Any, where: str) -> list[str]:
    """A ``set`` mapping as ``rlte train --set`` strings (JSON values are YAML)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of 'section.key: value', got {value!r}")
    return [f"{k}={json.dumps(v)}" for k, v in value.items()]


@dataclass
class Suite:
    """A parsed suite file (:func:`load_suite`)."""

    name: str
    source: Path | None
    seeds: list[int]
    tasks: dict[str, dict[str, Any]]
    algorithms: dict[str, dict[str, Any]]
    overrides: list[str] = field(default_factory=list)
    description: str = ""
    output: str | None = None
    text: str = ""

    def _base_config(self, spec: Any, where: str) -> dict[str, Any]:
        if isinstance(spec, dict):
            return dict(spec)
        if not isinstance(spec, str):
            raise ConfigError(f"{where}: 'config' must be a recipe name, a YAML path or a mapping, got {spec!r}")
        path = Path(spec)
        if self.source is not None and not path.is_absolute() and (path.suffix in (".yaml", ".yml") or "/" in spec):
            path = self.source.parent / path
            spec = str(path)
        return load_config(spec)[0]

    def config(self, algorithm: str, task: str, seed: int, output: Path) -> dict[str, Any]:
        """The normalised configuration of one run."""
        where = f"suite {self.name!r}, algorithm {algorithm!r}, task {task!r}"
        alg = self.algorithms[algorithm]
        entry = alg["tasks"].get(task, {})
        spec = entry.get("config", alg.get("config"))
        if spec is None:
            raise ConfigError(f"{where}: no config (give the algorithm or its task entry a 'config')")
        config = self._base_config(spec, where)
        task_spec = self.tasks[task]
        env = task_spec.get("env")
        if env is not None:
            env = {"name": env} if isinstance(env, str) else dict(env)
            current = config.get("env")
            current = {"name": current} if isinstance(current, str) else dict(current or {})
            config["env"] = env if "name" in env and env["name"] != current.get("name") else {**current, **env}
        overrides = [*self.overrides, *_overrides(alg.get("set"), f"{where}: set"),
                     *_overrides(entry.get("set"), f"{where}: tasks.{task}.set")]  # fmt: skip
        if task_spec.get("frames") is not None:
            overrides.insert(0, f"train.total_frames={int(task_spec['frames'])}")
        config = apply_overrides(config, [*overrides, f"train.seed={seed}", f"train.output={json.dumps(str(output))}"])
        config = normalize_config(config, where)
        if config["train"]["eval_episodes"] < 1:
            raise ConfigError(f"{where}: train.eval_episodes must be >= 1 in a suite (the final score is the mean "
                              "return of the final evaluation episodes)")  # fmt: skip
        return config

    def jobs(self, results_dir: Path) -> list[Job]:
        """Every run, algorithm by algorithm, task by task, seed by seed."""
        return [Job(alg, task, seed, self.config(alg, task, seed, results_dir / "runs" / run_id(alg, task, seed)))
                for alg in self.algorithms for task in self.algorithms[alg]["task_list"]
                for seed in self.seeds]  # fmt: skip


def load_suite(path: str | Path, seeds: int | None = None) -> Suite:
    """Read and check a suite file; ``seeds`` (a count) replaces the file's."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    data = _mapping(data, f"suite {str(path)!r}", SUITE_KEYS)
    name = data.get("name") or path.stem
    if not isinstance(name, str) or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise ConfigError(f"suite {str(path)!r}: name must be a word (letters, digits, - _ .), got {name!r}")
    where = f"suite {name!r}"
    raw_seeds = seeds if seeds is not None else data.get("seeds", 1)
    if isinstance(raw_seeds, bool) or not (
        (isinstance(raw_seeds, int) and raw_seeds >= 1)
        or (isinstance(raw_seeds, list) and raw_seeds and all(isinstance(s, int) and s >= 0 for s in raw_seeds))
    ):
        raise ConfigError(f"{where}: seeds must be a count >= 1 or a list of seeds >= 0, got {raw_seeds!r}")
    seed_list = list(range(raw_seeds)) if isinstance(raw_seeds, int) else list(dict.fromkeys(raw_seeds))
    tasks_raw = data.get("tasks")
    if not isinstance(tasks_raw, dict) or not tasks_raw:
        raise ConfigError(f"{where} needs 'tasks': a mapping of task ids to their env, frames and score range")
    tasks = {}
    for task, spec in tasks_raw.items():
        spec = _mapping(spec, f"{where}: task {task!r}", TASK_KEYS)
        frames = spec.get("frames")
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
            raise ConfigError(f"{where}: task {task!r}: frames must be a positive int, got {frames!r}")
        bounds = spec.get("score_range")
        if bounds is not None and not (
            isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bounds)
            and bounds[1] > bounds[0]
        ):  # fmt: skip
            raise ConfigError(f"{where}: task {task!r}: score_range must be [low, high] with high > low, got "
                              f"{bounds!r}")  # fmt: skip
        if spec.get("normalize") is not None:
            if spec["normalize"] not in TABLES:
                raise ConfigError(f"{where}: task {task!r}: unknown normalize table {spec['normalize']!r} (accepted: "
                                  f"{', '.join(TABLES)})")  # fmt: skip
            score_range(spec["normalize"], str(task))  # a task the table lacks fails here, not after the runs
        tasks[str(task)] = spec
    algorithms_raw = data.get("algorithms")
    if not isinstance(algorithms_raw, dict) or not algorithms_raw:
        raise ConfigError(f"{where} needs 'algorithms': a mapping of names (W&B's exp_name) to their config")
    algorithms = {}
    for alg, spec in algorithms_raw.items():
        if "__" in str(alg) or "," in str(alg):
            raise ConfigError(f"{where}: algorithm {alg!r}: '__' and ',' separate the parts of run ids and of "
                              "algorithm pairs, rename it")  # fmt: skip
        spec = {"config": spec} if isinstance(spec, str) else _mapping(spec, f"{where}: algorithm {alg!r}",
                                                                      ALGORITHM_KEYS)  # fmt: skip
        entries = _mapping(spec.get("tasks"), f"{where}: algorithm {alg!r}: tasks", tasks)
        spec["tasks"] = {t: _mapping(e, f"{where}: algorithm {alg!r}: task {t!r}", ENTRY_KEYS)
                         for t, e in entries.items()}  # fmt: skip
        # an algorithm with a config of its own runs every task; one with per-task entries only, those tasks
        spec["task_list"] = list(tasks) if spec.get("config") is not None else list(spec["tasks"])
        if not spec["task_list"]:
            raise ConfigError(f"{where}: algorithm {alg!r} needs a 'config' or per-task entries under 'tasks'")
        algorithms[str(alg)] = spec
    output = data.get("output")
    if output is not None and not isinstance(output, str):
        raise ConfigError(f"{where}: output must be a folder path, got {output!r}")
    suite = Suite(name, path, seed_list, tasks, algorithms, _overrides(data.get("set"), f"{where}: set"),
                  str(data.get("description") or ""), output, text)  # fmt: skip
    suite.jobs(Path("results"))  # every run's config is checked before anything starts
    return suite


class Launcher(Protocol):
    """Runs a suite's jobs, yielding each one's record as it finishes (in any order)."""

    def run(self, jobs: list[Job], execute: Callable[[Job], dict[str, Any]]) -> Iterator[dict[str, Any]]: ...


class SequentialLauncher:
    """Runs jobs one after another in this process."""

    def run(self, jobs: list[Job], execute: Callable[[Job], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield execute(job)


def execute_job(job: Job, results_dir: Path, versions: Mapping[str, Any]) -> dict[str, Any]:
    """Train one run into ``results_dir/runs/RUN_ID`` and store its scores; returns its record (status
    ``failed`` with the error when it raised; Ctrl-C propagates)."""
    from rlte_plugins.training.runner import run

    run_dir = results_dir / "runs" / job.id
    if run_dir.exists():  # what an unfinished attempt left: the run starts again from its seed
        shutil.rmtree(run_dir)
    record: dict[str, Any] = {
        "id": job.id, "algorithm": job.algorithm, "task": job.task, "seed": job.seed, "status": "running",
        "config_hash": job.config_hash, "versions": dict(versions), "started": _now(),
        "run_dir": f"runs/{job.id}", "scores_file": f"scores/{job.id}.npz", "error": None,
    }  # fmt: skip
    start = time.perf_counter()
    try:
        summary = run(job.config, name=job.id)
    except Exception as exc:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        message = str(exc).strip().splitlines()
        record.update(status="failed", error=f"{type(exc).__name__}: {message[0] if message else ''}",
                      finished=_now(), wall_time=time.perf_counter() - start)  # fmt: skip
        return record
    returns = [float(r) for r in summary["eval_returns"]]
    if not all(math.isfinite(r) for r in returns):
        record.update(status="failed", error=f"non-finite final evaluation returns {returns}", finished=_now(),
                      wall_time=time.perf_counter() - start)  # fmt: skip
        return record
    write_run_scores(results_dir / record["scores_file"], returns, summary["history"])
    record.update(status="finished", frames=int(summary["frames"]), final_score=summary["eval_return_mean"],
                  finished=_now(), wall_time=time.perf_counter() - start)  # fmt: skip
    return record


def _open_manifest(results_dir: Path, suite: Suite) -> dict[str, Any]:
    path = results_dir / MANIFEST
    if path.is_file():
        manifest = Results(results_dir).manifest
        if manifest.get("suite") != suite.name:
            raise ConfigError(f"results folder {str(results_dir)!r} holds suite {manifest.get('suite')!r}, not "
                              f"{suite.name!r}: pass another --output")  # fmt: skip
    elif results_dir.exists() and any(results_dir.iterdir()):
        raise ConfigError(f"{str(results_dir)!r} is not empty and has no {MANIFEST}: not a results folder of "
                          "rlte bench suite (pass another --output)")  # fmt: skip
    else:
        manifest = {"format": FORMAT, "suite": suite.name, "created": _now(), "runs": {}}
    # tasks dropped from the suite keep their entries: their runs are still in the folder
    manifest.update(description=suite.description, tasks={**manifest.get("tasks", {}), **suite.tasks},
                    seeds=suite.seeds, source=str(suite.source) if suite.source else None)  # fmt: skip
    return manifest


def run_suite(
    suite: Suite,
    output: str | Path | None = None,
    launcher: Launcher | None = None,
    wandb_project: str | None = None,
    wandb_entity: str | None = None,
    threads: int | None = None,
    progress: bool = False,
    echo: Callable[[str], None] = print,
) -> Results:
    """Run every job of ``suite`` not already finished in its results folder, publish to W&B when a project is
    given, and return the folder's :class:`~rlte_plugins.evaluation.results.Results`."""
    results_dir = Path(output or suite.output or Path("results") / suite.name)
    manifest = _open_manifest(results_dir, suite)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "suite.yaml").write_text(suite.text, encoding="utf-8")
    write_json_atomic(results_dir / MANIFEST, manifest)
    overrides = [f"train.progress={json.dumps(progress)}", *([f"train.threads={threads}"] if threads else [])]
    jobs = [Job(j.algorithm, j.task, j.seed, normalize_config(apply_overrides(j.config, overrides)))
            for j in suite.jobs(results_dir)]  # fmt: skip
    pending = []
    for job in jobs:
        previous = manifest["runs"].get(job.id)
        done = (
            previous is not None and previous.get("status") == "finished"
            and (results_dir / previous["scores_file"]).is_file()
        )  # fmt: skip
        if done and previous.get("config_hash") == job.config_hash:
            continue
        if done:
            echo(f"{job.id}: its configuration changed since it finished; running it again")
        pending.append(job)
    echo(f"suite {suite.name!r}: {len(jobs)} runs, {len(jobs) - len(pending)} already finished, {len(pending)} to "
         f"run -> {results_dir}")  # fmt: skip
    versions = package_versions()
    launcher = launcher or SequentialLauncher()
    for n, record in enumerate(launcher.run(pending, lambda job: execute_job(job, results_dir, versions)), 1):
        manifest["runs"][record["id"]] = record
        manifest["updated"] = _now()
        write_json_atomic(results_dir / MANIFEST, manifest)
        if record["status"] == "finished":
            echo(f"[{n}/{len(pending)}] {record['id']}: final return {record['final_score']:.2f} after "
                 f"{record['frames']:,} frames ({record['wall_time']:.0f} s)")  # fmt: skip
        else:
            echo(f"[{n}/{len(pending)}] {record['id']}: FAILED ({record['error']}); details in "
                 f"{results_dir / record['run_dir'] / 'error.txt'}")  # fmt: skip
    results = Results(results_dir)
    if wandb_project:
        publish_results(results, wandb_project, wandb_entity, echo=echo)
    failed = [r["id"] for r in results.runs if r["status"] != "finished"]
    if failed:
        echo(f"{len(failed)} run(s) failed: {', '.join(failed)} (run the suite again to retry them)")
    return results


def publish_results(
    results: Results, project: str, entity: str | None = None, echo: Callable[[str], None] = print
) -> None:
    """Publish every finished run not yet in ``project`` (one W&B run each), then the suite's table and plots.
    Where a run is published is written to its record, so publishing again skips it."""
    from rlte_plugins.evaluation.publish import publish_run, publish_suite
    from rlte_plugins.evaluation.report import plot_results

    manifest = results.manifest
    offline_now = os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun")

    def published(where: Mapping[str, Any] | None) -> bool:
        where = where or {}
        same = where.get("project") == project and where.get("entity") == entity and where.get("id")
        # a run published offline is published again online (its offline copy may never be synced)
        return bool(same) and (offline_now or not where.get("offline_dir"))

    new = 0
    for record in results.finished():
        if published(record.get("wandb")):
            continue
        manifest["runs"][record["id"]]["wandb"] = publish_run(results, record, project, entity)
        write_json_atomic(results.path / MANIFEST, manifest)
        new += 1
        echo(f"published {record['id']} to W&B project {project!r}")
    if not new and published(manifest.get("wandb")):
        return
    try:
        plots = [p for p in plot_results(results) if p.suffix == ".png"] if results.finished() else []
    except ConfigError as exc:  # the table still goes out
        echo(f"no figures for W&B: {exc}")
        plots = []
    manifest["wandb"] = publish_suite(results, project, entity, plots=plots)
    write_json_atomic(results.path / MANIFEST, manifest)
    echo(f"published the suite's final scores and {len(plots)} plot(s) to W&B project {project!r}")
