"""Exploration noise for deterministic actors (DDPG, TD3, DrQ-v2): Gaussian, Ornstein-Uhlenbeck and clipped
(truncated) Gaussian, each with a standard-deviation schedule counted in environment steps.

A noise "distribution" builds the deterministic actor head (``tanh`` onto the action bounds) and, separately,
the exploration module that perturbs ``"action"``: the actor without noise is what the losses consume; the
actor followed by :meth:`NoiseHead.exploration` is what the collector runs. Noise is added only under
``ExplorationType.RANDOM`` (TorchRL's default while collecting), never in deterministic evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.envs.utils import ExplorationType, exploration_type

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import orthogonal_init
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.optim.schedules import Schedule


class _Deterministic(nn.Module):
    def __init__(self, in_features: int, dim: int, low: torch.Tensor, high: torch.Tensor, gain: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, dim)
        orthogonal_init(self.linear, gain)
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(self.linear(features)) + 1.0) * (self.high - self.low) / 2.0


class NoiseModule(TensorDictModuleBase):
    """Adds scheduled noise to ``action_key`` under random exploration and clamps into the action bounds.

    Call :meth:`step` with the number of environment steps just collected to advance the schedule.

    TorchRL's ``AdditiveGaussianModule`` and ``OrnsteinUhlenbeckProcessModule`` add the same noise the same way
    (only under ``ExplorationType.RANDOM``; ``clamp(action + sigma * N(0, 1))`` came out bit for bit equal), but
    their annealing is not this schedule (measured with torchrl 0.14.1): ``step(frames)`` subtracts
    ``(init - end) / steps`` from a float32 buffer once per frame in a Python loop (9.5 us a frame, 2.4 s per 250k
    frames; ours is one division), and the rounding adds up: ``linear(1.0, 0.1, 500000)`` stood at 0.553 instead of
    0.55 after 250k frames and 0.105 instead of 0.1 after 500k. They refuse schedules that rise, and draw from the
    global RNG (no generator), so ``seed`` could not be honoured.
    """

    def __init__(
        self, std: Schedule, low: torch.Tensor, high: torch.Tensor, action_key: str = "action", seed: int | None = None
    ) -> None:
        super().__init__()
        self.in_keys = [action_key]
        self.out_keys = [action_key]
        self.schedule = std
        self.steps = 0
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self._gen: torch.Generator | None = None
        self._seed = seed

    @property
    def std(self) -> float:
        return self.schedule(self.steps)

    def step(self, frames: int = 1) -> None:
        self.steps += int(frames)

    def _randn(self, like: torch.Tensor) -> torch.Tensor:
        if self._seed is None:
            return torch.randn_like(like)
        if self._gen is None or self._gen.device != like.device:
            self._gen = torch.Generator(device=like.device)
            self._gen.manual_seed(self._seed)
        return torch.randn(like.shape, generator=self._gen, device=like.device, dtype=like.dtype)

    def _noise(self, tensordict: TensorDictBase, action: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if exploration_type() not in (ExplorationType.RANDOM, None):
            return tensordict
        action = tensordict.get(self.in_keys[0])
        # in units of half the action range (CleanRL's action_scale * noise; DrQ-v2's [-1, 1] actions)
        noise = self._noise(tensordict, action) * (self.high - self.low) / 2
        noisy = torch.maximum(torch.minimum(action + noise, self.high), self.low)
        return tensordict.set(self.out_keys[0], noisy)

    def random_state(self) -> dict[str, Any]:
        """What the next draws depend on besides the schedule (its generator when seeded): for exact resume."""
        return {"generator": None if self._gen is None else self._gen.get_state()}

    def set_random_state(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None:
            self._gen = torch.Generator(device=self.low.device)
            self._gen.set_state(state["generator"])


class GaussianNoise(NoiseModule):
    """Independent Gaussian noise with the scheduled standard deviation (DDPG/TD3)."""

    def _noise(self, tensordict: TensorDictBase, action: torch.Tensor) -> torch.Tensor:
        return self._randn(action) * self.std


class TruncatedGaussianNoise(NoiseModule):
    """DrQ-v2's noise: Gaussian, clipped to ``[-clip, clip]`` (``None``: not clipped, as DrQ-v2 explores) before
    the action is clamped into its bounds."""

    def __init__(self, std: Schedule, low: torch.Tensor, high: torch.Tensor, clip: float | None, **kwargs: Any) -> None:
        super().__init__(std, low, high, **kwargs)
        self.clip = None if clip is None else float(clip)

    def _noise(self, tensordict: TensorDictBase, action: torch.Tensor) -> torch.Tensor:
        noise = self._randn(action) * self.std
        return noise if self.clip is None else noise.clamp(-self.clip, self.clip)


class OrnsteinUhlenbeckNoise(NoiseModule):
    """Temporally correlated noise ``x += theta (mu - x) dt + sigma sqrt(dt) N(0, 1)``, scaled by the schedule.

    The process restarts for the envs whose ``is_init`` entry is set (add TorchRL's ``InitTracker`` transform to
    the env to mark episode starts); without it the process runs on across episodes. Its state lives in this
    module (and restarts if the batch shape changes). TorchRL's ``OrnsteinUhlenbeckProcessModule`` resets per env
    on ``is_init`` too, but keeps its state in the tensordict (``_ou_prev_noise``, ``_ou_steps``): every transition
    carries two extra entries, and a loop that does not hand the previous output back in restarts the process at
    each call (measured: after 200 calls with fresh tensordicts its noise had std 0.020 and lag-1 correlation 0.00,
    against 0.25 and 0.99 when carried, as here); its ``eps`` anneals like ``AdditiveGaussianModule`` (see
    :class:`NoiseModule`).
    """

    def __init__(
        self, std: Schedule, low: torch.Tensor, high: torch.Tensor, theta: float, sigma: float, dt: float, **kw: Any
    ) -> None:
        super().__init__(std, low, high, **kw)
        self.theta, self.sigma, self.dt = float(theta), float(sigma), float(dt)
        self._x: torch.Tensor | None = None

    def _noise(self, tensordict: TensorDictBase, action: torch.Tensor) -> torch.Tensor:
        x = self._x
        if x is None or x.shape != action.shape or x.device != action.device:
            x = torch.zeros_like(action)
        init = tensordict.get("is_init", None)
        if init is not None:
            x = torch.where(init.reshape(*init.shape[: action.dim() - 1], 1).bool(), torch.zeros_like(x), x)
        x = x - self.theta * x * self.dt + self.sigma * (self.dt**0.5) * self._randn(action)
        self._x = x
        return x * self.std

    def random_state(self) -> dict[str, Any]:
        return {**super().random_state(), "x": None if self._x is None else self._x.clone()}

    def set_random_state(self, state: dict[str, Any]) -> None:
        super().set_random_state(state)
        self._x = None if state.get("x") is None else state["x"].to(self.low.device)


class NoiseHead(DistributionHead):
    """Deterministic actor head (``tanh`` onto the bounds) plus the exploration noise used while collecting."""

    param_keys = ("action",)

    def __init__(
        self, std: Any, action_key: str = "action", seed: int | None = None, in_keys: Sequence[str] = ("features",)
    ) -> None:
        super().__init__(in_keys)
        self.std = Schedule.parse(std, self._owner())
        self.action_key = action_key
        self.seed = seed
        self.init_gain = 1.0

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        bounded = hasattr(action_spec, "space") and hasattr(action_spec.space, "low")
        if not action_spec.dtype.is_floating_point or len(shape) != 1 or not bounded:
            self._refuse(action_spec, shape, "a bounded continuous action vector (a float Bounded spec)", "categorical")

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        self._low = action_spec.space.low.reshape(-1, shape[0])[0].detach().clone().float()
        self._high = action_spec.space.high.reshape(-1, shape[0])[0].detach().clone().float()
        return _Deterministic(in_features, shape[0], self._low, self._high, self.init_gain)

    def _head_out_keys(self) -> list[str]:
        return [self.action_key]

    def actor(self, body: nn.Module | None, action_spec: TensorSpec) -> TensorDictModuleBase:  # type: ignore[override]
        """The deterministic actor (what TorchRL's DDPG/TD3 losses take): ``body`` then the tanh head."""
        if self.head is None:
            raise RuntimeError(f"{self._owner()} is not built: call .build(action_spec, in_features) first")
        return self.head if body is None else TensorDictSequential(body, self.head)

    def noise(self) -> NoiseModule:
        raise NotImplementedError

    def exploration(self, actor: TensorDictModuleBase) -> TensorDictSequential:
        """``actor`` followed by this head's noise: the collector's policy. Advance it with ``.step(frames)``."""
        return TensorDictSequential(actor, self.noise())


class NormalNoiseHead(NoiseHead):
    """Deterministic actor with additive Gaussian exploration noise (DDPG/TD3); ``std`` may be a schedule.

    ``std`` is in units of half the action range (CleanRL's ``action_scale * exploration_noise``): 0.1 on
    Pendulum's torque in [-2, 2] is a standard deviation of 0.2.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> spec = Bounded(-1.0, 1.0, shape=(2,))
        >>> head = rlte_plugins.make("distribution", "normal_noise", std=0.1).build(spec, in_features=4)
        >>> policy = head.exploration(head.actor(None, spec))
        >>> td = policy(TensorDict(features=torch.zeros(3, 4), batch_size=[3]))
        >>> td["action"].shape, bool(td["action"].abs().max() <= 1.0)
        (torch.Size([3, 2]), True)
    """

    registry_name = "normal_noise"

    def __init__(
        self,
        std: Any = 0.1,
        action_key: str = "action",
        seed: int | None = None,
        in_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(std, action_key, seed, in_keys)

    def noise(self) -> NoiseModule:
        return GaussianNoise(self.std, self._low, self._high, action_key=self.action_key, seed=self.seed)


class TruncatedNormalNoiseHead(NoiseHead):
    """DrQ-v2's noise: Gaussian with a scheduled standard deviation, e.g. ``std="linear(1.0, 0.1, 500000)"`` (1.0
    to 0.1 over 500k environment steps), in units of half the action range. ``clip`` (0.3) clips the noise of
    the target and actor actions in DrQ-v2's loss; ``explore_clip`` clips the exploration noise (``None``: not
    clipped, as DrQ-v2 acts: ``dist.sample(clip=None)``); actions are clamped into their bounds either way.

    Examples:
        >>> from torchrl.data import Bounded
        >>> import rlte_plugins
        >>> head = rlte_plugins.make("distribution", "truncated_normal_noise", std="linear(1.0, 0.1, 100)")
        >>> noise = head.build(Bounded(-1.0, 1.0, shape=(2,)), in_features=4).noise()
        >>> noise.step(50); round(noise.std, 3)
        0.55
    """

    registry_name = "truncated_normal_noise"

    def __init__(
        self,
        std: Any = "linear(1.0, 0.1, 500000)",
        clip: float = 0.3,
        explore_clip: float | None = None,
        action_key: str = "action",
        seed: int | None = None,
        in_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(std, action_key, seed, in_keys)
        for name, value in (("clip", clip), ("explore_clip", explore_clip)):
            if value is not None and value <= 0:
                raise ComponentArgumentError(f"{self._owner()}: {name} must be positive, got {value}")
        if clip is None:
            raise ComponentArgumentError(f"{self._owner()}: clip must be positive, got None")
        self.clip, self.explore_clip = clip, explore_clip

    def noise(self) -> NoiseModule:
        return TruncatedGaussianNoise(
            self.std, self._low, self._high, self.explore_clip, action_key=self.action_key, seed=self.seed
        )


class OrnsteinUhlenbeckNoiseHead(NoiseHead):
    """Deterministic actor with Ornstein-Uhlenbeck exploration (DDPG's original), scaled by ``std``.

    The process is in units of half the action range, as the other noise heads.

    Examples:
        >>> from torchrl.data import Bounded
        >>> import rlte_plugins
        >>> head = rlte_plugins.make("distribution", "ornstein_uhlenbeck_noise", seed=0)
        >>> noise = head.build(Bounded(-1.0, 1.0, shape=(2,)), in_features=4).noise()
        >>> noise.theta, noise.sigma
        (0.15, 0.2)
    """

    registry_name = "ornstein_uhlenbeck_noise"

    def __init__(
        self,
        std: Any = 1.0,
        theta: float = 0.15,
        sigma: float = 0.2,
        dt: float = 1e-2,
        action_key: str = "action",
        seed: int | None = None,
        in_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(std, action_key, seed, in_keys)
        self.theta, self.sigma, self.dt = theta, sigma, dt

    def noise(self) -> NoiseModule:
        return OrnsteinUhlenbeckNoise(
            self.std, self._low, self._high, self.theta, self.sigma, self.dt, action_key=self.action_key, seed=self.seed
        )
