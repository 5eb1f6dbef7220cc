"""Training progress: a live bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any


class Progress:
    """Reports frames, frames/s and the latest mean episode return while an agent trains.

    On a TTY it draws a tqdm bar; elsewhere (CI logs, files) it prints one line every ``interval`` seconds
    and a last line at the end, so logs stay readable.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        enabled: bool = True,
        stream: IO[str] | None = None,
        interval: float = 10.0,
        desc: str = "train",
    ) -> None:
        self.total, self.frames, self.enabled = total, initial, enabled
        self.stream = stream or sys.stderr
        self.interval, self.desc = interval, desc
        self.start = time.perf_counter()
        self._start_frames = initial
        self._last_print = self.start
        self._bar: Any = None
        self._last: dict[str, float] = {}
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                unit="frames",
                unit_scale=True,
                desc=desc,
                file=self.stream,
                dynamic_ncols=True,
            )

    @property
    def fps(self) -> float:
        elapsed = time.perf_counter() - self.start
        return (self.frames - self._start_frames) / elapsed if elapsed > 0 else 0.0

    def update(self, frames: int, stats: dict[str, float]) -> None:
        delta, self.frames = frames - self.frames, frames
        self._last.update({k: v for k, v in stats.items() if not (isinstance(v, float) and math.isnan(v))})
        if not self.enabled:
            return
        ret = self._last.get("charts/episodic_return")
        if self._bar is not None:
            self._bar.update(delta)
            self._bar.set_postfix(fps=f"{self.fps:,.0f}", ret="n/a" if ret is None else f"{ret:.1f}", refresh=False)
            return
        now = time.perf_counter()
        if now - self._last_print >= self.interval or frames >= self.total:
            self._last_print = now
            self._line(ret)

    def _line(self, ret: float | None) -> None:
        pct = 100.0 * self.frames / max(self.total, 1)
        ret_text = "n/a" if ret is None else f"{ret:.1f}"
        print(
            f"[{self.desc}] frames {self.frames:,}/{self.total:,} ({pct:.0f}%)  {self.fps:,.0f} frames/s  "
            f"episode return {ret_text}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
