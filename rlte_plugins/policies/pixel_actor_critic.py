"""DrQ and DrQ-v2's network layout: one convolutional encoder shared by actor and critic and trained by the
critic's loss alone, a trunk (linear, LayerNorm, tanh) of its own in each, and twin Q heads on the critic's
trunk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Composite, TensorSpec

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.distributions.noise import NoiseHead
from rlte_plugins.encoders.base import Encoder, orthogonal_init
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError
from rlte_plugins.policies.value_based import mlp


def _trunk(in_features: int, features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, features), nn.LayerNorm(features), nn.Tanh())


class _DetachedTrunk(nn.Module):
    """The actor's side: the encoder's features without their gradient (the critic trains the encoder), then
    the actor's trunk and MLP."""

    def __init__(self, in_features: int, features: int, hidden: Sequence[int], activation: str, owner: str) -> None:
        super().__init__()
        self.trunk = _trunk(in_features, features)
        self.net = mlp(features, hidden, None, activation, owner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.trunk(x.detach()))


class TwinQ(nn.Module):
    """``[Q1, Q2](trunk(features), action)``: two Q heads on one trunk (the authors' critic), stacked last."""

    def __init__(
        self, in_features: int, features: int, action_dim: int, hidden: Sequence[int], activation: str, owner: str
    ) -> None:
        super().__init__()
        self.trunk = _trunk(in_features, features)
        self.q1 = mlp(features + action_dim, hidden, 1, activation, owner)
        self.q2 = mlp(features + action_dim, hidden, 1, activation, owner)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.trunk(features), action.to(features.dtype)], dim=-1)
        return torch.cat([self.q1(h), self.q2(h)], dim=-1)


class PixelActorCritic(nn.Module):
    """Actor and twin critic for learning from pixels (DrQ, DrQ-v2): the encoder (``tassa_cnn`` with
    ``features=None``: the flattened convolutions) is shared; the actor reads its output detached, so only the
    critic's loss trains it. Each side has its own trunk (``feature_dim`` units, LayerNorm, tanh); the critic's
    two Q heads share the critic's trunk.

    After :meth:`build` it holds ``encoder``, ``actor_head`` (features -> action: the deterministic tanh head of a
    noise distribution, or a ``ProbabilisticActor`` of a stochastic one), ``critic_head`` (features, action ->
    ``"state_action_value"`` of shape ``[..., 2]``), ``actor`` (encoder then actor head: what acts) and
    ``exploration_policy`` (the actor with its noise, for noise heads).

    Args:
        feature_dim: width of each trunk (50 in both papers).
        hidden: widths of the actor's and each Q head's MLP (1024, 1024 in both papers).
        activation: their activation.

    Examples:
        >>> import torch, rlte_plugins
        >>> from torchrl.data import Bounded, Composite, Unbounded
        >>> from tensordict import TensorDict
        >>> obs = Composite(pixels=Unbounded((9, 32, 32), dtype=torch.uint8))
        >>> policy = rlte_plugins.make("policy", "pixel_actor_critic", hidden=[64]).build(
        ...     rlte_plugins.make("encoder", "tassa_cnn", features=None),
        ...     rlte_plugins.make("distribution", "truncated_normal_noise"), obs, Bounded(-1.0, 1.0, shape=(2,)))
        >>> td = policy.actor(TensorDict(pixels=torch.zeros(3, 9, 32, 32, dtype=torch.uint8), batch_size=[3]))
        >>> policy.critic_head(td)["state_action_value"].shape
        torch.Size([3, 2])
    """

    registry_name = "pixel_actor_critic"
    num_qvalue_nets = 2

    def __init__(self, feature_dim: int = 50, hidden: Sequence[int] = (1024, 1024), activation: str = "relu") -> None:
        super().__init__()
        if not isinstance(feature_dim, int) or feature_dim < 1:
            raise ComponentArgumentError(f"{self._owner()}: feature_dim must be a positive int, got {feature_dim!r}")
        mlp(1, hidden, None, activation, self._owner())  # validate the arguments now
        self.feature_dim, self.hidden, self.activation = feature_dim, hidden, activation
        self.encoder: Any = None
        self.actor_head: Any = None
        self.critic_head: Any = None
        self.actor: Any = None
        self.exploration_policy: Any = None
        self.stochastic = False

    def _owner(self) -> str:
        return f"policy {self.registry_name!r}"

    @property
    def built(self) -> bool:
        return self.actor is not None

    def build(
        self, encoder: Encoder, distribution: DistributionHead, observation_spec: Composite, action_spec: TensorSpec
    ) -> PixelActorCritic:
        if self.built:
            raise ComponentArgumentError(f"{self._owner()} is already built; make a new one per agent")
        if distribution is None:
            raise ComponentArgumentError(f"{self._owner()} needs a distribution (a noise or a squashed_normal)")
        shape = tuple(action_spec.shape)
        if not action_spec.dtype.is_floating_point or len(shape) != 1:
            raise SpecMismatchError(f"{self._owner()} needs continuous action vectors, got {type(action_spec).__name__}"
                                    f" of shape {list(shape)}")  # fmt: skip
        encoder.build(observation_spec)
        feats = encoder.out_keys[0]
        widths = [self.hidden] if isinstance(self.hidden, int) else list(self.hidden)
        body = _DetachedTrunk(encoder.out_features, self.feature_dim, widths, self.activation, self._owner())
        width = widths[-1] if widths else self.feature_dim
        distribution.in_keys = ["actor_features"]
        distribution.build(action_spec, width, 0, observation_spec)
        self.actor_head = distribution.actor(TensorDictModule(body, [feats], ["actor_features"]), action_spec)
        critic = TwinQ(encoder.out_features, self.feature_dim, shape[0], widths, self.activation, self._owner())
        self.critic_head = TensorDictModule(critic, [feats, "action"], ["state_action_value"])
        # both papers' initialisation: orthogonal linear layers of gain 1 and zero biases (the encoder keeps its own)
        orthogonal_init(body, 1.0)
        orthogonal_init(critic, 1.0)
        self.encoder = encoder
        self.actor = TensorDictSequential(encoder, self.actor_head)
        self.stochastic = not isinstance(distribution, NoiseHead)
        self.exploration_policy = self.actor if self.stochastic else distribution.exploration(self.actor)
        return self

    def forward(self, tensordict: Any) -> Any:
        return self.actor(tensordict)
