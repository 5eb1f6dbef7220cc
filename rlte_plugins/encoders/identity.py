"""Identity encoder: the observation itself, flattened, as features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlte_plugins.encoders.base import VectorEncoder, build_now


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class IdentityEncoder(VectorEncoder):
    """Pass a flat observation vector through unchanged (as float32) as the features.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "identity", in_features=3)
        >>> enc(TensorDict(observation=torch.ones(2, 3), batch_size=[2]))["features"].tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    registry_name = "identity"

    def __init__(
        self,
        in_features: int | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("observation",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(in_keys, out_keys)
        build_now(self, observation_spec, None if in_features is None else (in_features,))

    def _make(self, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        return _Flatten(), shape[0]
