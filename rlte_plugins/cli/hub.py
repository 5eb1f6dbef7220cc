"""``rlte hub``: benchmark results by name and a registry of trained agents (:mod:`rlte_plugins.hub`).

``rlte hub datasets`` and ``rlte hub models`` list them; ``register RUN_DIR --name N`` adds a run's checkpoint to
the registry, ``remove NAME`` deletes one; ``push RUN_DIR_OR_NAME`` stores a model as a W&B ``model`` artifact and
``pull NAME`` brings one into the registry (``--artifacts DIR`` or ``RLTE_HUB_ARTIFACTS``: a local artifact folder
instead of W&B).
"""

from __future__ import annotations

import argparse
from typing import Any

from rlte_plugins.cli.common import EXIT_OK, CommandParser, Subparsers, add_run_argument, print_json, print_table


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "hub",
        help="benchmark results by name and a registry of trained agents",
        description="List the benchmark results that load by name (rlte_plugins.hub.datasets.load) and the "
        "registered models (rlte_plugins.hub.models.load); register, push and pull models. The hub lives in "
        "$RLTE_HUB_DIR (default ~/.cache/rlte/hub).",
    )
    commands = p.add_subparsers(dest="hub_command", metavar="SUBCOMMAND", required=True, parser_class=CommandParser)

    sub = commands.add_parser("datasets", help="list the datasets that load by name")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(func=run_datasets)

    sub = commands.add_parser("models", help="list the registered models")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(func=run_models)

    sub = commands.add_parser(
        "register",
        help="add a run's checkpoint to the registry",
        description="Copy RUN_DIR/checkpoint.pt (or a checkpoint file) into the registry "
        "with its model.json (agent, env, frames, sha256, the run's final evaluation).",
    )
    add_run_argument(sub)
    sub.add_argument("--name", required=True, help="the model's name (letters, digits, '.', '_', '-')")
    sub.add_argument("--overwrite", action="store_true", help="replace a model of that name")
    sub.add_argument("--json", action="store_true", help="print the model.json")
    sub.set_defaults(func=run_register)

    sub = commands.add_parser("remove", help="delete a registered model")
    sub.add_argument("name", metavar="NAME", help="a registered model")
    sub.set_defaults(func=run_remove)

    sub = commands.add_parser(
        "push",
        help="store a model as a W&B model artifact",
        description="Log a run's checkpoint (or a registered model) with its model.json as a "
        "W&B artifact of type 'model' (WANDB_MODE=offline writes an offline run for wandb "
        "sync), or store it in a local artifact folder (--artifacts).",
    )
    sub.add_argument("run", metavar="RUN_DIR", help="a run directory, a checkpoint file or a registered model's name")
    sub.add_argument("--name", help="the artifact's name (default the model's or the run directory's)")
    _store_arguments(sub)
    sub.set_defaults(func=run_push)

    sub = commands.add_parser(
        "pull",
        help="bring a model artifact into the registry",
        description="Download the model artifact NAME (NAME:latest, NAME:vN) from W&B, or "
        "from a local artifact folder (--artifacts), check its sha256 and register it.",
    )
    sub.add_argument("ref", metavar="NAME", help="the artifact: NAME, NAME:latest or NAME:vN")
    sub.add_argument("--as", dest="name", help="register it under this name (default the artifact's)")
    sub.add_argument("--overwrite", action="store_true", help="replace a model of that name")
    _store_arguments(sub)
    sub.set_defaults(func=run_pull)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="W&B project (default rlte-hub)")
    parser.add_argument("--entity", help="W&B entity (default W&B's default)")
    parser.add_argument("--artifacts", metavar="DIR",
                        help="a local artifact folder instead of W&B (default $RLTE_HUB_ARTIFACTS)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON")


def _store(args: argparse.Namespace) -> Any:
    from rlte_plugins.hub.store import artifact_store

    return artifact_store(args.artifacts, args.project, args.entity)


def run_datasets(args: argparse.Namespace) -> int:
    from rlte_plugins.hub.datasets import list_datasets

    found = list_datasets()
    if args.json:
        print_json(found)
        return EXIT_OK
    rows = [[d["name"] + (" (hidden)" if d["hidden"] else ""), d["source"], ", ".join(d["algorithms"]),
             ", ".join(d["tasks"]) if "error" not in d else f"error: {d['error']}", str(d["runs"])]
            for d in found]  # fmt: skip
    print_table(["NAME", "SOURCE", "ALGORITHMS", "TASKS", "RUNS"], rows, shrink=3)
    return EXIT_OK


def run_models(args: argparse.Namespace) -> int:
    from rlte_plugins.hub.models import list_models

    found = list_models()
    if args.json:
        print_json(found)
        return EXIT_OK
    rows = [[m["name"], m.get("preset") or m.get("agent", "?"), _env_name(m.get("env")), f"{m.get('frames', 0):,}",
             _score(m.get("evaluation")), m.get("created", "")]
            for m in found]  # fmt: skip
    print_table(["NAME", "AGENT", "ENV", "FRAMES", "EVAL RETURN", "CREATED"], rows, shrink=2)
    return EXIT_OK


def run_register(args: argparse.Namespace) -> int:
    from rlte_plugins.hub.models import register

    record = register(args.name, args.run, overwrite=args.overwrite)
    if args.json:
        print_json(record)
    else:
        print(f"registered {record['name']!r}: agent {record['preset'] or record['agent']!r} after "
              f"{record['frames']:,} frames (sha256 {record['sha256'][:12]}…)")  # fmt: skip
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    from rlte_plugins.hub.models import remove

    remove(args.name)
    print(f"removed {args.name!r}")
    return EXIT_OK


def run_push(args: argparse.Namespace) -> int:
    from rlte_plugins.hub.models import push

    where = push(args.run, args.name, _store(args))
    if args.json:
        print_json(where)
    else:
        place = where.get("offline_dir") or where.get("url") or where.get("store")
        print(f"pushed {where['name']!r} as {where['ref']} ({place})")
    return EXIT_OK


def run_pull(args: argparse.Namespace) -> int:
    from rlte_plugins.hub.models import pull

    record = pull(args.ref, args.name, _store(args), overwrite=args.overwrite)
    if args.json:
        print_json(record)
    else:
        print(f"pulled {record['artifact']['ref']} as {record['name']!r} (sha256 {record['sha256'][:12]}… checked)")
    return EXIT_OK


def _env_name(env: Any) -> str:
    """The env id of a wrapped backend's env (``CartPole-v1``), else the env component's name."""
    if isinstance(env, dict):
        name = env.get("env_id") or env.get("name") or env.get("factory") or "?"
        return str(name).removeprefix("rlte_plugins:")
    return "?" if env is None else str(env)


def _score(evaluation: Any) -> str:
    mean = evaluation.get("eval_return_mean") if isinstance(evaluation, dict) else None
    return "" if mean is None else f"{mean:.2f}"
