"""The ``rlte`` command line, one module per command: list, info, plugins, train, eval, play, export, bench,
hub, doctor, and the commands plugins add through the ``register_commands`` hook
(:mod:`rlte_plugins.cli.plugin_commands`).

Errors are one line on stderr (``error: ...``); ``--debug`` adds the traceback. Exit statuses are in
:data:`~rlte_plugins.cli.common.EXIT_STATUS` (``rlte --help`` prints them).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rlte_plugins.cli import ask, bench, doctor, eval_, export, hub, info, list_, play, plugins, train
from rlte_plugins.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STATUS,
    CommandParser,
    report_failure,
)
from rlte_plugins.cli.plugin_commands import add_plugin_commands
from rlte_plugins.errors import TrainingInterrupted

__all__ = ["build_parser", "main"]

#: the built-in commands, in the order ``rlte --help`` lists them; each module has ``add_parser(subparsers)``
COMMANDS = (list_, info, plugins, train, eval_, play, export, bench, hub, doctor, ask)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_OK
    try:
        status = args.func(args)
        sys.stdout.flush()  # output still buffered meets a closed pipe here, inside the handler below
        return status
    except BrokenPipeError:
        # The reader is gone: stop quietly. Point stdout at devnull so that the interpreter's last flush at exit
        # does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)  # it says where the checkpoint of the last finished iteration is
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report_failure(exc, args.debug)


def build_parser() -> argparse.ArgumentParser:
    """The ``rlte`` parser: the built-in commands, then every loaded plugin's."""
    from rlte_plugins import __version__

    parser = argparse.ArgumentParser(
        prog="rlte",
        description="rlte-plugins: composable RL components.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlte-plugins {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for command in COMMANDS:
        command.add_parser(subparsers)
    add_plugin_commands(subparsers)
    return parser
