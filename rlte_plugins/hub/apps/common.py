"""What the hub's apps share: one command line, the published config of an env id with ``rlte train``'s
overrides, and the run through :func:`rlte_plugins.training.runner.run`, the code path of ``rlte train``.

An app is an :class:`App`: its name, a one-line description, the env ids it takes and a function that writes the
published config of one of them. :func:`main` does the rest, with ``rlte train``'s flags, ``--set``, exit statuses
and run directory.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from rlte_plugins.cli.common import EXIT_INTERRUPTED, EXIT_OK, positive_int, report_failure
from rlte_plugins.cli.train import add_config_arguments, config_flags, train_and_report, with_flags


@dataclass(frozen=True)
class App:
    """A one-line training app.

    Attributes:
        name: the module's name under ``rlte_plugins.hub.apps`` (also the run's name and its folder's prefix).
        description: one line for ``--help``.
        env_help: what ``--env-id`` takes, for ``--help``.
        default_env: the env id trained when ``--env-id`` is not given.
        total_frames: the published budget, in the agent's frames (``--total-frames`` replaces it).
        config: ``config(env_id, total_frames)`` -> the ``rlte train`` config mapping; raises an
            :class:`~rlte_plugins.errors.RlteError` naming the accepted ids for an env id it has no settings for.
    """

    name: str
    description: str
    env_help: str
    default_env: str
    total_frames: int
    config: Callable[[str, int], dict[str, Any]]


def parser(app: App) -> argparse.ArgumentParser:
    """The app's command line: ``--env-id``, ``--print-config`` and ``rlte train``'s flags and ``--set``."""
    p = argparse.ArgumentParser(
        prog=f"python -m rlte_plugins.hub.apps.{app.name}",
        description=app.description,
        epilog=f"examples:\n  python -m rlte_plugins.hub.apps.{app.name} --env-id {app.default_env}\n"
        f"  python -m rlte_plugins.hub.apps.{app.name} --env-id {app.default_env} --print-config\n\n"
        "Options of the agent and components: rlte train --help; resume a run: rlte train --resume RUN_DIR.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env-id", default=app.default_env, help=f"{app.env_help} (default: {app.default_env})")
    add_config_arguments(p, f"frames to train for (default: {app.total_frames:,}, published)",
                         f"run directory (default: runs/{app.name}-ENV_ID-TIMESTAMP)", positive_int)  # fmt: skip
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--debug", action="store_true", help="print the full traceback of errors")
    return p


def resolve(app: App, args: argparse.Namespace) -> dict[str, Any]:
    """The normalised config the command line asks for: the published one, then ``--set``, then the flags (as
    ``rlte train`` orders them)."""
    from rlte_plugins.training.config import apply_overrides, normalize_config

    total_frames = args.total_frames if args.total_frames is not None else app.total_frames
    config = with_flags(apply_overrides(app.config(args.env_id, total_frames), args.overrides), config_flags(args))
    return normalize_config(config, f"{app.name} --env-id {args.env_id}")


def main(app: App, argv: Sequence[str] | None = None) -> int:
    """Run ``app`` with the command line ``argv`` (``sys.argv[1:]`` when ``None``); returns ``rlte``'s exit
    status: 0, 2 (bad input, one ``error:`` line on stderr) or 130 (interrupted; it says how to resume)."""
    args = parser(app).parse_args(argv)
    try:
        config = resolve(app, args)
        if args.print_config:
            print(yaml.safe_dump(config, sort_keys=False, width=1000), end="")
            return EXIT_OK
        name = f"{app.name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.env_id)}"  # ALE/Pong-v5: one folder
        return train_and_report(config, name)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report_failure(exc, args.debug)
