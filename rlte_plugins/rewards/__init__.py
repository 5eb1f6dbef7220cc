"""Intrinsic rewards (kind ``reward``): exploration bonuses on one contract, :class:`~rlte_plugins.rewards.base.
IntrinsicReward`."""

from rlte_plugins.rewards.base import IntrinsicReward

__all__ = ["IntrinsicReward"]
