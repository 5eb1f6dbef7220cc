"""Proximal Policy Optimization: TorchRL's ``ClipPPOLoss`` on the on-policy agent (both collection strategies),
with the ``fast_ppo`` (rl8's defaults) and ``ppo_lstm`` presets."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.utils import _clip_value_loss, distance_loss

from rlte_plugins.agents.base import option
from rlte_plugins.agents.on_policy import OnPolicyAgent, OnPolicyConfig


class PPOLoss(ClipPPOLoss):
    """``ClipPPOLoss`` that also reports ``approx_kl``: Schulman's non-negative k3 estimator ``(r - 1) - log r``
    (CleanRL's ``approx_kl``), beside TorchRL's k1 ``kl_approx`` (CleanRL's ``old_approx_kl``).

    Through :meth:`use_tensor_path` (the agent's call where the policy has a plain-tensor path), the same loss is
    computed on plain tensors: one pass through the networks, no TensorDict plumbing or distribution object per
    call (tests/agents/test_tensor_path.py checks the outputs and gradients against ``ClipPPOLoss``'s).
    """

    tensor_policy: Any = None
    #: the methods whose TorchRL behaviour the plain-tensor path reproduces: a subclass overriding one of them
    #: keeps the TensorDict path, where its override runs
    _TENSOR_PATH_METHODS = ("forward", "_forward_tensors", "_log_weight", "loss_critic", "_critic_loss_inputs",
                            "_get_entropy", "_weighted_loss_entropy")  # fmt: skip

    def use_tensor_path(self, policy: Any) -> bool:
        """Score with ``policy`` (a :class:`~rlte_plugins.policies.actor_critic.TensorActorCritic`) on plain tensors
        where this loss computes exactly what that path does: ``ClipPPOLoss``'s default options (entropy bonus
        with one coefficient, mean reduction, no advantage normalisation inside the loss, no separate or
        functional losses, no importance-ratio cap) and none of :attr:`_TENSOR_PATH_METHODS` overridden.
        Returns whether it does."""
        cls = type(self)
        plain = (
            self.entropy_bonus and self.reduction == "mean" and not self.normalize_advantage
            and self._entropy_coeff_map is None and not self.separate_losses and not self.functional
            and self.max_importance_ratio is None and self.critic_coeff is not None
            and all(getattr(cls, name) is getattr(PPOLoss, name) for name in self._TENSOR_PATH_METHODS)
        )  # fmt: skip
        self.tensor_policy = policy if plain else None
        return self.tensor_policy is not None

    def _log_weight(self, tensordict: TensorDictBase, adv_shape: torch.Size) -> Any:
        out = super()._log_weight(tensordict, adv_shape)
        self._last_log_weight = out[0].detach()
        return out

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.tensor_policy is not None:
            return self._forward_tensors(tensordict)
        out = super().forward(tensordict)
        log_ratio = self._last_log_weight.float()
        return out.set("approx_kl", ((log_ratio.exp() - 1) - log_ratio).mean())

    def _forward_tensors(self, td: TensorDictBase) -> TensorDictBase:
        policy = self.tensor_policy
        log_prob, entropy, value = policy.evaluate(td.get(policy.obs_key), td.get(self.tensor_keys.action))
        return self.tensor_terms(td, log_prob, entropy, value)

    def tensor_terms(
        self, td: TensorDictBase, log_prob: torch.Tensor, entropy: torch.Tensor, value: torch.Tensor | None
    ) -> TensorDictBase:
        """The loss's terms from the networks' outputs on ``td``'s rows (the plain-tensor path): the clipped
        objective, the entropy bonus and, unless ``value`` is ``None`` (an agent training its value network in a
        phase of its own), the clipped value loss."""
        keys = self.tensor_keys
        advantage = td.get(keys.advantage)
        old_log_prob = td.get(keys.sample_log_prob)
        log_weight = (log_prob - old_log_prob).unsqueeze(-1)
        clipped = log_weight.clamp(*self._clip_bounds)
        gain = torch.minimum(log_weight.exp() * advantage, clipped.exp() * advantage)
        out = {
            "loss_objective": -gain.mean(),
            "clip_fraction": (clipped != log_weight).to(log_weight.dtype).mean(),
            "kl_approx": (old_log_prob - log_prob).detach().mean(),
            "entropy": entropy.detach().mean(),
            "loss_entropy": (-self.entropy_coeff * entropy).mean(),
        }
        if value is not None:
            out.update(self.value_terms(td, value))
        log_ratio = log_weight.detach().float()
        out["approx_kl"] = ((log_ratio.exp() - 1) - log_ratio).mean()
        return TensorDict._new_unsafe(out, batch_size=torch.Size([]))

    def value_terms(self, td: TensorDictBase, value: torch.Tensor, coeff: Any = None) -> dict[str, torch.Tensor]:
        """``loss_critic`` (weighted by ``coeff``, default ``critic_coeff``; clipped around the stored value as
        ``clip_value`` asks) and ``value_clip_fraction`` for ``value`` predicted on ``td``'s rows."""
        keys = self.tensor_keys
        target = td.get(keys.value_target)
        loss_value = distance_loss(target, value, loss_function=self.loss_critic_type)
        out = {}
        if self.clip_value is not None:  # a buffer: its truth value would read it back from the device
            loss_value, out["value_clip_fraction"] = _clip_value_loss(
                td.get(keys.value), value, self.clip_value, target, loss_value, self.loss_critic_type
            )
        out["loss_critic"] = ((self.critic_coeff if coeff is None else coeff) * loss_value).mean()
        return out


class PPO(OnPolicyAgent):
    """Proximal Policy Optimization: clipped objective, GAE, truncation bootstrapped; CleanRL's defaults.

    CleanRL's ``ppo.py`` defaults: 4 envs x 128 steps, 4 epochs of 4 minibatches, Adam at 2.5e-4 annealed to 0,
    gamma 0.99, GAE lambda 0.95, clip 0.2 on the ratio and the value, entropy 0.01, value weight 0.25 (its 0.5 on
    half the squared error), gradient norm 0.5, advantages normalised per minibatch.

    Components: ``encoder`` (default ``mlp``), ``policy`` (``actor_critic``; ``recurrent_actor_critic`` with
    ``recurrent=``), ``distribution`` (matching the action space) and an optional intrinsic ``reward``. Presets:
    ``fast_ppo`` (rl8's defaults, for envs batched on the training device) and ``ppo_lstm``.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "ppo", env="CartPole-v1", num_envs=2, num_steps=16, seed=0)
        >>> agent.set(encoder="mlp").train(64, progress=False)["frames"]
        64
        >>> len(agent.evaluate(episodes=3))
        3
    """

    name = "ppo"

    @dataclasses.dataclass
    class Config(OnPolicyConfig):
        clip_epsilon: float = option(0.2, "PPO ratio clip (start of the schedule when anneal_clip)", low=0.0)
        anneal_clip: bool = option(False, "anneal the clip range linearly to 0 over train()'s total_frames")
        clip_value: float | None = option(0.2, "clip the value update around the old value (null: off)",
                                          types=(int, float, type(None)), low=0.0, low_open=True)  # fmt: skip
        critic_loss: str = option("l2", "value loss: l2, l1 or smooth_l1", choices=("l2", "l1", "smooth_l1"))

    loss_metrics: ClassVar[dict[str, str]] = {
        "loss_objective": "losses/policy_loss",
        "loss_critic": "losses/value_loss",
        "entropy": "losses/entropy",
        "approx_kl": "losses/approx_kl",
        "kl_approx": "losses/old_approx_kl",
        "clip_fraction": "losses/clipfrac",
    }

    def make_loss(self) -> PPOLoss:
        c = self.config
        # entropy_coeff is set from the entropy_coef schedule before every update; a zero here would switch the
        # entropy term (and its logged value) off for good
        return PPOLoss(
            self.policy.actor, self.policy.critic, clip_epsilon=c.clip_epsilon, entropy_coeff=1.0,
            critic_coeff=c.value_coef, loss_critic_type=c.critic_loss, normalize_advantage=False,
            clip_value=c.clip_value, functional=False,
        )  # fmt: skip

    def before_update(self, frames: int) -> None:
        if self.config.anneal_clip and self.total_frames:
            self.loss_module.clip_epsilon.fill_(self.config.clip_epsilon * max(0.0, 1.0 - frames / self.total_frames))


#: rl8's defaults (``rl8.AlgorithmConfig``): 8192 envs x 32 steps, the whole batch as one minibatch, separate
#: 256x256 ReLU actor and critic (the default policy's); what ``rlte bench throughput`` compares at. The policy slot
#: stays automatic, so that recurrent= still gets the recurrent policy
fast_ppo = PPO.make_preset(
    "fast_ppo",
    "PPO with rl8's defaults, for envs batched on the training device (direct collection).",
    components={"encoder": {"name": "mlp", "num_cells": [256, 256], "activation": "relu"}},
    env="dummy_discrete", num_envs=8192, num_steps=32, epochs=4, num_minibatches=1, lr=3e-4, anneal_lr=False,
    gamma=0.95, gae_lambda=0.95, entropy_coef=0.0, value_coef=1.0, max_grad_norm=5.0, scale_rewards=True,
    clip_value=None,
)  # fmt: skip

ppo_lstm = PPO.make_preset(
    "ppo_lstm",
    "PPO with an LSTM policy (truncated BPTT over stored states; recurrent= sets cell, sizes, burn-in).",
    recurrent={"cell": "lstm", "hidden_size": 128},
)
