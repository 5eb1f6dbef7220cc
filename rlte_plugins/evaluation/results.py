"""The results folder of a benchmark suite (``rlte bench suite``), read back as rliable score matrices.

Layout of ``RESULTS_DIR``::

    manifest.json           what ran: the suite, the tasks' score ranges, one record per run (below)
    suite.yaml              the suite file as it was run
    scores/RUN_ID.npz       per run: ``final_returns`` (the final deterministic evaluation episodes),
                            ``history_keys`` and ``history`` (every logged metric per iteration, NaN where absent;
                            column 0 is ``frames``)
    runs/RUN_ID/            the ``rlte train`` run folder: config.yaml, checkpoint.pt, logs, learning_curve.png
    plots/                  the figures of ``rlte eval plot``

``RUN_ID`` is ``{algorithm}__{task}__{seed}`` (``/`` in a task id becomes ``-``). A run record in the manifest:
``id``, ``algorithm``, ``task``, ``seed``, ``status`` (``finished`` or ``failed``), ``frames``, ``final_score``
(the mean of ``final_returns``), ``config_hash`` (the run's configuration without its seed and output folder),
``versions`` (Python and the packages), ``started`` / ``finished`` (UTC, ISO 8601), ``wall_time`` (s),
``run_dir`` and ``scores_file`` (relative to the folder), ``error`` (the last line of a failure) and ``wandb``
(where the run was published). The manifest is rewritten atomically after every run, so an interrupted suite
loses nothing it finished.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation.normalization import normalize_score_matrix, score_range
from rlte_plugins.files import atomic_write

FORMAT = "rlte-results/1"
MANIFEST = "manifest.json"
RETURN = "charts/episodic_return"
EVAL_RETURN = "eval/episodic_return"


def run_id(algorithm: str, task: str, seed: int) -> str:
    """The id (and file name) of one run of a suite."""
    return f"{algorithm}__{task.replace('/', '-')}__{seed}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader never sees half a file."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


def write_run_scores(path: Path, final_returns: Sequence[float], history: Sequence[Mapping[str, float]]) -> None:
    """Write one run's ``scores/RUN_ID.npz``: its final evaluation returns and its metric history."""
    keys = ["frames", *sorted({k for h in history for k in h if k != "frames"})]
    table = np.full((len(history), len(keys)), np.nan)
    for i, row in enumerate(history):
        for j, key in enumerate(keys):
            value = row.get(key)
            if value is not None:
                table[i, j] = float(value)
    final = np.asarray(final_returns, dtype=np.float64)
    with atomic_write(path, binary=True) as f:
        np.savez_compressed(f, final_returns=final, history_keys=np.array(keys, dtype=str), history=table)


@dataclass(frozen=True)
class RunScores:
    """One run's stored scores."""

    final_returns: np.ndarray
    history: dict[str, np.ndarray]  # key -> one value per iteration (NaN where not logged); "frames" included

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunScores:
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = [str(k) for k in data["history_keys"]]
                table = data["history"]
                final = data["final_returns"]
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"{str(path)!r} is not a run's scores file of a results folder ({exc})") from exc
        return cls(final, {k: table[:, j] for j, k in enumerate(keys)})

    def curve(self, key: str = RETURN) -> tuple[np.ndarray, np.ndarray]:
        """``(frames, values)`` of one metric, where it was logged."""
        if key not in self.history:
            raise KeyError(f"metric {key!r} was not logged (logged: {', '.join(sorted(self.history))})")
        values = self.history[key]
        keep = np.isfinite(values)
        return self.history["frames"][keep], values[keep]


class Results:
    """A results folder: its runs, and their scores as ``{algorithm: [num_runs, num_tasks]}`` matrices.

    Examples:
        >>> from rlte_plugins.evaluation import load_results, aggregate_iqm
        >>> results = load_results("results/classic_control")  # doctest: +SKIP
        >>> results.algorithms, results.tasks  # doctest: +SKIP
        (['a2c', 'ppo'], ['CartPole-v1', 'torch_pendulum'])
        >>> {alg: aggregate_iqm(m) for alg, m in results.score_dict().items()}  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise ConfigError(f"{str(self.path)!r} is not a results folder: it has no {MANIFEST} (rlte bench suite "
                             "writes one)")  # fmt: skip
        try:
            self.manifest: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{str(manifest)!r} is not valid JSON ({exc})") from exc
        if self.manifest.get("format") != FORMAT:
            raise ConfigError(f"{str(manifest)!r} has format {self.manifest.get('format')!r}; this version reads "
                             f"{FORMAT!r}")  # fmt: skip

    @property
    def name(self) -> str:
        return str(self.manifest.get("suite", self.path.name))

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Every run record, finished or failed."""
        return list(self.manifest.get("runs", {}).values())

    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") == "finished"]

    @property
    def algorithms(self) -> list[str]:
        return sorted({r["algorithm"] for r in self.finished()})

    @property
    def tasks(self) -> list[str]:
        """Tasks in the suite's order."""
        order = list(self.manifest.get("tasks", {}))
        present = {r["task"] for r in self.finished()}
        return [t for t in order if t in present] + sorted(present - set(order))

    def run_scores(self, record: Mapping[str, Any]) -> RunScores:
        return RunScores.read(self.path / record["scores_file"])

    def common_tasks(self, algorithms: Sequence[str] | None = None) -> list[str]:
        """The tasks on which every one of ``algorithms`` (default: all) finished at least one run: the columns
        of a score matrix that compares them."""
        algorithms = self.algorithms if algorithms is None else algorithms
        done = {(r["algorithm"], r["task"]) for r in self.finished()}
        return [t for t in self.tasks if all((a, t) in done for a in algorithms)]

    def score_ranges(self, tasks: Iterable[str] | None = None) -> list[tuple[float, float]] | None:
        """One ``(low, high)`` per task from the suite's ``score_range`` / ``normalize`` entries; ``None`` when no
        task has one; an error when only some have (raw and normalised scores do not mix)."""
        tasks = list(self.common_tasks() if tasks is None else tasks)
        specs = {t: self.manifest.get("tasks", {}).get(t) or {} for t in tasks}
        ranged = [t for t in tasks if specs[t].get("score_range") is not None or specs[t].get("normalize")]
        if not ranged:
            return None
        if len(ranged) < len(tasks):
            missing = [t for t in tasks if t not in ranged]
            raise ConfigError(f"{self.name!r}: tasks {', '.join(missing)} have no score_range or normalize table "
                              "while the others do: give them one in the suite file (or plot raw returns)")  # fmt: skip
        return [(float(specs[t]["score_range"][0]), float(specs[t]["score_range"][1]))
                if specs[t].get("score_range") is not None else score_range(specs[t]["normalize"], t)
                for t in tasks]  # fmt: skip

    def _seeds(self, algorithm: str, tasks: Sequence[str]) -> dict[str, list[int]]:
        """Per task, the seeds of ``algorithm``'s finished runs, the same number on every task (the lowest seeds
        where a task has more): runs are resampled within their task, so seeds need not match across tasks."""
        by_task = {t: sorted(r["seed"] for r in self.finished() if r["algorithm"] == algorithm and r["task"] == t)
                   for t in tasks}  # fmt: skip
        missing = [t for t, seeds in by_task.items() if not seeds]
        if missing or not tasks:
            where = ", ".join(missing) or "any task"
            raise ConfigError(f"{algorithm!r} has no finished run on {where} in {self.name!r} (compare on the "
                              "tasks every algorithm finished: common_tasks())")  # fmt: skip
        count = min(len(seeds) for seeds in by_task.values())
        return {t: seeds[:count] for t, seeds in by_task.items()}

    def _normalize(self, matrix: np.ndarray, tasks: Sequence[str], normalize: bool | None) -> np.ndarray:
        if normalize is False:
            return matrix
        ranges = self.score_ranges(tasks)
        if ranges is None and normalize:
            raise ConfigError(f"cannot normalise {self.name!r}: give every task a score_range [low, high] or a "
                              "normalize table (atari, procgen_easy, procgen_hard, dmc) in the suite file")  # fmt: skip
        return matrix if ranges is None else normalize_score_matrix(matrix, ranges)

    def score_dict(
        self, normalize: bool | None = None, algorithms: Sequence[str] | None = None, tasks: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Final scores (each run's mean final evaluation return) as ``{algorithm: [num_runs, num_tasks]}`` over
        ``tasks`` (default: :meth:`common_tasks`), normalised with the tasks' score ranges (``normalize=None``:
        when the tasks have them)."""
        algorithms = list(self.algorithms if algorithms is None else algorithms)
        tasks = list(self.common_tasks(algorithms) if tasks is None else tasks)
        index = {(r["algorithm"], r["task"], r["seed"]): r for r in self.finished()}
        out = {}
        for alg in algorithms:
            seeds = self._seeds(alg, tasks)
            columns = [[index[alg, t, s]["final_score"] for s in seeds[t]] for t in tasks]
            out[alg] = self._normalize(np.array(columns, dtype=np.float64).T, tasks, normalize)
        return out

    def curves(
        self,
        key: str | None = None,
        num_points: int = 50,
        normalize: bool | None = None,
        algorithms: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
        relative: bool | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Learning curves on a common frame grid: ``(frames, {algorithm: [num_runs, num_tasks, num_points]})``,
        each run's metric linearly interpolated at ``num_points`` frames up to the shortest run. ``key`` defaults
        to the evaluation return where every run logged it, else the training episode return. With
        ``relative=True`` the grid is the fraction of each run's own frames (0 to 1), which puts tasks trained for
        different budgets on one axis; ``None`` chooses it when the runs' budgets differ (:meth:`relative_frames`)."""
        algorithms = list(self.algorithms if algorithms is None else algorithms)
        tasks = list(self.common_tasks(algorithms) if tasks is None else tasks)
        index = {(r["algorithm"], r["task"], r["seed"]): r for r in self.finished()}
        selected = {alg: self._seeds(alg, tasks) for alg in algorithms}
        scores = {(a, t, s): self.run_scores(index[a, t, s]) for a in algorithms for t in tasks
                  for s in selected[a][t]}  # fmt: skip
        if key is None:
            logged = all(np.isfinite(s.history.get(EVAL_RETURN, np.array([math.nan]))).any() for s in scores.values())
            key = EVAL_RETURN if logged else RETURN
        curves = {k: s.curve(key) for k, s in scores.items()}
        if relative is None:
            relative = self.relative_frames(tasks, algorithms)
        if relative:
            curves = {k: (f / index[k]["frames"], v) for k, (f, v) in curves.items()}
        empty = [run_id(*k) for k, (f, _) in curves.items() if len(f) == 0]
        if empty:
            raise ConfigError(f"runs that never logged {key!r}: {', '.join(empty)}")
        start = max(f[0] for f, _ in curves.values())
        stop = min(f[-1] for f, _ in curves.values())
        frames = np.linspace(start, stop, num_points) if stop > start else np.array([stop], dtype=np.float64)
        out = {}
        for alg, seeds in selected.items():
            cube = np.array([[np.interp(frames, *curves[alg, t, s]) for s in seeds[t]] for t in tasks])
            cube = cube.transpose(1, 0, 2)  # [tasks, runs, frames] -> [runs, tasks, frames]
            out[alg] = self._normalize(cube, tasks, normalize)
        return frames, out

    def relative_frames(self, tasks: Sequence[str] | None = None, algorithms: Sequence[str] | None = None) -> bool:
        """Whether the runs' frame budgets differ by more than 5% (their curves then share a relative axis)."""
        frames = [r["frames"] for r in self.finished() if (tasks is None or r["task"] in tasks)
                  and (algorithms is None or r["algorithm"] in algorithms)]  # fmt: skip
        return bool(frames) and max(frames) > 1.05 * min(frames)


def load_results(path: str | os.PathLike[str]) -> Results:
    """Open a results folder written by ``rlte bench suite``."""
    return Results(path)
