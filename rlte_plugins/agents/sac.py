"""Soft actor-critic on TorchRL's losses: ``sac`` (Haarnoja et al., 2018, ``SACLoss``) for continuous actions and
``sac_discrete`` (Christodoulou, 2019, ``DiscreteSACLoss``), both with a learned temperature."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from torchrl.objectives import DiscreteSACLoss, SACLoss

from rlte_plugins.agents.base import option
from rlte_plugins.agents.off_policy import OffPolicyAgent, OffPolicyConfig

_SAC_METRICS = {"loss_qvalue": "losses/qf_loss", "loss_actor": "losses/actor_loss", "loss_alpha": "losses/alpha_loss",
                "alpha": "losses/alpha", "entropy": "losses/entropy"}  # fmt: skip


@dataclasses.dataclass
class SACConfig(OffPolicyConfig):
    """SAC's options (Haarnoja et al.'s defaults)."""

    learning_starts: int = option(5_000, "frames collected before the first gradient step", low=0)
    random_frames: int = option(5_000, "frames acted with uniformly random actions first", low=0)
    lr: float | str = option(3e-4, "learning rate of actor, critics and temperature: a number or 'linear(start, "
                             "end, frames)'", schedule=True, types=(int, float, str), low=0.0)  # fmt: skip
    tau: float = option(0.005, "target update weight (Polyak averaging)", low=0.0, high=1.0, low_open=True)
    alpha_init: float = option(1.0, "initial temperature", low=0.0, low_open=True)
    fixed_alpha: bool = option(False, "keep the temperature at alpha_init instead of learning it")
    target_entropy: float | str = option("auto", "entropy the temperature steers to ('auto': the usual heuristic)",
                                         types=(int, float, str))  # fmt: skip

    def _entropy(self, owner: str) -> float | str:
        if isinstance(self.target_entropy, str) and self.target_entropy != "auto":
            from rlte_plugins.errors import ComponentArgumentError

            raise ComponentArgumentError(f"{owner}: target_entropy must be a number or 'auto', got "
                                         f"{self.target_entropy!r}")  # fmt: skip
        return self.target_entropy


class SAC(OffPolicyAgent):
    """Soft actor-critic for continuous actions: a tanh-squashed Gaussian actor, twin Q critics with targets, and a
    temperature learned towards ``target_entropy`` (``-dim(action)``).

    Defaults follow Haarnoja et al. (2018) and CleanRL's ``sac_continuous_action.py``: 256x256 MLPs (separate for
    actor and critics), Adam 3e-4, batch 256 from 1M transitions, ``tau`` 0.005, one update per frame after 5k
    random frames.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "sac", env="torch_pendulum", learning_starts=64, random_frames=64)
        >>> agent = agent.set(storage={"name": "replay", "capacity": 1000, "batch_size": 32})
        >>> agent.train(128, progress=False)["frames"]
        128
    """

    name = "sac"
    action_kind = "continuous"
    slots: ClassVar[dict[str, Any]] = {
        "encoder": "identity",
        "policy": {"name": "stochastic_double_critic", "hidden": [256, 256], "shared_encoder": False},
        "distribution": "squashed_normal",
        "storage": {"name": "replay", "capacity": 1_000_000, "batch_size": 256},
        "augmentation": None,
        "reward": None,
    }
    Config: ClassVar[type] = SACConfig
    loss_metrics: ClassVar[dict[str, str]] = _SAC_METRICS

    def make_loss(self) -> SACLoss:
        c = self.config
        loss = SACLoss(self.policy.actor, self.policy.qvalue, num_qvalue_nets=self.policy.num_qvalue_nets,
                       loss_function="l2", alpha_init=c.alpha_init, fixed_alpha=c.fixed_alpha,
                       action_spec=self.action_spec, target_entropy=c._entropy(self.owner))  # fmt: skip
        loss.make_value_estimator(gamma=c.gamma)
        return loss


class DiscreteSAC(OffPolicyAgent):
    """Soft actor-critic for discrete actions (Christodoulou, 2019): a categorical actor, twin critics that score
    every action, expectations over actions in closed form, and a learned temperature steered to ``0.98`` of the
    largest entropy (``target_entropy_weight``).

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "sac_discrete", env="torch_cartpole", learning_starts=64)
        >>> agent = agent.set(storage={"name": "replay", "capacity": 1000, "batch_size": 32})
        >>> agent.train(128, progress=False)["frames"]
        128
    """

    name = "sac_discrete"
    action_kind = "discrete"
    slots: ClassVar[dict[str, Any]] = {
        "encoder": "identity",
        "policy": {"name": "stochastic_double_critic", "hidden": [256, 256], "shared_encoder": False},
        "distribution": "categorical",
        "storage": {"name": "replay", "capacity": 1_000_000, "batch_size": 256},
        "augmentation": None,
        "reward": None,
    }
    loss_metrics: ClassVar[dict[str, str]] = _SAC_METRICS

    @dataclasses.dataclass
    class Config(SACConfig):
        random_frames: int = option(0, "frames acted with uniformly random actions first", low=0)
        target_entropy_weight: float = option(0.98, "'auto' target entropy: this fraction of log(num_actions)",
                                              low=0.0, high=1.0)  # fmt: skip

    def make_loss(self) -> DiscreteSACLoss:
        c = self.config
        spec = self.action_spec
        loss = DiscreteSACLoss(self.policy.actor, self.policy.qvalue, action_space=spec,
                               num_actions=int(spec.space.n), num_qvalue_nets=self.policy.num_qvalue_nets,
                               loss_function="l2", alpha_init=c.alpha_init, fixed_alpha=c.fixed_alpha,
                               target_entropy_weight=c.target_entropy_weight,
                               target_entropy=c._entropy(self.owner))  # fmt: skip
        loss.make_value_estimator(gamma=c.gamma)
        return loss
