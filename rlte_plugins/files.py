"""Files written so that a crash never leaves a torn one (checkpoints, replay generation markers, results, exported
models), and their checksums."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: a run directory's checkpoint (``rlte train`` writes it; eval, play, export, the hub and resume read it)
CHECKPOINT_FILE = "checkpoint.pt"
#: the config a run directory holds (``rlte train --resume`` reads it back)
CONFIG_FILE = "config.yaml"


def checkpoint_of(run: str | os.PathLike[str]) -> Path:
    """The checkpoint file of ``run``: a run directory of ``rlte train`` (its ``checkpoint.pt``) or a checkpoint
    file; a directory without one is refused with a clear error (a missing file is refused where it is read)."""
    from rlte_plugins.errors import CheckpointError

    path = Path(run).expanduser()
    checkpoint = path / CHECKPOINT_FILE if path.is_dir() else path
    if path.is_dir() and not checkpoint.is_file():
        raise CheckpointError(f"{str(path)!r} has no {CHECKPOINT_FILE}: not a run directory of rlte train, or one "
                              "that has not saved yet")  # fmt: skip
    return checkpoint


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], binary: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it is flushed to disk and renamed over
    ``path``, on any error removed: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the mode open() would have given (mkstemp's file is private)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
