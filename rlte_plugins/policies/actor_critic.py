"""On-policy actor-critic built from an encoder and a distribution head."""

from __future__ import annotations

import copy
from typing import Any

from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Composite, TensorSpec

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import Encoder, orthogonal_init
from rlte_plugins.errors import ComponentArgumentError


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
        value_head = nn.Linear(encoder.out_features, 1)
        orthogonal_init(value_head, self.value_init_gain)
        self.critic = TensorDictSequential(
            critic_encoder, TensorDictModule(value_head, critic_encoder.out_keys, ["state_value"])
        )
        return self

    def forward(self, tensordict: Any) -> Any:
        return self.critic(self.actor(tensordict))


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
