"""Run a checked configuration end to end: build, train with a logger, evaluate, save, plot."""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from rlte_plugins.errors import ConfigError
from rlte_plugins.registry import make
from rlte_plugins.training.config import COMPONENT_SECTIONS
from rlte_plugins.training.plot import plot_learning_curve

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow", "none")


def quiet_torchrl() -> None:
    """Keep TorchRL's INFO lines (buffer allocation...) from breaking the progress display."""
    import torchrl  # noqa: F401 - torchrl sets its logger's level when imported; set ours after it

    logging.getLogger("torchrl").setLevel(logging.WARNING)


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


def build_agent(config: dict[str, Any]) -> Any:
    """The agent a normalised config describes, with its components set by name."""
    agent_section = dict(config["agent"])
    agent_name = agent_section.pop("name")
    train = config["train"]
    agent = make(
        "agent", agent_name, env=dict(config["env"]), device=train["device"], seed=train["seed"], **agent_section
    )
    return agent.set(**{k: config[k] for k in COMPONENT_SECTIONS if k != "env" and config[k] is not None})


def _make_run_directory(output: Path) -> None:
    """Create the run directory, or one :class:`ConfigError` line saying why it cannot be."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "it exists and is not a directory" if output.exists() and not output.is_dir() else exc.strerror
        raise ConfigError(
            f"cannot create the run directory {str(output)!r} (--output / train.output): {reason}"
        ) from exc


def run(config: dict[str, Any], name: str = "run") -> dict[str, Any]:
    """Train the agent that a normalised config describes; returns a summary (also written as JSON)."""
    quiet_torchrl()
    train = config["train"]
    output = Path(train["output"] or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    _make_run_directory(output)  # before anything is built, so a bad --output / train.output is one line
    agent = build_agent(config)
    logger = make_logger(train["logger"], output, name)
    checkpoint = output / "checkpoint.pt"
    stats = agent.train(
        train["total_frames"],
        progress=train["progress"],
        logger=logger,
        checkpoint_path=checkpoint,
        checkpoint_every=train["checkpoint_every"],
    )
    returns = agent.evaluate(train["eval_episodes"]) if train["eval_episodes"] else []
    eval_mean = statistics.fmean(returns) if returns else None
    if logger is not None and eval_mean is not None:
        logger.log_scalar("eval/episodic_return", eval_mean, step=agent.frames)
    curve = plot_learning_curve(
        agent.history, output / "learning_curve.png", title=config.get("description") or name, eval_return=eval_mean
    )
    summary = {
        "name": name,
        "frames": agent.frames,
        "wall_time": stats.get("wall_time"),
        "train_episode_return": stats.get("episode_return"),
        "eval_returns": returns,
        "eval_return_mean": eval_mean,
        "checkpoint": str(checkpoint),
        "learning_curve": str(curve),
        "config": config,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    summary["output"] = str(output)
    return summary
