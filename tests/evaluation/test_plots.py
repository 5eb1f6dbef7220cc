"""The evaluation figures, drawn from real interval estimates of small seeded score matrices: the files written, and
the artists of each figure against the numbers it was given."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rlte_plugins.evaluation import metrics as ev
from rlte_plugins.evaluation import plots

METRICS = ["Median", "IQM", "Mean"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _scores() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    shapes = {"ppo": (1.0, 0.4, (5, 4)), "dqn": (0.6, 0.4, (6, 4)), "sac": (0.8, 0.3, (5, 4))}
    return {alg: rng.normal(*shape) for alg, shape in shapes.items()}


def _three(scores: np.ndarray) -> np.ndarray:
    return np.array([ev.aggregate_median(scores), ev.aggregate_iqm(scores), ev.aggregate_mean(scores)])


@pytest.fixture(scope="module")
def estimates() -> tuple[dict, dict]:
    return ev.get_interval_estimates(_scores(), _three, reps=200, random_state=0)


@pytest.fixture(scope="module")
def poi() -> tuple[dict, dict]:
    scores = _scores()
    pairs = {"ppo,dqn": (scores["ppo"], scores["dqn"]), "sac,ppo": (scores["sac"], scores["ppo"])}
    return ev.get_interval_estimates(pairs, ev.probability_of_improvement, reps=200, random_state=0)


def _svg_texts(path) -> set[str]:
    root = ET.parse(path).getroot()  # also: the file is well-formed XML
    return {"".join(element.itertext()).strip() for element in root.iter() if element.tag.endswith("text")}


def _rows(ax) -> dict[int, str]:
    return {round(y): label.get_text() for y, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}


def _labels_top_down(ax) -> list[str]:
    rows = _rows(ax)
    return [rows[y] for y in sorted(rows, reverse=True)]


def _bars_by_row(ax, labelled_ax=None) -> dict[str, object]:
    """The bar of each row of ``ax``, keyed by the y tick label of its row (on ``labelled_ax`` for shared rows)."""
    rows = _rows(labelled_ax or ax)
    return {rows[round(bar.get_y() + bar.get_height() / 2)]: bar for bar in ax.patches}


def test_interval_estimates_written_as_png_and_svg_with_every_label(estimates, tmp_path):
    points, intervals = estimates
    written = plots.plot_interval_estimates(points, intervals, METRICS, path=tmp_path / "new" / "aggregate.pdf")
    assert written == [tmp_path / "new" / "aggregate.png", tmp_path / "new" / "aggregate.svg"]
    assert written[0].read_bytes().startswith(PNG_SIGNATURE)
    texts = _svg_texts(written[1])
    assert set(points) | set(METRICS) | {"Normalized score"} <= texts


def test_interval_estimates_bars_span_the_intervals_with_a_tick_at_each_point(estimates):
    points, intervals = estimates
    fig = plots.plot_interval_estimates(points, intervals, METRICS)
    assert len(fig.axes) == len(METRICS)
    assert _labels_top_down(fig.axes[0]) == list(points)
    colors = plots.algorithm_colors(list(points))
    for m, ax in enumerate(fig.axes):
        assert ax.get_title() == METRICS[m]
        assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
        bars = _bars_by_row(ax, fig.axes[0])
        assert set(bars) == set(points)
        (ticks,) = ax.collections
        tick_x = {round(np.mean(seg[:, 1])): seg[0, 0] for seg in ticks.get_segments()}
        for alg, bar in bars.items():
            lower, upper = intervals[alg][:, m]
            assert bar.get_x() == pytest.approx(lower)
            assert bar.get_x() + bar.get_width() == pytest.approx(upper)
            assert bar.get_facecolor()[:3] == pytest.approx(colors[alg])
            assert tick_x[round(bar.get_y() + bar.get_height() / 2)] == pytest.approx(points[alg][m])


def test_one_metric_takes_scalar_points_and_a_subset_keeps_the_colours_of_the_full_figure(estimates):
    scores = _scores()
    points, intervals = ev.get_interval_estimates(scores, ev.aggregate_iqm, reps=200, random_state=1)
    assert np.ndim(points["ppo"]) == 0 and intervals["ppo"].shape == (2, 1)
    fig = plots.plot_interval_estimates(points, intervals, "IQM", algorithms=["sac", "ppo"])
    (ax,) = fig.axes
    bars = _bars_by_row(ax)
    assert set(bars) == {"sac", "ppo"}
    assert bars["sac"].get_x() == pytest.approx(intervals["sac"][0, 0])

    full = plots.plot_interval_estimates(*estimates, METRICS)
    full_bars = _bars_by_row(full.axes[0])
    for alg in ("sac", "ppo"):
        assert bars[alg].get_facecolor() == pytest.approx(full_bars[alg].get_facecolor())
    assert bars["sac"].get_facecolor() != pytest.approx(bars["ppo"].get_facecolor())


def test_performance_profile_lines_are_the_profiles_in_their_intervals():
    scores = _scores()
    tau = np.linspace(0.0, 2.0, 9)
    profiles, cis = ev.create_performance_profile(scores, tau, reps=200, random_state=0)
    fig = plots.plot_performance_profiles(profiles, cis, tau)
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == set(scores)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == list(scores)
    colors = plots.algorithm_colors(list(scores))
    for alg, line in lines.items():
        np.testing.assert_allclose(line.get_xdata(), tau)
        np.testing.assert_allclose(line.get_ydata(), profiles[alg])
        assert line.get_color() == pytest.approx(colors[alg])
    for band, alg in zip(ax.collections, scores, strict=True):
        vertices = band.get_paths()[0].vertices
        for x, lower, upper in zip(tau, *cis[alg], strict=True):
            at_x = vertices[np.isclose(vertices[:, 0], x), 1]
            assert np.isclose(at_x, lower).any() and np.isclose(at_x, upper).any()


def test_sample_efficiency_curve_is_drawn_against_the_frames(tmp_path):
    rng = np.random.default_rng(3)
    frames = np.array([0, 250_000, 500_000, 1_000_000])
    curves = {alg: np.cumsum(rng.uniform(0.0, 0.2, (4, 3, frames.size)), axis=-1) for alg in ("ppo", "dqn")}
    points, intervals = ev.sample_efficiency_curve(curves, reps=200, random_state=0)
    fig = plots.plot_sample_efficiency_curve(frames, points, intervals, algorithms=["dqn"])
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    assert line.get_label() == "dqn"
    np.testing.assert_allclose(line.get_xdata(), frames)
    np.testing.assert_allclose(line.get_ydata(), points["dqn"])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Frames", "IQM normalized score")
    (svg,) = plots.plot_sample_efficiency_curve(frames, points, intervals, path=tmp_path / "curve", formats=["svg"])
    assert {"ppo", "dqn", "Frames", "1M"} <= _svg_texts(svg)


def test_probability_of_improvement_rows_of_pairs(poi, tmp_path):
    points, intervals = poi
    fig = plots.plot_probability_of_improvement(points, intervals)
    (ax,) = fig.axes
    assert _labels_top_down(ax) == ["P(ppo > dqn)", "P(sac > ppo)"]
    assert ax.get_xlim() == (0.0, 1.0)
    assert any(line.get_linestyle() == "--" and list(line.get_xdata()) == [0.5, 0.5] for line in ax.get_lines())
    bars = _bars_by_row(ax)
    colors = plots.algorithm_colors(["ppo", "dqn", "sac"])
    for label, x in (("ppo,dqn", "ppo"), ("sac,ppo", "sac")):
        bar = bars[f"P({x} > {label.split(',')[1]})"]
        assert bar.get_x() == pytest.approx(intervals[label][0, 0])
        assert bar.get_x() + bar.get_width() == pytest.approx(intervals[label][1, 0])
        assert bar.get_facecolor()[:3] == pytest.approx(colors[x])
    png, svg = plots.plot_probability_of_improvement(points, intervals, path=tmp_path / "poi")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert {"P(ppo > dqn)", "P(sac > ppo)"} <= _svg_texts(svg)


def test_save_figure_replaces_the_suffix_and_closes_a_pyplot_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    written = plots.save_figure(fig, tmp_path / "figure.svg", formats=("svg", ".PNG"))
    assert written == [tmp_path / "figure.svg", tmp_path / "figure.png"]
    assert all(path.stat().st_size > 0 for path in written)
    assert not plt.fignum_exists(fig.number)


def test_the_module_imports_without_loading_matplotlib():
    code = "import sys, rlte_plugins.evaluation.plots; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _bad_calls(estimates, poi):
    points, intervals = estimates
    poi_points, poi_intervals = poi
    frames = [0, 1, 2]
    curve, curve_interval = {"a": np.zeros(4)}, {"a": np.zeros((2, 4))}
    return [
        (lambda: plots.plot_interval_estimates(points, {"ppo": intervals["ppo"]}, METRICS), "same algorithms"),
        (lambda: plots.plot_interval_estimates(points, {**intervals, "ppo": np.zeros((3, 3))}, METRICS), r"\(2, 3\)"),
        (lambda: plots.plot_interval_estimates(points, intervals, METRICS[:2]), "metric_names has 2"),
        (lambda: plots.plot_interval_estimates(points, intervals, METRICS, algorithms=["dnq"]), "did you mean 'dqn'"),
        (lambda: plots.plot_interval_estimates(points, intervals, METRICS, colors={"ppo": "red"}), "no colour"),
        (lambda: plots.plot_sample_efficiency_curve(frames, curve, curve_interval), "frames has 3"),
        (lambda: plots.plot_performance_profiles(curve, curve_interval, [0.0, 1.0]), "tau_list has 2"),
        (lambda: plots.plot_probability_of_improvement({"ppo": 0.5}, {"ppo": [0.4, 0.6]}), "one comma"),
        (lambda: plots.plot_probability_of_improvement({"a,b": 0.5}, {"a,b": [0.4, 1.6]}), r"in \[0, 1\]"),
        (lambda: plots.plot_probability_of_improvement(poi_points, {"ppo,dqn": poi_intervals["ppo,dqn"]}), "pairs"),
    ]


def test_bad_input_raises_a_value_error_that_says_what_is_wrong(estimates, poi):
    for call, message in _bad_calls(estimates, poi):
        with pytest.raises(ValueError, match=message):
            call()


def test_unknown_formats_are_refused_before_anything_is_written(estimates, tmp_path):
    with pytest.raises(ValueError, match=r"one or more of \[.*'png'.*'svg'"):
        plots.plot_interval_estimates(*estimates, METRICS, path=tmp_path / "out" / "aggregate", formats=("png", "bmp"))
    assert not (tmp_path / "out").exists()
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match="bmp"):
        plots.save_figure(Figure(), tmp_path / "figure", formats="bmp")
    assert list(tmp_path.iterdir()) == []
