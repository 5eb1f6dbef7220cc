"""Exceptions raised where bad input enters rlte-plugins.

Every error is one actionable sentence; the CLI prints ``error: <message>`` and exits with status 2.
"""

from __future__ import annotations


class RlteError(Exception):
    """Base class of every error rlte-plugins raises on bad input."""


class UnknownKindError(RlteError, LookupError):
    """A component kind that does not exist."""


class UnknownComponentError(RlteError, LookupError):
    """A component name that no installed plugin registers."""


class AmbiguousComponentError(RlteError, LookupError):
    """A plain name that two third-party plugins register."""


class ComponentArgumentError(RlteError, TypeError):
    """Keyword arguments that do not fit a component's factory."""


def positive_int(owner: str, name: str, value: object) -> int:
    """``value`` if it is a positive ``int`` (not a ``bool``), else one :class:`ComponentArgumentError` line
    naming ``owner`` (e.g. ``"env 'atari'"``) and the argument."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ComponentArgumentError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


class SpecMismatchError(RlteError, ValueError):
    """A component that does not fit the environment's observation or action spec."""


class EnvironmentNotFoundError(RlteError, LookupError):
    """An environment id that the backend does not know."""


class RegistrationError(RlteError, ValueError):
    """A plugin called ``register`` with something that is not a component."""


class CheckpointError(RlteError, ValueError):
    """A checkpoint that is missing, corrupt, truncated or of another format."""


class ConfigError(RlteError, ValueError):
    """A training configuration with an unknown key or a malformed value."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class MissingDependencyError(RlteError, ImportError):
    """An optional backend (a Python package or a system library) that is not installed; says what to install."""
