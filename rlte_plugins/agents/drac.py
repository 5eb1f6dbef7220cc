"""Data-regularised Actor-Critic (DrAC, Raileanu et al. 2021): PPO whose policy and value are regularised to agree
between an observation and its augmentation, so that augmentation helps generalisation without feeding the PPO
objective itself augmented (off-policy) observations."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase

from rlte_plugins.agents.base import config_fields, field_default, option
from rlte_plugins.agents.ppo import PPO
from rlte_plugins.errors import ComponentArgumentError

#: The best augmentation per Procgen game for DrAC, as the authors' training scripts map it (``env_to_aug`` in the
#: Auto-DrAC code; the per-game winners of the paper's augmentation sweep). "crop" is their replicate-pad by 12 then
#: a random 64x64 crop (``random_shift`` with ``pad=12``); their "flip" flips images vertically (``random_flip``
#: here flips horizontally).
BEST_AUGMENTATION: dict[str, Any] = {
    **dict.fromkeys(
        ("bigfish", "starpilot", "fruitbot", "plunder", "chaser", "dodgeball", "heist", "leaper", "maze"),
        {"name": "random_shift", "pad": 12},
    ),
    "bossfight": "random_flip",
    "caveflyer": "random_rotate",
    "coinrun": "random_convolution",
    "jumper": "random_convolution",
    **dict.fromkeys(("ninja", "climber", "miner"), "color_jitter"),
}


@dataclasses.dataclass
class ProcgenConfig(PPO.Config):
    """PPO's options with the Procgen settings the DrAC, DAAC and PPG papers share (their code's defaults; CleanRL's
    ``ppo_procgen.py`` uses the same): 64 envs x 256 steps, 8 minibatches, Adam at a constant 5e-4, gamma 0.999;
    the rest as PPO's (lambda 0.95, entropy 0.01, clip 0.2 on the ratio and the value, value weight 0.5 on half the
    squared error: 0.25 here, TorchRL's l2 being the full one, gradient norm 0.5)."""

    num_envs: int = option(64, "parallel envs when the agent makes the env", low=1)
    num_steps: int = option(256, "steps per env per batch (a batch is num_envs x num_steps frames)", low=1)
    epochs: int = option(3, "passes over each batch", low=1)
    num_minibatches: int = option(8, "minibatches per pass (must divide the batch)", low=1)
    lr: float | str = option(5e-4, "learning rate: a number or 'linear(start, end, frames)'", schedule=True,
                             types=(int, float, str), low=0.0)  # fmt: skip
    anneal_lr: bool = option(False, "anneal a numeric lr linearly to 0 over train()'s total_frames")
    gamma: float = option(0.999, "discount", low=0.0, high=1.0, low_open=True)
    # the IMPALA-CNN's first activations are 256 KB a frame: 256-row chunks stay in cache, where whole 2,048-row
    # minibatches ran 2.2x slower per frame on 2 CPU cores (the gradient is the same; on a GPU raise it)
    chunk_size: int = option(256, "rows per actor call and per gradient chunk (cache-sized passes; on a GPU: the "
                             "minibatch)", low=1)  # fmt: skip


#: the options where :class:`ProcgenConfig` differs from PPO's defaults (what ``rlte bench procgen`` gives PPO)
PROCGEN_DEFAULTS: dict[str, Any] = {
    f.name: field_default(f) for f in config_fields(ProcgenConfig)
    if field_default(f) != field_default(next(g for g in config_fields(PPO.Config) if g.name == f.name))
}  # fmt: skip


def augmentation_terms(agent: Any, piece: TensorDictBase, policy: bool = True, value: bool = True) -> dict[str, Any]:
    """DrAC's regularisers on ``piece`` with ``agent``'s ``augmentation`` slot, each weighted by ``aug_coef``:

    - ``loss_aug_policy``: ``-log pi(a' | f(s))`` with ``a' ~ pi(. | s)`` drawn without gradient: a sample of
      ``KL(pi(.|s) || pi(.|f(s)))`` plus the (constant) entropy of ``pi(.|s)``, as the authors' code computes it;
    - ``loss_aug_value``: ``0.5 (V(s) - V(f(s)))^2`` with ``V(s)`` held fixed.

    The augmentation draws new parameters at every call (every minibatch, as the authors' code changes them).
    Where the policy has a plain-tensor path the original observation passes through the networks once without
    gradient and the augmented one once (its features shared by both terms when the encoder is)."""
    coef = agent.config.aug_coef
    aug = agent.components["augmentation"]
    path = agent.tensor_policy
    out: dict[str, Any] = {}
    if path is not None:
        obs = piece.get(path.obs_key)
        with torch.no_grad():
            features = path.encoder(obs) if policy else None
            action = path.distribution.sample_tensors(*path.distribution.params(features))[0] if policy else None
            fixed = path.value(obs, features) if value else None
        augmented = aug.augment_tensor(obs)
        features = path.encoder(augmented) if policy else None
        if policy:
            log_prob, _ = path.distribution.score_tensors(action, *path.distribution.params(features))
        if value:
            moved = path.value(augmented, features)
    else:
        actor, critic = agent.policy.actor, agent.policy.critic
        keys = {*actor.in_keys, *critic.in_keys}
        original = piece.select(*[k for k in piece.keys(True) if k in keys])
        augmented_td = aug(original.clone())
        with torch.no_grad():
            action = actor.get_dist(original.clone()).sample() if policy else None
            fixed = critic(original.clone()).get("state_value") if value else None
        if policy:
            log_prob = actor.get_dist(augmented_td.clone()).log_prob(action)
        if value:
            moved = critic(augmented_td).get("state_value")
    if policy:
        out["loss_aug_policy"] = coef * (-log_prob.float()).mean()
    if value:
        out["loss_aug_value"] = coef * 0.5 * (fixed.float() - moved.float()).pow(2).mean()
    return out


def check_augmented(agent: Any) -> None:
    """Refuse what DrAC's regulariser cannot run with: no augmentation, or a recurrent policy."""
    if "augmentation" not in agent.components:
        raise ComponentArgumentError(f"{agent.owner} regularises with an augmentation: set(augmentation=...) (e.g. "
                                     "random_shift, random_convolution, color_jitter)")  # fmt: skip
    if agent.config.recurrent is not None:
        raise ComponentArgumentError(f"{agent.owner} does not support recurrent policies")


class DrAC(PPO):
    """DrAC (Raileanu et al., 2021, "Automatic Data Augmentation for Generalization in Reinforcement Learning"):
    PPO on the observations as collected, plus ``aug_coef`` times two regularisers that make the policy and the value
    invariant to the ``augmentation`` slot: ``-log pi(a'|f(s))`` with ``a' ~ pi(.|s)`` and ``0.5 (V(s) - V(f(s)))^2``
    (see :func:`augmentation_terms`). Logs them as ``losses/aug_policy_loss`` and ``losses/aug_value_loss``.

    Defaults are the paper's Procgen settings (:class:`ProcgenConfig`: 3 epochs; ``aug_coef`` 0.1) with the
    IMPALA-CNN (``espeholt_resnet``) shared by actor and critic and the "crop" augmentation (``random_shift``,
    ``pad=12``); :data:`BEST_AUGMENTATION` holds the paper's best augmentation per Procgen game.

    Examples:
        >>> import rlte_plugins
        >>> env = {"name": "torch_point_mass", "from_pixels": True, "image_size": 24, "frame_stack": 1}
        >>> agent = rlte_plugins.make("agent", "drac", env=env, num_envs=2, num_steps=8, num_minibatches=2, seed=0)
        >>> agent.set(encoder={"name": "espeholt_resnet", "channels": [4], "features": 16},
        ...           augmentation={"name": "random_shift", "pad": 2}).train(16, progress=False)["frames"]
        16
        >>> sorted(k for k in agent.history[-1] if k.startswith("losses/aug"))
        ['losses/aug_policy_loss', 'losses/aug_value_loss']
    """

    name = "drac"
    normalize_per_batch = True  # as the authors' code does
    slots: ClassVar[dict[str, Any]] = {
        **PPO.slots,
        "encoder": "espeholt_resnet",
        "policy": {"name": "actor_critic", "shared_encoder": True},
        "augmentation": {"name": "random_shift", "pad": 12},
    }

    @dataclasses.dataclass
    class Config(ProcgenConfig):
        aug_coef: float = option(0.1, "weight of the augmentation regularisers (policy and value)", low=0.0)

    loss_metrics: ClassVar[dict[str, str]] = {
        **PPO.loss_metrics,
        "loss_aug_policy": "losses/aug_policy_loss",
        "loss_aug_value": "losses/aug_value_loss",
    }

    def default_component(self, slot: str) -> Any:
        if slot == "policy" and self.config.recurrent is not None:
            raise ComponentArgumentError(f"{self.owner} does not support recurrent policies")
        return super().default_component(slot)

    def _build(self) -> None:
        check_augmented(self)
        super()._build()

    def extra_losses(self, piece: TensorDictBase, out: TensorDictBase) -> None:
        super().extra_losses(piece, out)
        for key, value in augmentation_terms(self, piece).items():
            out.set(key, value)
