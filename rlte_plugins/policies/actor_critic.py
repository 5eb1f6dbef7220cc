"""On-policy actor-critic built from an encoder and a distribution head."""

from __future__ import annotations

import copy
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Composite, TensorSpec

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import Encoder, orthogonal_init
from rlte_plugins.errors import ComponentArgumentError, positive_int


class ActorCritic(nn.Module):
    """Actor-critic for on-policy agents: one encoder shared by actor and critic, or a separate copy each.

    After :meth:`build`, ``actor`` is a TorchRL ``ProbabilisticActor`` writing ``action`` and
    ``action_log_prob`` and ``critic`` writes ``state_value``: what ``ClipPPOLoss`` and ``GAE`` consume.

    Args:
        shared_encoder: actor and critic share the encoder (one trunk) instead of each owning a copy.
        value_init_gain: orthogonal-init gain of the value head.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "gymnasium", env_id="CartPole-v1", num_envs=2)
        >>> policy = rlte_plugins.make("policy", "actor_critic").build(
        ...     rlte_plugins.make("encoder", "mlp"), rlte_plugins.make("distribution", "categorical"),
        ...     env.observation_spec, env.action_spec)
        >>> td = policy.critic(policy.actor(env.reset()))
        >>> sorted(k for k in td.keys() if k in ("action", "action_log_prob", "state_value"))
        ['action', 'action_log_prob', 'state_value']
    """

    def __init__(self, shared_encoder: bool = False, value_init_gain: float = 1.0) -> None:
        super().__init__()
        self.shared_encoder = shared_encoder
        self.value_init_gain = value_init_gain
        self.actor: Any = None
        self.critic: Any = None

    @property
    def built(self) -> bool:
        return self.actor is not None

    def build(
        self,
        encoder: Encoder,
        distribution: DistributionHead,
        observation_spec: Composite,
        action_spec: TensorSpec,
    ) -> ActorCritic:
        """Build encoder and head against the env's specs and assemble actor and critic."""
        if self.built:
            raise ComponentArgumentError("policy 'actor_critic' is already built; make a new one per agent")
        batch_dims = len(observation_spec.shape)
        encoder.build(observation_spec)
        distribution.build(action_spec, encoder.out_features, batch_dims, observation_spec)
        self.actor = distribution.actor(encoder, action_spec)
        critic_encoder = encoder if self.shared_encoder else _fresh_copy(encoder, "value_features")
        self.critic = value_critic(
            critic_encoder, critic_encoder.out_keys[0], encoder.out_features, self.value_init_gain
        )
        self._parts = (encoder, distribution, critic_encoder, self.critic[-1].module)
        return self

    def tensor_path(self) -> TensorActorCritic | None:
        """The same actor and critic on plain tensors (shared parameters), or ``None`` where a part has no such
        path (an encoder reading several keys, a distribution without ``tensor_ops`` or reading more than its
        parameters): then everything runs through the TensorDict modules."""
        if not self.built:
            return None
        encoder, distribution, critic_encoder, value_head = self._parts
        plain = all(
            isinstance(e, Encoder) and type(e).forward is Encoder.forward and e.net is not None
            for e in (encoder, critic_encoder)
        )
        if not (plain and distribution.has_tensor_path() and critic_encoder.in_keys == encoder.in_keys):
            return None
        if distribution.in_keys != encoder.out_keys or distribution.distribution_in_keys() != list(
            distribution.param_keys
        ):
            return None
        critic_net = None if critic_encoder is encoder else critic_encoder.net
        return TensorActorCritic(encoder.in_keys[0], encoder.net, distribution, critic_net, value_head)

    def forward(self, tensordict: Any) -> Any:
        return self.critic(self.actor(tensordict))


class TensorActorCritic:
    """An :class:`ActorCritic`'s networks called on plain tensors: what direct collection acts with and the PPO
    loss scores with, without a TensorDict or a ``torch.distributions`` object per call.

    ``critic_net`` is ``None`` where the critic shares the actor's encoder (its features are computed once).
    """

    def __init__(
        self,
        obs_key: str,
        encoder: nn.Module,
        distribution: DistributionHead,
        critic_net: nn.Module | None,
        value_head: nn.Module,
    ) -> None:
        self.obs_key = obs_key
        self.encoder, self.distribution = encoder, distribution
        self.critic_net, self.value_head = critic_net, value_head

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A sampled action and its log-probability."""
        return self.distribution.sample_tensors(*self.distribution.params(self.encoder(obs)))

    def evaluate(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_prob(action), entropy, value)``: everything the PPO loss reads from the networks."""
        features = self.encoder(obs)
        log_prob, entropy = self.distribution.score_tensors(action, *self.distribution.params(features))
        return log_prob, entropy, self.value(obs, features)

    def value(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """``V(obs)``; ``features`` (the actor's encoder on ``obs``) are reused where the critic shares them."""
        if self.critic_net is not None:
            return self.value_head(self.critic_net(obs))
        return self.value_head(self.encoder(obs) if features is None else features)


def value_critic(trunk: nn.Module, features_key: str, in_features: int, gain: float) -> TensorDictSequential:
    """``trunk`` then a linear value head (orthogonal init) reading ``features_key``, writing ``"state_value"``."""
    head = nn.Linear(in_features, 1)
    orthogonal_init(head, gain)
    return TensorDictSequential(trunk, TensorDictModule(head, [features_key], ["state_value"]))


def _fresh_copy(encoder: Encoder, out_key: str) -> Encoder:
    """A separately initialised copy of ``encoder`` writing ``out_key``."""
    clone = copy.deepcopy(encoder)
    clone.out_keys = [out_key]
    if isinstance(clone, Encoder) and clone.built:
        clone.reinitialize()
    else:
        for module in clone.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return clone


class DecoupledActorCritic(ActorCritic):
    """DAAC (Raileanu and Fergus, 2021): actor and critic with separate encoders, and an advantage head on the
    actor's features that predicts ``A(s, a)`` (written ``"advantage_pred"``), trained to match the GAE
    advantages so the policy's representation learns what matters for the action, not the value. The head is
    linear in the features and the (one-hot) action, as the authors'; ``advantage_hidden`` > 0 adds a ReLU layer.

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=2)
        >>> policy = rlte_plugins.make("policy", "decoupled_actor_critic").build(
        ...     rlte_plugins.make("encoder", "mlp"), rlte_plugins.make("distribution", "categorical"),
        ...     env.observation_spec, env.action_spec)
        >>> policy.advantage(policy.actor(env.reset()))["advantage_pred"].shape
        torch.Size([2, 1])
    """

    def __init__(self, value_init_gain: float = 1.0, advantage_hidden: int = 0) -> None:
        super().__init__(shared_encoder=False, value_init_gain=value_init_gain)
        if not isinstance(advantage_hidden, int) or isinstance(advantage_hidden, bool) or advantage_hidden < 0:
            raise ComponentArgumentError(f"policy 'decoupled_actor_critic': advantage_hidden must be an int >= 0 (0: "
                                         f"a linear head), got {advantage_hidden!r}")  # fmt: skip
        self.advantage_hidden = advantage_hidden
        self.advantage: Any = None

    def build(
        self,
        encoder: Encoder,
        distribution: DistributionHead,
        observation_spec: Composite,
        action_spec: TensorSpec,
    ) -> DecoupledActorCritic:
        super().build(encoder, distribution, observation_spec, action_spec)
        discrete = (
            action_spec.dtype in (torch.int64, torch.int32) and not action_spec.shape[len(observation_spec.shape) :]
        )
        action_dim = int(action_spec.space.n) if discrete else int(action_spec.shape[-1])
        net = _AdvantageNet(encoder.out_features, action_dim, self.advantage_hidden, discrete)
        self.advantage = TensorDictModule(net, [encoder.out_keys[0], "action"], ["advantage_pred"])
        return self


class _AdvantageNet(nn.Module):
    def __init__(self, features: int, action_dim: int, hidden: int, discrete: bool) -> None:
        super().__init__()
        self.discrete, self.action_dim = discrete, action_dim
        # the authors' head is linear in (features, one-hot action); hidden > 0 puts a ReLU layer between
        layers = (
            [nn.Linear(features + action_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1)]
            if hidden
            else [nn.Linear(features + action_dim, 1)]
        )
        self.net = nn.Sequential(*layers)
        orthogonal_init(self.net, 1.0)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            action = nn.functional.one_hot(action.long(), self.action_dim)
        return self.net(torch.cat([features, action.to(features.dtype)], dim=-1))


class RecurrentActorCritic(nn.Module):
    """Actor-critic with an LSTM or GRU after the encoder (TorchRL's ``LSTMModule``/``GRUModule``).

    The recurrent state lives in the TensorDict (``recurrent_state_h``/``_c`` for LSTM, ``recurrent_state`` for
    GRU, and their ``("next", ...)`` values), reset where ``is_init`` is set: add :meth:`env_transforms` (an
    ``InitTracker`` and the state primer) to the env. Collect step by step; train on ``[B, T]`` sequences inside
    ``torchrl.modules.set_recurrent_mode(True)``, which runs the cell over time from the stored initial states.

    Args:
        cell: ``"lstm"`` or ``"gru"``.
        hidden_size: recurrent state size.
        value_init_gain: orthogonal-init gain of the value head.

    Examples:
        >>> import rlte_plugins
        >>> from torchrl.envs import TransformedEnv, Compose
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=2)
        >>> policy = rlte_plugins.make("policy", "recurrent_actor_critic", hidden_size=16).build(
        ...     rlte_plugins.make("encoder", "mlp"), rlte_plugins.make("distribution", "categorical"),
        ...     env.observation_spec, env.action_spec)
        >>> env = TransformedEnv(env, Compose(*policy.env_transforms()))
        >>> env.rollout(3, policy.actor)["next", "recurrent_state_h"].shape
        torch.Size([2, 3, 1, 16])
    """

    CELLS = ("lstm", "gru")

    def __init__(self, cell: str = "lstm", hidden_size: int = 256, value_init_gain: float = 1.0) -> None:
        super().__init__()
        if cell not in self.CELLS:
            raise ComponentArgumentError(f"policy 'recurrent_actor_critic': cell must be 'lstm' or 'gru', got {cell!r}")
        positive_int("policy 'recurrent_actor_critic'", "hidden_size", hidden_size)
        self.cell, self.hidden_size, self.value_init_gain = cell, hidden_size, value_init_gain
        self.actor: Any = None
        self.critic: Any = None
        self.rnn: Any = None
        self.trunk: Any = None

    @property
    def built(self) -> bool:
        return self.actor is not None

    def build(
        self,
        encoder: Encoder,
        distribution: DistributionHead,
        observation_spec: Composite,
        action_spec: TensorSpec,
    ) -> RecurrentActorCritic:
        from torchrl.modules import GRUModule, LSTMModule

        if self.built:
            raise ComponentArgumentError("policy 'recurrent_actor_critic' is already built; make a new one per agent")
        encoder.build(observation_spec)
        rnn_cls = LSTMModule if self.cell == "lstm" else GRUModule
        self.rnn = rnn_cls(
            input_size=encoder.out_features,
            hidden_size=self.hidden_size,
            in_key=encoder.out_keys[0],
            out_key="rnn_features",
        )
        trunk = TensorDictSequential(encoder, self.rnn)
        self.trunk = trunk
        distribution.in_keys = ["rnn_features"]
        distribution.build(action_spec, self.hidden_size, len(observation_spec.shape), observation_spec)
        self.actor = distribution.actor(trunk, action_spec)
        self.critic = value_critic(trunk, "rnn_features", self.hidden_size, self.value_init_gain)
        return self

    def env_transforms(self) -> list[Any]:
        """``InitTracker`` (marks episode starts, where the state resets) and the recurrent-state primer."""
        from torchrl.envs import InitTracker

        if self.rnn is None:
            raise RuntimeError("policy 'recurrent_actor_critic' is not built: call .build(...) first")
        return [InitTracker(), self.rnn.make_tensordict_primer()]

    def forward(self, tensordict: Any) -> Any:
        return self.critic(self.actor(tensordict))
