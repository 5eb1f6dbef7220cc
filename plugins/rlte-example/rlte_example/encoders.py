"""A residual MLP encoder, built on rlte-plugins' encoder base class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlte_plugins.encoders.base import VectorEncoder, build_now


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualMLPEncoder(VectorEncoder):
    """Residual MLP (pre-LayerNorm blocks) over a flat observation vector.

    Args:
        width: hidden and feature width.
        blocks: number of residual blocks.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "residual_mlp", in_features=4, width=32)
        >>> enc(TensorDict(observation=torch.zeros(3, 4), batch_size=[3]))["features"].shape
        torch.Size([3, 32])
    """

    registry_name = "residual_mlp"

    def __init__(
        self,
        width: int = 64,
        blocks: int = 2,
        in_features: int | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("observation",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(in_keys, out_keys)
        self.width, self.blocks = width, blocks
        build_now(self, observation_spec, None if in_features is None else (in_features,))

    def _make(self, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        layers = [
            nn.Linear(shape[0], self.width),
            *[_Block(self.width) for _ in range(self.blocks)],
            nn.LayerNorm(self.width),
            nn.ReLU(),
        ]
        return nn.Sequential(*layers), self.width
