"""A residual MLP encoder, built on rlte-plugins' encoder base class.

How a component reports bad input (the CLI prints these as one ``error:`` line and exits 2):

* :class:`~rlte_plugins.ComponentArgumentError`: an argument is wrong whatever the environment (a width of 0,
  an unknown option). Raise it in the constructor, naming the component and the argument.
* :class:`~rlte_plugins.SpecMismatchError`: the arguments are fine but the component does not fit the
  environment's observation or action spec. Raise it when building against the spec (``_check`` here).
* Anything else escaping your code is reported as a failure of your component, with your distribution's name and
  version ("encoder 'residual_mlp' from rlte-example 0.1.0 failed while being built: ..."), so raise the two
  above for input you can diagnose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlte_plugins.encoders.base import VectorEncoder, build_now
from rlte_plugins.errors import ComponentArgumentError, positive_int


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualMLPEncoder(VectorEncoder):
    """Residual MLP (pre-LayerNorm blocks) over a flat observation vector.

    Observations must be flat vectors: :class:`VectorEncoder`'s ``_check`` raises
    :class:`~rlte_plugins.SpecMismatchError` for images, naming a pixel encoder to use instead.

    Args:
        width: hidden and feature width.
        blocks: number of residual blocks (0: a single linear layer).

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
        # checked here, where the value enters, rather than left to fail inside nn.Linear when built
        self.width = positive_int(self._owner(), "width", width)
        if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 0:
            raise ComponentArgumentError(f"{self._owner()}: blocks must be an int >= 0, got {blocks!r}")
        self.blocks = blocks
        build_now(self, observation_spec, None if in_features is None else (in_features,))

    def _make(self, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        layers = [
            nn.Linear(shape[0], self.width),
            *[_Block(self.width) for _ in range(self.blocks)],
            nn.LayerNorm(self.width),
            nn.ReLU(),
        ]
        return nn.Sequential(*layers), self.width
