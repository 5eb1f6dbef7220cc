"""Shared machinery of data augmentations: keys, per-device seeded generators, dtype and range preservation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError


class Augmentation(TensorDictModuleBase):
    """Applies :meth:`augment` to every ``in_keys`` entry, writing ``out_keys`` (default: in place).

    Work happens batched on the tensor's device, with independent randomness per sample drawn from a
    ``torch.Generator`` seeded with ``seed`` (one per device; ``seed=None`` uses torch's global generator).
    ``uint8`` inputs are augmented in float and rounded back into ``uint8`` [0, 255]; float inputs stay float
    (clamped into [0, ``float_max``] by the augmentations that make colours, never by those meant for vectors).

    Subclasses set ``clamp`` (results are colours), may override :meth:`event_dims` (default 3: one sample is
    ``[C, H, W]``), and implement :meth:`augment` on a float tensor ``x`` of shape ``[N, *event]`` whose value
    range is ``[0, vmax]``.
    """

    registry_name = "augmentation"
    clamp = True
    #: subclasses forward ``**kwargs`` (keys, seed, float_max) here untouched; the registry shows them all
    rlte_merge_base_signature = True

    def __init__(
        self,
        in_keys: Sequence[str] = ("pixels",),
        out_keys: Sequence[str] | None = None,
        seed: int | None = None,
        float_max: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(in_keys, str) or not in_keys:
            raise ComponentArgumentError(f"{self._owner()}: in_keys must be a non-empty list of keys")
        out = list(in_keys) if out_keys is None else list(out_keys)
        if isinstance(out_keys, str) or len(out) != len(in_keys):
            raise ComponentArgumentError(f"{self._owner()}: out_keys must list one key per in_key")
        self.in_keys, self.out_keys = list(in_keys), out
        self.seed = seed
        self.float_max = float(float_max)
        self._generators: dict[torch.device, torch.Generator] = {}

    def _owner(self) -> str:
        return f"augmentation {self.registry_name!r}"

    # -- randomness ---------------------------------------------------------------------------------------
    def generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(self.seed))
            self._generators[device] = gen
        return gen

    def random_state(self) -> dict[str, torch.Tensor]:
        """The seeded generators' states by device (for exact resume)."""
        return {str(device): gen.get_state() for device, gen in self._generators.items()}

    def set_random_state(self, state: dict[str, torch.Tensor]) -> None:
        for device, saved in state.items():
            gen = torch.Generator(device=torch.device(device))
            gen.set_state(saved)
            self._generators[torch.device(device)] = gen

    def rand(self, *shape: int, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator(like.device), device=like.device)

    def randn(self, *shape: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator(like.device), device=like.device)

    def randint(self, low: int, high: int, *shape: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.generator(like.device), device=like.device)

    # -- application ---------------------------------------------------------------------------------------
    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        raise NotImplementedError

    def event_dims(self, x: torch.Tensor) -> int:
        """How many trailing dims make one sample (3 for images); the rest are batch dims."""
        return 3

    def augment_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Augment one tensor (any leading batch dims), keeping its dtype and value range (not ``apply``, which
        would shadow ``nn.Module.apply`` and break it on any module tree holding this one)."""
        event = self.event_dims(x)
        if x.dim() < event:
            raise SpecMismatchError(
                f"{self._owner()} works on samples of {event} dims ([..., C, H, W] for images) but got a tensor "
                f"of shape {list(x.shape)}"
            )
        lead = x.shape[: x.dim() - event]
        flat = x.reshape(-1, *x.shape[x.dim() - event :])
        is_int = not x.dtype.is_floating_point
        vmax = 255.0 if x.dtype == torch.uint8 else self.float_max
        out = self.augment(flat.float() if is_int else flat, vmax)
        if x.dtype == torch.uint8:
            out = out.round().clamp(0, 255)
        elif is_int:
            out = out.round()
        elif self.clamp:
            out = out.clamp(0.0, vmax)
        return out.to(x.dtype).reshape(*lead, *out.shape[1:])

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        for key_in, key_out in zip(self.in_keys, self.out_keys, strict=True):
            tensordict.set(key_out, self.augment_tensor(tensordict.get(key_in)))
        return tensordict

    def extra_repr(self) -> str:
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}, seed={self.seed}"


def check_range(owner: str, name: str, value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise ComponentArgumentError(f"{owner}: {name} must be in [{low}, {high}], got {value!r}")
    return float(value)
