"""``rlte`` subcommands that plugins add through the ``register_commands(cli)`` hook.

The hook receives a :class:`Commands` and calls ``cli.add_command(name, run, help=..., configure=...)`` once per
command. The host calls it for every loaded plugin, after the built-in commands; a plugin whose hook (or one of
whose ``configure``) raises is reported on stderr and none of its commands is added, so a broken plugin never
breaks ``rlte``. What a command's ``run`` raises reaches the user as its other errors do: an
:class:`~rlte_plugins.errors.RlteError` as one ``error:`` line, anything else as a failure that names the command
and its plugin's distribution.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import traceback
from collections.abc import Callable, Collection
from pathlib import Path

from rlte_plugins.cli.common import COMMON, EXIT_OK, Subparsers
from rlte_plugins.errors import ComponentError, RegistrationError, RlteError
from rlte_plugins.registry import PluginInfo, Registry, get_registry

COMMAND_HOOK = "register_commands"
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

Run = Callable[[argparse.Namespace], int | None]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclasses.dataclass(frozen=True)
class PluginCommand:
    """One subcommand a plugin adds: its name, one line of help, how to parse its arguments and what it runs."""

    name: str
    run: Run
    help: str
    configure: Configure | None = None
    description: str | None = None


class Commands:
    """What a plugin's ``register_commands(cli)`` hook receives.

    Examples:
        >>> import argparse
        >>> cli = Commands("my_plugin", taken={"list", "train"})
        >>> def configure(parser: argparse.ArgumentParser) -> None:
        ...     parser.add_argument("--times", type=int, default=1)
        >>> cli.add_command("hello", lambda args: print("hello " * args.times), help="say hello", configure=configure)
        >>> [c.name for c in cli.added]
        ['hello']
        >>> cli.add_command("train", print, help="mine")
        Traceback (most recent call last):
        ...
        rlte_plugins.errors.RegistrationError: plugin 'my_plugin' adds command 'train', which rlte already has ...
    """

    def __init__(self, plugin: str, taken: Collection[str]) -> None:
        self.plugin = plugin
        self._taken = set(taken)
        self.added: list[PluginCommand] = []

    def add_command(
        self,
        name: str,
        run: Run,
        *,
        help: str,
        configure: Configure | None = None,
        description: str | None = None,
    ) -> None:
        """Add ``rlte NAME``.

        Args:
            name: the command, lowercase words joined by ``-`` (``residual-mlp-size``); it may not be a command
                ``rlte`` or an earlier plugin already has.
            run: ``run(args)`` does the work with the parsed ``argparse.Namespace`` and returns the exit status
                (``None``: 0). Import heavy modules (torch) inside it, so that other commands stay fast.
            help: one line, shown by ``rlte --help`` (followed by the plugin's distribution name).
            configure: ``configure(parser)`` adds the command's arguments to its ``argparse.ArgumentParser``.
            description: shown by ``rlte NAME --help`` (default: ``help``).
        """
        who = f"plugin {self.plugin!r}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistrationError(
                f"{who}: command name {name!r} is invalid: use lowercase words of letters and digits joined by '-'"
            )
        if name in self._taken:
            raise RegistrationError(f"{who} adds command {name!r}, which rlte already has (built in or from an "
                                    "earlier plugin): choose another name")  # fmt: skip
        if not callable(run) or (configure is not None and not callable(configure)):
            raise RegistrationError(f"{who}: command {name!r} needs callables for run and configure")
        if not isinstance(help, str) or not help.strip():
            raise RegistrationError(f"{who}: command {name!r} needs a one-line help string")
        self._taken.add(name)
        self.added.append(PluginCommand(name, run, help.strip().splitlines()[0], configure, description))


def add_plugin_commands(subparsers: Subparsers, registry: Registry | None = None) -> list[str]:
    """Add every loaded plugin's commands to ``subparsers``; returns their names.

    Each command's arguments are first added to a parser of its own (which has ``-h`` and ``--debug``, so that a
    clash with them raises there), and the command's parser is then made from it: a plugin that fails adds no
    command at all.
    """
    registry = get_registry() if registry is None else registry
    names: list[str] = []
    for info, hook in registry.plugin_hooks(COMMAND_HOOK):
        cli = Commands(info.name, subparsers.choices)
        try:
            hook(cli=cli)
            staged = [(command, _staged_parser(command)) for command in cli.added]
        except BaseException as exc:  # noqa: BLE001 - a broken plugin must never break the host
            if isinstance(exc, KeyboardInterrupt):
                raise
            print(
                f"warning: plugin {info.name} {info.version}: {COMMAND_HOOK} failed ({type(exc).__name__}: "
                f"{exc}{_origin(exc)}); its commands are skipped",
                file=sys.stderr,
            )
            continue
        for command, parent in staged:
            parser = subparsers.add_parser(
                command.name,
                help=f"{command.help} [{info.distribution}]",
                description=command.description or command.help,
                parents=[parent],
                add_help=False,  # the staged parser's -h and --debug come with it
                inherit_common=False,
            )
            parser.set_defaults(func=_runner(command, info))
            names.append(command.name)
    return names


def _origin(exc: BaseException) -> str:
    """`` (file:line)`` of the plugin's line that led to ``exc``: the innermost frame outside rlte-plugins, argparse
    and pluggy (a refused ``add_command`` or a clashing argument raises in those)."""
    import pluggy

    host = (str(Path(__file__).parents[1]), str(Path(pluggy.__file__).parent), argparse.__file__)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(host)]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _staged_parser(command: PluginCommand) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"rlte {command.name}", parents=[COMMON])
    if command.configure is not None:
        command.configure(parser)
    return parser


def _runner(command: PluginCommand, info: PluginInfo) -> Callable[[argparse.Namespace], int]:
    """``command.run`` with what it raises by mistake reported as the plugin's failure, naming the distribution."""

    def run(args: argparse.Namespace) -> int:
        try:
            status = command.run(args)
        except (RlteError, BrokenPipeError):
            raise  # deliberate errors say what to change; a closed pipe is the host's to handle
        except Exception as exc:
            raise ComponentError.wrap(exc, "run", "command", command.name, info.distribution, info.version) from exc
        return EXIT_OK if status is None else int(status)

    return run
