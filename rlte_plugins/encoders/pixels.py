"""Convolutional encoders for channels-first pixel observations: Nature DQN, DrQ-v2 (Tassa), ICM (Pathak) and
IMPALA (Espeholt).

All of them read ``uint8`` frames and scale them to [0, 1] inside the network (float inputs are taken as
already scaled), fold a frame-stack axis into the channels (per-sample shape ``[stack, C, H, W]`` becomes
``[stack * C, H, W]``), and refuse at build time an input that is not an image large enough for their strides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlte_plugins.encoders.base import Encoder, build_now, orthogonal_init
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError, positive_int


class _PixelNet(nn.Module):
    """Flattens leading batch dims and a frame-stack axis, scales ``uint8`` to [0, 1] (minus ``shift``)."""

    def __init__(self, body: nn.Module, image_dims: int, shift: float = 0.0) -> None:
        super().__init__()
        self.body = body
        self.image_dims = image_dims  # 3 (C, H, W) or 4 (stack, C, H, W)
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[: x.dim() - self.image_dims]
        x = x.reshape(-1, *x.shape[-self.image_dims :])
        if self.image_dims == 4:
            x = x.flatten(1, 2)
        # uint8 frames are scaled here, where it costs nothing, rather than by a transform on the hot path
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if self.shift:
            x = x - self.shift
        return self.body(x).reshape(*lead, -1)


def _features(value: Any, owner: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    return positive_int(owner, "features", value)


class PixelEncoder(Encoder):
    """Base of the CNN encoders: the image check, frame-stack folding and ``uint8`` scaling.

    Subclasses set ``min_size`` (smallest height/width their strides accept) and implement :meth:`_body`
    (the network for ``channels x height x width`` float inputs, returning it and its feature size).
    """

    min_size = 1
    input_shift = 0.0

    def __init__(
        self,
        in_shape: Sequence[int] | None,
        observation_spec: Any,
        in_keys: Sequence[str],
        out_keys: Sequence[str],
    ) -> None:
        super().__init__(in_keys, out_keys)
        build_now(self, observation_spec, in_shape)

    def _check(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        if len(shape) not in (3, 4) or min(shape[-2:]) < self.min_size:
            raise SpecMismatchError(
                f"{self._owner()} needs channels-first images ([C, H, W] or [stack, C, H, W]) of at least "
                f"{self.min_size}x{self.min_size} but {self.in_keys[0]!r} has shape {list(shape)}; use 'mlp' or "
                "'identity' for vector observations"
            )

    def _make(self, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        channels = shape[0] * shape[1] if len(shape) == 4 else shape[0]
        body, features = self._body(channels, shape[-2], shape[-1])
        return _PixelNet(body, len(shape), self.input_shift), features

    def _body(self, channels: int, height: int, width: int) -> tuple[nn.Module, int]:
        raise NotImplementedError

    @staticmethod
    def _flat_size(convs: nn.Module, channels: int, height: int, width: int) -> int:
        with torch.no_grad():
            return int(convs(torch.zeros(1, channels, height, width)).shape[-1])


class MnihCNN(PixelEncoder):
    """Nature-DQN CNN (32-64-64 channels, 512 features) over channels-first pixels; uint8 scaled inside.

    Args:
        features: size of the final linear layer.
        in_shape: build now for per-sample inputs of this shape (otherwise built from the env's spec).
        observation_spec: build now from this spec.
        in_keys, out_keys: the key read and the key written.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "mnih_cnn", in_shape=[4, 84, 84], in_keys=["pixels"])
        >>> frames = torch.zeros(2, 4, 84, 84, dtype=torch.uint8)
        >>> enc(TensorDict(pixels=frames, batch_size=[2]))["features"].shape
        torch.Size([2, 512])
    """

    registry_name = "mnih_cnn"
    min_size = 36

    def __init__(
        self,
        features: int = 512,
        in_shape: Sequence[int] | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("pixels",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        self.features = _features(features, f"encoder {self.registry_name!r}")
        super().__init__(in_shape, observation_spec, in_keys, out_keys)

    def _body(self, channels: int, height: int, width: int) -> tuple[nn.Module, int]:
        convs = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        flat = self._flat_size(convs, channels, height, width)
        body = nn.Sequential(convs, nn.Linear(flat, self.features), nn.ReLU())
        orthogonal_init(body, math.sqrt(2))
        return body, self.features


class TassaCNN(PixelEncoder):
    """The DeepMind Control / DrQ-v2 encoder: four 3x3 convolutions of 32 channels (the first with stride 2).

    ``channels`` narrows (or widens) every convolution (32: the authors').

    Pixels are scaled to [-0.5, 0.5] as DrQ-v2 does. With ``features`` set (default 50), the flattened
    convolution output goes through DrQ-v2's trunk (linear, LayerNorm, tanh); ``features=None`` returns the
    flattened convolution output itself (32 x 35 x 35 = 39,200 for 84 x 84 frames).

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "tassa_cnn", in_shape=[9, 84, 84])
        >>> enc(TensorDict(pixels=torch.zeros(2, 9, 84, 84, dtype=torch.uint8), batch_size=[2]))["features"].shape
        torch.Size([2, 50])
    """

    registry_name = "tassa_cnn"
    min_size = 9
    input_shift = 0.5

    def __init__(
        self,
        features: int | None = 50,
        in_shape: Sequence[int] | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("pixels",),
        out_keys: Sequence[str] = ("features",),
        channels: int = 32,
    ) -> None:
        self.features = _features(features, f"encoder {self.registry_name!r}", allow_none=True)
        self.channels = positive_int(f"encoder {self.registry_name!r}", "channels", channels)
        super().__init__(in_shape, observation_spec, in_keys, out_keys)

    def _body(self, channels: int, height: int, width: int) -> tuple[nn.Module, int]:
        width_ = self.channels
        layers: list[nn.Module] = [nn.Conv2d(channels, width_, 3, stride=2), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Conv2d(width_, width_, 3, stride=1), nn.ReLU()]
        convs = nn.Sequential(*layers, nn.Flatten())
        flat = self._flat_size(convs, channels, height, width)
        orthogonal_init(convs, nn.init.calculate_gain("relu"))
        if self.features is None:
            return convs, flat
        trunk = nn.Sequential(nn.Linear(flat, self.features), nn.LayerNorm(self.features), nn.Tanh())
        orthogonal_init(trunk, 1.0)
        return nn.Sequential(convs, trunk), self.features


class PathakCNN(PixelEncoder):
    """The ICM encoder (Pathak et al., 2017): four 3x3 stride-2 convolutions of 32 channels with ELU.

    84 x 84 frames give 32 x 6 x 6 = 1,152 flattened features; ``features`` adds a linear projection.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "pathak_cnn", in_shape=[4, 84, 84], features=None)
        >>> enc(TensorDict(pixels=torch.zeros(3, 4, 84, 84), batch_size=[3]))["features"].shape
        torch.Size([3, 1152])
    """

    registry_name = "pathak_cnn"
    min_size = 16

    def __init__(
        self,
        features: int | None = None,
        in_shape: Sequence[int] | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("pixels",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        self.features = _features(features, f"encoder {self.registry_name!r}", allow_none=True)
        super().__init__(in_shape, observation_spec, in_keys, out_keys)

    def _body(self, channels: int, height: int, width: int) -> tuple[nn.Module, int]:
        layers: list[nn.Module] = []
        for c_in in (channels, 32, 32, 32):
            layers += [nn.Conv2d(c_in, 32, 3, stride=2, padding=1), nn.ELU()]
        convs = nn.Sequential(*layers, nn.Flatten())
        flat = self._flat_size(convs, channels, height, width)
        orthogonal_init(convs, math.sqrt(2))
        if self.features is None:
            return convs, flat
        head = nn.Sequential(nn.Linear(flat, self.features), nn.ELU())
        orthogonal_init(head, math.sqrt(2))
        return nn.Sequential(convs, head), self.features


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class EspeholtResNet(PixelEncoder):
    """The IMPALA residual encoder (Espeholt et al., 2018), standard for Procgen.

    One stack per entry of ``channels`` (default 16-32-32): a 3x3 convolution, a 3x3 max-pool of stride 2 and
    two residual blocks; then ReLU, flatten and a linear layer of ``features`` (256) with ReLU.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "espeholt_resnet", in_shape=[3, 64, 64])
        >>> enc(TensorDict(pixels=torch.zeros(2, 3, 64, 64, dtype=torch.uint8), batch_size=[2]))["features"].shape
        torch.Size([2, 256])
    """

    registry_name = "espeholt_resnet"
    min_size = 8

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 32),
        features: int = 256,
        in_shape: Sequence[int] | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("pixels",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        owner = f"encoder {self.registry_name!r}"
        chans = list(channels) if not isinstance(channels, int) else [channels]
        if not chans or any(not isinstance(c, int) or c < 1 for c in chans):
            raise ComponentArgumentError(f"{owner}: channels must be positive ints, got {channels!r}")
        self.channels = chans
        self.features = _features(features, owner)
        super().__init__(in_shape, observation_spec, in_keys, out_keys)

    def _body(self, channels: int, height: int, width: int) -> tuple[nn.Module, int]:
        layers: list[nn.Module] = []
        c_in = channels
        for c_out in self.channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),
                _Residual(c_out),
                _Residual(c_out),
            ]
            c_in = c_out
        convs = nn.Sequential(*layers, nn.ReLU(), nn.Flatten())
        flat = self._flat_size(convs, channels, height, width)
        head = nn.Sequential(nn.Linear(flat, self.features), nn.ReLU())
        orthogonal_init(head, math.sqrt(2))
        return nn.Sequential(convs, head), self.features
