"""Decoupled Advantage Actor-Critic (DAAC, Raileanu and Fergus 2021) and DrDAAC (DAAC with DrAC's regularisers):
the policy network learns the PPO objective and to predict the advantage, never the value; a separate value network
is trained in a phase of its own, more epochs and less often."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase

from rlte_plugins.agents.base import option
from rlte_plugins.agents.drac import ProcgenConfig, augmentation_terms, check_augmented
from rlte_plugins.agents.ppo import PPO
from rlte_plugins.errors import ComponentArgumentError

#: The value-phase and advantage-loss settings the DAAC authors found best per Procgen game (``hyperparams.py`` of
#: their code): ``value_epochs``, ``value_freq``, ``adv_coef``. Games not listed use the defaults (9, 1, 0.25).
BEST_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "plunder": {"value_epochs": 1, "value_freq": 8, "adv_coef": 0.3},
    "chaser": {"value_epochs": 1, "value_freq": 1, "adv_coef": 0.15},
    "miner": {"value_epochs": 9, "value_freq": 32, "adv_coef": 0.25},
    "climber": {"value_epochs": 9, "value_freq": 1, "adv_coef": 0.05},
    "bigfish": {"value_epochs": 9, "value_freq": 32, "adv_coef": 0.05},
    "dodgeball": {"value_epochs": 9, "value_freq": 32, "adv_coef": 0.25},
}


class DAAC(PPO):
    """DAAC (Raileanu and Fergus, 2021, "Decoupling Value and Policy for Generalization in Reinforcement Learning").

    Two networks (``decoupled_actor_critic``): the policy network's loss is PPO's clipped objective, the entropy
    bonus and ``adv_coef`` times the squared error of its advantage head ``A(s, a)`` against the (normalised) GAE
    advantage; it never sees the value loss. The value network is trained alone, ``value_epochs`` passes every
    ``value_freq`` batches (the first batch included), on PPO's clipped value loss. One optimiser holds both
    networks; each phase steps only the network it differentiates (Adam keeps per-parameter state, and the
    gradient-norm clip covers the phase's own gradients, as the authors' two optimisers do).

    Defaults are the paper's Procgen settings: 64 envs x 256 steps, 1 policy epoch, 9 value epochs every batch, 8
    minibatches, ``adv_coef`` 0.25, Adam at a constant 5e-4, gamma 0.999, lambda 0.95, entropy 0.01, clip 0.2 on the
    ratio and the value, gradient norm 0.5; :data:`BEST_HYPERPARAMETERS` holds the authors' per-game settings. The
    encoder is the IMPALA-CNN on pixels and an MLP on vectors. Logs ``losses/advantage_loss`` and, from the value
    phase, ``losses/value_loss`` (the last value phase's, between them).

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "daac", env="torch_cartpole", num_envs=4, num_steps=16, seed=0)
        >>> agent.train(64, progress=False)["frames"]
        64
        >>> sorted(k for k in agent.history[-1] if k.startswith("losses/a"))
        ['losses/advantage_loss', 'losses/approx_kl']
    """

    name = "daac"
    normalize_per_batch = True  # the authors' code: the advantage head's targets are the batch-normalised advantages
    #: the value phase's logged terms
    value_metrics: ClassVar[dict[str, str]] = {"loss_critic": "losses/value_loss",
                                               "value_clip_fraction": "losses/value_clipfrac"}  # fmt: skip
    slots: ClassVar[dict[str, Any]] = {**PPO.slots, "encoder": "auto", "policy": "decoupled_actor_critic"}

    @dataclasses.dataclass
    class Config(ProcgenConfig):
        epochs: int = option(1, "passes of the policy network over each batch", low=1)
        value_coef: float = option(0.5, "weight of the value network's squared error (its own phase)", low=0.0)
        value_epochs: int = option(9, "passes of the value network over a batch, in its phase", low=1)
        value_freq: int = option(1, "train the value network every this many batches", low=1)
        adv_coef: float = option(0.25, "weight of the advantage head's squared error in the policy loss", low=0.0)

    loss_metrics: ClassVar[dict[str, str]] = {
        **{k: v for k, v in PPO.loss_metrics.items() if k != "loss_critic"},
        "loss_advantage": "losses/advantage_loss",
    }

    def check_config(self) -> None:
        super().check_config()
        if self.config.recurrent is not None:
            raise ComponentArgumentError(f"{self.owner} does not support recurrent policies")
        if self.config.cudagraphs:
            # gradients zeroed in place (not released) would step the idle network's Adam state in every phase
            raise ComponentArgumentError(f"{self.owner}: cudagraphs is not supported (two phases share one optimiser)")

    def default_component(self, slot: str) -> Any:
        if slot == "encoder":
            keys = self.env.observation_spec.keys()
            return "espeholt_resnet" if "pixels" in keys and "observation" not in keys else "mlp"
        return super().default_component(slot)

    def _build(self) -> None:
        super()._build()
        if not hasattr(self.policy, "advantage"):
            raise ComponentArgumentError(
                f"{self.owner} trains an advantage head on the policy network: use the decoupled_actor_critic policy, "
                f"got {getattr(self.policy, 'registry_name', type(self.policy).__name__)!r}"
            )
        self._value_stats = torch.zeros(len(self.value_metrics), device=self.device)

    # -- the two phases -----------------------------------------------------------------------------------
    def _update(self, flat: TensorDictBase) -> dict[str, torch.Tensor]:
        c = self.config
        stats = super()._update(flat)  # the policy phase: self._loss_terms below, early-stopped at target_kl
        if self.iterations % c.value_freq == 0:
            self._value_stats = self._epochs(flat, c.value_epochs, self._value_terms, list(self.value_metrics),
                                             normalize_advantage=False)  # fmt: skip
        stats.update(zip(self.value_metrics.values(), self._value_stats, strict=True))
        return stats

    def _loss_terms(self, piece: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        path, action = self.tensor_policy, piece.get("action")
        if path is not None:
            features = path.encoder(piece.get(path.obs_key))
            log_prob, entropy = path.distribution.score_tensors(action, *path.distribution.params(features))
            out = self.loss_module.tensor_terms(piece, log_prob, entropy, None)
            predicted = self.policy.advantage.module(features, action)
        else:  # TorchRL's loss, its value term dropped (the value network learns in its own phase)
            out = self._loss(piece).exclude("loss_critic", "value_clip_fraction")
            encoder = self.policy._parts[0]
            predicted = self.policy.advantage(encoder(piece.select(*encoder.in_keys, "action").clone())).get(
                "advantage_pred"
            )
        target = piece.get("advantage").float().reshape(predicted.shape)
        out.set("loss_advantage", self.config.adv_coef * (predicted.float() - target).pow(2).mean())
        self.extra_losses(piece, out)
        return self._loss_terms_of(out, list(self.metrics))

    def _value_terms(self, piece: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.tensor_policy
        if path is not None:
            value = path.value(piece.get(path.obs_key))
        else:
            value = self.policy.critic(self._critic_input(piece).clone(False)).get("state_value")
        value = value.reshape(piece.get("value_target").shape)
        out = self.loss_module.value_terms(piece, value, self.config.value_coef)
        out.update(self.value_extra_losses(piece))
        total = sum(v for k, v in out.items() if k.startswith("loss"))
        zero = torch.zeros((), device=self.device)
        return total, torch.stack([out.get(k, zero).detach().float() for k in self.value_metrics])

    def value_extra_losses(self, piece: TensorDictBase) -> dict[str, torch.Tensor]:
        """Further ``loss_*`` terms of the value phase (DrDAAC's value regulariser)."""
        return {}


class DrDAAC(DAAC):
    """DAAC with DrAC's regularisers (see :func:`~rlte_plugins.agents.drac.augmentation_terms`): the policy term in
    the policy phase, the value term in the value phase, each weighted by ``aug_coef``; the augmentation slot
    defaults to DrAC's "crop" (``random_shift``, ``pad=12``).

    Examples:
        >>> import rlte_plugins
        >>> env = {"name": "torch_point_mass", "from_pixels": True, "image_size": 24, "frame_stack": 1}
        >>> agent = rlte_plugins.make("agent", "drdaac", env=env, num_envs=2, num_steps=8, num_minibatches=2,
        ...                           value_epochs=1, seed=0)
        >>> agent.set(encoder={"name": "espeholt_resnet", "channels": [4], "features": 16}).train(16, progress=False)[
        ...     "frames"]
        16
    """

    name = "drdaac"
    slots: ClassVar[dict[str, Any]] = {**DAAC.slots, "augmentation": {"name": "random_shift", "pad": 12}}

    @dataclasses.dataclass
    class Config(DAAC.Config):
        aug_coef: float = option(0.1, "weight of the augmentation regularisers (policy and value)", low=0.0)

    loss_metrics: ClassVar[dict[str, str]] = {**DAAC.loss_metrics, "loss_aug_policy": "losses/aug_policy_loss"}
    value_metrics: ClassVar[dict[str, str]] = {**DAAC.value_metrics, "loss_aug_value": "losses/aug_value_loss"}

    def _build(self) -> None:
        check_augmented(self)
        super()._build()

    def extra_losses(self, piece: TensorDictBase, out: TensorDictBase) -> None:
        super().extra_losses(piece, out)
        for key, value in augmentation_terms(self, piece, value=False).items():
            out.set(key, value)

    def value_extra_losses(self, piece: TensorDictBase) -> dict[str, torch.Tensor]:
        return augmentation_terms(self, piece, policy=False)
