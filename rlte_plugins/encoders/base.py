"""Shared machinery of encoders: key configuration, build-against-spec, clear spec errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.data import Composite, TensorSpec

from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def activation_class(name: str | type[nn.Module], owner: str) -> Callable[[], nn.Module]:
    """Resolve an activation given by name (``"tanh"``, ``"relu"``...) or as an ``nn.Module`` class."""
    if isinstance(name, type) and issubclass(name, nn.Module):
        return name
    if name not in ACTIVATIONS:
        raise ComponentArgumentError(
            f"{owner}: unknown activation {name!r} (accepted: {', '.join(ACTIVATIONS)} or an nn.Module class)"
        )
    return ACTIVATIONS[name]


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """Orthogonal weights and zero biases for every linear/conv layer (the PPO implementation detail)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def spec_at(observation_spec: Composite | TensorSpec, key: str, owner: str) -> TensorSpec:
    """The leaf spec at ``key``; a bare (non-composite) spec is taken as that key's spec."""
    if not isinstance(observation_spec, Composite):
        return observation_spec
    if key not in observation_spec.keys(True, True):
        present = [k for k in observation_spec.keys(True, True) if not str(k).startswith("episode_")]
        raise SpecMismatchError(
            f"{owner} reads {key!r} but the environment provides {present}; pass in_keys=[...] naming one"
        )
    return observation_spec[key]


class Encoder(TensorDictModuleBase):
    """An observation encoder: reads ``in_keys[0]``, writes ``out_keys[0]`` (features of ``out_features``).

    Subclasses implement :meth:`_check` (refuse a spec that does not fit) and :meth:`_make` (create the
    network for a per-sample input shape). Building happens at construction when ``observation_spec`` or
    ``in_shape`` is given, otherwise when an agent calls :meth:`build` with its environment's spec.
    """

    registry_name = "encoder"

    def __init__(
        self,
        in_keys: Sequence[str] = ("observation",),
        out_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__()
        if isinstance(in_keys, str) or isinstance(out_keys, str):
            raise ComponentArgumentError(f"{self._owner()}: in_keys/out_keys must be lists of keys, not strings")
        if len(in_keys) != 1 or len(out_keys) != 1:
            raise ComponentArgumentError(f"{self._owner()} reads one key and writes one key")
        self.in_keys = list(in_keys)
        self.out_keys = list(out_keys)
        self.net: nn.Module | None = None
        self.in_shape: tuple[int, ...] | None = None
        self.out_features: int | None = None

    def _owner(self) -> str:
        return f"encoder {self.registry_name!r}"

    @property
    def built(self) -> bool:
        return self.net is not None

    def build(self, observation_spec: Composite | TensorSpec, batch_dims: int | None = None) -> Encoder:
        """Create the network for the spec at ``in_keys[0]`` (per-env shape: leading batch dims dropped).

        An already built encoder only checks that the spec still fits.
        """
        spec = spec_at(observation_spec, self.in_keys[0], self._owner())
        if batch_dims is None:
            batch_dims = len(observation_spec.shape) if isinstance(observation_spec, Composite) else 0
        shape = tuple(spec.shape[batch_dims:])
        self._check(shape, spec.dtype)
        if self.built:
            if shape != self.in_shape:
                raise SpecMismatchError(
                    f"{self._owner()} was built for inputs of shape {list(self.in_shape or ())} but "
                    f"{self.in_keys[0]!r} has shape {list(shape)}"
                )
            return self
        self._build_shape(shape)
        return self

    def _build_shape(self, shape: tuple[int, ...]) -> None:
        self.in_shape = tuple(shape)
        self.net, self.out_features = self._make(self.in_shape)

    def reinitialize(self) -> None:
        """Fresh parameters, same architecture (a separate critic encoder starts from its own draw)."""
        if self.in_shape is None:
            raise RuntimeError(f"{self._owner()} is not built: nothing to reinitialize")
        self._build_shape(self.in_shape)

    def _check(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        raise NotImplementedError

    def _make(self, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        raise NotImplementedError

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.net is None:
            raise RuntimeError(f"{self._owner()} is not built: call .build(env.observation_spec) first")
        return tensordict.set(self.out_keys[0], self.net(tensordict.get(self.in_keys[0])))

    def extra_repr(self) -> str:
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}, in_shape={self.in_shape}"


class VectorEncoder(Encoder):
    """An encoder of flat float vectors: refuses images with a pointer to a pixel encoder."""

    def _check(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        if len(shape) != 1 or dtype == torch.uint8:
            raise SpecMismatchError(
                f"{self._owner()} encodes flat vectors but {self.in_keys[0]!r} has shape {list(shape)} and "
                f"dtype {dtype}; use a pixel encoder (e.g. 'mnih_cnn') for images"
            )


def build_now(encoder: Encoder, observation_spec: Any, in_shape: Sequence[int] | None) -> None:
    """Build at construction when the caller already knows the input."""
    if observation_spec is not None:
        encoder.build(observation_spec)
    elif in_shape is not None:
        shape = tuple(int(s) for s in in_shape)
        encoder._check(shape, torch.float32 if len(shape) == 1 else torch.uint8)
        encoder._build_shape(shape)
