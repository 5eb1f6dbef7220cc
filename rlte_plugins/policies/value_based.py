"""Off-policy policies: deterministic and stochastic actors with a Q critic (DDPG, TD3, DrQ-v2, SAC, discrete
SAC) and the double Q network (DQN).

Each is built like ``actor_critic``: ``policy.build(encoder, distribution, observation_spec, action_spec)``. It
then holds what TorchRL's losses take, under the names they use: ``actor`` (writes ``"action"``), ``qvalue``
(writes ``"state_action_value"``, or ``"action_value"`` for discrete actions), ``num_qvalue_nets`` (the loss
makes that many independent copies: two for the double critic) and ``exploration_policy`` (what the collector
runs). The encoder is shared by actor and critic (DrQ-v2's layout: the critic's loss trains it) unless
``shared_encoder=False`` gives the critic its own copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Categorical, Composite, OneHot, TensorSpec
from torchrl.modules import QValueModule

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.distributions.noise import NoiseHead
from rlte_plugins.encoders.base import Encoder, activation_class, orthogonal_init
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError
from rlte_plugins.policies.actor_critic import _fresh_copy


def mlp(in_features: int, hidden: Sequence[int], out_features: int | None, activation: Any, owner: str) -> nn.Module:
    """Linear layers of widths ``hidden`` (then ``out_features``, without activation, when given)."""
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    if any(not isinstance(w, int) or w < 1 for w in widths):
        raise ComponentArgumentError(f"{owner}: hidden must be positive ints, got {hidden!r}")
    act = activation_class(activation, owner)
    layers: list[nn.Module] = []
    width = in_features
    for w in widths:
        layers += [nn.Linear(width, w), act()]
        width = w
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
    net = nn.Sequential(*layers) if layers else nn.Identity()
    orthogonal_init(net, math.sqrt(2))
    return net


class _Concat(nn.Module):
    """``net(cat(features, action))``: the continuous Q function."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, action.to(features.dtype)], dim=-1))


class _OffPolicy(nn.Module):
    """What the actor-with-Q-critic policies share: the trunk sizes, the encoder split, the Q network."""

    registry_name = "policy"

    def __init__(
        self, hidden: Sequence[int] = (256, 256), activation: str = "relu", shared_encoder: bool = True
    ) -> None:
        super().__init__()
        self.hidden, self.activation, self.shared_encoder = hidden, activation, shared_encoder
        self.actor: Any = None
        self.qvalue: Any = None
        self.exploration_policy: Any = None
        mlp(1, hidden, None, activation, self._owner())  # validate the arguments now

    def _owner(self) -> str:
        return f"policy {self.registry_name!r}"

    @property
    def built(self) -> bool:
        return self.actor is not None

    def _build_actor(
        self, encoder: Encoder, distribution: DistributionHead, observation_spec: Composite, action_spec: TensorSpec
    ) -> Encoder:
        """Build encoder, MLP trunk and distribution head into ``self.actor``; return the critic's encoder."""
        if self.built:
            raise ComponentArgumentError(f"{self._owner()} is already built; make a new one per agent")
        encoder.build(observation_spec)
        critic = encoder if self.shared_encoder else _fresh_copy(encoder, "q_features")
        trunk, width = _trunk(self, encoder)
        distribution.in_keys = ["actor_features"]
        distribution.build(action_spec, width, len(observation_spec.shape), observation_spec)
        self.actor = distribution.actor(TensorDictSequential(encoder, trunk), action_spec)
        return critic

    def _continuous_q(self, critic_encoder: Encoder, action_dim: int) -> TensorDictSequential:
        feats = critic_encoder.out_keys[0]
        net = _Concat(mlp(critic_encoder.out_features + action_dim, self.hidden, 1, self.activation, self._owner()))
        return TensorDictSequential(critic_encoder, TensorDictModule(net, [feats, "action"], ["state_action_value"]))

    def forward(self, tensordict: Any) -> Any:
        return self.actor(tensordict)


def _trunk(policy: _OffPolicy, encoder: Encoder, out_key: str = "actor_features") -> tuple[TensorDictModule, int]:
    widths = [policy.hidden] if isinstance(policy.hidden, int) else list(policy.hidden)
    net = mlp(encoder.out_features, widths, None, policy.activation, policy._owner())
    return TensorDictModule(net, encoder.out_keys, [out_key]), (widths[-1] if widths else encoder.out_features)


class DeterministicDoubleCritic(_OffPolicy):
    """Deterministic actor (``tanh`` onto the bounds) with a Q critic used twice (TD3, DrQ-v2) or once (DDPG).

    The distribution must be an exploration noise (``normal_noise``, ``ornstein_uhlenbeck_noise``,
    ``truncated_normal_noise``): ``actor`` is noiseless (for the losses), ``exploration_policy`` adds the noise.

    Args:
        hidden: widths of the actor's and the critic's MLPs on top of the encoder.
        activation: their activation.
        shared_encoder: one encoder for actor and critic (DrQ-v2) or a copy each.
        num_qvalue_nets: critic copies the loss keeps (2: TD3/DrQ-v2's clipped double Q; 1: DDPG).

    Examples:
        >>> import torch, rlte_plugins
        >>> from torchrl.data import Bounded, Composite, Unbounded
        >>> obs = Composite(observation=Unbounded((5,)))
        >>> policy = rlte_plugins.make("policy", "deterministic_double_critic", hidden=[32]).build(
        ...     rlte_plugins.make("encoder", "mlp", num_cells=[16]),
        ...     rlte_plugins.make("distribution", "truncated_normal_noise"), obs, Bounded(-1.0, 1.0, shape=(2,)))
        >>> from torchrl.objectives import TD3Loss
        >>> loss = TD3Loss(policy.actor, policy.qvalue, action_spec=Bounded(-1.0, 1.0, shape=(2,)),
        ...                num_qvalue_nets=policy.num_qvalue_nets)
        >>> from tensordict import TensorDict
        >>> policy.exploration_policy(TensorDict(observation=torch.zeros(3, 5), batch_size=[3]))["action"].shape
        torch.Size([3, 2])
    """

    registry_name = "deterministic_double_critic"

    def __init__(
        self,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        shared_encoder: bool = True,
        num_qvalue_nets: int = 2,
    ) -> None:
        super().__init__(hidden, activation, shared_encoder)
        if num_qvalue_nets not in (1, 2):
            raise ComponentArgumentError(f"{self._owner()}: num_qvalue_nets must be 1 or 2, got {num_qvalue_nets!r}")
        self.num_qvalue_nets = num_qvalue_nets

    def build(
        self, encoder: Encoder, distribution: DistributionHead, observation_spec: Composite, action_spec: TensorSpec
    ) -> DeterministicDoubleCritic:
        if not isinstance(distribution, NoiseHead):
            raise SpecMismatchError(
                f"{self._owner()} needs an exploration noise for its deterministic actor "
                "('normal_noise', 'ornstein_uhlenbeck_noise' or 'truncated_normal_noise'), "
                f"got distribution {distribution.registry_name!r}"
            )
        critic_encoder = self._build_actor(encoder, distribution, observation_spec, action_spec)
        self.exploration_policy = distribution.exploration(self.actor)
        self.qvalue = self._continuous_q(critic_encoder, int(action_spec.shape[-1]))
        return self


class StochasticDoubleCritic(_OffPolicy):
    """Stochastic actor with a double Q critic: SAC (continuous actions, e.g. ``squashed_normal``) and discrete
    SAC (``categorical``: the critic then writes one value per action, ``"action_value"``).

    Examples:
        >>> import torch, rlte_plugins
        >>> from torchrl.data import Categorical, Composite, Unbounded
        >>> obs = Composite(observation=Unbounded((5,)))
        >>> policy = rlte_plugins.make("policy", "stochastic_double_critic", hidden=[32]).build(
        ...     rlte_plugins.make("encoder", "mlp", num_cells=[16]), rlte_plugins.make("distribution", "categorical"),
        ...     obs, Categorical(4))
        >>> from tensordict import TensorDict
        >>> policy.qvalue(TensorDict(observation=torch.zeros(3, 5), batch_size=[3]))["action_value"].shape
        torch.Size([3, 4])
    """

    registry_name = "stochastic_double_critic"
    num_qvalue_nets = 2

    def build(
        self, encoder: Encoder, distribution: DistributionHead, observation_spec: Composite, action_spec: TensorSpec
    ) -> StochasticDoubleCritic:
        if isinstance(distribution, NoiseHead):
            raise SpecMismatchError(
                f"{self._owner()} needs a stochastic distribution (e.g. 'squashed_normal' or 'categorical'), "
                f"got the exploration noise {distribution.registry_name!r}; use 'deterministic_double_critic'"
            )
        critic_encoder = self._build_actor(encoder, distribution, observation_spec, action_spec)
        self.exploration_policy = self.actor
        self.discrete = isinstance(action_spec, (Categorical, OneHot))
        if self.discrete:
            n = int(action_spec.space.n)
            feats = critic_encoder.out_keys[0]
            net = mlp(critic_encoder.out_features, self.hidden, n, self.activation, self._owner())
            self.qvalue = TensorDictSequential(critic_encoder, TensorDictModule(net, [feats], ["action_value"]))
        else:
            self.qvalue = self._continuous_q(critic_encoder, int(action_spec.shape[-1]))
        return self


class DoubleQNetwork(nn.Module):
    """Q network for DQN: encoder, MLP, one value per discrete action, greedy ``"action"`` (TorchRL's
    ``QValueModule``). The loss keeps the target copy (``DQNLoss(policy.qvalue, delay_value=True,
    double_dqn=True)``: double DQN); ``exploration_policy`` is the greedy actor, to be wrapped in TorchRL's
    ``EGreedyModule`` for epsilon-greedy collection.

    Examples:
        >>> import torch, rlte_plugins
        >>> from torchrl.data import Categorical, Composite, Unbounded
        >>> policy = rlte_plugins.make("policy", "double_q", hidden=[32]).build(
        ...     rlte_plugins.make("encoder", "mlp", num_cells=[16]), None,
        ...     Composite(observation=Unbounded((5,))), Categorical(3))
        >>> from tensordict import TensorDict
        >>> td = policy.qvalue(TensorDict(observation=torch.zeros(2, 5), batch_size=[2]))
        >>> td["action_value"].shape, td["action"].shape
        (torch.Size([2, 3]), torch.Size([2]))
    """

    registry_name = "double_q"

    def __init__(self, hidden: Sequence[int] = (512,), activation: str = "relu", dueling: bool = False) -> None:
        super().__init__()
        self.hidden, self.activation, self.dueling = hidden, activation, dueling
        mlp(1, hidden, None, activation, "policy 'double_q'")
        self.qvalue: Any = None
        self.actor: Any = None
        self.exploration_policy: Any = None

    @property
    def built(self) -> bool:
        return self.qvalue is not None

    def build(
        self, encoder: Encoder, distribution: Any, observation_spec: Composite, action_spec: TensorSpec
    ) -> DoubleQNetwork:
        if not isinstance(action_spec, (Categorical, OneHot)):
            raise SpecMismatchError(
                f"policy 'double_q' needs discrete actions (a Categorical spec), got {type(action_spec).__name__}; "
                "use 'deterministic_double_critic' or 'stochastic_double_critic' for continuous actions"
            )
        if self.built:
            raise ComponentArgumentError("policy 'double_q' is already built; make a new one per agent")
        encoder.build(observation_spec)
        n = int(action_spec.space.n)
        net = (
            _Dueling(encoder.out_features, self.hidden, n, self.activation)
            if self.dueling
            else mlp(encoder.out_features, self.hidden, n, self.activation, "policy 'double_q'")
        )
        self.qvalue = TensorDictSequential(
            encoder,
            TensorDictModule(net, encoder.out_keys, ["action_value"]),
            QValueModule(spec=action_spec, action_value_key="action_value"),
        )
        self.actor = self.exploration_policy = self.qvalue
        return self

    def forward(self, tensordict: Any) -> Any:
        return self.qvalue(tensordict)


class _Dueling(nn.Module):
    """``V(s) + A(s, a) - mean_a A(s, a)`` (Wang et al., 2016)."""

    def __init__(self, in_features: int, hidden: Sequence[int], n: int, activation: str) -> None:
        super().__init__()
        self.value = mlp(in_features, hidden, 1, activation, "policy 'double_q'")
        self.advantage = mlp(in_features, hidden, n, activation, "policy 'double_q'")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        adv = self.advantage(features)
        return self.value(features) + adv - adv.mean(-1, keepdim=True)
