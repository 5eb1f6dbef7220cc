"""A local registry of trained agents: ``$RLTE_HUB_DIR/models/NAME/`` holds ``checkpoint.pt`` and ``model.json``.

``model.json`` records ``name``, ``agent``, ``preset``, ``env`` (the checkpoint's env reference), ``frames``,
``sha256`` (of ``checkpoint.pt``), ``source`` (the file registered), ``created`` (UTC, ISO 8601), ``evaluation``
(the run's final evaluation from its ``summary.json``, when there is one), ``versions`` (Python and the packages)
and ``metadata`` (what the caller added). :func:`load` refuses a checkpoint whose SHA-256 changed since.

:func:`push` stores a model as a W&B ``model`` artifact (or in a local artifact folder,
:mod:`rlte_plugins.hub.store`) and :func:`pull` brings one into the registry.

Examples:
    >>> import os, tempfile, rlte_plugins
    >>> from unittest import mock
    >>> from rlte_plugins.hub import models
    >>> agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8)
    >>> path = agent.save(os.path.join(tempfile.mkdtemp(), "checkpoint.pt"))
    >>> with mock.patch.dict(os.environ, RLTE_HUB_DIR=tempfile.mkdtemp()):  # a hub folder of its own
    ...     record = models.register("ppo-cartpole", path, note="untrained")
    ...     names, frames = [m["name"] for m in models.list_models()], models.load("ppo-cartpole").frames
    >>> record["agent"], record["metadata"], names, frames
    ('ppo', {'note': 'untrained'}, ['ppo-cartpole'], 0)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rlte_plugins.errors import CheckpointError, ConfigError
from rlte_plugins.files import CHECKPOINT_FILE, atomic_write, checkpoint_of
from rlte_plugins.hub.store import ArtifactStore, artifact_store, check_name, hub_dir, install_folder, now, sha256_of

MODEL_FILE = "model.json"
SUMMARY_FILE = "summary.json"
MODEL = "model"


def models_dir() -> Path:
    """The registry's folder: ``$RLTE_HUB_DIR/models``."""
    return hub_dir() / "models"


def register(
    name: str, run_dir_or_checkpoint: str | os.PathLike[str], *, overwrite: bool = False, **metadata: Any
) -> dict[str, Any]:
    """Copy a run's checkpoint (``RUN_DIR/checkpoint.pt``, or a checkpoint file) into the registry as ``name``
    with its ``model.json`` (returned); an existing ``name`` is replaced only with ``overwrite=True``.
    ``metadata`` is kept in ``model.json`` (plain JSON values)."""
    check_name(name, "model name")
    checkpoint = checkpoint_of(run_dir_or_checkpoint)
    target = models_dir() / name
    if target.exists() and not overwrite:
        raise ConfigError(f"model {name!r} is already registered: pass overwrite=True (--overwrite) to replace it, "
                          "or choose another name")  # fmt: skip
    models_dir().mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir()))
    try:
        record = _stage(name, checkpoint, staged, metadata)
        install_folder(staged, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return record


def load(name: str, **overrides: Any) -> Any:
    """The registered agent ``name``, rebuilt by :func:`rlte_plugins.load_agent` with ``overrides``, after its
    checkpoint's SHA-256 is checked against ``model.json``."""
    record = info(name)
    checkpoint = models_dir() / name / CHECKPOINT_FILE
    if not checkpoint.is_file():
        raise CheckpointError(f"model {name!r} has no {CHECKPOINT_FILE} in {str(checkpoint.parent)!r}: register it "
                              "again")  # fmt: skip
    digest = sha256_of(checkpoint)
    if digest != record.get("sha256"):
        raise CheckpointError(f"model {name!r}: {str(checkpoint)!r} has sha256 {digest}, but {MODEL_FILE} records "
                              f"{record.get('sha256')}; the file changed after it was registered: register or pull "
                              "it again")  # fmt: skip
    from rlte_plugins.agents.base import load_agent

    return load_agent(checkpoint, **overrides)


def info(name: str) -> dict[str, Any]:
    """The ``model.json`` of the registered model ``name``."""
    check_name(name, "model name")
    path = models_dir() / name / MODEL_FILE
    if not path.is_file():
        names = [m["name"] for m in list_models()]
        raise ConfigError(f"no model {name!r} in {str(models_dir())!r} (registered: {', '.join(names) or 'none'}; "
                          "rlte hub register RUN_DIR --name NAME adds one)")  # fmt: skip
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc}): register the model again") from exc


def list_models() -> list[dict[str, Any]]:
    """The ``model.json`` of every registered model, by name."""
    root = models_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            out.append(json.loads((folder / MODEL_FILE).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue  # not a model folder (or a damaged one): info() and load() say so by name
    return out


def remove(name: str) -> None:
    """Delete the registered model ``name``."""
    info(name)
    target = models_dir() / name
    # renamed first, so that the name is free at once even if deleting the files is interrupted
    doomed = Path(tempfile.mkdtemp(prefix=f".{name}.removed-", dir=models_dir()))
    os.replace(target, doomed / name)
    shutil.rmtree(doomed)


def push(source: str | os.PathLike[str], name: str | None = None, store: ArtifactStore | None = None) -> dict[str, Any]:
    """Store a model as a ``model`` artifact: ``source`` is a run directory, a checkpoint file or (when no such
    path exists) a registered model's name; ``name`` (default the model's name, or the run directory's) names the
    artifact. Returns where it went, with the ``sha256`` of the checkpoint."""
    store = store or artifact_store()
    with tempfile.TemporaryDirectory(prefix="rlte-push-") as tmp:
        staged = Path(tmp) / "model"
        staged.mkdir()
        text = os.fspath(source)
        if not Path(text).exists() and (models_dir() / text / MODEL_FILE).is_file():
            record = info(text)
            checkpoint = models_dir() / text / CHECKPOINT_FILE
            if sha256_of(checkpoint) != record.get("sha256"):
                raise CheckpointError(f"model {text!r}: {CHECKPOINT_FILE} does not match the sha256 of its "
                                      f"{MODEL_FILE}: register it again before pushing")  # fmt: skip
            record = {**record, "name": check_name(name or text, "artifact name")}
            shutil.copy2(checkpoint, staged / CHECKPOINT_FILE)
            with atomic_write(staged / MODEL_FILE) as f:
                json.dump(record, f, indent=2, default=str)
        else:
            checkpoint = checkpoint_of(text)
            default = checkpoint.parent.name if checkpoint.name == CHECKPOINT_FILE else checkpoint.stem
            record = _stage(check_name(name or default, "artifact name"), checkpoint, staged, {})
        where = store.upload(record["name"], MODEL, staged, record)
    return {**where, "name": record["name"], "sha256": record["sha256"]}


def pull(
    ref: str, name: str | None = None, store: ArtifactStore | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Fetch the ``model`` artifact ``ref`` (``NAME``, ``NAME:latest``, ``NAME:vN``) into the registry as ``name``
    (default the artifact's name); its checkpoint must match the SHA-256 its ``model.json`` records. Returns the
    installed ``model.json``."""
    store = store or artifact_store()
    models_dir().mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".pull-", dir=models_dir()))
    try:
        found = store.download(ref, MODEL, staged)
        name = check_name(name or found["name"], "model name")
        if (models_dir() / name).exists() and not overwrite:
            raise ConfigError(f"model {name!r} is already registered: pass overwrite=True (--overwrite) to replace "
                              "it, or pull it under another name")  # fmt: skip
        if not (staged / MODEL_FILE).is_file() or not (staged / CHECKPOINT_FILE).is_file():
            raise CheckpointError(f"artifact {ref!r} is not an rlte model: it lacks {MODEL_FILE} or {CHECKPOINT_FILE}")
        record = json.loads((staged / MODEL_FILE).read_text(encoding="utf-8"))
        digest = sha256_of(staged / CHECKPOINT_FILE)
        if digest != record.get("sha256"):
            raise CheckpointError(f"artifact {ref!r}: {CHECKPOINT_FILE} has sha256 {digest}, but its {MODEL_FILE} "
                                  f"records {record.get('sha256')}")  # fmt: skip
        record.update(name=name, artifact={"ref": found.get("ref", ref), "version": found.get("version")},
                      pulled=now())  # fmt: skip
        with atomic_write(staged / MODEL_FILE) as f:
            json.dump(record, f, indent=2, default=str)
        install_folder(staged, models_dir() / name, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return record


def _stage(name: str, checkpoint: Path, folder: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Copy ``checkpoint`` into ``folder`` and write its ``model.json`` beside it; returns the record."""
    from rlte_plugins.training.checkpoint import load_checkpoint

    data = load_checkpoint(checkpoint)  # refuses anything that is not a readable rlte checkpoint
    if not isinstance(data.get("agent"), str):
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} does not hold an agent")
    shutil.copy2(checkpoint, folder / CHECKPOINT_FILE)
    digest = sha256_of(folder / CHECKPOINT_FILE)
    if digest != sha256_of(checkpoint):
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} changed while it was copied: try again")
    record = {
        "name": name,
        "agent": data["agent"],
        "preset": data.get("preset"),
        "env": data.get("env"),
        "frames": int((data.get("counters") or {}).get("frames", 0)),
        "sha256": digest,
        "source": str(checkpoint.resolve()),
        "created": now(),
        "evaluation": _evaluation(checkpoint.parent / SUMMARY_FILE),
        "versions": _versions(),
        "metadata": metadata,
    }
    with atomic_write(folder / MODEL_FILE) as f:
        json.dump(record, f, indent=2, default=str)
    return record


def _evaluation(summary: Path) -> dict[str, Any] | None:
    """The final evaluation a run's ``summary.json`` records, or ``None`` without one."""
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    keys = ("eval_return_mean", "eval_returns", "train_episode_return", "frames", "wall_time")
    return {k: data.get(k) for k in keys if k in data} or None


def _versions() -> dict[str, str | None]:
    from rlte_plugins.bench.suite import package_versions

    return package_versions()
