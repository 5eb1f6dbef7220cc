"""Checkpoint files: state only (``torch.load(weights_only=True)``), written atomically, checked on load.

Each file records the plugins that provided its components (``"providers"``: entry-point name ->
distribution and version), so loading one whose plugin is gone says which package to install.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlte_plugins.errors import CheckpointError
from rlte_plugins.files import atomic_write
from rlte_plugins.registry import get_registry, get_spec

FORMAT = "rlte-plugins/checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` to ``path`` atomically: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "providers": providers_of(payload), **payload}
    with atomic_write(path, binary=True) as handle:
        torch.save(data, handle)
    return path


def load_checkpoint(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; any damage raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({size} bytes; {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an rlte-plugins checkpoint")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {data['format_version']}, newer than this "
            f"rlte-plugins reads ({FORMAT_VERSION}); upgrade rlte-plugins"
        )
    registry = get_registry()
    for plugin, provider in (data.get("providers") or {}).items():
        why = registry.unavailable(plugin, provider.get("distribution"), provider.get("version"))
        if why:
            raise CheckpointError(f"checkpoint {str(path)!r} was written with {why}")
    if kind is not None and data.get("agent") != kind:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {data.get('agent')!r} agent, not {kind!r}")
    return data


def providers_of(payload: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The plugins behind a payload's agent (``"agent"``, a registry name) and the component references in it
    (``{"name": "plugin:name", "kwargs": ...}``, as agents store them): entry-point name -> distribution, version.
    """
    registry = get_registry()
    plugins: set[str] = set()
    agent = payload.get("agent")
    if isinstance(agent, str):
        try:
            plugins.add(get_spec("agent", agent).plugin)
        except LookupError:
            pass  # an agent class used without the registry: nothing to record
    stack: list[Any] = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("name")
            if set(node) == {"name", "kwargs"} and isinstance(name, str) and ":" in name:
                plugins.add(name.partition(":")[0])
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return {
        p.name: {"distribution": p.distribution, "version": p.version} for p in registry.plugins if p.name in plugins
    }


def rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and plain values (weights_only-loadable)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]
