"""Losses TorchRL does not ship: DrQ-v2's (Yarats et al., 2021) and DrQ's (Kostrikov et al., 2020).

Both are TorchRL ``LossModule`` subclasses: configurable keys in one ``_AcceptedKeys`` dataclass (``set_keys``
renames them and rejects unknown names), ``loss_*`` outputs plus detached diagnostics, prioritized-replay weights
read from ``"priority_weight"`` and the TD error written to ``"td_error"``. Their critics keep target parameters
(``target_critic_params``) that TorchRL's ``SoftUpdate`` averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictParams
from tensordict.utils import NestedKey
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import LossModule

#: where the critic's step leaves what the actor's step reads (one sampled batch goes through both)
FEATURES_KEY = "_drq_features"
AUGMENTED_KEY = "_drq_augmented"


class _DrQBase(LossModule):
    """What both losses share: keys, the TD target's discount, priority weights, the critic's targets."""

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys (``set_keys(reward=...)``).

        Attributes:
            action: the stored action. state_action_value: what the critic writes (``[..., 2]``: both Q heads).
            reward, done, terminated: the transition's (read under ``"next"``). gamma: a per-sample discount
                (an n-step storage's ``gamma ** steps``), used instead of ``gamma`` where present.
            priority: where the TD error is written. priority_weight: prioritized replay's importance weights.
        """

        action: NestedKey = "action"
        state_action_value: NestedKey = "state_action_value"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"
        gamma: NestedKey = "gamma"
        priority: NestedKey = "td_error"
        priority_weight: NestedKey = "priority_weight"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    encoder: Any
    encoder_params: TensorDictParams
    target_encoder_params: TensorDictParams
    critic: TensorDictModule
    critic_params: TensorDictParams
    target_critic_params: TensorDictParams

    def __init__(
        self, encoder: Any, critic_head: TensorDictModule, action_spec: Any, gamma: float, target_encoder: bool = False
    ) -> None:
        super().__init__()
        if target_encoder:  # the module keeps its parameters (the same tensors as encoder_params)
            self.convert_to_functional(encoder, "encoder", create_target_params=True)
        else:
            self.encoder = encoder
        self.convert_to_functional(critic_head, "critic", create_target_params=True)
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        low = action_spec.space.low.reshape(-1, action_spec.shape[-1])[0].float()
        high = action_spec.space.high.reshape(-1, action_spec.shape[-1])[0].float()
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.reduction = "mean"

    def _forward_value_estimator_keys(self, **kwargs: Any) -> None:
        pass  # the TD target is computed here, not by a TorchRL value estimator

    @property
    def observation_keys(self) -> list[NestedKey]:
        return list(self.encoder.in_keys)

    def _encode(self, tensordict: TensorDictBase, next_: bool = False) -> torch.Tensor:
        td = tensordict.get("next") if next_ else tensordict
        return self.encoder(td.select(*self.observation_keys)).get(self.encoder.out_keys[0])

    def _q(self, features: torch.Tensor, action: torch.Tensor, params: Any) -> torch.Tensor:
        td = TensorDict({self.critic.in_keys[0]: features, self.critic.in_keys[1]: action}, features.shape[:-1])
        with params.to_module(self.critic):
            return self.critic(td).get(self.critic.out_keys[0])

    def _bootstrap(self, tensordict: TensorDictBase, next_value: torch.Tensor) -> torch.Tensor:
        """``r + discount * (1 - terminated) * V(s')``: a truncated episode bootstraps, a terminated one does not."""
        keys = self.tensor_keys
        reward = tensordict.get(("next", keys.reward)).reshape(next_value.shape).to(next_value.dtype)
        terminated = tensordict.get(("next", keys.terminated)).reshape(next_value.shape)
        discount = tensordict.get(keys.gamma, None)
        discount = self.gamma if discount is None else discount.reshape(next_value.shape).to(next_value.dtype)
        return reward + discount * (~terminated).to(next_value.dtype) * next_value

    def _weights(self, tensordict: TensorDictBase) -> torch.Tensor | None:
        return self._maybe_get_priority_weight(tensordict)

    def _critic_loss(
        self, tensordict: TensorDictBase, q: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads' squared errors, summed over heads (the authors' ``mse(Q1) + mse(Q2)``); the TD error of the
        worse head is written for prioritized replay."""
        error = q - target.unsqueeze(-1)
        loss = self._reduce_loss(error.pow(2).sum(-1), tensordict=tensordict, weights=self._weights(tensordict))
        td_error = error.detach().abs().amax(-1)
        tensordict.set(self.tensor_keys.priority, td_error)
        return loss, td_error


class DrQV2Loss(_DrQBase):
    """DrQ-v2's loss (Yarats et al., 2021): clipped double Q at noisy target actions; the actor on detached features.

    As in facebookresearch/drqv2, ``drqv2.py``.

    Critic: ``Q1, Q2 = critic(enc(s), a)`` regress on ``r + gamma^n min(Q1', Q2')(enc(s'), mu(enc(s')) + clip(std *
    eps, -c, c))`` with the next features and action taken without gradient. The encoder is trained by this loss
    alone. Actor: ``-min(Q1, Q2)(enc(s), mu(enc(s)) + clip(std * eps, -c, c))`` on detached features, through
    detached critic parameters (only the actor moves). ``std`` follows the exploration schedule: set :attr:`std`
    before each update. Noise is in units of half the action range (DeepMind Control's actions are in [-1, 1]).

    Observations arrive already augmented (DrQ-v2 shifts observation and next observation independently before
    encoding). :meth:`critic_loss` then :meth:`actor_loss` on the same batch is the authors' order (the actor sees
    the updated critic and the features computed before the encoder's step); :meth:`forward` computes both at
    once, for a single optimiser.

    Args:
        encoder: the shared encoder (reads the observation keys, writes features).
        actor_head: features -> ``"action"`` (deterministic).
        critic_head: features, ``"action"`` -> ``"state_action_value"`` ``[..., 2]``.
        action_spec: bounded actions (the noisy actions are clamped into them).
        gamma: discount (a batch's ``"gamma"`` entry, from an n-step storage, replaces it).
        noise_clip: the clip ``c`` of the target and actor noise (0.3).

    Examples:
        >>> import torch, rlte_plugins
        >>> from torchrl.data import Bounded, Composite, Unbounded
        >>> from tensordict import TensorDict
        >>> spec = Bounded(-1.0, 1.0, shape=(2,))
        >>> policy = rlte_plugins.make("policy", "pixel_actor_critic", hidden=[32]).build(
        ...     rlte_plugins.make("encoder", "tassa_cnn", features=None),
        ...     rlte_plugins.make("distribution", "truncated_normal_noise"),
        ...     Composite(pixels=Unbounded((3, 16, 16), dtype=torch.uint8)), spec)
        >>> loss = DrQV2Loss(policy.encoder, policy.actor_head, policy.critic_head, spec)
        >>> flags = torch.zeros(4, 1, dtype=torch.bool)
        >>> batch = TensorDict(pixels=torch.zeros(4, 3, 16, 16, dtype=torch.uint8), action=torch.zeros(4, 2),
        ...     next=TensorDict(pixels=torch.zeros(4, 3, 16, 16, dtype=torch.uint8), reward=torch.ones(4, 1),
        ...                     done=flags, terminated=flags, batch_size=[4]), batch_size=[4])
        >>> sorted(k for k in loss(batch).keys() if k.startswith("loss"))
        ['loss_actor', 'loss_critic']
    """

    def __init__(
        self,
        encoder: Any,
        actor_head: Any,
        critic_head: TensorDictModule,
        action_spec: Any,
        *,
        gamma: float = 0.99,
        noise_clip: float = 0.3,
    ) -> None:
        super().__init__(encoder, critic_head, action_spec, gamma)
        self.actor_head = actor_head
        self.noise_clip = float(noise_clip)
        self.register_buffer("std", torch.ones(()))

    def _noisy_action(self, features: torch.Tensor) -> torch.Tensor:
        """``mu(features)`` plus the clipped noise, clamped into the bounds (the authors' ``dist.sample(clip)``):
        the clamp passes the gradient straight through, as theirs does, so an actor at a bound still learns."""
        td = TensorDict({self.actor_head.in_keys[0]: features}, features.shape[:-1])
        mu = self.actor_head(td).get(self.tensor_keys.action)
        scale = (self.high - self.low) / 2
        noise = (torch.randn_like(mu) * self.std).clamp(-self.noise_clip, self.noise_clip) * scale
        action = mu + noise
        clamped = torch.maximum(torch.minimum(action, self.high), self.low)
        return action - action.detach() + clamped.detach()

    def critic_loss(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The critic's (and encoder's) loss; leaves the detached features for :meth:`actor_loss`."""
        features = self._encode(tensordict)
        with torch.no_grad():
            next_features = self._encode(tensordict, next_=True)
            next_action = self._noisy_action(next_features)
            next_value = self._q(next_features, next_action, self.target_critic_params).amin(-1)
            target = self._bootstrap(tensordict, next_value)
        q = self._q(features, tensordict.get(self.tensor_keys.action), self.critic_params)
        loss, _ = self._critic_loss(tensordict, q, target)
        tensordict.set(FEATURES_KEY, features.detach())
        return TensorDict(loss_critic=loss, critic_q1=q[..., 0].detach().mean(), critic_target_q=target.mean())

    def actor_loss(self, tensordict: TensorDictBase) -> TensorDictBase:
        features = tensordict.get(FEATURES_KEY, None)
        if features is None:
            with torch.no_grad():
                features = self._encode(tensordict)
        action = self._noisy_action(features)
        q = self._q(features, action, self.critic_params.detach()).amin(-1)
        loss = self._reduce_loss(-q, tensordict=tensordict, weights=self._weights(tensordict))
        return TensorDict(loss_actor=loss, actor_std=self.std.clone())

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self.critic_loss(tensordict).update(self.actor_loss(tensordict))


class DrQLoss(_DrQBase):
    """DrQ's loss (Kostrikov et al., 2020): SAC with TD target and critic loss averaged over augmented copies.

    As in denisyarats/drq: the TD target is averaged over ``K`` augmented copies of the next observation and the
    critic loss over ``M`` augmented copies of the observation.

    Critic: ``y = mean_k [r + gamma (min(Q1', Q2')(enc'(aug_k(s')), a'_k) - alpha log pi(a'_k | enc(aug_k(s'))))]``
    with ``a'_k ~ pi``, the target critic using its own target encoder (averaged with ``encoder_tau`` by the
    agent); ``mean_m [(Q1(enc(aug_m(s)), a) - y)^2 + (Q2(...) - y)^2]``. Actor and temperature on the first
    augmented copy with the (updated) encoder's features detached: ``alpha log pi(a|s) - min(Q1, Q2)(s, a)`` and
    ``-alpha (log pi + target_entropy)``.

    Observations arrive raw; ``augmentation`` (e.g. ``random_shift``) makes the copies.

    Args:
        encoder, actor_head, critic_head, action_spec, gamma: as :class:`DrQV2Loss` (``actor_head`` stochastic:
            a ``ProbabilisticActor``).
        augmentation: an rlte augmentation (its ``augment_tensor`` makes each copy).
        k, m: copies in the target and in the critic loss (2 and 2 in the paper).
        alpha_init: the initial temperature (0.1). target_entropy: ``-dim(action)`` by default.
    """

    def __init__(
        self,
        encoder: Any,
        actor_head: Any,
        critic_head: TensorDictModule,
        action_spec: Any,
        augmentation: Any,
        *,
        gamma: float = 0.99,
        k: int = 2,
        m: int = 2,
        alpha_init: float = 0.1,
        target_entropy: float | None = None,
    ) -> None:
        super().__init__(encoder, critic_head, action_spec, gamma, target_encoder=True)
        self.actor_head = actor_head
        self.augmentation = augmentation
        self.k, self.m = int(k), int(m)
        self.log_alpha = torch.nn.Parameter(torch.tensor(float(alpha_init)).log())
        entropy = -float(action_spec.shape[-1]) if target_entropy is None else float(target_entropy)
        self.register_buffer("target_entropy", torch.tensor(entropy))

    def _copies(self, tensordict: TensorDictBase, n: int) -> TensorDictBase:
        """``n`` augmented copies of the observation keys of ``tensordict``, stacked along the batch."""
        keys = self.observation_keys
        obs = tensordict.select(*keys)
        return torch.cat([obs.apply(self.augmentation.augment_tensor) for _ in range(n)], 0)

    def _sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        td = TensorDict({self.actor_head.in_keys[0]: features}, features.shape[:-1])
        with set_exploration_type(ExplorationType.RANDOM):
            dist = self.actor_head.get_dist(td)
            action = dist.rsample()
        return action, dist.log_prob(action)

    def critic_loss(self, tensordict: TensorDictBase) -> TensorDictBase:
        n = tensordict.shape[0]
        with torch.no_grad():
            nxt = self._copies(tensordict.get("next"), self.k)
            online = self.encoder(nxt.clone(False)).get(self.encoder.out_keys[0])
            with self.target_encoder_params.to_module(self.encoder):
                target_features = self.encoder(nxt).get(self.encoder.out_keys[0])
            action, log_prob = self._sample(online)
            alpha = self.log_alpha.exp()
            value = self._q(target_features, action, self.target_critic_params).amin(-1) - alpha * log_prob
            target = self._bootstrap(tensordict, value.reshape(self.k, n).mean(0))
        obs = self._copies(tensordict, self.m)
        features = self.encoder(obs.clone(False)).get(self.encoder.out_keys[0])
        q = self._q(features, tensordict.get(self.tensor_keys.action).repeat(self.m, 1), self.critic_params)
        q = q.reshape(self.m, n, -1)
        error = q - target.unsqueeze(-1)
        weights = self._weights(tensordict)
        loss = self._reduce_loss(error.pow(2).sum(-1).mean(0), tensordict=tensordict, weights=weights)
        tensordict.set(self.tensor_keys.priority, error.detach().abs().amax(-1).amax(0))
        tensordict.set(AUGMENTED_KEY, obs[:n])
        return TensorDict(loss_critic=loss, critic_q1=q[..., 0].detach().mean(), critic_target_q=target.mean())

    def actor_loss(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get(AUGMENTED_KEY, None)
        obs = self._copies(tensordict, 1) if obs is None else obs
        with torch.no_grad():
            features = self.encoder(obs.clone(False)).get(self.encoder.out_keys[0])
        action, log_prob = self._sample(features)
        q = self._q(features, action, self.critic_params.detach()).amin(-1)
        alpha = self.log_alpha.exp()
        weights = self._weights(tensordict)
        loss_actor = self._reduce_loss(alpha.detach() * log_prob - q, tensordict=tensordict, weights=weights)
        loss_alpha = self._reduce_loss(-alpha * (log_prob.detach() + self.target_entropy), tensordict=tensordict,
                                       weights=weights)  # fmt: skip
        return TensorDict(loss_actor=loss_actor, loss_alpha=loss_alpha, alpha=alpha.detach(),
                          entropy=-log_prob.detach().mean())  # fmt: skip

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self.critic_loss(tensordict).update(self.actor_loss(tensordict))
