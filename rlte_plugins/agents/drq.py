"""Learning from pixels with augmented replay: ``drqv2`` (Yarats et al., 2021) and ``drq`` (Kostrikov et al.,
2020), on the losses of :mod:`rlte_plugins.objectives.drq`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase

from rlte_plugins.agents.base import option
from rlte_plugins.agents.off_policy import OffPolicyAgent, OffPolicyConfig, UpdateGroup, trained_parameters
from rlte_plugins.errors import SpecMismatchError
from rlte_plugins.objectives.drq import DrQLoss, DrQV2Loss

#: DrQ-v2's task groups (``cfgs/task/*.yaml`` of facebookresearch/drqv2): the exploration noise's schedule, in
#: agent steps (frames / action repeat)
EASY = ("cartpole_balance", "cartpole_balance_sparse", "cartpole_swingup", "cup_catch", "finger_spin",
        "hopper_stand", "pendulum_swingup", "walker_stand", "walker_walk")  # fmt: skip
MEDIUM = ("acrobot_swingup", "cartpole_swingup_sparse", "cheetah_run", "finger_turn_easy", "finger_turn_hard",
          "hopper_hop", "quadruped_run", "quadruped_walk", "reach_duplo", "reacher_easy", "reacher_hard",
          "walker_run")  # fmt: skip
#: the task files' own overrides: 1-step returns and batches of 512 for the walkers, a 100k buffer for quadruped_run
ONE_STEP = ("walker_stand", "walker_walk", "walker_run")
SMALL_BUFFER = ("quadruped_run",)


def drqv2_settings(task: str) -> dict[str, Any]:
    """The authors' per-task settings for a DeepMind Control task, as ``drqv2`` slot choices: the noise schedule
    (``linear(1.0, 0.1, 100000)`` for easy tasks, ``500000`` for medium ones, in agent steps, unclipped in
    exploration and clipped at 0.3 in the loss), 3-step returns and batches of 256 (the walkers: 1-step, 512), a
    1M buffer (quadruped_run: 100k), memory-mapped. The hard tasks (humanoid, also a lower learning rate and wider
    trunks) are not covered.

    Examples:
        >>> drqv2_settings("walker_walk")["storage"]["batch_size"]
        512
    """
    if task not in EASY + MEDIUM:
        raise SpecMismatchError(f"drqv2 has the authors' settings for the easy and medium DeepMind Control tasks "
                                f"({', '.join(EASY + MEDIUM)}), not {task!r}")  # fmt: skip
    steps = 100_000 if task in EASY else 500_000
    n, batch = (1, 512) if task in ONE_STEP else (3, 256)
    capacity = 100_000 if task in SMALL_BUFFER else 1_000_000
    return {
        "distribution": {"name": "truncated_normal_noise", "std": f"linear(1.0, 0.1, {steps})", "clip": 0.3},
        "storage": {
            "name": "nstep_replay",
            "n": n,
            "gamma": 0.99,
            "capacity": capacity,
            "batch_size": batch,
            "memmap": True,
        },  # fmt: skip
    }


class _PixelAgent(OffPolicyAgent):
    """Checks shared by the pixel agents: continuous actions and an image observation for the encoder."""

    action_kind = "continuous"
    shared_encoder_trained_by = "critic"

    def _build(self) -> None:
        encoder = self.components["encoder"]
        spec = self.env.observation_spec
        images = [k for k in spec.keys(True, True) if len(spec[k].shape) - len(self.env.batch_size) == 3]
        wanted = list(getattr(encoder, "in_keys", []))
        if not images or not set(wanted) <= set(images):
            keys = [k for k in spec.keys(True, True) if not str(k).startswith("episode_")]
            raise SpecMismatchError(
                f"{self.owner} learns from pixels: its encoder reads {wanted} but the env's image observations are "
                f"{images} (all observations: {keys}); make the env with from_pixels=True (dmc, torch_pendulum, "
                "torch_cartpole...) or use sac / td3 for state vectors"
            )
        super()._build()

    def _group(self, name: str, modules: list[Any], loss: Any, metrics: dict[str, str], every: int = 1) -> UpdateGroup:
        return UpdateGroup(name, trained_parameters(*modules), loss, self.config.lr, metrics, every)


class DrQV2(_PixelAgent):
    """DrQ-v2 from pixels as its authors define it: DDPG with clipped double Q, n-step returns and random shifts.

    As in facebookresearch/drqv2: observation and next observation shifted independently, scheduled exploration
    noise.

    The ``tassa_cnn`` encoder (``features=None``) is trained by the critic alone; the actor sees detached
    features. Critic target: ``min(Q1', Q2')`` at ``mu(s') +`` noise clipped at 0.3; actor loss ``-min(Q1, Q2)(s,
    mu(s) +`` clipped noise``)``. Adam 1e-4, batch 256 from 1M transitions, 3-step returns, ``tau`` 0.01, an update
    every 2 agent steps (``utd_ratio`` 0.5), 2000 agent steps of random actions first (4000 frames at action repeat
    2). The noise schedule, n-step and batch of a DeepMind Control task are :func:`drqv2_settings` (defaults:
    a medium task's). Envs: ``dmc`` with ``from_pixels=True, action_repeat=2, frame_stack=3`` (the authors'), or a
    torch-native task with ``from_pixels=True``.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "drqv2", env={"name": "torch_pendulum", "from_pixels": True,
        ...     "image_size": 16, "frame_stack": 3}, learning_starts=64, random_frames=64)
        >>> agent.set(storage={"name": "nstep_replay", "n": 3, "capacity": 1000, "batch_size": 32},
        ...           policy={"name": "pixel_actor_critic", "hidden": [32]}).train(80, progress=False)["frames"]
        80
    """

    name = "drqv2"
    slots: ClassVar[dict[str, Any]] = {
        "encoder": {"name": "tassa_cnn", "features": None},
        "policy": "pixel_actor_critic",
        "distribution": {"name": "truncated_normal_noise", "std": "linear(1.0, 0.1, 500000)", "clip": 0.3},
        # memory-mapped: a transition holds two 9x84x84 frame stacks (127 KB), 1M of them 127 GB; the files grow
        # as they fill (pass scratch_dir=... to keep them, and to checkpoint the buffer by reference)
        "storage": {
            "name": "nstep_replay",
            "n": 3,
            "gamma": 0.99,
            "capacity": 1_000_000,
            "batch_size": 256,
            "memmap": True,
        },
        "augmentation": {"name": "random_shift", "pad": 4},
        "reward": None,
    }

    @dataclasses.dataclass
    class Config(OffPolicyConfig):
        utd_ratio: float = option(0.5, "gradient updates per frame (DrQ-v2: one every 2 agent steps)", low=0.0,
                                  low_open=True)  # fmt: skip
        learning_starts: int = option(2000, "frames before the first update (4000 frames at action repeat 2)", low=0)
        random_frames: int = option(2000, "frames acted with uniformly random actions first", low=0)
        tau: float = option(0.01, "target critic update weight (Polyak averaging)", low=0.0, high=1.0, low_open=True)

    def make_loss(self) -> DrQV2Loss:
        p, noise = self.policy, self.components["distribution"]
        return DrQV2Loss(p.encoder, p.actor_head, p.critic_head, self.action_spec, gamma=self.config.gamma,
                         noise_clip=getattr(noise, "clip", 0.3))  # fmt: skip

    def update_groups(self) -> list[UpdateGroup]:
        loss = self.loss_module
        critic_metrics = {"loss_critic": "losses/critic_loss", "critic_q1": "losses/critic_q1",
                          "critic_target_q": "losses/critic_target_q"}  # fmt: skip
        actor_metrics = {"loss_actor": "losses/actor_loss", "actor_std": "losses/actor_std"}
        return [
            self._group("critic", [loss.encoder, loss.critic_params], loss.critic_loss, critic_metrics),
            self._group("actor", [loss.actor_head], loss.actor_loss, actor_metrics),
        ]

    def before_update(self, frames: int) -> None:
        std = getattr(self.components["distribution"], "std", None)
        if std is not None:
            self.loss_module.std.fill_(float(std(frames)))


class _PolyakPairs:
    """Target averaging with a weight per group of parameters (DrQ: 0.01 for the Q heads, 0.05 for the critic's
    encoder, its convolutions and trunk), one fused call per weight."""

    def __init__(self, pairs: list[tuple[float, list[torch.Tensor], list[torch.Tensor]]]) -> None:
        self.pairs = pairs

    @torch.no_grad()
    def step(self) -> None:
        for tau, target, online in self.pairs:
            torch._foreach_lerp_([t.data for t in target], [o.data for o in online], tau)


class DrQ(_PixelAgent):
    """DrQ (Kostrikov et al., 2020): SAC from pixels, TD target and critic loss averaged over random shifts.

    As in denisyarats/drq: the TD target is averaged over ``k`` random shifts of the next observation and the
    critic loss over ``m`` shifts of the observation.

    The paper's DeepMind Control settings: Adam 1e-3 (actor, critic, encoder, temperature), batch 512 from 100k
    transitions, temperature from 0.1, ``tau`` 0.01 for the critic and 0.05 for its encoder, actor and targets
    updated every 2 steps, 1000 random steps first, K = M = 2. Encoder and layout as ``drqv2``. Where the
    reference code differs in details, this follows the paper or the library's components: the squashed
    Gaussian's log-std range is ``squashed_normal``'s ([-5, 2]; the code's [-10, 2]), pixels are scaled to
    [-0.5, 0.5] (``tassa_cnn``; the code's [0, 1]), the temperature's Adam has the default betas (the code's
    (0.5, 0.999)), and the critic loss averages the M copies (the code sums them; Adam makes the two alike).

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "drq", env={"name": "torch_pendulum", "from_pixels": True,
        ...     "image_size": 16, "frame_stack": 3}, learning_starts=64, random_frames=64)
        >>> agent.set(storage={"name": "replay", "capacity": 1000, "batch_size": 32},
        ...           policy={"name": "pixel_actor_critic", "hidden": [32]}).train(80, progress=False)["frames"]
        80
    """

    name = "drq"
    slots: ClassVar[dict[str, Any]] = {
        "encoder": {"name": "tassa_cnn", "features": None},
        "policy": "pixel_actor_critic",
        "distribution": "squashed_normal",
        "storage": {"name": "replay", "capacity": 100_000, "batch_size": 512, "memmap": True},
        "augmentation": {"name": "random_shift", "pad": 4},
        "reward": None,
    }

    @dataclasses.dataclass
    class Config(OffPolicyConfig):
        lr: float | str = option(1e-3, "learning rate: a number or 'linear(start, end, frames)'", schedule=True,
                                 types=(int, float, str), low=0.0)  # fmt: skip
        learning_starts: int = option(1000, "frames before the first update", low=0)
        random_frames: int = option(1000, "frames acted with uniformly random actions first", low=0)
        tau: float = option(0.01, "target critic update weight (Polyak averaging)", low=0.0, high=1.0, low_open=True)
        encoder_tau: float = option(0.05, "target update weight of the critic's encoder and trunk", low=0.0, high=1.0,
                                    low_open=True)  # fmt: skip
        target_update_every: int = option(2, "gradient steps between target updates", low=1)
        actor_update_every: int = option(2, "gradient steps between actor and temperature updates", low=1)
        k: int = option(2, "augmented copies of the next observation averaged in the TD target", low=1)
        m: int = option(2, "augmented copies of the observation averaged in the critic loss", low=1)
        alpha_init: float = option(0.1, "initial temperature", low=0.0, low_open=True)

    def make_loss(self) -> DrQLoss:
        c, p = self.config, self.policy
        if not p.stochastic:
            raise SpecMismatchError(
                f"{self.owner} needs a stochastic actor (squashed_normal), got an exploration noise"
            )
        return DrQLoss(p.encoder, p.actor_head, p.critic_head, self.action_spec, self.components["augmentation"],
                       gamma=c.gamma, k=c.k, m=c.m, alpha_init=c.alpha_init)  # fmt: skip

    def update_groups(self) -> list[UpdateGroup]:
        loss = self.loss_module
        critic_metrics = {"loss_critic": "losses/critic_loss", "critic_q1": "losses/critic_q1",
                          "critic_target_q": "losses/critic_target_q"}  # fmt: skip
        actor_metrics = {"loss_actor": "losses/actor_loss", "loss_alpha": "losses/alpha_loss",
                         "alpha": "losses/alpha", "entropy": "losses/entropy"}  # fmt: skip
        actor = self._group("actor", [loss.actor_head], loss.actor_loss, actor_metrics, self.config.actor_update_every)
        actor.params.append(loss.log_alpha)
        return [self._group("critic", [loss.encoder_params, loss.critic_params], loss.critic_loss, critic_metrics),
                actor]  # fmt: skip

    def make_target_updater(self) -> _PolyakPairs:
        loss, c = self.loss_module, self.config
        # marked as TorchRL's updaters mark it, before the target parameters are read: TorchRL warns otherwise
        for name in loss._has_update_associated:
            loss._has_update_associated[name] = True
        # DrQ's encoder is convolutions, linear layer and LayerNorm: here the convolutions are the shared encoder
        # and the rest is the critic's trunk, which is averaged at the encoder's rate as in DrQ
        heads, encoder = ([], []), ([], [])
        for key, target in loss.target_critic_params.items(True, True):
            pair = encoder if "trunk" in key else heads
            pair[0].append(target)
            pair[1].append(loss.critic_params.get(key))
        encoder[0].extend(loss.target_encoder_params.values(True, True))
        encoder[1].extend(loss.encoder_params.values(True, True))
        return _PolyakPairs([(c.tau, *heads), (c.encoder_tau, *encoder)])

    def prepare_sample(self, sample: TensorDictBase) -> TensorDictBase:
        return sample  # the loss makes its K and M augmented copies itself
