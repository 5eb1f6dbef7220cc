"""DDPG (Lillicrap et al., 2016) on TorchRL's ``DDPGLoss``: a deterministic actor, one Q critic, target copies of
both averaged with ``tau``, Gaussian exploration noise."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import DDPGLoss

from rlte_plugins.agents.base import option
from rlte_plugins.agents.off_policy import OffPolicyAgent, OffPolicyConfig, UpdateGroup, trained_parameters


class DDPG(OffPolicyAgent):
    """Deep deterministic policy gradient: a critic regressed on its targets' bootstrap, an actor ascending it.

    The critic regresses on ``r + gamma Q'(s', mu'(s'))``, the actor ascends ``Q(s, mu(s))``.

    CleanRL's ``ddpg_continuous_action.py`` defaults: 256x256 MLPs for actor and critic (no shared encoder), Adam
    3e-4, batch 256 from 1M transitions, ``tau`` 0.005, Gaussian noise 0.1, 25k random frames first. The actor
    steps every ``policy_delay`` critic steps (1: the paper; CleanRL uses 2).

    Components: ``encoder`` (default ``identity``: the MLPs are the policy's), ``policy``
    (``deterministic_double_critic`` with one critic), ``distribution`` (an exploration noise: ``normal_noise``,
    ``ornstein_uhlenbeck_noise``...), ``storage``, optional ``augmentation`` and ``reward``.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "ddpg", env="torch_pendulum", learning_starts=64, random_frames=64)
        >>> agent = agent.set(storage={"name": "replay", "capacity": 1000, "batch_size": 32})
        >>> agent.train(128, progress=False)["frames"]
        128
    """

    name = "ddpg"
    action_kind = "continuous"
    slots: ClassVar[dict[str, Any]] = {
        "encoder": "identity",
        "policy": {"name": "deterministic_double_critic", "hidden": [256, 256], "shared_encoder": False,
                   "num_qvalue_nets": 1},
        "distribution": {"name": "normal_noise", "std": 0.1},
        "storage": {"name": "replay", "capacity": 1_000_000, "batch_size": 256},
        "augmentation": None,
        "reward": None,
    }  # fmt: skip

    @dataclasses.dataclass
    class Config(OffPolicyConfig):
        learning_starts: int = option(25_000, "frames collected before the first gradient step", low=0)
        random_frames: int = option(25_000, "frames acted with uniformly random actions first", low=0)
        lr: float | str = option(3e-4, "learning rate of actor and critic: a number or 'linear(start, end, frames)'",
                                 schedule=True, types=(int, float, str), low=0.0)  # fmt: skip
        tau: float = option(0.005, "target update weight (Polyak averaging)", low=0.0, high=1.0, low_open=True)
        policy_delay: int = option(1, "critic steps per actor step", low=1)

    def make_loss(self) -> DDPGLoss:
        loss = DDPGLoss(self.policy.actor, self.policy.qvalue, loss_function="l2", delay_actor=True,
                        delay_value=True)  # fmt: skip
        loss.make_value_estimator(gamma=self.config.gamma)
        return loss

    def update_groups(self) -> list[UpdateGroup]:
        loss = self.loss_module
        critic, actor = trained_parameters(loss.value_network_params), trained_parameters(loss.actor_network_params)
        c = self.config
        return [
            UpdateGroup("critic", critic, self._critic_loss, c.lr, {"loss_value": "losses/qf1_loss",
                                                                    "pred_value": "losses/qf1_values"}),
            UpdateGroup("actor", actor, self._actor_loss, c.lr, {"loss_actor": "losses/actor_loss"},
                        every=c.policy_delay),
        ]  # fmt: skip

    def _critic_loss(self, sample: TensorDictBase) -> TensorDictBase:
        loss, meta = self.loss_module.loss_value(sample)
        return TensorDict(loss_value=loss, pred_value=meta["pred_value"].mean())

    def _actor_loss(self, sample: TensorDictBase) -> TensorDictBase:
        return TensorDict(loss_actor=self.loss_module.loss_actor(sample)[0])

    def priority(self, sample: TensorDictBase) -> torch.Tensor:
        return super().priority(sample).sqrt()  # DDPGLoss writes the squared TD error
