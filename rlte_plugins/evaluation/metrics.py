"""Aggregate metrics and interval estimates of RL results, with rliable's names, signatures and conventions
(Agarwal et al., 2021, "Deep RL at the edge of the statistical precipice"; ``google-research/rliable``).

A score matrix is ``[num_runs, num_tasks]`` (normalised scores, one row per run, i.e. per seed); a score dict maps
an algorithm's name to its matrix. rliable itself does not import here (1.2.0 needs ``arch``, which fails with
pandas 3), so these are numpy reimplementations, checked against rliable's own numbers
(``tests/evaluation/test_metrics.py``). Conventions, as rliable has them:

- mean and median are taken over the per-task means (over runs);
- the IQM is ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` over every run and task;
- the optimality gap is ``gamma - mean(min(scores, gamma))`` over every run and task (lower is better);
- the probability of improvement is, per task, the Mann-Whitney U of ``x > y`` over ``n_x n_y`` (ties count one
  half), averaged uniformly over tasks; ``x`` and ``y`` may have different numbers of runs;
- the stratified bootstrap draws an independent run for every (run, task) cell, and resamples tasks too only
  with ``task_bootstrap=True``; intervals are percentile intervals (``np.percentile``, linear interpolation)
  returned as ``(2, k)`` arrays; the point estimate is the function of the original scores;
- performance profiles count the scores strictly greater than each threshold ``tau``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats

ScoreDict = Mapping[str, Any]


def _matrix(scores: Any) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim < 2:
        raise ValueError(f"scores must be [num_runs, num_tasks] (and optionally frames), got shape {array.shape}")
    return array


def aggregate_mean(scores: Any) -> float:
    """The mean over tasks of the per-task mean scores."""
    return float(np.mean(np.mean(_matrix(scores), axis=0)))


def aggregate_median(scores: Any) -> float:
    """The median over tasks of the per-task mean scores."""
    return float(np.median(np.mean(_matrix(scores), axis=0)))


def aggregate_iqm(scores: Any) -> float:
    """The interquartile mean: the mean of the middle 50% of every run and task's scores (25% trimmed each side,
    floor trimming as ``scipy.stats.trim_mean``).

    Examples:
        >>> aggregate_iqm([[0.0, 1.0], [2.0, 100.0]])
        1.5
    """
    return float(scipy.stats.trim_mean(_matrix(scores), proportiontocut=0.25, axis=None))


def aggregate_optimality_gap(scores: Any, gamma: float = 1) -> float:
    """How far the scores fall short of ``gamma``: ``gamma - mean(min(scores, gamma))`` (lower is better)."""
    return float(gamma - np.mean(np.minimum(_matrix(scores), gamma)))


def probability_of_improvement(scores_x: Any, scores_y: Any) -> float:
    """P(X > Y): per task, the probability that a run of ``x`` beats a run of ``y`` (ties count one half), averaged
    over tasks. ``x`` and ``y`` have the same tasks and any numbers of runs.

    Examples:
        >>> round(probability_of_improvement([[1.0], [2.0]], [[1.0], [0.0], [3.0]]), 4)  # (1 + 1 + 1 + 0.5) / 6
        0.5833
    """
    x, y = _matrix(scores_x), _matrix(scores_y)
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"scores_x and scores_y must have the same tasks, got shapes {x.shape} and {y.shape}")
    greater = (x[:, None, :] > y[None, :, :]).sum(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).sum(axis=(0, 1))
    return float(np.mean((greater + 0.5 * ties) / (x.shape[0] * y.shape[0])))


# -- the stratified bootstrap --------------------------------------------------------------------------------
def _generator(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    return np.random.default_rng(random_state)


def _resample(scores: np.ndarray, rng: np.random.Generator, task_bootstrap: bool) -> np.ndarray:
    """One stratified bootstrap sample: for every (run, task) cell a run drawn within its task (and, with
    ``task_bootstrap``, the tasks themselves drawn with replacement first)."""
    runs, tasks = scores.shape[:2]
    columns = rng.integers(0, tasks, size=tasks) if task_bootstrap else np.arange(tasks)
    rows = rng.integers(0, runs, size=(runs, tasks))
    return scores[rows, columns[None, :]]


def bootstrap_distribution(
    scores: Any | Sequence[Any],
    func: Callable[..., Any],
    reps: int = 50_000,
    task_bootstrap: bool = False,
    random_state: Any = None,
) -> np.ndarray:
    """``func`` of ``reps`` stratified bootstrap samples of ``scores``, as ``[reps, k]``. ``scores`` may be a
    tuple of matrices (``func(x, y)``, e.g. :func:`probability_of_improvement`): each is resampled
    independently."""
    rng = _generator(random_state)
    matrices = [_matrix(s) for s in scores] if isinstance(scores, tuple) else [_matrix(scores)]
    out = [np.atleast_1d(np.asarray(func(*[_resample(m, rng, task_bootstrap) for m in matrices]), dtype=np.float64))
           for _ in range(reps)]  # fmt: skip
    return np.stack(out)


def get_interval_estimates(
    score_dict: ScoreDict,
    func: Callable[..., Any],
    method: str = "percentile",
    task_bootstrap: bool = False,
    reps: int = 50_000,
    confidence_interval_size: float = 0.95,
    random_state: Any = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Point estimates ``func(scores)`` and ``confidence_interval_size`` percentile intervals (``(2, k)`` arrays:
    lower and upper) from the stratified bootstrap, per algorithm. A value of ``score_dict`` may be a tuple of
    matrices for a ``func`` of several (the probability of improvement of a pair).

    Examples:
        >>> import numpy as np
        >>> scores = {"ppo": np.array([[0.9, 0.5], [1.0, 0.7], [0.8, 0.6]])}
        >>> point, interval = get_interval_estimates(scores, aggregate_mean, reps=2000, random_state=0)
        >>> round(point["ppo"], 3), interval["ppo"].shape
        (0.75, (2, 1))
    """
    if method != "percentile":
        raise ValueError(f"method must be 'percentile' (the interval rliable recommends), got {method!r}")
    if not 0.0 < confidence_interval_size < 1.0:
        raise ValueError(f"confidence_interval_size must be in (0, 1), got {confidence_interval_size!r}")
    rng = _generator(random_state)
    tail = 100.0 * (1.0 - confidence_interval_size) / 2.0
    points: dict[str, Any] = {}
    intervals: dict[str, np.ndarray] = {}
    for name, scores in score_dict.items():
        args = tuple(_matrix(s) for s in scores) if isinstance(scores, tuple) else (_matrix(scores),)
        points[name] = func(*args)
        stats = bootstrap_distribution(args if len(args) > 1 else args[0], func, reps, task_bootstrap, rng)
        intervals[name] = np.percentile(stats, [tail, 100.0 - tail], axis=0)
    return points, intervals


def score_distribution(scores: Any, tau_list: Sequence[float]) -> np.ndarray:
    """The fraction of every run and task's scores strictly above each ``tau``."""
    s = _matrix(scores)
    return np.array([np.mean(s > tau) for tau in tau_list])


def average_score_distribution(scores: Any, tau_list: Sequence[float]) -> np.ndarray:
    """The fraction of tasks whose mean score (over runs) is strictly above each ``tau``."""
    means = np.mean(_matrix(scores), axis=0)
    return np.array([np.mean(means > tau) for tau in tau_list])


def create_performance_profile(
    score_dict: ScoreDict,
    tau_list: Sequence[float],
    use_score_distribution: bool = True,
    custom_profile_func: Callable[[Any], Any] | None = None,
    method: str = "percentile",
    task_bootstrap: bool = False,
    reps: int = 2000,
    confidence_interval_size: float = 0.95,
    random_state: Any = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Performance profiles (the fraction of scores above each ``tau``) with bootstrap intervals, per algorithm:
    the distribution of every run and task's scores by default, of the per-task mean scores with
    ``use_score_distribution=False``."""
    if custom_profile_func is not None:
        profile = custom_profile_func
    elif use_score_distribution:
        profile = lambda scores: score_distribution(scores, tau_list)  # noqa: E731
    else:
        profile = lambda scores: average_score_distribution(scores, tau_list)  # noqa: E731
    return get_interval_estimates(score_dict, profile, method, task_bootstrap, reps, confidence_interval_size,
                                  random_state)  # fmt: skip


def sample_efficiency_curve(
    score_dict: ScoreDict,
    func: Callable[[Any], float] = aggregate_iqm,
    reps: int = 50_000,
    confidence_interval_size: float = 0.95,
    random_state: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``func`` (the IQM by default) at each frame of ``[num_runs, num_tasks, num_frames]`` scores, with
    intervals: ``[num_frames]`` point estimates and ``(2, num_frames)`` intervals per algorithm."""

    def per_frame(scores: np.ndarray) -> np.ndarray:
        return np.array([func(scores[..., f]) for f in range(scores.shape[-1])])

    for name, scores in score_dict.items():
        if _matrix(scores).ndim != 3:
            raise ValueError(f"{name!r}: sample-efficiency scores are [num_runs, num_tasks, num_frames], got "
                             f"shape {np.shape(scores)}")  # fmt: skip
    return get_interval_estimates(score_dict, per_frame, reps=reps, confidence_interval_size=confidence_interval_size,
                                  random_state=random_state)  # fmt: skip
