"""Stop conditions over training and evaluation statistics.

A condition is called once per training iteration with the keys logged for that iteration (CleanRL's names:
``"charts/episodic_return"``, ``"eval/episodic_return"``, ``"losses/approx_kl"``...) and the counters
``"frames"``, ``"time_s"`` and ``"iteration"``, and returns ``True`` when training should stop. Conditions keep
their own history, so one instance belongs to one run. A missing key (e.g. an evaluation statistic on an
iteration without evaluation) never triggers a condition: the last value seen is used, or none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from rlte_plugins.errors import ComponentArgumentError, positive_int


class Condition(Protocol):
    def __call__(self, stats: Mapping[str, Any], /) -> bool: ...


class _KeyCondition:
    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ComponentArgumentError(f"{type(self).__name__}: key must be a statistic name, got {key!r}")
        self.key = key
        self.history: list[float] = []

    def _value(self, stats: Mapping[str, Any]) -> float | None:
        if self.key not in stats:
            return None
        value = float(stats[self.key])
        if math.isnan(value):
            return None
        self.history.append(value)
        return value

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "history")
        return f"{type(self).__name__}({args})"


class HitsUpperBound(_KeyCondition):
    """Stop once ``stats[key] >= bound`` (e.g. ``HitsUpperBound("eval/episodic_return", 475)``)."""

    def __init__(self, key: str, bound: float) -> None:
        super().__init__(key)
        self.bound = float(bound)

    def __call__(self, stats: Mapping[str, Any], /) -> bool:
        value = self._value(stats)
        return value is not None and value >= self.bound


class HitsLowerBound(_KeyCondition):
    """Stop once ``stats[key] <= bound`` (e.g. a loss)."""

    def __init__(self, key: str, bound: float) -> None:
        super().__init__(key)
        self.bound = float(bound)

    def __call__(self, stats: Mapping[str, Any], /) -> bool:
        value = self._value(stats)
        return value is not None and value <= self.bound


class Plateaus(_KeyCondition):
    """Stop once ``stats[key]`` has stayed within a relative ``rtol`` of the value ``patience`` readings before
    for ``patience`` consecutive readings: ``|x_t - x_{t-patience}| <= rtol * |x_{t-patience}|``."""

    def __init__(self, key: str, patience: int = 5, rtol: float = 1e-3) -> None:
        super().__init__(key)
        self.patience, self.rtol = positive_int("Plateaus", "patience", patience), float(rtol)

    def __call__(self, stats: Mapping[str, Any], /) -> bool:
        if self._value(stats) is None or len(self.history) <= self.patience:
            return False
        window = self.history[-self.patience - 1 :]
        ref = window[0]
        return all(abs(x - ref) <= self.rtol * abs(ref) for x in window[1:])


class _Trend(_KeyCondition):
    """Compares the best of the last ``patience`` readings with the best before them."""

    sign = 1.0

    def __init__(self, key: str, patience: int = 5) -> None:
        super().__init__(key)
        self.patience = positive_int(type(self).__name__, "patience", patience)

    def __call__(self, stats: Mapping[str, Any], /) -> bool:
        if self._value(stats) is None or len(self.history) <= self.patience:
            return False
        before = [self.sign * x for x in self.history[: -self.patience]]
        recent = [self.sign * x for x in self.history[-self.patience :]]
        return max(recent) <= max(before)


class StopsIncreasing(_Trend):
    """Stop once ``stats[key]`` has not exceeded its earlier maximum for ``patience`` readings."""


class StopsDecreasing(_Trend):
    """Stop once ``stats[key]`` has not gone below its earlier minimum for ``patience`` readings."""

    sign = -1.0


class And:
    """Stop when every condition says so (all are evaluated every time, so each keeps its history)."""

    def __init__(self, conditions: Sequence[Condition]) -> None:
        self.conditions = list(conditions)

    def __call__(self, stats: Mapping[str, Any], /) -> bool:
        return all([c(stats) for c in self.conditions])  # a list: no short-circuit


class Or:
    """Stop when any condition says so (all are evaluated every time)."""

    def __init__(self, conditions: Sequence[Condition]) -> None:
        self.conditions = list(conditions)

    def __call__(self, stats: Mapping[str, Any], /) -> bool:
        return any([c(stats) for c in self.conditions])


class FrameBudget(HitsUpperBound):
    """Stop once ``frames`` environment transitions have been collected."""

    def __init__(self, frames: int) -> None:
        super().__init__("frames", frames)


class TimeBudget(HitsUpperBound):
    """Stop once ``seconds`` of training wall time have passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__("time_s", seconds)


def from_config(spec: Mapping[str, Any]) -> Condition:
    """A condition from a config mapping: ``{"hits_upper_bound": {"key": ..., "bound": ...}}``,
    ``{"or": [..]}``, ``{"frame_budget": 1000000}``...

    Examples:
        >>> c = from_config({"or": [{"frame_budget": 100}, {"hits_upper_bound": {"key": "r", "bound": 1}}]})
        >>> c({"frames": 10, "r": 2.0})
        True
    """
    names: dict[str, Any] = {
        "hits_upper_bound": HitsUpperBound,
        "hits_lower_bound": HitsLowerBound,
        "plateaus": Plateaus,
        "stops_increasing": StopsIncreasing,
        "stops_decreasing": StopsDecreasing,
        "frame_budget": FrameBudget,
        "time_budget": TimeBudget,
    }
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ComponentArgumentError(f"a stop condition is a mapping with one key, got {spec!r}")
    ((name, args),) = spec.items()
    if name in ("and", "or"):
        if not isinstance(args, Sequence) or isinstance(args, str):
            raise ComponentArgumentError(f"stop condition {name!r} takes a list of conditions, got {args!r}")
        return (And if name == "and" else Or)([from_config(a) for a in args])
    if name not in names:
        raise ComponentArgumentError(f"unknown stop condition {name!r} (known: {', '.join([*names, 'and', 'or'])})")
    try:
        return names[name](**args) if isinstance(args, Mapping) else names[name](args)
    except TypeError as exc:
        raise ComponentArgumentError(f"stop condition {name!r}: {exc}") from exc
