"""Phasic Policy Gradient's network layout: separate policy and value networks, and an auxiliary value head on
the policy network's features."""

from __future__ import annotations

from typing import Any

from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Composite, TensorSpec

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import Encoder, orthogonal_init
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.policies.actor_critic import ActorCritic


class PhasicActorCritic(ActorCritic):
    """Actor and critic with separate encoders, plus an auxiliary value head on the actor's features (PPG).

    The network layout of Cobbe et al. (2021), "Phasic Policy Gradient" (the reference code's default ``dual``
    architecture; its ``detach`` and ``shared`` ones share one encoder). ``actor`` and ``critic`` are
    :class:`~rlte_plugins.policies.actor_critic.ActorCritic`'s (the critic owns a separately initialised copy of
    the encoder), so PPO's loss and its plain-tensor path train them unchanged in the policy phase; ``aux_value``
    reads the actor's features (the encoder's output key) and writes ``"aux_state_value"``. Only PPG's auxiliary
    phase trains that head, and through it the actor's encoder: the value error shapes the policy's features while
    a behaviour-cloning term holds the policy itself in place.

    Args:
        value_init_gain: orthogonal-init gain of the value head.
        aux_value_init_gain: orthogonal-init gain of the auxiliary value head (the reference initialises every
            head with rows of norm 0.1, what a gain of 0.1 gives).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=2)
        >>> policy = rlte_plugins.make("policy", "phasic_actor_critic").build(
        ...     rlte_plugins.make("encoder", "mlp"), rlte_plugins.make("distribution", "categorical"),
        ...     env.observation_spec, env.action_spec)
        >>> td = policy.critic(policy.aux_value(policy.actor(env.reset())))
        >>> [td[k].shape for k in ("action", "state_value", "aux_state_value")]
        [torch.Size([2]), torch.Size([2, 1]), torch.Size([2, 1])]
    """

    def __init__(self, value_init_gain: float = 1.0, aux_value_init_gain: float = 1.0) -> None:
        super().__init__(shared_encoder=False, value_init_gain=value_init_gain)
        for name, gain in (("value_init_gain", value_init_gain), ("aux_value_init_gain", aux_value_init_gain)):
            if isinstance(gain, bool) or not isinstance(gain, (int, float)) or gain <= 0:
                raise ComponentArgumentError(f"policy 'phasic_actor_critic': {name} must be a positive number, "
                                             f"got {gain!r}")  # fmt: skip
        self.aux_value_init_gain = aux_value_init_gain
        self.aux_value: Any = None

    def build(
        self,
        encoder: Encoder,
        distribution: DistributionHead,
        observation_spec: Composite,
        action_spec: TensorSpec,
    ) -> PhasicActorCritic:
        """Build actor and critic (:meth:`ActorCritic.build`), then the auxiliary value head on the actor's
        features."""
        if self.built:
            raise ComponentArgumentError("policy 'phasic_actor_critic' is already built; make a new one per agent")
        super().build(encoder, distribution, observation_spec, action_spec)
        head = nn.Linear(encoder.out_features, 1)
        orthogonal_init(head, self.aux_value_init_gain)
        self.aux_value = TensorDictModule(head, [encoder.out_keys[0]], ["aux_state_value"])
        return self
