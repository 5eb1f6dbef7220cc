"""Run a checked configuration end to end: build (or resume), train with a logger, evaluate, save, plot.

A run directory holds ``config.yaml`` (the normalised config, written first), ``checkpoint.pt`` (every
``checkpoint_every`` frames, at the end and on Ctrl-C), the logger's files, ``learning_curve.png`` and
``summary.json``. :func:`resume` continues a run from its directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import time
import typing
from pathlib import Path
from typing import Any

import yaml

from rlte_plugins.errors import ConfigError
from rlte_plugins.files import CHECKPOINT_FILE, CONFIG_FILE
from rlte_plugins.registry import make
from rlte_plugins.training.config import COMPONENT_SECTIONS, normalize_config
from rlte_plugins.training.metrics import make_logger
from rlte_plugins.training.plot import plot_learning_curve

RUN_FILE = "run.json"


def recipe_arguments(args_class: type, description: str, argv: list[str] | None = None) -> Any:
    """A recipe's ``Args`` dataclass from the command line: one ``--field-name`` per field, typed by its annotation
    (``X | None`` takes an ``X``; a list or tuple of ``X`` takes several), defaulting to the field's default."""
    parser = argparse.ArgumentParser(description=description)
    hints = typing.get_type_hints(args_class)
    for field in dataclasses.fields(args_class):
        hint = hints[field.name]
        # list[int] is a list flag, not an int one; Optional[X] is X
        kind = (
            hint
            if typing.get_origin(hint) in (list, tuple)
            else next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
        )
        flag = "--" + field.name.replace("_", "-")
        if typing.get_origin(kind) in (list, tuple):
            parser.add_argument(flag, type=typing.get_args(kind)[0], nargs="+", default=list(field.default))
        else:
            parser.add_argument(flag, type=kind, default=field.default)
    return args_class(**vars(parser.parse_args(argv)))


def quiet_torchrl() -> None:
    """Keep TorchRL's INFO lines (buffer allocation...) from breaking the progress display."""
    import torchrl  # noqa: F401 - torchrl sets its logger's level when imported; set ours after it

    logging.getLogger("torchrl").setLevel(logging.WARNING)


def build_agent(config: dict[str, Any]) -> Any:
    """The agent a normalised config describes, with its components set by name."""
    agent_section = dict(config["agent"])
    agent_name = agent_section.pop("name")
    train = config["train"]
    agent = make(
        "agent", agent_name, env=dict(config["env"]), device=train["device"], seed=train["seed"], **agent_section
    )
    return agent.set(**{k: config[k] for k in COMPONENT_SECTIONS if k != "env" and config[k] is not None})


def _make_run_directory(output: Path) -> list[Path]:
    """Create the run directory, or one :class:`ConfigError` line saying why it cannot be; returns the folders
    it created, deepest first (removed again if the run never starts)."""
    created = [p for p in (output, *output.parents) if not p.exists()]
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "it exists and is not a directory" if output.exists() and not output.is_dir() else exc.strerror
        raise ConfigError(
            f"cannot create the run directory {str(output)!r} (--output / train.output): {reason}"
        ) from exc
    return created


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The normalised config a run directory was started with (for ``--resume`` and ``rlte eval``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{str(run_dir)!r} has no {CONFIG_FILE}: not a run directory written by rlte train")
    if not (run_dir / CHECKPOINT_FILE).is_file():
        raise ConfigError(f"run {str(run_dir)!r} has no {CHECKPOINT_FILE} yet: nothing to resume or evaluate")
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return normalize_config(config, str(path))


def run(config: dict[str, Any], name: str = "run", resume: str | Path | None = None) -> dict[str, Any]:
    """Train the agent that a normalised config describes, or continue the run in ``resume`` (its directory)
    from its last checkpoint; returns a summary (also written as JSON)."""
    quiet_torchrl()
    train = config["train"]
    if train["threads"]:
        import torch

        torch.set_num_threads(train["threads"])
    output = (
        Path(resume) if resume is not None else Path(train["output"] or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    created = _make_run_directory(output)  # before anything is built, so a bad --output is one line
    checkpoint = output / CHECKPOINT_FILE
    try:
        if resume is not None:
            from rlte_plugins.agents.base import load_agent

            agent = load_agent(checkpoint, device=train["device"])
        else:
            agent = build_agent(config)
            agent.build()
        (output / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if resume is None:  # the name the logger files live under, which a resumed run keeps
            (output / RUN_FILE).write_text(json.dumps({"name": name}), encoding="utf-8")
        logger = make_logger(train["logger"], output, name)
    except BaseException:
        for folder in created:  # a run that never started leaves nothing behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    stats = agent.train(
        train["total_frames"],
        stop_conditions=train["stop_conditions"],
        eval_every=train["eval_every"],
        eval_episodes=max(train["eval_episodes"], 1),
        logger=logger,
        checkpoint=checkpoint,
        checkpoint_every=train["checkpoint_every"],
        progress=train["progress"],
    )
    try:
        returns = agent.evaluate(train["eval_episodes"]) if train["eval_episodes"] else []
    finally:
        agent.close()
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
        "train_episode_return": stats.get("charts/episodic_return"),
        "eval_returns": returns,
        "eval_return_mean": eval_mean,
        "checkpoint": str(checkpoint),
        "learning_curve": str(curve),
        "config": config,
        "agent_config": dataclasses.asdict(agent.config),  # every hyperparameter, defaults included
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    summary["output"] = str(output)
    summary["history"] = [dict(h) for h in agent.history]  # every logged metric per iteration (not in the JSON)
    return summary
