"""Exceptions raised where bad input enters rlte-plugins.

Every error is one actionable sentence; the CLI prints ``error: <message>`` and exits with status 2.
"""

from __future__ import annotations

from functools import cache


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


class NonFiniteError(RlteError, FloatingPointError):
    """Training met a non-finite reward, observation, loss or gradient; names the key and the frame."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after the last finished iteration; says where its checkpoint is (``checkpoint``:
    the file written, or ``None`` when no checkpoint path was given; ``frames``: the frames it holds)."""

    def __init__(self, message: str, checkpoint: str | None = None, frames: int = 0) -> None:
        super().__init__(message)
        self.checkpoint, self.frames = checkpoint, frames


class ConfigError(RlteError, ValueError):
    """A training configuration with an unknown key or a malformed value."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class ComponentError(RlteError):
    """A component's own code raised while it was made or built: names the component and its provider.

    The original exception is ``__cause__``, and the error is also an instance of the original's type, so
    ``except ValueError`` still catches a ``ValueError`` raised in a constructor. Errors a component raises on
    purpose (:class:`ComponentArgumentError`, :class:`SpecMismatchError`...) pass through unwrapped: their
    message already says what to change.

    Examples:
        >>> err = ComponentError.wrap(ValueError("width must be even"), "made", "encoder", "mine", "my-plugin", "1.0")
        >>> print(err)
        encoder 'mine' from my-plugin 1.0 failed while being made: ValueError: width must be even
        >>> isinstance(err, ValueError), type(err.__cause__).__name__, err.provider
        (True, 'ValueError', 'my-plugin')
    """

    kind: str = ""
    name: str = ""
    provider: str = ""
    version: str = ""
    _original: type[Exception] | None = None

    @classmethod
    def wrap(cls, exc: Exception, stage: str, kind: str, name: str, provider: str, version: str) -> ComponentError:
        """``exc`` (raised while the component was ``stage``: "made" or "built") as a :class:`ComponentError`
        chained to it; the message keeps only the first line of ``exc``'s (the whole is in ``__cause__``)."""
        detail = str(exc).strip().splitlines()
        message = f"{kind} {name!r} from {provider} {version} failed while being {stage}: {type(exc).__name__}" + (
            f": {detail[0]}" if detail else ""
        )
        err = _component_error(type(exc), message)
        err.kind, err.name, err.provider, err.version = kind, name, provider, version
        err.__cause__ = exc
        return err

    def __str__(self) -> str:
        # KeyError and a few others repr their argument; the message is plain text
        return self.args[0] if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:
        # the class made for the original type is not importable by name: rebuild it from that type
        return _rebuild, (self._original, str(self), self.__dict__)


@cache
def _component_error_type(original: type[Exception]) -> type[ComponentError]:
    try:
        return type(f"Component{original.__name__}", (ComponentError, original), {"_original": original})
    except TypeError:  # a base with an incompatible instance layout
        return ComponentError


def _component_error(original: type[Exception], message: str) -> ComponentError:
    try:
        return _component_error_type(original)(message)
    except TypeError:  # an original whose constructor needs more than a message (UnicodeDecodeError...)
        return ComponentError(message)


def _rebuild(original: type[Exception] | None, message: str, state: dict[str, object]) -> ComponentError:
    err = ComponentError(message) if original is None else _component_error(original, message)
    err.__dict__.update(state)
    return err


class MissingDependencyError(RlteError, ImportError):
    """An optional backend (a Python package or a system library) that is not installed; says what to install."""
