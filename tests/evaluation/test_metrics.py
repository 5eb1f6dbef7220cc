"""The evaluation metrics against rliable's own numbers.

``rliable_reference.json`` holds rliable 1.2.0's outputs on the score matrices rebuilt below, computed in a scratch
virtualenv with pandas<3 (rliable cannot be imported in the project's environment: its ``arch`` dependency fails
with pandas 3). Point estimates must match to 1e-9. Intervals come from bootstrap draws that are not rliable's
(rliable's go through ``arch`` and numpy's global generator), so they must agree within a Monte-Carlo tolerance:
three times the largest spread of rliable's own endpoints over five seeds, and never less than 0.01.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlte_plugins import evaluation as ev

REFERENCE = json.loads((Path(__file__).parent / "rliable_reference.json").read_text())


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2026)
    a = np.round(rng.normal(1.0, 0.5, size=(5, 4)), 1)
    b = np.round(rng.normal(0.8, 0.5, size=(7, 4)), 1)
    c = np.round(rng.uniform(0.0, 1.5, size=(5, 4)), 2)
    stored = REFERENCE["inputs"]
    for name, array in (("a", a), ("b", b), ("c", c)):
        np.testing.assert_array_equal(array, np.asarray(stored[name]))  # the same data rliable saw
    return {"a": a, "b": b, "c": c}


def _four(scores: np.ndarray) -> np.ndarray:
    return np.array([ev.aggregate_mean(scores), ev.aggregate_median(scores), ev.aggregate_iqm(scores),
                     ev.aggregate_optimality_gap(scores)])  # fmt: skip


def _tolerance(spread: float) -> float:
    return max(3.0 * spread, 0.01)


def test_point_estimates_match_rliable():
    data = _inputs()
    point = REFERENCE["point"]
    for name, scores in data.items():
        expected = point[name]
        assert ev.aggregate_mean(scores) == pytest.approx(expected["mean"], abs=1e-9)
        assert ev.aggregate_median(scores) == pytest.approx(expected["median"], abs=1e-9)
        assert ev.aggregate_iqm(scores) == pytest.approx(expected["iqm"], abs=1e-9)
        assert ev.aggregate_optimality_gap(scores) == pytest.approx(expected["optimality_gap_gamma1"], abs=1e-9)
        gap = expected["optimality_gap_gamma1.2"]
        assert ev.aggregate_optimality_gap(scores, gamma=1.2) == pytest.approx(gap, abs=1e-9)
    poi = REFERENCE["poi"]
    assert ev.probability_of_improvement(data["a"], data["b"]) == pytest.approx(poi["a_over_b"], abs=1e-9)
    assert ev.probability_of_improvement(data["b"], data["a"]) == pytest.approx(poi["b_over_a"], abs=1e-9)


def test_interval_estimates_agree_with_rliable_within_the_monte_carlo_tolerance():
    data = _inputs()
    spread = REFERENCE["interval_seed_spread"]["overall_max"]
    reference = REFERENCE["intervals"]["per_seed"]["0"]
    point, interval = ev.get_interval_estimates({"a": data["a"], "c": data["c"]}, _four, reps=50_000,
                                                random_state=0)  # fmt: skip
    for name in ("a", "c"):
        np.testing.assert_allclose(point[name], reference[name]["point"], atol=1e-9)  # of the original scores
        assert interval[name].shape == (2, 4)
        np.testing.assert_allclose(interval[name], reference[name]["ci"], atol=_tolerance(spread))


def test_task_bootstrap_and_probability_of_improvement_intervals_agree_with_rliable():
    data = _inputs()
    spread = REFERENCE["interval_seed_spread"]["overall_max"]
    _, interval = ev.get_interval_estimates({"a": data["a"]}, _four, task_bootstrap=True, reps=50_000,
                                            random_state=1)  # fmt: skip
    expected = REFERENCE["task_bootstrap"]["results"]["a"]["ci"]
    np.testing.assert_allclose(interval["a"], expected, atol=_tolerance(2 * spread))
    point, interval = ev.get_interval_estimates({"a,b": (data["a"], data["b"])}, ev.probability_of_improvement,
                                                reps=50_000, random_state=2)  # fmt: skip
    assert point["a,b"] == pytest.approx(REFERENCE["poi_interval"]["point"], abs=1e-9)
    np.testing.assert_allclose(interval["a,b"].ravel(), np.ravel(REFERENCE["poi_interval"]["ci"]),
                               atol=_tolerance(spread))  # fmt: skip


@pytest.mark.parametrize("kind", ["score_distribution", "average_score_distribution"])
def test_performance_profiles_match_rliable(kind):
    data = _inputs()
    reference = REFERENCE["profiles"][kind]
    tau = np.asarray(REFERENCE["profiles"]["tau_list"])
    point, interval = ev.create_performance_profile({"a": data["a"], "c": data["c"]}, tau, reps=2000, random_state=0,
                                                    use_score_distribution=kind == "score_distribution")  # fmt: skip
    for name in ("a", "c"):
        np.testing.assert_allclose(point[name], reference[name]["point"], atol=1e-12)
        assert interval[name].shape == (2, len(tau))
        np.testing.assert_allclose(interval[name], reference[name]["ci"], atol=0.1)  # 2000 draws


def test_random_state_is_honoured_and_the_point_is_not_the_bootstrap_mean():
    scores = {"x": np.array([[0.0, 1.0], [0.1, 5.0], [0.2, 0.9]])}
    first = ev.get_interval_estimates(scores, ev.aggregate_mean, reps=500, random_state=7)
    again = ev.get_interval_estimates(scores, ev.aggregate_mean, reps=500, random_state=7)
    other = ev.get_interval_estimates(scores, ev.aggregate_mean, reps=500, random_state=8)
    np.testing.assert_array_equal(first[1]["x"], again[1]["x"])
    assert not np.array_equal(first[1]["x"], other[1]["x"])
    assert first[0]["x"] == pytest.approx(ev.aggregate_mean(scores["x"]))


def test_conventions_rliable_users_rely_on():
    same = np.array([[0.5, 0.2], [0.5, 0.9]])
    assert ev.probability_of_improvement(same, same) == 0.5  # ties count one half
    assert ev.aggregate_optimality_gap(np.full((2, 2), 3.0)) == 0.0  # scores above gamma count as gamma
    assert ev.score_distribution(np.array([[1.0, 2.0]]), [1.0]).tolist() == [0.5]  # strictly greater
    with pytest.raises(ValueError, match="same tasks"):
        ev.probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="percentile"):
        ev.get_interval_estimates({"x": same}, ev.aggregate_mean, method="bca")


def test_sample_efficiency_curve_is_the_metric_at_each_frame():
    rng = np.random.default_rng(0)
    scores = {"x": rng.normal(size=(5, 3, 4))}
    point, interval = ev.sample_efficiency_curve(scores, reps=200, random_state=0)
    expected = [ev.aggregate_iqm(scores["x"][..., f]) for f in range(4)]
    np.testing.assert_allclose(point["x"], expected)
    assert interval["x"].shape == (2, 4) and (interval["x"][0] <= interval["x"][1]).all()
    with pytest.raises(ValueError, match="num_frames"):
        ev.sample_efficiency_curve({"x": np.zeros((2, 2))})
