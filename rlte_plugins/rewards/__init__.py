"""Intrinsic rewards (kind ``reward``): exploration bonuses on one contract,
:class:`~rlte_plugins.rewards.base.IntrinsicReward`.

The package imports nothing heavy: ``rlte list`` reads the modules' summaries without importing torch."""

from typing import Any

__all__ = ["IntrinsicReward"]


def __getattr__(name: str) -> Any:
    if name == "IntrinsicReward":
        from rlte_plugins.rewards.base import IntrinsicReward

        return IntrinsicReward
    raise AttributeError(f"module 'rlte_plugins.rewards' has no attribute {name!r}")
