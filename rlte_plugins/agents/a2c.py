"""Advantage Actor-Critic (synchronous A2C) on TorchRL's ``A2CLoss``."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torchrl.objectives import A2CLoss

from rlte_plugins.agents.base import option
from rlte_plugins.agents.on_policy import OnPolicyAgent, OnPolicyConfig


class A2C(OnPolicyAgent):
    """Synchronous advantage actor-critic: one gradient step per batch of short rollouts.

    Stable-Baselines3's defaults (8 envs x 5 steps, lr 7e-4, value weight 0.5, no advantage normalisation, GAE
    lambda 1: n-step returns), with Adam where Stable-Baselines3 uses RMSprop.
    Components as :class:`~rlte_plugins.agents.ppo.PPO`.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "a2c", env="torch_cartpole", num_envs=4)
        >>> agent.train(40, progress=False)["frames"]
        40
    """

    name = "a2c"

    @dataclasses.dataclass
    class Config(OnPolicyConfig):
        num_envs: int = option(8, "parallel envs when the agent makes the env", low=1)
        num_steps: int = option(5, "steps per env per batch", low=1)
        epochs: int = option(1, "passes over each batch", low=1)
        num_minibatches: int = option(1, "minibatches per pass", low=1)
        lr: float | str = option(7e-4, "learning rate: a number or 'linear(start, end, frames)'", schedule=True,
                                 types=(int, float, str), low=0.0)  # fmt: skip
        anneal_lr: bool = option(False, "anneal a numeric lr linearly to 0 over train()'s total_frames")
        gae_lambda: float = option(1.0, "GAE lambda (1: n-step returns)", low=0.0, high=1.0)
        entropy_coef: float | str = option(0.0, "entropy bonus weight: a number or 'linear(start, end, frames)'",
                                           schedule=True, types=(int, float, str), low=0.0)  # fmt: skip
        value_coef: float = option(0.5, "weight of the squared value error", low=0.0)
        normalize_advantage: bool = option(False, "normalise advantages over each minibatch")
        critic_loss: str = option("l2", "value loss: l2, l1 or smooth_l1", choices=("l2", "l1", "smooth_l1"))

    loss_metrics: ClassVar[dict[str, str]] = {
        "loss_objective": "losses/policy_loss",
        "loss_critic": "losses/value_loss",
        "entropy": "losses/entropy",
    }

    def make_loss(self) -> A2CLoss:
        c = self.config
        # entropy_coeff is set from the entropy_coef schedule before every update; a zero here would switch the
        # entropy term (and its logged value) off for good
        return A2CLoss(
            self.policy.actor, self.policy.critic, entropy_coeff=1.0, critic_coeff=c.value_coef,
            loss_critic_type=c.critic_loss, functional=False,
        )  # fmt: skip
