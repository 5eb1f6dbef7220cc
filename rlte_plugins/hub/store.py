"""Where the hub keeps things: the local hub folder, and the artifact stores that models and datasets travel
through (W&B artifacts, or a local folder laid out the same way).

The local hub folder is ``$RLTE_HUB_DIR`` (default ``~/.cache/rlte/hub``): ``models/NAME/`` holds registered
models (:mod:`rlte_plugins.hub.models`), ``datasets/NAME/`` results folders (:mod:`rlte_plugins.hub.datasets`).

An artifact store holds versioned artifacts, each a folder of files with a type (``model``, ``dataset``) and
metadata. Two implement :class:`ArtifactStore`:

- :class:`LocalArtifactStore`: a folder ``ROOT/NAME/vN/`` per version, its files beside ``artifact.json`` (the
  name, type, version, metadata, creation time and each file's SHA-256 and size). Reading checks every file.
- :class:`WandbArtifactStore`: W&B artifacts of a project. ``upload`` logs the artifact from a W&B run (offline
  when ``WANDB_MODE=offline``: ``wandb sync`` uploads it later); ``download`` asks the W&B server.

:func:`artifact_store` chooses: a local folder when one is given or ``RLTE_HUB_ARTIFACTS`` names one, else W&B.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from rlte_plugins.errors import ConfigError
from rlte_plugins.files import atomic_write, sha256_of

HUB_DIR_ENV = "RLTE_HUB_DIR"
ARTIFACTS_ENV = "RLTE_HUB_ARTIFACTS"
DEFAULT_HUB_DIR = "~/.cache/rlte/hub"
DEFAULT_PROJECT = "rlte-hub"
ARTIFACT_FILE = "artifact.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REF = re.compile(r"(?P<name>[^:]+)(?::(?P<version>[^:]+))?")


def hub_dir() -> Path:
    """The local hub folder: ``$RLTE_HUB_DIR``, default ``~/.cache/rlte/hub`` (not created here)."""
    return Path(os.environ.get(HUB_DIR_ENV) or DEFAULT_HUB_DIR).expanduser()


def check_name(name: object, what: str = "name") -> str:
    """``name`` if it can name a model, a dataset or an artifact (letters, digits, ``.``, ``_``, ``-``; no path
    separator; not starting with a dot), else one :class:`ConfigError` line."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith("."):
        raise ConfigError(f"{what} {name!r} is not valid: use letters, digits, '.', '_' and '-' (no '/', no leading "
                          "dot), e.g. ppo-cartpole")  # fmt: skip
    return name


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def install_folder(staged: Path, target: Path, overwrite: bool) -> None:
    """Move the folder ``staged`` (on the same file system) to ``target``; an existing ``target`` is replaced only
    with ``overwrite`` and is moved aside first, so a reader sees the old folder or the new one, never a mix."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        if not overwrite:
            raise ConfigError(f"{str(target)!r} already exists: pass overwrite=True (--overwrite) to replace it")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old)


class ArtifactStore(Protocol):
    """Versioned artifacts: folders of files with a type and metadata."""

    def upload(self, name: str, kind: str, folder: Path, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Store every file under ``folder`` as a new version of artifact ``name`` of type ``kind``; returns where
        it went (``ref`` at least)."""
        ...

    def download(self, ref: str, kind: str, dest: Path) -> dict[str, Any]:
        """Write the files of artifact ``ref`` (``NAME``, ``NAME:latest`` or ``NAME:vN``) of type ``kind`` into
        the folder ``dest``; returns its ``name``, ``version`` and ``metadata``."""
        ...


class LocalArtifactStore:
    """Artifacts in a local folder, ``ROOT/NAME/vN/`` per version (``v0`` first) with ``artifact.json``.

    Examples:
        >>> import pathlib, tempfile
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "src").mkdir(); _ = (root / "src" / "a.txt").write_text("hello")
        >>> store = LocalArtifactStore(root / "artifacts")
        >>> store.upload("demo", "dataset", root / "src", {"note": 1})["ref"]
        'demo:v0'
        >>> store.download("demo", "dataset", root / "out")["metadata"], (root / "out" / "a.txt").read_text()
        ({'note': 1}, 'hello')
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def versions(self, name: str) -> list[int]:
        """The stored versions of ``name``, oldest first."""
        folder = self.root / name
        found = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit() and (p / ARTIFACT_FILE).is_file()]
        return sorted(found)

    def upload(self, name: str, kind: str, folder: Path, metadata: Mapping[str, Any]) -> dict[str, Any]:
        check_name(name, "artifact name")
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        if not files:
            raise ConfigError(f"{str(folder)!r} holds no file to store as artifact {name!r}")
        versions = self.versions(name)
        version = f"v{versions[-1] + 1 if versions else 0}"
        (self.root / name).mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.root / name))
        try:
            contents = {}
            for path in files:
                rel = path.relative_to(folder).as_posix()
                (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, staged / rel)
                contents[rel] = {"sha256": sha256_of(staged / rel), "size": (staged / rel).stat().st_size}
            record = {"name": name, "type": kind, "version": version, "created": now(),
                      "metadata": dict(metadata), "contents": contents}  # fmt: skip
            with atomic_write(staged / ARTIFACT_FILE) as f:
                json.dump(record, f, indent=2, default=str)
            install_folder(staged, self.root / name / version, overwrite=False)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return {"store": str(self.root), "ref": f"{name}:{version}", "path": str(self.root / name / version)}

    def download(self, ref: str, kind: str, dest: Path) -> dict[str, Any]:
        name, version = self._resolve(ref)
        source = self.root / name / version
        record = json.loads((source / ARTIFACT_FILE).read_text(encoding="utf-8"))
        if record.get("type") != kind:
            raise ConfigError(f"artifact {name}:{version} in {str(self.root)!r} is a {record.get('type')!r}, not a "
                              f"{kind!r}")  # fmt: skip
        dest = Path(dest)
        for rel, entry in record["contents"].items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest / rel)
            if sha256_of(dest / rel) != entry["sha256"]:
                raise ConfigError(f"artifact {name}:{version} in {str(self.root)!r}: {rel} does not match the SHA-256 "
                                  f"of its {ARTIFACT_FILE} (the store is damaged)")  # fmt: skip
        return {"name": name, "version": version, "metadata": record.get("metadata", {}), "ref": f"{name}:{version}"}

    def _resolve(self, ref: str) -> tuple[str, str]:
        match = _REF.fullmatch(ref)
        name, version = (match["name"], match["version"] or "latest") if match else (ref, "latest")
        check_name(name, "artifact name")
        versions = self.versions(name)
        if not versions:
            stored = sorted(p.name for p in self.root.glob("*") if p.is_dir() and not p.name.startswith("."))
            raise ConfigError(f"no artifact {name!r} in {str(self.root)!r} (stored: {', '.join(stored) or 'none'})")
        if version == "latest":
            return name, f"v{versions[-1]}"
        if not re.fullmatch(r"v\d+", version) or int(version[1:]) not in versions:
            raise ConfigError(f"artifact {name!r} has no version {version!r} in {str(self.root)!r} (stored: "
                              f"{', '.join(f'v{v}' for v in versions)}, latest)")  # fmt: skip
        return name, version


class WandbArtifactStore:
    """Artifacts of a W&B project (``entity`` defaults to W&B's default one).

    ``upload`` starts a W&B run (``job_type="hub-push"``) and logs the folder as an artifact with the alias
    ``latest``; under ``WANDB_MODE=offline`` the run is written locally and ``wandb sync`` uploads it. Its W&B
    version is assigned by the server, so the returned ``ref`` is ``NAME:latest``. ``download`` calls
    ``wandb.Api().artifact(...).download(...)``: it needs a W&B server and credentials, and has not been run
    against a real server by this project's tests (they use :class:`LocalArtifactStore`).
    """

    def __init__(self, project: str = DEFAULT_PROJECT, entity: str | None = None, mode: str | None = None) -> None:
        self.project, self.entity, self.mode = project, entity, mode

    def upload(self, name: str, kind: str, folder: Path, metadata: Mapping[str, Any]) -> dict[str, Any]:
        wandb = _import_wandb()
        check_name(name, "artifact name")
        with wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            job_type="hub-push",
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off"),
        ) as run:
            artifact = wandb.Artifact(name, type=kind, metadata=dict(metadata))
            artifact.add_dir(str(folder))
            run.log_artifact(artifact, aliases=["latest"])
            local = run.offline or run.disabled
            offline_dir = str(run.settings.sync_dir) if run.offline else None
            return {"store": "wandb", "project": self.project, "entity": self.entity, "ref": f"{name}:latest",
                    "run": run.name, "url": None if local else run.url, "offline_dir": offline_dir}  # fmt: skip

    def download(self, ref: str, kind: str, dest: Path) -> dict[str, Any]:
        wandb = _import_wandb()
        full = ref if ":" in ref else f"{ref}:latest"
        path = "/".join([*([self.entity] if self.entity else []), self.project, full])
        try:
            artifact = wandb.Api().artifact(path, type=kind)
        except (wandb.errors.Error, ValueError) as exc:  # no credentials, no server, no such artifact
            raise ConfigError(f"cannot fetch W&B artifact {path!r}: {str(exc).splitlines()[0] if str(exc) else exc}"
                              ) from exc  # fmt: skip
        artifact.download(root=str(dest))
        return {"name": artifact.name.split(":")[0], "version": artifact.version, "metadata": dict(artifact.metadata),
                "ref": f"{self.project}/{artifact.name}"}  # fmt: skip


def artifact_store(
    local: str | os.PathLike[str] | None = None, project: str | None = None, entity: str | None = None
) -> ArtifactStore:
    """The artifact store to use: the local folder ``local`` or ``$RLTE_HUB_ARTIFACTS`` when either is given,
    else W&B (``project``, default ``rlte-hub``)."""
    folder = local or os.environ.get(ARTIFACTS_ENV)
    if folder:
        return LocalArtifactStore(folder)
    return WandbArtifactStore(project or DEFAULT_PROJECT, entity)


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError("W&B artifacts need wandb: pip install 'rlte-plugins[wandb]' (or set RLTE_HUB_ARTIFACTS to "
                          "a local artifact folder)") from exc  # fmt: skip
    return wandb
