"""Learning-curve figures."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

RETURN = "charts/episodic_return"


def plot_learning_curve(
    history: Sequence[dict[str, float]], path: str | os.PathLike[str], title: str = "", eval_return: float | None = None
) -> Path:
    """Write a PNG of mean episode return against frames (raw points and a moving average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(h["frames"], h[RETURN]) for h in history if RETURN in h and math.isfinite(h[RETURN])]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if points:
        frames, returns = zip(*points, strict=True)
        ax.plot(frames, returns, alpha=0.35, lw=1, label="batch mean")
        window = max(1, len(returns) // 20)
        smooth = [
            sum(returns[max(0, i - window + 1) : i + 1]) / len(returns[max(0, i - window + 1) : i + 1])
            for i in range(len(returns))
        ]
        ax.plot(frames, smooth, lw=2, label=f"moving average ({window})")
    if eval_return is not None:
        ax.axhline(eval_return, color="k", ls="--", lw=1, label=f"final evaluation {eval_return:.1f}")
    ax.set_xlabel("frames")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a run that ended no episode has nothing to label
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
