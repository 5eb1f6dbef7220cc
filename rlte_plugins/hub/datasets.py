"""Benchmark results by name: the scores and learning curves of a suite's results folder
(:mod:`rlte_plugins.evaluation.results`), ready for the evaluation toolbox's metrics and plots.

:func:`load` resolves a name in this order: a path to a results folder; ``$RLTE_HUB_DIR/datasets/NAME``; the
results shipped in the repository (``results/NAME``, e.g. ``classic_control``). ``artifact:NAME[:vN]`` fetches a
``dataset`` artifact (:mod:`rlte_plugins.hub.store`) into ``$RLTE_HUB_DIR/datasets/NAME`` first;
:func:`push` stores a results folder as one.

Examples:
    >>> from rlte_plugins.hub import datasets
    >>> data = datasets.load("classic_control", algorithm="ppo")
    >>> data.algorithms, data.tasks, data.scores["ppo"].shape
    (['ppo'], ['CartPole-v1', 'torch_pendulum'], (5, 2))
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation.results import MANIFEST, Results, load_results
from rlte_plugins.hub.store import ArtifactStore, artifact_store, check_name, hub_dir, install_folder

ARTIFACT_PREFIX = "artifact:"
DATASET = "dataset"


def shipped_dir() -> Path:
    """The repository's ``results`` folder (beside the package's folder; present in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "results"


@dataclass
class Dataset:
    """One suite's results, kept to the chosen algorithms: ``scores`` is ``{algorithm: [num_runs, num_tasks]}``
    (each run's mean final evaluation return; normalised where the tasks have score ranges), ``curves``
    ``{algorithm: [num_runs, num_tasks, num_points]}`` over the frame grid ``frames``; both over ``tasks``, the
    tasks every chosen algorithm finished."""

    name: str
    path: Path
    results: Results = field(repr=False)
    algorithms: list[str]
    tasks: list[str]
    scores: dict[str, np.ndarray] = field(repr=False)
    frames: np.ndarray = field(repr=False)
    curves: dict[str, np.ndarray] = field(repr=False)


def load(
    suite: str | os.PathLike[str],
    algorithm: str | Sequence[str] | None = None,
    *,
    normalize: bool | None = None,
    key: str | None = None,
    num_points: int = 50,
    store: ArtifactStore | None = None,
) -> Dataset:
    """The scores and curves of ``suite`` (a path, a name or ``artifact:NAME[:vN]``; see the module), for
    ``algorithm`` (a name or several; default all). ``normalize``, ``key`` and ``num_points`` are those of
    :meth:`~rlte_plugins.evaluation.results.Results.score_dict` and :meth:`~.Results.curves`; ``store`` is where
    artifacts come from (default :func:`~rlte_plugins.hub.store.artifact_store`)."""
    results = load_results(resolve(suite, store))
    if algorithm is None:
        chosen = results.algorithms
    else:
        chosen = [algorithm] if isinstance(algorithm, str) else list(algorithm)
        unknown = [a for a in chosen if a not in results.algorithms] if chosen else [algorithm]
        if unknown:
            raise ConfigError(f"dataset {results.name!r} has no finished runs of {', '.join(map(repr, unknown))} "
                              f"(algorithms: {', '.join(results.algorithms) or 'none'})")  # fmt: skip
    tasks = results.common_tasks(chosen)
    scores = results.score_dict(normalize=normalize, algorithms=chosen, tasks=tasks)
    frames, curves = results.curves(key, num_points=num_points, normalize=normalize, algorithms=chosen, tasks=tasks)
    return Dataset(results.name, results.path, results, chosen, tasks, scores, frames, curves)


def resolve(suite: str | os.PathLike[str], store: ArtifactStore | None = None) -> Path:
    """The results folder ``suite`` names (the order is the module's); an unknown name is one error line listing
    the datasets there are."""
    text = os.fspath(suite)
    if text.startswith(ARTIFACT_PREFIX):
        return pull(text[len(ARTIFACT_PREFIX) :], store=store, overwrite=True)
    path = Path(text).expanduser()
    if (path / MANIFEST).is_file() or os.sep in text or (os.altsep and os.altsep in text):
        return path  # a path: load_results says what is wrong with it
    for folder in (hub_dir() / "datasets" / text, shipped_dir() / text):
        if (folder / MANIFEST).is_file():
            return folder
    names = sorted({d["name"] for d in list_datasets()})
    raise ConfigError(f"no dataset {text!r}: not a results folder, not in {str(hub_dir() / 'datasets')!r}, not "
                      f"shipped in {str(shipped_dir())!r} (datasets: {', '.join(names) or 'none'})")  # fmt: skip


def list_datasets() -> list[dict[str, Any]]:
    """Every dataset a name reaches: the hub folder's, then the shipped ones (a shipped one that a hub folder of
    the same name hides is listed too, as ``hidden``), with their algorithms, tasks and run counts."""
    out = []
    seen = set()
    for source, root in (("hub", hub_dir() / "datasets"), ("shipped", shipped_dir())):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
            entry: dict[str, Any] = {"name": folder.name, "source": source, "path": str(folder),
                                     "hidden": folder.name in seen}  # fmt: skip
            seen.add(folder.name)
            try:
                results = load_results(folder)
            except ConfigError as exc:
                entry.update(error=str(exc), algorithms=[], tasks=[], runs=0)
            else:
                entry.update(suite=results.name, algorithms=results.algorithms, tasks=results.tasks,
                             runs=len(results.finished()))  # fmt: skip
            out.append(entry)
    return out


def push(suite: str | os.PathLike[str], name: str | None = None, store: ArtifactStore | None = None) -> dict[str, Any]:
    """Store the results folder ``suite`` names as a ``dataset`` artifact called ``name`` (default the suite's
    name); returns where it went."""
    results = load_results(resolve(suite))
    name = check_name(name or results.name, "dataset name")
    store = store or artifact_store()
    return store.upload(name, DATASET, results.path, {"suite": results.name, "algorithms": results.algorithms,
                                                      "tasks": results.tasks})  # fmt: skip


def pull(ref: str, store: ArtifactStore | None = None, overwrite: bool = False) -> Path:
    """Fetch the ``dataset`` artifact ``ref`` (``NAME[:vN]``) into ``$RLTE_HUB_DIR/datasets/NAME``; returns that
    folder."""
    store = store or artifact_store()
    root = hub_dir() / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".pull-", dir=root))
    try:
        found: Mapping[str, Any] = store.download(ref, DATASET, staged)
        load_results(staged)  # refuse anything that is not a results folder before it is installed
        target = root / check_name(found["name"], "dataset name")
        install_folder(staged, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return target
