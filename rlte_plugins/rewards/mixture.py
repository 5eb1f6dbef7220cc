"""Several intrinsic rewards added with their own weights, as one ``reward``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.data import Composite, TensorSpec

from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.base import IntrinsicReward


class Mixture(IntrinsicReward):
    """A weighted sum of intrinsic rewards, each with its own normalisation, decay and networks.

    ``rewards`` is a list of reward names or ``{"name": ..., "weight": w, **kwargs}`` mappings (weight 1 when
    omitted), or a mapping of names to weights. The mixture computes every member's scaled bonus and trains every
    member; it is episodic when one member is (off-policy agents then store its bonus at collection time).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> mix = rlte_plugins.make("reward", "mixture", rewards=[{"name": "rnd", "weight": 0.5}, "e3b"])
        >>> mix = mix.build(env.observation_spec, env.action_spec)
        >>> mix(env.rollout(8, break_when_any_done=False))["intrinsic_reward"].shape
        torch.Size([4, 8])
    """

    registry_name = "mixture"

    def __init__(self, rewards: Sequence[Any] | Mapping[str, float], seed: int = 0) -> None:
        super().__init__(beta=1.0, kappa=0.0, reward_norm="none", seed=seed)
        from rlte_plugins.agents.base import resolve_component

        if isinstance(rewards, Mapping):
            rewards = [{"name": name, "weight": weight} for name, weight in rewards.items()]
        if isinstance(rewards, str) or not isinstance(rewards, Sequence) or not rewards:
            raise ComponentArgumentError(f"{self.owner}: rewards must be a non-empty list of reward names or "
                                         f"{{name: ..., weight: ...}} mappings, got {rewards!r}")  # fmt: skip
        members, weights = [], []
        for spec in rewards:
            weight: Any = 1.0
            if isinstance(spec, Mapping):
                spec = dict(spec)
                weight = spec.pop("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
                raise ComponentArgumentError(f"{self.owner}: the weight of {spec!r} must be a number, got {weight!r}")
            member = resolve_component("reward", spec)
            if not isinstance(member, IntrinsicReward):
                raise ComponentArgumentError(f"{self.owner}: {spec!r} is not an intrinsic reward "
                                             f"({type(member).__name__})")  # fmt: skip
            if isinstance(member, Mixture):
                raise ComponentArgumentError(f"{self.owner}: a mixture cannot hold another mixture")
            members.append(member)
            weights.append(float(weight))
        self.members = nn.ModuleList(members)
        self.weights = weights
        self.in_keys = tuple(dict.fromkeys(k for m in members for k in m.in_keys))  # type: ignore[misc]
        self.episodic = any(m.episodic for m in members)  # type: ignore[misc]

    def build(self, observation_spec: Composite, action_spec: TensorSpec | None = None) -> Mixture:
        for member in self.members:
            member.build(observation_spec, action_spec)
        self.obs_shape = next(iter(self.members)).obs_shape
        # the members read pixels on a pixel-only env: the keys they settled on at build
        self.in_keys = tuple(dict.fromkeys(k for m in self.members for k in m.in_keys))  # type: ignore[misc]
        return self

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        total = torch.zeros(batch.shape, device=batch.device)
        for weight, member in zip(self.weights, self.members, strict=True):
            bonus = member(batch.clone(False), frames=self.frames).get("intrinsic_reward")
            total = total + weight * bonus.reshape(batch.shape)
        return total

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        for member in self.members:
            losses.update(member.update(batch))
        return losses

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
