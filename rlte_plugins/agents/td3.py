"""TD3 (Fujimoto et al., 2018) on TorchRL's ``TD3Loss``: clipped double Q, target policy smoothing and delayed
policy and target updates."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives import TD3Loss

from rlte_plugins.agents.base import option
from rlte_plugins.agents.off_policy import OffPolicyAgent, OffPolicyConfig, UpdateGroup, trained_parameters


class TD3(OffPolicyAgent):
    """Twin delayed DDPG: clipped double Q, target policy smoothing, delayed actor and target updates.

    The critic pair regresses on ``r + gamma min_i Q'_i(s', mu'(s') + clip(noise))``; the actor ascends ``Q_1(s,
    mu(s))`` every ``policy_delay`` critic steps, when the targets are averaged too.

    CleanRL's ``td3_continuous_action.py`` defaults: 256x256 MLPs, Adam 3e-4, batch 256 from 1M transitions,
    ``tau`` 0.005, exploration noise 0.1, target policy noise 0.2 clipped at 0.5 (both in units of half the action
    range, as CleanRL scales them), policy delay 2, 25k random frames first.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "td3", env="torch_pendulum", learning_starts=64, random_frames=64)
        >>> agent = agent.set(storage={"name": "replay", "capacity": 1000, "batch_size": 32})
        >>> agent.train(128, progress=False)["frames"]
        128
    """

    name = "td3"
    action_kind = "continuous"
    slots: ClassVar[dict[str, Any]] = {
        "encoder": "identity",
        "policy": {"name": "deterministic_double_critic", "hidden": [256, 256], "shared_encoder": False},
        "distribution": {"name": "normal_noise", "std": 0.1},
        "storage": {"name": "replay", "capacity": 1_000_000, "batch_size": 256},
        "augmentation": None,
        "reward": None,
    }

    @dataclasses.dataclass
    class Config(OffPolicyConfig):
        learning_starts: int = option(25_000, "frames collected before the first gradient step", low=0)
        random_frames: int = option(25_000, "frames acted with uniformly random actions first", low=0)
        lr: float | str = option(3e-4, "learning rate of actor and critics: a number or 'linear(start, end, "
                                 "frames)'", schedule=True, types=(int, float, str), low=0.0)  # fmt: skip
        tau: float = option(0.005, "target update weight (Polyak averaging)", low=0.0, high=1.0, low_open=True)
        policy_delay: int = option(2, "critic steps per actor step (and per target update)", low=1)
        target_update_every: int = option(2, "gradient steps between target updates (TD3: the policy delay)", low=1)
        policy_noise: float = option(0.2, "std of the target policy's smoothing noise (half action ranges)", low=0.0)
        noise_clip: float = option(0.5, "clip of the smoothing noise (half action ranges)", low=0.0)

    def make_loss(self) -> TD3Loss:
        c = self.config
        spec = self.action_spec
        # CleanRL scales both by the action scale (half the range): Pendulum's torque range is [-2, 2]
        scale = float(((spec.space.high - spec.space.low) / 2).mean())
        loss = TD3Loss(self.policy.actor, self.policy.qvalue, action_spec=spec,
                       num_qvalue_nets=self.policy.num_qvalue_nets, policy_noise=c.policy_noise * scale,
                       noise_clip=c.noise_clip * scale, loss_function="l2")  # fmt: skip
        loss.make_value_estimator(gamma=c.gamma)
        return loss

    def update_groups(self) -> list[UpdateGroup]:
        loss, c = self.loss_module, self.config
        critic, actor = trained_parameters(loss.qvalue_network_params), trained_parameters(loss.actor_network_params)
        return [
            UpdateGroup("critic", critic, self._critic_loss, c.lr, {"loss_qvalue": "losses/qf_loss",
                                                                    "pred_value": "losses/qf1_values"}),
            UpdateGroup("actor", actor, self._actor_loss, c.lr, {"loss_actor": "losses/actor_loss"},
                        every=c.policy_delay),
        ]  # fmt: skip

    def _critic_loss(self, sample: TensorDictBase) -> TensorDictBase:
        loss, meta = self.loss_module.value_loss(sample)
        sample.set("td_error", meta["td_error"].detach().max(0)[0])  # squared errors, the larger critic's
        return TensorDict(loss_qvalue=loss, pred_value=meta["pred_value"].mean())

    def _actor_loss(self, sample: TensorDictBase) -> TensorDictBase:
        return TensorDict(loss_actor=self.loss_module.actor_loss(sample)[0])

    def priority(self, sample: TensorDictBase) -> torch.Tensor:
        return super().priority(sample).sqrt()
