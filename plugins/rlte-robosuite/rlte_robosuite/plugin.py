"""Registers the ``robosuite`` env (lazily: listing imports nothing)."""

from rlte_plugins import hookimpl


@hookimpl
def register_envs(register):
    register("robosuite", "rlte_robosuite.env:make_robosuite", tags=("vector", "continuous", "cpu"))
