"""The figures and aggregate table of a results folder (``rlte eval plot RESULTS_DIR``).

:func:`plot_results` writes into ``RESULTS_DIR/plots`` (PNG and SVG each):

- ``aggregates``: the chosen aggregate metrics (IQM, median, mean, optimality gap) of every algorithm's final
  scores with 95% stratified-bootstrap intervals;
- ``performance_profile``: the fraction of runs scoring above each threshold, with intervals;
- ``probability_of_improvement``: P(X > Y) of every pair of algorithms, with intervals;
- ``sample_efficiency``: the IQM of the learning curves against frames (against the fraction of each run's
  frames when the tasks' budgets differ), with intervals;
- ``aggregates.json``: the numbers behind the figures.

Scores are normalised with the tasks' score ranges when every task has one (the suite's ``score_range`` or
``normalize``), else raw returns are shown and said to be.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation.metrics import (
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    aggregate_optimality_gap,
    create_performance_profile,
    get_interval_estimates,
    probability_of_improvement,
    sample_efficiency_curve,
)
from rlte_plugins.evaluation.results import Results, write_json_atomic

#: metric name -> (function of a score matrix, title)
METRICS = {
    "iqm": (aggregate_iqm, "IQM"),
    "median": (aggregate_median, "Median"),
    "mean": (aggregate_mean, "Mean"),
    "optimality_gap": (aggregate_optimality_gap, "Optimality Gap"),
}


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """``metrics`` if every name is known, else one :class:`ConfigError` listing the accepted ones."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"unknown metric {unknown[0] if unknown else None!r} (accepted: {', '.join(METRICS)})")
    return list(dict.fromkeys(metrics))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def plot_results(
    results: Results,
    output: str | Path | None = None,
    metrics: Sequence[str] = ("iqm", "median", "mean", "optimality_gap"),
    reps: int = 50_000,
    curve_reps: int = 2_000,
    normalize: bool | None = None,
    random_state: int = 0,
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Write the figures and ``aggregates.json`` of ``results`` into ``output`` (default ``RESULTS_DIR/plots``);
    returns the files written. ``reps`` bootstrap samples for the aggregates and probabilities of improvement,
    ``curve_reps`` for the performance profile and the sample-efficiency curve (one estimate per point)."""
    from rlte_plugins.evaluation.plots import (
        algorithm_colors,
        plot_interval_estimates,
        plot_performance_profiles,
        plot_probability_of_improvement,
        plot_sample_efficiency_curve,
    )

    metrics = check_metrics(metrics)
    out = Path(output) if output is not None else results.path / "plots"
    if not results.finished():
        raise ConfigError(f"results folder {str(results.path)!r} has no finished run to plot")
    tasks = results.common_tasks()
    if not tasks:
        raise ConfigError(f"no task of {str(results.path)!r} has a finished run of every algorithm "
                          f"({', '.join(results.algorithms)}): nothing to compare")  # fmt: skip
    normalized = normalize is not False and results.score_ranges(tasks) is not None
    if normalize and not normalized:
        results.score_dict(normalize=True, tasks=tasks)  # raises the error that says which task lacks a range
    scores = results.score_dict(normalize=normalized, tasks=tasks)
    algorithms = list(scores)
    colors = algorithm_colors(algorithms)
    label = "Normalized score" if normalized else "Episode return (not normalised)"
    funcs = [METRICS[m][0] for m in metrics]

    def aggregates(matrix: np.ndarray) -> np.ndarray:
        return np.array([f(matrix) for f in funcs])

    points, intervals = get_interval_estimates(scores, aggregates, reps=reps, random_state=random_state)
    titles = [METRICS[m][1] for m in metrics]
    written = plot_interval_estimates(points, intervals, titles, algorithms=algorithms, xlabel=label, colors=colors,
                                      path=out / "aggregates", formats=formats)  # fmt: skip
    everything = np.concatenate([m.ravel() for m in scores.values()])
    low, high = (0.0, max(1.0, float(everything.max()))) if normalized else (everything.min(), everything.max())
    high = max(high, low + 1e-6 * max(1.0, abs(low)))  # every run scored the same: a profile still needs a range
    tau_list = np.linspace(low, high, 81)
    profiles, profile_cis = create_performance_profile(scores, tau_list, reps=curve_reps, random_state=random_state)
    written += plot_performance_profiles(profiles, profile_cis, tau_list, algorithms=algorithms, colors=colors,
                                         xlabel=f"{label} " + r"($\tau$)", path=out / "performance_profile",
                                         formats=formats)  # fmt: skip
    summary: dict[str, Any] = {
        "suite": results.name, "normalized": normalized, "reps": reps, "curve_reps": curve_reps,
        "random_state": random_state, "tasks": tasks, "runs": {a: len(m) for a, m in scores.items()},
        "tasks_left_out": [t for t in results.tasks if t not in tasks],  # not finished by every algorithm
        "metrics": {m: {a: {"point": points[a][i], "ci": intervals[a][:, i]} for a in algorithms}
                    for i, m in enumerate(metrics)},
        "scores": scores,
    }  # fmt: skip
    if len(algorithms) > 1:
        # each pair as P(better > worse) by IQM, the way round a reader asks it
        ranked = sorted(algorithms, key=lambda a: -aggregate_iqm(scores[a]))
        pairs = {f"{x},{y}": (scores[x], scores[y]) for x, y in itertools.combinations(ranked, 2)}
        poi, poi_cis = get_interval_estimates(pairs, probability_of_improvement, reps=reps, random_state=random_state)
        written += plot_probability_of_improvement(poi, poi_cis, path=out / "probability_of_improvement",
                                                   formats=formats)  # fmt: skip
        summary["probability_of_improvement"] = {p: {"point": poi[p], "ci": poi_cis[p].ravel()} for p in poi}
    relative = results.relative_frames(tasks)
    frames, curves = results.curves(normalize=normalized, tasks=tasks, relative=relative)
    curve_points, curve_cis = sample_efficiency_curve(curves, reps=curve_reps, random_state=random_state)
    xlabel = "Fraction of each task's training frames" if relative else "Frames"
    written += plot_sample_efficiency_curve(frames, curve_points, curve_cis, algorithms=algorithms, colors=colors,
                                            xlabel=xlabel, ylabel=f"IQM {label[0].lower()}{label[1:]}",
                                            path=out / "sample_efficiency", formats=formats)  # fmt: skip
    summary["sample_efficiency"] = {"x": "fraction" if relative else "frames", "frames": frames, "iqm": curve_points,
                                    "ci": curve_cis}  # fmt: skip
    write_json_atomic(out / "aggregates.json", _jsonable(summary))
    return [*written, out / "aggregates.json"]
