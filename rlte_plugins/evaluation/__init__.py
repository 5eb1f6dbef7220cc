"""Sound evaluation of RL results: rliable's aggregate metrics, stratified-bootstrap intervals, performance
profiles and sample-efficiency curves (:mod:`~rlte_plugins.evaluation.metrics`); score normalisation tables
(:mod:`~rlte_plugins.evaluation.normalization`); the results folders of benchmark suites
(:mod:`~rlte_plugins.evaluation.results`), their figures (:mod:`~rlte_plugins.evaluation.plots`,
:mod:`~rlte_plugins.evaluation.report`) and their publication to W&B (:mod:`~rlte_plugins.evaluation.publish`)."""

from rlte_plugins.evaluation.metrics import (
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    aggregate_optimality_gap,
    average_score_distribution,
    bootstrap_distribution,
    create_performance_profile,
    get_interval_estimates,
    probability_of_improvement,
    sample_efficiency_curve,
    score_distribution,
)
from rlte_plugins.evaluation.normalization import normalize_score_matrix, score_range
from rlte_plugins.evaluation.plots import (
    plot_interval_estimates,
    plot_performance_profiles,
    plot_probability_of_improvement,
    plot_sample_efficiency_curve,
)
from rlte_plugins.evaluation.report import plot_results
from rlte_plugins.evaluation.results import Results, load_results

__all__ = [
    "Results",
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_optimality_gap",
    "average_score_distribution",
    "bootstrap_distribution",
    "create_performance_profile",
    "get_interval_estimates",
    "load_results",
    "normalize_score_matrix",
    "plot_interval_estimates",
    "plot_performance_profiles",
    "plot_probability_of_improvement",
    "plot_results",
    "plot_sample_efficiency_curve",
    "probability_of_improvement",
    "sample_efficiency_curve",
    "score_distribution",
    "score_range",
]
