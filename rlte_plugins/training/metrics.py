"""Metrics under CleanRL's names (what openrlbenchmark reads), logged against the global frame count, and the
TorchRL loggers they go to."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rlte_plugins.errors import ConfigError

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow", "none")


def make_logger(kind: str | None, output: Path, name: str) -> Any:
    """A TorchRL logger writing under ``output`` (``None`` for ``"none"``)."""
    if kind in (None, "none", ""):
        return None
    if kind not in LOGGERS:
        raise ConfigError(f"unknown logger {kind!r} (accepted: {', '.join(LOGGERS)})")
    from torchrl.record.loggers import get_logger

    extra: dict[str, Any] = {"project": "rlte-plugins"} if kind == "wandb" else {}
    if kind == "mlflow":
        extra = {"tracking_uri": (output / "mlruns").resolve().as_uri()}
    try:
        return get_logger(kind, logger_name=str(output), experiment_name=name, **extra)
    except ImportError as exc:
        raise ConfigError(
            f"logger {kind!r} needs an extra package: pip install 'rlte-plugins[{kind}]' ({exc})"
        ) from exc


def record(history: list[dict[str, float]], logger: Any, stats: dict[str, float], frames: int) -> None:
    """Append ``stats`` to ``history`` (with ``frames``) and log its finite values at step ``frames``."""
    history.append({"frames": float(frames), **stats})
    if logger is None:
        return
    for key, value in stats.items():
        if math.isfinite(value):
            logger.log_scalar(key, value, step=frames)
