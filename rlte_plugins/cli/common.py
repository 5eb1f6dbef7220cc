"""What every ``rlte`` command shares: exit statuses, the parser class of commands, printing helpers."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import yaml

EXIT_OK = 0
EXIT_NO_MATCH = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `set -o pipefail` sees from any tool cut off by `| head`

EXIT_STATUS = """exit status:
  0    success
  1    `rlte list` matched nothing (an unexpected internal error also exits 1, with its traceback)
  2    bad input, one line on stderr: usage, unknown names, arguments or config keys, a component that fails
       while it is made or built, an output directory that cannot be created
  130  interrupted (Ctrl-C); training says how to resume
  141  standard output closed early (`rlte list | head`)
"""

Subparsers = argparse._SubParsersAction  # what `add_subparsers` returns; argparse does not export the type

#: options every command takes after its name: ``--debug`` is accepted there too, and SUPPRESS keeps a command
#: from resetting the top-level ``rlte --debug`` to False
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


class CommandParser(argparse.ArgumentParser):
    """The parser of one command (``add_subparsers(parser_class=CommandParser)``): takes :data:`COMMON`'s options,
    and with ``epilog_factory`` writes its epilog only when help is printed (``rlte train --help`` imports the
    agents to describe them; parsing never does)."""

    def __init__(
        self,
        *args: Any,
        epilog_factory: Callable[[], str] | None = None,
        inherit_common: bool = True,
        **kwargs: Any,
    ) -> None:
        parents = [*kwargs.pop("parents", []), *([COMMON] if inherit_common else [])]
        super().__init__(*args, parents=parents, **kwargs)
        self._epilog_factory = epilog_factory

    def format_help(self) -> str:
        if self._epilog_factory is not None:
            self.epilog = self._epilog_factory()
        return super().format_help()


def report_failure(exc: Exception, debug: bool) -> int:
    """:data:`EXIT_USAGE` after one ``error:`` line on stderr for bad input (an ``RlteError``, or a component's own
    failure, with ``--debug``'s traceback); anything else is a bug of rlte-plugins, raised again with its traceback."""
    from rlte_plugins.errors import ComponentError, RlteError
    from rlte_plugins.registry import component_failure

    error = exc if isinstance(exc, RlteError) else component_failure(exc)
    if error is None:
        raise exc  # a bug of rlte-plugins itself: the traceback is the report
    if debug:
        traceback.print_exception(exc)
    hint = " (rerun with --debug for the traceback)" if isinstance(error, ComponentError) and not debug else ""
    print(f"error: {error}{hint}", file=sys.stderr)
    return EXIT_USAGE


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    """The ``RUN_DIR`` positional of the commands that load a run (read by
    :func:`~rlte_plugins.files.checkpoint_of`)."""
    parser.add_argument("run", metavar="RUN_DIR", help="a run directory of rlte train, or a checkpoint file (.pt)")


def add_acting_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--device`` and ``--stochastic``: where and how a loaded agent acts (``verb``: what it does there)."""
    parser.add_argument("--device", help=f"device to {verb} on (default: the one the agent was trained on)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")


def add_threads_and_json(parser: argparse.ArgumentParser) -> None:
    """``--threads`` (torch's CPU thread count) and ``--json``."""
    parser.add_argument("--threads", type=positive_int, help="torch's CPU thread count")
    parser.add_argument("--json", action="store_true", help="print JSON")


def positive_int(text: str) -> int:
    """An argparse ``type``: a positive int (anything else is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def yaml_value(value: Any) -> str:
    """``value`` as it is written in a YAML config or after ``--set key=`` (``null``, ``true``, ``[64, 64]``).

    Examples:
        >>> [yaml_value(v) for v in (None, True, 1e-05, "auto", [64, 64], {})]
        ['null', 'true', '1.0e-05', 'auto', '[64, 64]', '{}']
    """
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip()
    except yaml.YAMLError:
        return repr(value)  # not plain data (a device, a class): Python's spelling is the most useful
    return text.removesuffix("...").strip()  # scalars end with YAML's document end marker


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], shrink: int) -> None:
    """Print aligned columns; column ``shrink`` is cut to fit the terminal width."""
    if not rows:
        print("(none)")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    width = shutil.get_terminal_size((120, 20)).columns
    spare = width - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:
        widths[shrink] = max(12, widths[shrink] + spare)
    for row in [header, *rows]:
        cells = [
            (str(c) if len(str(c)) <= widths[i] else str(c)[: widths[i] - 1] + "…").ljust(widths[i])
            for i, c in enumerate(row)
        ]
        print("  ".join(cells).rstrip())


def warn_failed(registry: Any) -> None:
    """One stderr line per plugin that failed to load (the listing goes on without it)."""
    for plugin in registry.plugins:
        if plugin.status == "failed":
            print(
                f"warning: plugin {plugin.name} {plugin.version} failed to load and was skipped "
                f"(`rlte plugins` shows why)",
                file=sys.stderr,
            )
