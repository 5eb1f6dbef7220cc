"""Figures of rliable-style evaluation results (Agarwal et al., 2021): interval estimates of aggregate metrics,
performance profiles, probabilities of improvement and sample-efficiency curves, drawn from the outputs of
:mod:`rlte_plugins.evaluation.metrics` (the statistics are all computed there, none here).

Every function returns the :class:`~matplotlib.figure.Figure` when ``path`` is None (the caller owns it), and
otherwise writes it once per format with :func:`save_figure` and returns the paths written. Figures are built
without pyplot, so drawing one neither chooses nor switches the caller's backend, and nothing keeps a figure alive
once the caller drops it. An algorithm keeps its colour from one figure to the next (:func:`algorithm_colors`).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_FORMATS = ("png", "svg")
_BAR_HEIGHT = 0.6


def algorithm_colors(algorithms: Sequence[str]) -> dict[str, tuple]:
    """An RGB colour per algorithm, dealt in sorted name order so that the same names get the same colours in
    every figure: matplotlib's colour-blind-friendly ``tab10`` for up to ten names, evenly spaced ``turbo`` hues
    beyond (``tab10`` would repeat).

    Examples:
        >>> colors = algorithm_colors(["sac", "ppo"])
        >>> list(colors), colors == algorithm_colors(["ppo", "sac", "ppo"])
        (['ppo', 'sac'], True)
    """
    import matplotlib

    names = sorted(set(algorithms))
    if len(names) <= 10:
        palette = matplotlib.colormaps["tab10"].colors[: len(names)]
    else:
        turbo = matplotlib.colormaps["turbo"]
        palette = [turbo(i / (len(names) - 1))[:3] for i in range(len(names))]
    return {name: tuple(float(c) for c in color) for name, color in zip(names, palette, strict=True)}


def save_figure(fig: Figure, path: str | os.PathLike[str], formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write ``fig`` to ``path`` once per format (any suffix ``path`` has is replaced), close it, return the paths."""
    import matplotlib

    suffixes = _check_formats(formats)
    stem = Path(path).with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        # text stays text in SVG: searchable, editable and far smaller than glyph outlines
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            for suffix in suffixes:
                target = stem.with_name(f"{stem.name}.{suffix}")
                fig.savefig(target, format=suffix)
                written.append(target)
    finally:
        # a figure the caller made through pyplot stays registered there until closed; pyplot can only hold it if
        # it has been imported, and importing it just to close a figure would load a backend for nothing
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)
    return written


def plot_interval_estimates(
    points: Mapping[str, Any],
    intervals: Mapping[str, Any],
    metric_names: Sequence[str],
    algorithms: Sequence[str] | None = None,
    xlabel: str = "Normalized score",
    colors: Mapping[str, Any] | None = None,
    path: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> Figure | list[Path]:
    """One panel per metric, one row per algorithm: its interval as a bar, its point estimate as a tick across it.

    ``points[alg]`` has one value per metric (a scalar when there is one metric) and ``intervals[alg]`` is a
    ``(2, k)`` array of lower and upper bounds, as :func:`~rlte_plugins.evaluation.metrics.get_interval_estimates`
    returns them. Algorithms are drawn top to bottom in the order of ``algorithms`` (default: of ``points``).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> points = {"ppo": [0.8, 0.7], "dqn": [0.6, 0.5]}
        >>> intervals = {"ppo": [[0.7, 0.6], [0.9, 0.8]], "dqn": [[0.5, 0.4], [0.7, 0.6]]}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     written = plot_interval_estimates(points, intervals, ["IQM", "Mean"], path=Path(tmp) / "aggregate")
        ...     [p.suffix for p in written]
        ['.png', '.svg']
    """
    names = [metric_names] if isinstance(metric_names, str) else list(metric_names)
    if not names:
        raise ValueError("metric_names must name at least one metric")
    _check_same_keys(points, intervals, "algorithms")
    order = _choose(points, algorithms)
    k = len(names)
    values = {alg: _values(f"points[{alg!r}]", points[alg], k, f"metric_names has {k} names") for alg in points}
    bands = {alg: _band(f"intervals[{alg!r}]", intervals[alg], k) for alg in intervals}
    palette = _palette(colors, list(points), order)
    if path is not None:
        _check_formats(formats)

    fig = _figure(1.0 + 2.8 * k, 1.2 + 0.45 * len(order))
    axes = fig.subplots(1, k, sharey=True, squeeze=False)[0]
    rows = np.arange(len(order))[::-1]  # the first algorithm on top
    for m, (ax, title) in enumerate(zip(axes, names, strict=True)):
        lower = np.array([bands[alg][0, m] for alg in order])
        upper = np.array([bands[alg][1, m] for alg in order])
        ax.barh(rows, upper - lower, left=lower, height=_BAR_HEIGHT, color=[palette[a] for a in order], alpha=0.75)
        estimates = [values[alg][m] for alg in order]
        ax.vlines(estimates, rows - _BAR_HEIGHT / 2, rows + _BAR_HEIGHT / 2, color="black", linewidth=2)
        ax.use_sticky_edges = False  # a bar's left end is sticky: the lowest interval would touch the frame
        ax.set_title(title)
        _decorate(ax, grid="x")
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", left=False)
    axes[0].set_yticks(rows, order)
    fig.supxlabel(xlabel)
    return _finish(fig, path, formats)


def plot_performance_profiles(
    profiles: Mapping[str, Any],
    profile_cis: Mapping[str, Any],
    tau_list: Sequence[float],
    algorithms: Sequence[str] | None = None,
    xlabel: str = r"Normalized score ($\tau$)",
    ylabel: str = r"Fraction of runs with score $> \tau$",
    colors: Mapping[str, Any] | None = None,
    path: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> Figure | list[Path]:
    """Each algorithm's performance profile against ``tau`` as a line in a shaded interval, with a legend.

    ``profiles`` and ``profile_cis`` are what :func:`~rlte_plugins.evaluation.metrics.create_performance_profile`
    returns for the same ``tau_list``.
    """
    tau = _axis_values("tau_list", tau_list)
    fig = _curves_figure(profiles, profile_cis, tau, "tau_list", algorithms, colors, path, formats)
    ax = fig.axes[0]
    ax.set_ylim(-0.02, 1.02)  # fractions: the full range, with room for lines lying on 0 or 1
    ax.set_yticks(np.linspace(0.0, 1.0, 5))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _finish(fig, path, formats)


def plot_probability_of_improvement(
    points: Mapping[str, Any],
    intervals: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    colors: Mapping[str, Any] | None = None,
) -> Figure | list[Path]:
    """One row per pair ``"x,y"``: the interval of P(X > Y) as a bar in ``x``'s colour, the estimate as a tick.

    ``points`` and ``intervals`` are what :func:`~rlte_plugins.evaluation.metrics.get_interval_estimates` returns
    for :func:`~rlte_plugins.evaluation.metrics.probability_of_improvement` over a dict of pairs keyed ``"x,y"``.
    """
    _check_same_keys(points, intervals, "pairs")
    if not points:
        raise ValueError("points must hold at least one pair 'x,y'")
    pairs = [_pair(label) for label in points]
    estimates = np.array([_values(f"points[{label!r}]", points[label], 1, "a pair has one")[0] for label in points])
    bands = np.stack([_band(f"intervals[{label!r}]", intervals[label], 1)[:, 0] for label in points])
    for label, value, band in zip(points, estimates, bands, strict=True):
        if not np.all((0.0 <= np.r_[value, band]) & (np.r_[value, band] <= 1.0)):
            raise ValueError(f"{label!r}: a probability of improvement and its interval lie in [0, 1], got "
                             f"{value} and {band.tolist()}")  # fmt: skip
    palette = _palette(colors, [name for pair in pairs for name in pair], [x for x, _ in pairs])
    if path is not None:
        _check_formats(formats)

    fig = _figure(5.5, 1.2 + 0.45 * len(pairs))
    ax = fig.subplots()
    rows = np.arange(len(pairs))[::-1]
    ax.barh(rows, bands[:, 1] - bands[:, 0], left=bands[:, 0], height=_BAR_HEIGHT,
            color=[palette[x] for x, _ in pairs], alpha=0.75)  # fmt: skip
    ax.vlines(estimates, rows - _BAR_HEIGHT / 2, rows + _BAR_HEIGHT / 2, color="black", linewidth=2)
    ax.axvline(0.5, color="0.4", linestyle="--", linewidth=1)
    ax.set_xlim(0.0, 1.0)
    ax.set_yticks(rows, [f"P({x} > {y})" for x, y in pairs])
    ax.set_xlabel("Probability of improvement")
    _decorate(ax, grid="x")
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", left=False)
    return _finish(fig, path, formats)


def plot_sample_efficiency_curve(
    frames: Sequence[float],
    points: Mapping[str, Any],
    intervals: Mapping[str, Any],
    algorithms: Sequence[str] | None = None,
    xlabel: str = "Frames",
    ylabel: str = "IQM normalized score",
    colors: Mapping[str, Any] | None = None,
    path: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> Figure | list[Path]:
    """Each algorithm's score against ``frames`` as a line in a shaded interval, with a legend.

    ``points`` and ``intervals`` are what :func:`~rlte_plugins.evaluation.metrics.sample_efficiency_curve` returns;
    ``frames`` holds the frame count of each of their columns.
    """
    from matplotlib.ticker import EngFormatter

    x = _axis_values("frames", frames)
    fig = _curves_figure(points, intervals, x, "frames", algorithms, colors, path, formats)
    ax = fig.axes[0]
    if np.max(np.abs(x)) >= 1000:  # 2M rather than an offset label of 1e6; fractions of a budget stay plain
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _finish(fig, path, formats)


# -- shared parts ----------------------------------------------------------------------------------------------
def _accepted_formats() -> list[str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def _check_formats(formats: Sequence[str]) -> list[str]:
    requested = [formats] if isinstance(formats, str) else list(formats)
    suffixes = list(dict.fromkeys(str(f).lower().lstrip(".") for f in requested))
    accepted = _accepted_formats()
    unknown = [s for s in suffixes if s not in accepted]
    if unknown or not suffixes:
        raise ValueError(f"formats must be one or more of {accepted}, got {requested!r}")
    return suffixes


def _check_same_keys(points: Mapping[str, Any], intervals: Mapping[str, Any], what: str) -> None:
    only_points = [k for k in points if k not in intervals]
    only_intervals = [k for k in intervals if k not in points]
    if only_points or only_intervals:
        raise ValueError(f"points and intervals must have the same {what}: only in points {only_points}, only in "
                         f"intervals {only_intervals}")  # fmt: skip


def _choose(known: Mapping[str, Any], algorithms: Sequence[str] | None) -> list[str]:
    chosen = list(known) if algorithms is None else [algorithms] if isinstance(algorithms, str) else list(algorithms)
    for name in chosen:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown algorithm {name!r}{hint}; known: {list(known)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"algorithms names one more than once: {chosen}")
    if not chosen:
        raise ValueError("nothing to plot: no algorithms")
    return chosen


def _values(what: str, value: Any, k: int, expected: str) -> np.ndarray:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if array.shape != (k,):
        raise ValueError(f"{what} must hold {k} values ({expected}), got shape {np.shape(value)}")
    return array


def _band(what: str, interval: Any, k: int) -> np.ndarray:
    array = np.asarray(interval, dtype=np.float64)
    if k == 1 and array.shape == (2,):
        array = array[:, None]
    if array.shape != (2, k):
        raise ValueError(f"{what} must be a (2, {k}) array of lower and upper bounds, got shape {array.shape}")
    return array


def _axis_values(what: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-d sequence, got shape {array.shape}")
    return array


def _pair(label: str) -> tuple[str, str]:
    parts = [part.strip() for part in str(label).split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a pair is labelled 'x,y' (algorithm x over algorithm y, one comma), got {label!r}")
    return parts[0], parts[1]


def _palette(colors: Mapping[str, Any] | None, every: Sequence[str], plotted: Sequence[str]) -> Mapping[str, Any]:
    # colours come from every algorithm in the results, not only those plotted, so that a figure of a subset
    # keeps the colours of the full figure
    palette = algorithm_colors(every) if colors is None else colors
    missing = [name for name in plotted if name not in palette]
    if missing:
        raise ValueError(f"colors has no colour for {missing}")
    return palette


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=150, layout="constrained")


def _decorate(ax: Axes, grid: str) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis=grid, alpha=0.25, linewidth=0.8)
    ax.set_axisbelow(True)


def _curves_figure(
    points: Mapping[str, Any],
    intervals: Mapping[str, Any],
    x: np.ndarray,
    x_name: str,
    algorithms: Sequence[str] | None,
    colors: Mapping[str, Any] | None,
    path: str | os.PathLike[str] | None,
    formats: Sequence[str],
) -> Figure:
    _check_same_keys(points, intervals, "algorithms")
    order = _choose(points, algorithms)
    n = x.size
    values = {alg: _values(f"points[{alg!r}]", points[alg], n, f"{x_name} has {n}") for alg in points}
    bands = {alg: _band(f"intervals[{alg!r}]", intervals[alg], n) for alg in intervals}
    palette = _palette(colors, list(points), order)
    if path is not None:
        _check_formats(formats)

    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    for alg in order:
        ax.plot(x, values[alg], color=palette[alg], linewidth=2, label=alg)
        ax.fill_between(x, bands[alg][0], bands[alg][1], color=palette[alg], alpha=0.2, linewidth=0)
    if n > 1:
        ax.set_xlim(x.min(), x.max())
    _decorate(ax, grid="both")
    ax.legend(frameon=False)
    return fig


def _finish(fig: Figure, path: str | os.PathLike[str] | None, formats: Sequence[str]) -> Figure | list[Path]:
    return fig if path is None else save_figure(fig, path, formats)
