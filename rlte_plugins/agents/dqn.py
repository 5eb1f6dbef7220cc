"""Deep Q-Network (double DQN by default) on TorchRL's ``DQNLoss``, with epsilon-greedy exploration."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from torchrl.modules import EGreedyModule
from torchrl.objectives import DQNLoss

from rlte_plugins.agents.base import option
from rlte_plugins.agents.off_policy import OffPolicyAgent, OffPolicyConfig
from rlte_plugins.optim.schedules import Schedule


class _DQNLoss(DQNLoss):
    """``DQNLoss`` that also reports ``q_values``, the mean predicted value of the taken actions (CleanRL's
    ``losses/q_values``), from one extra forward pass without gradient."""

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        out = super().forward(tensordict)
        with torch.no_grad():
            values = self.value_network(tensordict.select(*self.value_network.in_keys).clone()).get("action_value")
            action = tensordict.get("action").long().reshape(*values.shape[:-1], 1)
            return out.set("q_values", values.gather(-1, action).mean())


class DQN(OffPolicyAgent):
    """Deep Q-Network (double by default) with epsilon-greedy exploration and a target network.

    CleanRL's classic-control defaults (``dqn.py``): one env, an update every 10 steps on 128 samples from
    10,000 transitions, a hard target copy every 500 frames, epsilon from 1 to 0.05.

    Components: ``encoder`` (default ``mlp``), ``policy`` (``double_q``: add ``dueling=True`` for a dueling
    head), ``storage`` (any replay storage; ``prioritized_replay`` has its priorities set from the TD errors,
    ``nstep_replay`` gives n-step targets) and an optional intrinsic ``reward``.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "dqn", env="torch_cartpole", learning_starts=20)
        >>> agent = agent.set(storage={"name": "replay", "capacity": 1000, "batch_size": 16})
        >>> agent.train(100, progress=False)["frames"]
        100
    """

    name = "dqn"
    action_kind = "discrete"
    slots: ClassVar[dict[str, Any]] = {
        "encoder": {"name": "mlp", "num_cells": [120, 84]},
        "policy": {"name": "double_q", "hidden": []},
        "storage": {"name": "replay", "capacity": 10_000, "batch_size": 128},
        "reward": None,
    }

    @dataclasses.dataclass
    class Config(OffPolicyConfig):
        num_steps: int = option(10, "steps per env per iteration (CleanRL's train_frequency)", low=1)
        utd_ratio: float = option(0.1, "gradient updates per frame once learning has started (CleanRL: one every "
                                  "10 steps)", low=0.0, low_open=True)  # fmt: skip
        lr: float | str = option(2.5e-4, "learning rate: a number or 'linear(start, end, frames)'", schedule=True,
                                 types=(int, float, str), low=0.0)  # fmt: skip
        target_update_every: int = option(50, "gradient steps between target updates (50 x 10 steps = 500 frames)",
                                          low=1)  # fmt: skip
        epsilon: float | str = option(
            "linear(1.0, 0.05, 250000)", "exploration probability: a number or 'linear(start, end, frames)'",
            schedule=True, types=(int, float, str), low=0.0, high=1.0,
        )  # fmt: skip
        double: bool = option(True, "double DQN: the online network picks the next action, the target scores it")
        loss: str = option("l2", "TD loss: l2, l1 or smooth_l1 (Huber)", choices=("l2", "l1", "smooth_l1"))

    loss_metrics: ClassVar[dict[str, str]] = {"loss": "losses/td_loss", "q_values": "losses/q_values"}

    def make_loss(self) -> _DQNLoss:
        loss = _DQNLoss(self.policy.qvalue, delay_value=True, double_dqn=self.config.double,
                        loss_function=self.config.loss, action_space=self.action_spec)  # fmt: skip
        loss.make_value_estimator(gamma=self.config.gamma)
        return loss

    def make_exploration(self) -> EGreedyModule:
        self._epsilon = Schedule.parse(self.config.epsilon, self.owner)
        return EGreedyModule(self.action_spec, eps_init=1.0, eps_end=0.0).to(self.device)

    def before_collect(self, frames: int) -> None:
        self.exploration.eps.fill_(float(self._epsilon(frames)))

    def priority(self, sample: TensorDictBase) -> torch.Tensor:
        return sample.get("td_error").sqrt()  # DQNLoss writes the squared TD error
