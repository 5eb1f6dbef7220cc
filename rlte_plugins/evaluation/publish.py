"""Publish a results folder (:mod:`rlte_plugins.evaluation.results`) to Weights & Biases in the shape CleanRL's
runs have, so that openrlbenchmark and W&B's own grouping read it like any CleanRL benchmark.

:func:`publish_run` makes one W&B run per finished ``(algorithm, task, seed)``:

- name ``{env_id}__{exp_name}__{seed}__{timestamp}`` (the task, the algorithm, the seed and the Unix time the run
  started), ``group`` the algorithm (W&B draws the seeds of a group as one curve with its spread),
  ``job_type="train"``, tags the suite's name and any given;
- ``config``: ``env_id``, ``exp_name``, ``seed``, ``total_frames``, ``frames``, ``config_hash``, ``versions``,
  ``suite`` and every hyperparameter of the run's ``config.yaml`` flattened with dots (``agent.lr``,
  ``encoder.num_cells``, ``train.total_frames``...);
- history: one row per logged iteration, ``global_step`` (the frames) and each metric under its CleanRL name
  (``charts/episodic_return``, ``losses/policy_loss``...), charted against ``global_step``; the learning curve
  figure as the image ``media/learning_curve``;
- summary: ``eval/episodic_return`` (the final deterministic evaluation's mean, the score the suite ranks by),
  ``eval/episodic_return_std``, ``eval/episodes``, ``global_step`` and ``wall_time``;
- the checkpoint as a ``model`` artifact whose metadata holds its SHA-256.

:func:`publish_suite` adds one run (``job_type="suite"``) holding the table of every run's final score and the
suite's figures.

Read the runs back with openrlbenchmark (``'ppo?tag=SUITE'`` keeps one suite's runs)::

    python -m openrlbenchmark.rlops \\
        --filters '?we=ENTITY&wpn=PROJECT&ceik=env_id&cen=exp_name&metric=charts/episodic_return' 'ppo' 'a2c' \\
        --env-ids CartPole-v1 --no-check-empty-runs --output-filename compare --scan-history

W&B writes where ``WANDB_DIR`` says (by default ``./wandb``). Runs made offline (``mode="offline"`` or
``WANDB_MODE=offline``) are uploaded later with ``wandb sync ./wandb/offline-run-*``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation.results import EVAL_RETURN, Results
from rlte_plugins.files import CHECKPOINT_FILE, CONFIG_FILE

SUMMARY_FILE = "summary.json"
CURVE_FILE = "learning_curve.png"
TABLE_COLUMNS = ("algorithm", "task", "seed", "status", "frames", "final_score", "wall_time", "config_hash")


def publish_run(
    results: Results,
    record: Mapping[str, Any],
    project: str,
    entity: str | None = None,
    mode: str | None = None,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """Publish one finished run of ``results`` as a W&B run; returns where it went (for the record's ``wandb``).

    ``mode`` is W&B's (``"online"``, ``"offline"``, ``"disabled"``); ``None`` leaves it to ``WANDB_MODE``. The run
    folder's ``config.yaml``, ``learning_curve.png`` and ``checkpoint.pt`` are published when present.

    The returned ``project`` and ``entity`` are the arguments (``entity=None``: W&B's default entity), ``url`` is
    None and ``offline_dir`` the run's folder for ``wandb sync`` when the run was made offline.
    """
    if record.get("status") != "finished":
        raise ValueError(f"run {record.get('id')!r} has status {record.get('status')!r}: only finished runs are "
                         "published")  # fmt: skip
    wandb = _import_wandb()
    env_id, exp_name, seed = str(record["task"]), str(record["algorithm"]), int(record["seed"])
    # everything is read before the W&B run starts, so a bad folder leaves no half-published run behind
    scores = results.run_scores(record)
    run_dir = results.path / record["run_dir"] if record.get("run_dir") else None
    hyperparameters = _hyperparameters(run_dir) if run_dir else {}
    curve = run_dir / CURVE_FILE if run_dir and (run_dir / CURVE_FILE).is_file() else None
    checkpoint = run_dir / CHECKPOINT_FILE if run_dir and (run_dir / CHECKPOINT_FILE).is_file() else None
    digest = _sha256(checkpoint) if checkpoint else None
    frames = int(record["frames"])
    config = {
        "env_id": env_id,
        "exp_name": exp_name,
        "seed": seed,
        "total_frames": hyperparameters.get("train.total_frames", frames),
        "frames": frames,
        "config_hash": record.get("config_hash"),
        "versions": dict(record.get("versions") or {}),
        "suite": results.name,
        **hyperparameters,
    }
    finals = np.asarray(scores.final_returns, dtype=np.float64)
    summary = {
        EVAL_RETURN: _finite(record.get("final_score")),
        f"{EVAL_RETURN}_std": float(np.std(finals)) if finals.size else None,
        "eval/episodes": int(finals.size),
        "global_step": frames,
        "wall_time": _finite(record.get("wall_time")),
    }
    artifact_name = _artifact_name(f"{exp_name}__{env_id}__{seed}") if checkpoint else None

    with _init(
        wandb,
        project=project,
        entity=entity,
        mode=mode,
        name=f"{env_id}__{exp_name}__{seed}__{_unix_time(record['started'])}",
        group=exp_name,
        job_type="train",
        tags=_unique([results.name, *tags]),
        config=config,
    ) as run:
        # without it W&B charts every metric against its own log counter, not the frames
        run.define_metric("*", step_metric="global_step")
        steps = scores.history["frames"]
        metrics = {k: v for k, v in scores.history.items() if k != "frames"}
        for i, step in enumerate(steps):
            if not math.isfinite(step):
                continue
            row = {key: float(values[i]) for key, values in metrics.items() if math.isfinite(values[i])}
            run.log({"global_step": int(step), **row})
        if curve is not None:
            run.log({"global_step": frames, "media/learning_curve": wandb.Image(str(curve))})
        run.summary.update({k: v for k, v in summary.items() if v is not None})
        if checkpoint is not None:
            artifact = wandb.Artifact(
                artifact_name,
                type="model",
                description=f"{exp_name} on {env_id}, seed {seed}, after {frames} frames",
                metadata={"sha256": digest, "algorithm": exp_name, "task": env_id, "seed": seed, "frames": frames,
                          "config_hash": record.get("config_hash")},
            )  # fmt: skip
            artifact.add_file(str(checkpoint), name=CHECKPOINT_FILE)
            run.log_artifact(artifact)
        return _where(run, project, entity, artifact_name, digest)


def publish_suite(
    results: Results,
    project: str,
    entity: str | None = None,
    mode: str | None = None,
    plots: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """Publish the suite's summary as one W&B run: every run's final score as the table ``final_scores`` and each
    PNG figure in ``plots`` as the image ``plots/<file stem>``; returns where it went, as :func:`publish_run` does.

    The run is named ``{suite}__summary__{timestamp}``, the timestamp being the first run's start, so publishing
    the same folder twice gives the same name."""
    wandb = _import_wandb()
    figures = [Path(p) for p in plots]
    missing = [str(p) for p in figures if not p.is_file()]
    if missing:
        raise ValueError(f"no such figure: {', '.join(missing)}")
    runs = results.runs
    ranges = {}
    for task in results.manifest.get("tasks", {}):
        found = results.score_ranges([task])
        ranges[task] = list(found[0]) if found else None
    started = [_unix_time(r["started"]) for r in runs if r.get("started")]
    rows = [[r.get(column) for column in TABLE_COLUMNS] for r in runs]

    with _init(
        wandb,
        project=project,
        entity=entity,
        mode=mode,
        name=f"{results.name}__summary__{min(started) if started else int(time.time())}",
        group="suite",
        job_type="suite",
        tags=[results.name],
        config={"suite": results.name, "score_ranges": ranges},
    ) as run:
        logged: dict[str, Any] = {"final_scores": wandb.Table(columns=list(TABLE_COLUMNS), data=rows)}
        logged.update({f"plots/{p.stem}": wandb.Image(str(p)) for p in figures})
        run.log(logged)
        return _where(run, project, entity, None, None)


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError("publishing to Weights & Biases needs wandb: pip install 'rlte-plugins[wandb]'") from exc
    return wandb


def _init(wandb: Any, **kwargs: Any) -> Any:
    # "create_new" leaves a run the caller already has open alone; console="off" keeps W&B from capturing the
    # caller's output into the published run
    return wandb.init(**kwargs, reinit="create_new", settings=wandb.Settings(silent=True, console="off"))


def _where(run: Any, project: str, entity: str | None, artifact: str | None, sha256: str | None) -> dict[str, Any]:
    local = run.offline or run.disabled
    return {
        # as asked, not as W&B resolved them: a caller compares them with where it publishes next
        "project": project,
        "entity": entity,
        "id": run.id,
        "name": run.name,
        "group": run.group,
        # run.url warns on an offline run
        "url": None if local else run.url,
        "artifact": artifact,
        "sha256": sha256,
        "offline_dir": str(run.settings.sync_dir) if run.offline else None,
    }


def _hyperparameters(run_dir: Path) -> dict[str, Any]:
    """The run's normalised config flattened with dots (sections that are null, not used, left out), with the
    agent's defaults the config did not set (``summary.json``'s ``agent_config``) under ``agent.``."""
    from rlte_plugins.training.config import parse_yaml

    path = run_dir / CONFIG_FILE
    config = parse_yaml(path.read_text(encoding="utf-8")) or {} if path.is_file() else {}
    if not isinstance(config, Mapping):
        raise ValueError(f"{str(path)!r} is not a run's config (a mapping of sections)")
    out = _flatten({k: v for k, v in config.items() if v is not None})
    summary = run_dir / SUMMARY_FILE
    if summary.is_file():
        resolved = json.loads(summary.read_text(encoding="utf-8")).get("agent_config") or {}
        out.update({f"agent.{k}": v for k, v in _flatten(resolved).items() if f"agent.{k}" not in out})
    return out


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _unix_time(iso: str) -> int:
    moment = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))  # Python 3.10 does not read "Z"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # the manifest's times are UTC
    return int(moment.timestamp())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _artifact_name(name: str) -> str:
    """``name`` with every character W&B refuses in an artifact name (``/``, ``:``...) made ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(i) for i in items))
