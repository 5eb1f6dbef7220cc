"""Sound evaluation of RL results: rliable's aggregate metrics, stratified-bootstrap intervals, performance
profiles and sample-efficiency curves (:mod:`rlte_plugins.evaluation.metrics`)."""

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

__all__ = [
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_optimality_gap",
    "average_score_distribution",
    "bootstrap_distribution",
    "create_performance_profile",
    "get_interval_estimates",
    "probability_of_improvement",
    "sample_efficiency_curve",
    "score_distribution",
]
