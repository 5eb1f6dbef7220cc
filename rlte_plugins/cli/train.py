"""``rlte train``: a packaged recipe or a YAML config, or ``--resume RUN_DIR`` to continue a run from its last
checkpoint. Its ``--help`` is generated from the config schema and every registered agent's declaration."""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rlte_plugins.cli.common import EXIT_INTERRUPTED, EXIT_OK, Subparsers, positive_int, yaml_value
from rlte_plugins.errors import ConfigError, TrainingInterrupted
from rlte_plugins.registry import ComponentSpec, factory_signature, get_registry

#: flag (argparse dest) -> the train key it overrides
FLAGS = {
    "device": "device",
    "seed": "seed",
    "total_frames": "total_frames",
    "threads": "threads",
    "logger": "logger",
    "output": "output",
}
#: train keys a resumed run keeps: its seed and RNG states are in the checkpoint, and it stays in its directory
KEPT_ON_RESUME = ("seed", "output")
#: agent arguments that come from elsewhere in a config: the env section, train.device and train.seed
NOT_AGENT_OPTIONS = ("env", "device", "seed")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    total_frames: str = "frames to train for (overrides train.total_frames)",
    output: str = "run directory (overrides train.output)",
    frames_type: Callable[[str], int] = int,
) -> None:
    """``--set KEY=VALUE`` and the flags that override train keys (:data:`FLAGS`), and ``--no-progress``: what
    ``rlte train`` and the hub's apps take."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. agent.lr=3e-4 (repeatable)")  # fmt: skip
    parser.add_argument("--device", help="training device (overrides train.device)")
    parser.add_argument("--seed", type=int, help="seed (overrides train.seed)")
    parser.add_argument("--total-frames", type=frames_type, help=total_frames)
    parser.add_argument("--threads", type=positive_int, help="torch's CPU thread count (overrides train.threads)")
    parser.add_argument("--logger", help="csv, tensorboard, wandb, mlflow or none (overrides train.logger)")
    parser.add_argument("--output", help=output)
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a recipe or a YAML config, or resume a run",
        description="Train a packaged recipe (by name) or a YAML config file, or continue a run from its last "
        "checkpoint (--resume).",
        epilog_factory=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", nargs="?", help="recipe name (e.g. ppo_cartpole) or path to a YAML config")
    p.add_argument("-f", "--config", help="path to a YAML config (instead of TARGET)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint, with its config.yaml (flags and --set "
        "train.KEY=VALUE may change train keys, e.g. --total-frames)",
    )
    add_config_arguments(p)
    p.add_argument("--list-recipes", action="store_true", help="list packaged recipes and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlte_plugins.training.config import apply_overrides, load_config, normalize_config, recipe_names

    if args.list_recipes:
        print("\n".join(recipe_names()))
        return EXIT_OK
    flags = config_flags(args)
    target = args.config or args.target
    if args.resume is not None:
        from rlte_plugins.files import CONFIG_FILE
        from rlte_plugins.training.runner import read_run_config

        if target:
            raise ConfigError(f"rlte train takes a recipe or config, or --resume RUN_DIR, not both (got {target!r})")
        resume: Path | None = Path(args.resume)
        _check_resumable(resume, args.overrides, flags)
        config = with_flags(apply_overrides(read_run_config(resume), args.overrides), flags)
        config = normalize_config(config, str(resume / CONFIG_FILE))
        name = _run_name(resume)
    else:
        resume = None
        if not target:
            raise ConfigError(
                "rlte train needs a recipe name, a YAML config or --resume RUN_DIR (recipes: "
                + ", ".join(recipe_names())
                + ")"
            )
        raw, source = load_config(target)
        config = normalize_config(with_flags(apply_overrides(raw, args.overrides), flags), source)
        name = Path(target).stem if args.config or Path(target).suffix in (".yaml", ".yml") else target
    return train_and_report(config, name, resume=resume)


def train_and_report(config: dict[str, Any], name: str, resume: Path | None = None) -> int:
    """Train a normalised ``config`` (or continue the run in ``resume``) and print its summary: ``rlte train``'s
    code path, which the hub's apps take too. The run directory is chosen here rather than by the runner, so that
    an interrupted run can say where to resume from."""
    from rlte_plugins.training.runner import run as run_training

    run_dir = resume or Path(config["train"]["output"] or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if resume is None:
        config["train"]["output"] = str(run_dir)
    try:
        summary = run_training(config, name=name, resume=resume)
    except TrainingInterrupted as exc:
        print(f"{exc}\nresume with: rlte train --resume {shlex.quote(str(run_dir))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    ret = summary["eval_return_mean"]
    verb = "continued to" if resume is not None else "trained"
    print(f"{verb} {summary['frames']:,} frames in {summary['wall_time']:.1f} s")
    if ret is not None:
        print(f"final mean return over {len(summary['eval_returns'])} evaluation episodes: {ret:.2f}")
    print(f"run directory: {summary['output']} (checkpoint.pt, config.yaml, learning_curve.png, summary.json)")
    return EXIT_OK


def config_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``train`` keys that the flags of :func:`add_config_arguments` set (those given only)."""
    flags = {key: getattr(args, dest) for dest, key in FLAGS.items() if getattr(args, dest) is not None}
    if args.no_progress:
        flags["progress"] = False
    return flags


def with_flags(config: dict[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with flag values set under ``train`` as given (not parsed as YAML, so any path is an --output).
    A ``train`` that is not a mapping is left for :func:`normalize_config` to refuse."""
    train = config.get("train")
    if flags and (train is None or isinstance(train, dict)):
        config = {**config, "train": {**(train or {}), **flags}}
    return config


def _check_resumable(run_dir: Path, overrides: Iterable[str], flags: Mapping[str, Any]) -> None:
    """Refuse changes a resumed run would silently ignore: the agent, env and components are rebuilt from the
    checkpoint, and the seed and run directory are the run's own."""
    keys = [item.partition("=")[0].strip() for item in overrides]
    keys += [f"train.{key}" for key in flags if key in KEPT_ON_RESUME]
    for key in keys:
        section, _, name = key.partition(".")
        if section != "train" or not name or name.split(".")[0] in KEPT_ON_RESUME:
            raise ConfigError(
                f"--resume {str(run_dir)!r} continues the run as it was saved: {key} cannot change (train keys other "
                f"than {' and '.join(KEPT_ON_RESUME)} can, e.g. --total-frames)"
            )


def _run_name(run_dir: Path) -> str:
    """The name the run was started under, which its logger files are kept under (config.yaml does not record
    it): summary.json's when the run finished once, else the one folder the logger made, else the folder's name."""
    for file in ("run.json", "summary.json"):  # run.json since the runner writes one
        try:
            return str(json.loads((run_dir / file).read_text(encoding="utf-8"))["name"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    folders = [p.name for p in run_dir.iterdir() if p.is_dir() and p.name not in ("mlruns", "wandb")]
    return folders[0] if len(folders) == 1 else run_dir.name


# -- help -----------------------------------------------------------------------------------------------
def epilog() -> str:
    """``rlte train --help``'s epilog: the config sections, every ``train.*`` key and every registered agent's
    options with their defaults, from the declarations themselves (imports the agents)."""
    from rlte_plugins.training.config import COMPONENT_SECTIONS, TRAIN_KEYS

    width = max(60, min(shutil.get_terminal_size().columns, 120) - 2)  # argparse's width for the rest of the help
    components = [s for s in COMPONENT_SECTIONS if s != "env"]
    rows = [
        ("description", "free text shown on the learning curve"),
        ("agent", "name (`rlte list agent`) and the agent's options (below)"),
        ("env", "name (`rlte list env`, e.g. gymnasium) and the env maker's arguments (env_id, num_envs, ...)"),
        (", ".join(components), "name and arguments of each component (`rlte info KIND NAME`); omit: the defaults"),
        *((f"train.{key}", help) for key, help in TRAIN_KEYS.items()),
    ]
    lines = ["config keys (YAML sections; --set section.key=value overrides any of them):"]
    lines += _rows(rows, 2, 22, width)
    lines += ["", "agents and their options (agent.KEY; `rlte info agent NAME` describes one):"]
    lines += _agents(width)
    lines += [
        "",
        "examples:",
        "  rlte train ppo_cartpole",
        "  rlte train fast_ppo_cartpole --set env.num_envs=64 --set agent.num_steps=64",
        "  rlte train my_config.yaml --set agent.lr=3e-4 --set encoder.num_cells=[128,128] --seed 3",
        "  rlte train --resume runs/ppo_cartpole-20250101-120000 --total-frames 200000",
        "  rlte eval runs/ppo_cartpole-20250101-120000 --episodes 20",
    ]
    return "\n".join(lines) + "\n"


def _agents(width: int) -> list[str]:
    """Every registered agent, described by :func:`_agent`; one that cannot be loaded (a plugin's) says why, and
    the rest of the help still shows."""
    lines: list[str] = []
    for spec in get_registry().specs("agent"):
        try:
            lines += _agent(spec, width)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must never break the host's help
            why = f"{spec.name}: cannot be loaded ({type(exc).__name__}: {exc})"
            lines += textwrap.wrap(why, width, initial_indent="  ", subsequent_indent="    ")
    return lines


def _agent(spec: ComponentSpec, width: int) -> list[str]:
    """An agent's summary, then its options as ``name=default  help``; a preset (a factory with ``agent_class``)
    as the defaults it changes."""
    factory = spec.load()
    # the registered summary is the docstring's first line, which may stop mid-sentence: take the paragraph
    paragraph = " ".join((inspect.getdoc(factory) or "").split("\n\n")[0].split())
    summary = paragraph if spec.summary and paragraph.startswith(spec.summary) else spec.summary
    heading = f"{spec.name}: {summary}" if summary else spec.name
    lines = textwrap.wrap(heading, width, initial_indent="  ", subsequent_indent="    ")
    defaults = _defaults(factory, spec.defaults)
    agent_class = getattr(factory, "agent_class", None)
    if agent_class is not None and agent_class is not factory:
        own = _defaults(agent_class, {})
        changed = " ".join(f"{k}={yaml_value(v)}" for k, v in defaults.items() if k not in own or own[k] != v)
        base = getattr(agent_class, "name", agent_class.__name__)
        text = f"a preset of {base}: {changed}" if changed else f"a preset of {base}"
        wrap = {"break_long_words": False, "break_on_hyphens": False}
        return lines + textwrap.wrap(text, width, initial_indent="    ", subsequent_indent="      ", **wrap)
    helps: Callable[[], dict[str, str]] | None = getattr(factory, "option_help", None)
    described = helps() if callable(helps) else {}
    rows = [
        (name if default is inspect.Parameter.empty else f"{name}={yaml_value(default)}", described.get(name, ""))
        for name, default in defaults.items()
    ]
    return lines + _rows(rows, 4, 28, width)


def _defaults(factory: Callable[..., Any], registered: Mapping[str, Any]) -> dict[str, Any]:
    """Option -> default (``inspect.Parameter.empty`` where required) from the factory's signature, with the
    defaults it was registered with over them."""
    P = inspect.Parameter
    return {
        p.name: registered.get(p.name, p.default)
        for p in factory_signature(factory).parameters.values()
        if p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD) and p.name not in NOT_AGENT_OPTIONS
    }


def _rows(rows: Iterable[tuple[str, str]], indent: int, key_width: int, width: int) -> list[str]:
    """``key  help`` rows, the help wrapped in a column; a key too long for its column puts the help below it."""
    hang = " " * (indent + key_width + 2)
    out: list[str] = []
    for key, help in rows:
        lead = " " * indent + key
        wrap = {"width": width, "subsequent_indent": hang, "break_long_words": False, "break_on_hyphens": False}
        if len(key) <= key_width:
            out += textwrap.wrap(help, initial_indent=lead.ljust(len(hang)), **wrap) or [lead]
        else:
            out += [lead, *textwrap.wrap(help, initial_indent=hang, **wrap)]
    return out
