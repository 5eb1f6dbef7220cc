"""Values that change with the frames collected: learning rates, entropy coefficients, noise, priorities."""

from __future__ import annotations

import re
from typing import Any

from rlte_plugins.errors import ComponentArgumentError


class Schedule:
    """A value over environment steps: a constant, or ``"linear(start, end, steps)"`` (then held at ``end``).

    Examples:
        >>> s = Schedule.parse("linear(1.0, 0.1, 100)")
        >>> [round(s(t), 3) for t in (0, 50, 100, 1000)]
        [1.0, 0.55, 0.1, 0.1]
        >>> Schedule.parse(0.2)(12345)
        0.2
    """

    _LINEAR = re.compile(r"^\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,\)]+)\)\s*$")

    def __init__(self, start: float, end: float | None = None, steps: int = 0) -> None:
        self.start, self.end, self.steps = float(start), float(start if end is None else end), int(steps)

    @classmethod
    def parse(cls, value: Any, owner: str = "schedule") -> Schedule:
        if isinstance(value, Schedule):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(float(value))
        match = cls._LINEAR.match(value) if isinstance(value, str) else None
        if match is None:
            raise ComponentArgumentError(
                f"{owner}: a schedule is a number or 'linear(start, end, steps)', got {value!r}"
            )
        try:
            start, end, steps = float(match[1]), float(match[2]), int(float(match[3]))
        except ValueError as exc:
            raise ComponentArgumentError(f"{owner}: cannot read schedule {value!r} ({exc})") from exc
        if steps < 1:
            raise ComponentArgumentError(f"{owner}: a linear schedule needs steps >= 1, got {value!r}")
        return cls(start, end, steps)

    def __call__(self, step: int) -> float:
        if self.steps <= 0 or step >= self.steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.steps

    def __repr__(self) -> str:
        return f"linear({self.start}, {self.end}, {self.steps})" if self.steps else f"{self.start}"
