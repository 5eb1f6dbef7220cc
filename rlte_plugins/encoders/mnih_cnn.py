"""The Nature-DQN convolutional encoder for pixel observations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlte_plugins.encoders.base import Encoder, build_now, orthogonal_init
from rlte_plugins.errors import SpecMismatchError


class _ScaledConv(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        # uint8 frames are scaled here, where it costs nothing, rather than by a transform on the hot path
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return self.body(x).reshape(*lead, -1)


class MnihCNN(Encoder):
    """Nature-DQN CNN (32-64-64 channels, 512 features) over channels-first pixels; uint8 scaled inside.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "mnih_cnn", in_shape=[4, 84, 84], in_keys=["pixels"])
        >>> frames = torch.zeros(2, 4, 84, 84, dtype=torch.uint8)
        >>> enc(TensorDict(pixels=frames, batch_size=[2]))["features"].shape
        torch.Size([2, 512])
    """

    registry_name = "mnih_cnn"

    def __init__(
        self,
        features: int = 512,
        in_shape: Sequence[int] | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("pixels",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(in_keys, out_keys)
        self.features = features
        build_now(self, observation_spec, in_shape)

    def _check(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        if len(shape) != 3 or min(shape[1:]) < 36:
            raise SpecMismatchError(
                f"{self._owner()} needs channels-first images of at least 36x36 but {self.in_keys[0]!r} has "
                f"shape {list(shape)}; use 'mlp' or 'identity' for vector observations"
            )

    def _make(self, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        convs = nn.Sequential(
            nn.Conv2d(shape[0], 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = convs(torch.zeros(1, *shape)).shape[-1]
        body = nn.Sequential(convs, nn.Linear(flat, self.features), nn.ReLU())
        orthogonal_init(body, math.sqrt(2))
        return _ScaledConv(body), self.features
