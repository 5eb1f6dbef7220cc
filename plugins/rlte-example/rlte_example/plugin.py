"""Hook implementations: rlte-plugins imports this module (the entry point) and calls the hooks.

Factories are given as "module:attr" strings so that `rlte list` never imports torch through this plugin.
Every hook must carry ``@hookimpl`` (pluggy ignores unmarked functions; `rlte plugins` warns about them) and be
named exactly as in :mod:`rlte_plugins.hookspecs` (a misspelt name fails the plugin with a "did you mean").
"""

from rlte_example import commands
from rlte_plugins import hookimpl


@hookimpl
def register_encoders(register):
    register("residual_mlp", "rlte_example.encoders:ResidualMLPEncoder", tags=("vector", "example"))


@hookimpl
def register_rewards(register):
    register("simhash_count", "rlte_example.rewards:SimHashCountReward", tags=("exploration", "example"))


@hookimpl
def register_commands(cli):
    cli.add_command(
        "residual-mlp-size",
        commands.run,
        help="parameters of residual_mlp encoders by width and depth",
        configure=commands.configure,
    )
