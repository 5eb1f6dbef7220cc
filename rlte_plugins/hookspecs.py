"""The pluggy hook specifications: one hook per component kind, and ``register_commands`` for ``rlte`` subcommands.

A plugin module implements any of these with :data:`rlte_plugins.hookimpl` and calls ``register(name,
factory, **meta)`` once per component. ``factory`` is a callable or a lazy ``"package.module:attr"`` string
(preferred: listing then imports nothing); ``meta`` takes ``summary`` (defaults to the first paragraph of the
factory's docstring), ``tags`` (a sequence of strings) and ``defaults`` (keyword arguments merged under the
caller's).

A hook without ``@hookimpl`` is never called (``rlte plugins`` warns), and one whose name is not below fails the
plugin with a "did you mean". Components report bad input with :class:`~rlte_plugins.ComponentArgumentError`
(an argument is wrong) or :class:`~rlte_plugins.SpecMismatchError` (it does not fit the env's specs); anything
else they raise while made or built is reported as their failure, naming them and their provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from rlte_plugins.cli.plugin_commands import Commands

PROJECT_NAME = "rlte_plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., Any]


@hookspec
def register_encoders(register: Register) -> None:
    """Register feature encoders (observation -> features)."""


@hookspec
def register_policies(register: Register) -> None:
    """Register policies (actor, critic or both, built from an encoder and a distribution)."""


@hookspec
def register_storages(register: Register) -> None:
    """Register storages (TorchRL replay buffers for on- and off-policy data)."""


@hookspec
def register_distributions(register: Register) -> None:
    """Register action distributions (a parameter head plus a distribution class)."""


@hookspec
def register_augmentations(register: Register) -> None:
    """Register data augmentations applied to observations."""


@hookspec
def register_rewards(register: Register) -> None:
    """Register intrinsic rewards."""


@hookspec
def register_agents(register: Register) -> None:
    """Register agents (complete learning algorithms)."""


@hookspec
def register_envs(register: Register) -> None:
    """Register environment makers (batched TorchRL environments)."""


@hookspec
def register_losses(register: Register) -> None:
    """Register loss modules (TorchRL ``LossModule`` subclasses) that TorchRL does not ship."""


@hookspec
def register_commands(cli: Commands) -> None:
    """Add ``rlte`` subcommands: ``cli.add_command(name, run, help=..., configure=...)`` once per command, where
    ``configure(parser)`` adds its argparse arguments and ``run(args)`` returns its exit status
    (:class:`rlte_plugins.cli.plugin_commands.Commands`). Called by the CLI only; a plugin whose hook raises is
    reported and its commands are skipped."""


#: kind -> hook name; the order is the order ``rlte list`` shows kinds in.
HOOKS: dict[str, str] = {
    "agent": "register_agents",
    "encoder": "register_encoders",
    "policy": "register_policies",
    "distribution": "register_distributions",
    "storage": "register_storages",
    "augmentation": "register_augmentations",
    "reward": "register_rewards",
    "env": "register_envs",
    "loss": "register_losses",
}

#: hooks that register no component: their callers call them (``rlte`` calls ``register_commands``)
OTHER_HOOKS: tuple[str, ...] = ("register_commands",)
