"""Encoder for dict observations: a CNN per image key, an MLP per vector key, features concatenated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.data import Composite, TensorSpec

from rlte_plugins.encoders.base import Encoder, spec_at
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

#: Observation entries every rlte env adds for logging; never encoded.
_NOT_OBSERVATIONS = ("episode_reward", "episode_length", "episode_end", "done", "terminated", "truncated")


def _is_image(spec: TensorSpec, batch_dims: int) -> bool:
    return len(spec.shape) - batch_dims in (3, 4)


class CombinedEncoder(Encoder):
    """Encodes several observation keys: ``pixel_encoder`` on each image key (per-sample ``[C, H, W]`` or
    ``[stack, C, H, W]``), ``vector_encoder`` on each flat vector key, and concatenates their features.

    Args:
        in_keys: the keys to encode; ``None`` takes every observation of the env's spec except the episode
            statistics, in the spec's order.
        pixel_encoder, vector_encoder: registry names of the encoders used for image and vector keys.
        pixel_kwargs, vector_kwargs: their arguments.
        observation_spec: build now from this spec.
        out_keys: the key written.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded, Composite, Unbounded
        >>> spec = Composite(pixels=Bounded(0, 255, (3, 64, 64), dtype=torch.uint8), state=Unbounded((7,)))
        >>> enc = rlte_plugins.make("encoder", "combined", observation_spec=spec, vector_kwargs={"num_cells": [16]})
        >>> pixels = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
        >>> td = TensorDict(pixels=pixels, state=torch.zeros(2, 7), batch_size=[2])
        >>> enc(td)["features"].shape  # 512 from the CNN + 16 from the MLP
        torch.Size([2, 528])
    """

    registry_name = "combined"

    def __init__(
        self,
        in_keys: Sequence[str] | None = None,
        out_keys: Sequence[str] = ("features",),
        pixel_encoder: str = "mnih_cnn",
        vector_encoder: str = "mlp",
        pixel_kwargs: Mapping[str, Any] | None = None,
        vector_kwargs: Mapping[str, Any] | None = None,
        observation_spec: Any = None,
    ) -> None:
        super().__init__(("observation",), out_keys)
        if in_keys is not None and (isinstance(in_keys, str) or not in_keys):
            raise ComponentArgumentError(f"{self._owner()}: in_keys must be a non-empty list of keys or None")
        self._requested = None if in_keys is None else list(in_keys)
        self.in_keys = list(in_keys) if in_keys is not None else []
        for name, kwargs in (("pixel_kwargs", pixel_kwargs), ("vector_kwargs", vector_kwargs)):
            if kwargs is not None and ({"in_keys", "out_keys"} & set(kwargs)):
                raise ComponentArgumentError(f"{self._owner()}: {name} may not set in_keys/out_keys")
        self.pixel_encoder, self.vector_encoder = pixel_encoder, vector_encoder
        self.pixel_kwargs, self.vector_kwargs = dict(pixel_kwargs or {}), dict(vector_kwargs or {})
        self.encoders = nn.ModuleDict()
        self.encoders_keys: list[str] = []
        self._spec: Composite | None = None
        if observation_spec is not None:
            self.build(observation_spec)

    @property
    def built(self) -> bool:
        return len(self.encoders) > 0

    def build(self, observation_spec: Composite | TensorSpec, batch_dims: int | None = None) -> CombinedEncoder:
        if not isinstance(observation_spec, Composite):
            raise SpecMismatchError(f"{self._owner()} encodes dict observations; the spec is {observation_spec}")
        if batch_dims is None:
            batch_dims = len(observation_spec.shape)
        keys = self._requested or [
            k for k in observation_spec.keys() if k not in _NOT_OBSERVATIONS and not str(k).startswith("_")
        ]
        if self.built:
            if list(self.encoders_keys) != keys:
                raise SpecMismatchError(f"{self._owner()} was built for keys {self.encoders_keys}, not {keys}")
            for enc in self.encoders.values():
                enc.build(observation_spec, batch_dims)
            return self
        from rlte_plugins.registry import make

        self.encoders_keys = keys
        self.in_keys = list(keys)
        self._spec = observation_spec
        self._batch_dims = batch_dims
        for key in keys:
            spec = spec_at(observation_spec, key, self._owner())
            image = _is_image(spec, batch_dims)
            name, kwargs = (
                (self.pixel_encoder, self.pixel_kwargs) if image else (self.vector_encoder, self.vector_kwargs)
            )
            enc = make("encoder", name, in_keys=[key], out_keys=[f"{key}_features"], **kwargs)
            self.encoders[f"e{len(self.encoders)}"] = enc.build(observation_spec, batch_dims)
        self.out_features = sum(enc.out_features for enc in self.encoders.values())
        return self

    def reinitialize(self) -> None:
        for enc in self.encoders.values():
            enc.reinitialize()

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not self.built:
            raise RuntimeError(f"{self._owner()} is not built: call .build(env.observation_spec) first")
        pairs = zip(self.encoders_keys, self.encoders.values(), strict=True)
        parts = [enc.net(tensordict.get(key)) for key, enc in pairs]
        return tensordict.set(self.out_keys[0], torch.cat(parts, dim=-1))

    def extra_repr(self) -> str:
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}"
