"""rlte-plugins: composable, TensorDict-native reinforcement-learning components registered through pluggy.

Importing the package is cheap (no torch): components are imported when they are made.

Examples:
    >>> import rlte_plugins
    >>> "ppo" in [spec.name for spec in rlte_plugins.list_components("agent")]
    True
"""

from __future__ import annotations

from typing import Any

from rlte_plugins.errors import (
    AmbiguousComponentError,
    CheckpointError,
    ComponentArgumentError,
    ComponentError,
    ConfigError,
    EnvironmentNotFoundError,
    NonFiniteError,
    RegistrationError,
    RlteError,
    SpecMismatchError,
    UnknownComponentError,
    UnknownKindError,
)
from rlte_plugins.hookspecs import hookimpl
from rlte_plugins.registry import (
    KINDS,
    ComponentSpec,
    get_registry,
    get_spec,
    list_components,
    make,
    reset_registry,
)

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "AmbiguousComponentError",
    "CheckpointError",
    "ComponentArgumentError",
    "ComponentError",
    "ComponentSpec",
    "ConfigError",
    "A2C",
    "Agent",
    "DQN",
    "EnvironmentNotFoundError",
    "NonFiniteError",
    "PPO",
    "RegistrationError",
    "RlteError",
    "SpecMismatchError",
    "UnknownComponentError",
    "UnknownKindError",
    "__version__",
    "get_registry",
    "get_spec",
    "hookimpl",
    "list_components",
    "load_agent",
    "make",
    "reset_registry",
]

_LAZY = {
    "A2C": "rlte_plugins.agents.a2c:A2C",
    "Agent": "rlte_plugins.agents.base:Agent",
    "DQN": "rlte_plugins.agents.dqn:DQN",
    "PPO": "rlte_plugins.agents.ppo:PPO",
    "load_agent": "rlte_plugins.agents.base:load_agent",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'rlte_plugins' has no attribute {name!r}")
