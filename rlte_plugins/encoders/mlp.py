"""Multi-layer perceptron encoder for vector observations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from rlte_plugins.encoders.base import VectorEncoder, activation_class, build_now, orthogonal_init
from rlte_plugins.errors import ComponentArgumentError


class MLPEncoder(VectorEncoder):
    """Multi-layer perceptron over a flat observation vector (orthogonal init, configurable widths).

    Args:
        num_cells: hidden widths; the last one is the feature size.
        activation: ``"tanh"``, ``"relu"``, ``"elu"``, ``"gelu"``, ``"silu"``, ``"leaky_relu"`` or a module class.
        layer_norm: add a LayerNorm after every linear layer.
        in_features: build now for vectors of this size (otherwise built from the env's spec).
        observation_spec: build now from this spec.
        in_keys, out_keys: the key read and the key written.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> enc = rlte_plugins.make("encoder", "mlp", in_features=4, num_cells=[32, 16])
        >>> enc(TensorDict(observation=torch.zeros(5, 4), batch_size=[5]))["features"].shape
        torch.Size([5, 16])
    """

    registry_name = "mlp"

    def __init__(
        self,
        num_cells: Sequence[int] = (64, 64),
        activation: str | type[nn.Module] = "tanh",
        layer_norm: bool = False,
        in_features: int | None = None,
        observation_spec: Any = None,
        in_keys: Sequence[str] = ("observation",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(in_keys, out_keys)
        cells = [num_cells] if isinstance(num_cells, int) else list(num_cells)
        if not cells or any(not isinstance(c, int) or c < 1 for c in cells):
            raise ComponentArgumentError(f"{self._owner()}: num_cells must be positive ints, got {num_cells!r}")
        self.num_cells = cells
        self.activation = activation_class(activation, self._owner())
        self.layer_norm = layer_norm
        build_now(self, observation_spec, None if in_features is None else (in_features,))

    def _make(self, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        layers: list[nn.Module] = []
        width = shape[0]
        for cells in self.num_cells:
            layers.append(nn.Linear(width, cells))
            if self.layer_norm:
                layers.append(nn.LayerNorm(cells))
            layers.append(self.activation())
            width = cells
        net = nn.Sequential(*layers)
        orthogonal_init(net, math.sqrt(2))
        return net, width
