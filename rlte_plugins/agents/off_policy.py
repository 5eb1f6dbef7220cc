"""Off-policy agents: collect a few steps with the exploring policy, store them in a replay storage, take gradient
steps on sampled batches, update target networks. DQN, DDPG, TD3, SAC, DrQ and DrQ-v2 write their ``Config``,
their loss, the exploration module and at most a hook.

Collection (``direct``, ``torchrl`` or ``ray``), the update engine and the run loop are the ones on-policy agents
use; the storage is the ``storage`` slot (any rlte replay storage: uniform, n-step, prioritized, memory-mapped; with
``ray_replay``, a uniform one's transitions live in a Ray actor), and an ``augmentation`` slot augments sampled
observations inside the update.

The update-to-data ratio is defined once, :attr:`OffPolicyConfig.utd_ratio`: gradient updates per frame (one step
of one env) once learning has started. With ``N`` envs stepped together a collection step brings ``N`` frames and
so ``N`` times as many updates; ``0.5`` is DrQ-v2's update every second agent step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torchrl.data import Categorical, OneHot
from torchrl.objectives import HardUpdate, SoftUpdate

from rlte_plugins.agents.base import (
    Agent,
    AgentConfig,
    collection_option,
    num_workers_option,
    option,
    ray_address_option,
)
from rlte_plugins.collection import batch_statistics
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError
from rlte_plugins.optim.engine import AMP_MODES, UpdateEngine
from rlte_plugins.optim.schedules import Schedule

_MAYBE_NUMBER = (int, float, type(None))


@dataclasses.dataclass
class OffPolicyConfig(AgentConfig):
    """What every off-policy agent takes."""

    num_envs: int = option(1, "parallel envs when the agent makes the env", low=1)
    num_steps: int = option(1, "steps per env per iteration (then the updates they bring)", low=1)
    utd_ratio: float = option(1.0, "gradient updates per frame (one step of one env) once learning has started",
                              low=0.0, low_open=True)  # fmt: skip
    random_frames: int = option(0, "frames acted with uniformly random actions first (seed frames)", low=0)
    learning_starts: int = option(10_000, "frames collected before the first gradient step", low=0)
    gamma: float = option(0.99, "discount", low=0.0, high=1.0, low_open=True)
    lr: float | str = option(1e-4, "learning rate: a number or 'linear(start, end, frames)'", schedule=True,
                             types=(int, float, str), low=0.0)  # fmt: skip
    adam_eps: float = option(1e-8, "Adam epsilon", low=0.0, low_open=True)
    max_grad_norm: float | None = option(None, "global gradient-norm clip (null: off)", types=_MAYBE_NUMBER, low=0.0,
                                         low_open=True)  # fmt: skip
    tau: float = option(1.0, "target update weight: 1 copies the online network, below 1 averages (Polyak)",
                        low=0.0, high=1.0, low_open=True)  # fmt: skip
    target_update_every: int = option(1, "gradient steps between target updates", low=1)
    intrinsic_coef: float = option(1.0, "weight of the intrinsic reward (set(reward=...)), added to sampled batches",
                                   low=0.0)  # fmt: skip
    pretraining: bool = option(False, "learn from the intrinsic reward alone (set(reward=...)): reward-free "
                               "pre-training")  # fmt: skip
    collection: str = collection_option()
    num_workers: int = num_workers_option()
    ray_address: str | None = ray_address_option()
    ray_replay: bool = option(False, "keep the transitions of a 'replay' storage (in memory) in a Ray actor, on the "
                              "cluster of ray_address (TorchRL's ReplayBuffer(service_backend='ray'))")  # fmt: skip
    amp: str | None = option(None, "mixed precision of the update: null, bf16 or fp16 (CUDA)", types=(str, type(None)),
                             choices=AMP_MODES)  # fmt: skip
    compile: bool | str = option(False, "torch.compile the acting module and the loss: true or a mode name",
                                 types=(bool, str))  # fmt: skip
    chunk_size: int = option(8192, "rows per actor call when collecting", low=1)


@dataclasses.dataclass
class UpdateGroup:
    """One optimiser of an off-policy agent: the parameters it steps, the loss it differentiates, its learning
    rate (a number or a schedule string), how often it steps (``every`` gradient steps: TD3's delayed actor) and
    the loss outputs it logs (``{output: logged name}``). Groups step in order on the same sampled batch."""

    name: str
    params: list[torch.nn.Parameter]
    loss: Callable[[TensorDictBase], TensorDictBase]
    lr: float | str
    metrics: dict[str, str]
    every: int = 1


def trained_parameters(*modules: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of ``modules`` that take gradients, in order (a TorchRL loss's ``*_params`` are modules
    too), for an :class:`UpdateGroup`."""
    return [p for m in modules for p in m.parameters() if p.requires_grad]


class SeedActions(TensorDictModuleBase):
    """The collecting policy: ``actor``, or uniformly random actions from ``action_spec`` while :attr:`random`
    (an off-policy agent's seed frames). Drawn from torch's global generator, which checkpoints hold. Only the
    action is kept: losses recompute what they need from the stored observations. The switch is a buffer, so it
    travels with the weights to remote workers (``collection="ray"``)."""

    def __init__(self, actor: Any, action_spec: Any, action_key: str = "action") -> None:
        super().__init__()
        self.actor, self.action_spec = actor, action_spec
        self.in_keys = list(actor.in_keys)
        self.out_keys = [action_key]
        self.action_key = action_key
        self.register_buffer("random_phase", torch.zeros((), dtype=torch.bool))

    @property
    def random(self) -> bool:
        return bool(self.random_phase)

    @random.setter
    def random(self, value: bool) -> None:
        self.random_phase.fill_(bool(value))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.random:
            action = self.action_spec.rand(tensordict.batch_size)
            return tensordict.set(self.action_key, action.to(tensordict.device or action.device))
        return self.actor(tensordict)


class OffPolicyAgent(Agent):
    """Replay, gradient steps on sampled batches and target updates for off-policy agents.

    A subclass writes ``Config`` (subclassing :class:`OffPolicyConfig`), :meth:`make_loss` (a loss whose target
    parameters :class:`~torchrl.objectives.SoftUpdate` / ``HardUpdate`` maintain), and either :attr:`loss_metrics`
    (one optimiser over the whole loss) or :meth:`update_groups` (several, e.g. a critic then a delayed actor);
    :meth:`make_exploration` adds a module after the policy while collecting (epsilon-greedy) and
    :meth:`before_collect` sets exploration schedules (a noise head's is set from the frames by this base).

    Class attributes: :attr:`action_kind` (``"discrete"``/``"continuous"``/``None``: checked against the env),
    :attr:`priority_key` (the loss output a prioritized storage takes its priorities from; ``None``: the agent
    cannot feed one) and :attr:`shared_encoder_trained_by`.

    Seed frames are decided per collection: the random phase ends with the first batch collected at or after
    ``random_frames`` (``num_envs * num_steps`` frames a batch).
    """

    Config: ClassVar[type] = OffPolicyConfig
    slots: ClassVar[dict[str, Any]] = {"encoder": "mlp", "policy": "auto", "storage": "replay", "augmentation": None,
                                       "reward": None}  # fmt: skip
    loss_metrics: ClassVar[dict[str, str]] = {}
    action_kind: ClassVar[str | None] = None
    priority_key: ClassVar[str | None] = "td_error"
    #: which loss trains an encoder shared by actor and critic (``None``: the agent refuses one that has weights)
    shared_encoder_trained_by: ClassVar[str | None] = None

    @property
    def action_spec(self) -> Any:
        """The action spec of one env."""
        return self.env.action_spec_unbatched.to(self.device)

    # -- hooks --------------------------------------------------------------------------------------------
    def make_loss(self) -> Any:
        raise NotImplementedError

    def update_groups(self) -> list[UpdateGroup]:
        """The optimisers, in the order they step (default: one over every trained parameter of the loss)."""
        params = trained_parameters(self.loss_module)
        return [UpdateGroup("loss", params, self.loss_module, self.config.lr, dict(self.loss_metrics))]

    def make_exploration(self) -> Any:
        """A module run after the policy that explores under ``ExplorationType.RANDOM`` (``None``: none)."""
        return None

    def make_target_updater(self) -> Any:
        """What keeps the loss's target parameters (``target_*_params``): a copy or Polyak averaging (``tau``)."""
        # stepped every target_update_every gradient steps, counted by self.updates (checkpointed): TorchRL's
        # HardUpdate would count its own interval (interval + 1 steps apart) in a counter no checkpoint holds
        if self.config.tau == 1.0:
            return HardUpdate(self.loss_module, value_network_update_interval=0)
        return SoftUpdate(self.loss_module, tau=self.config.tau)

    def before_collect(self, frames: int) -> None:
        """Exploration schedules, read at ``frames`` (the frames before this iteration's steps)."""

    def before_update(self, frames: int) -> None:
        """Schedules the loss reads (DrQ-v2's noise), set before each iteration's updates."""

    def prepare_sample(self, sample: TensorDictBase) -> TensorDictBase:
        """A sampled batch as the loss takes it: the ``augmentation`` slot's, applied independently to the
        observations and the next observations (DrQ, DrQ-v2)."""
        aug = self.components.get("augmentation")
        if aug is None:
            return sample
        for key in aug.in_keys:
            for where in (key, ("next", key)):
                sample.set(where, aug.augment_tensor(sample.get(where)))
        return sample

    # -- checks -------------------------------------------------------------------------------------------
    def check_env(self) -> None:
        if self.action_kind is None:
            return
        spec = self.env.action_spec_unbatched
        discrete = isinstance(spec, (Categorical, OneHot))
        if discrete != (self.action_kind == "discrete"):
            have = f"discrete actions ({type(spec).__name__})" if discrete else f"continuous actions {list(spec.shape)}"
            other = "sac_discrete or dqn" if discrete else "ddpg, td3, sac, drq or drqv2"
            raise SpecMismatchError(
                f"{self.owner} needs {self.action_kind} actions but the env has {have}: use {other} for this env"
            )

    def _check_policy(self, policy: Any, encoder: Any) -> None:
        if (
            self.shared_encoder_trained_by is None
            and getattr(policy, "shared_encoder", False)
            and any(True for _ in encoder.parameters())
        ):
            raise ComponentArgumentError(
                f"{self.owner}: a shared encoder would be trained by the actor's loss alone (TorchRL's losses give "
                "the critics detached copies of parameters they share with the actor): give the policy "
                "shared_encoder=False, or learn from pixels with drqv2 / drq (their critic trains the encoder)"
            )

    def _check_storage(self, storage: Any) -> None:
        c = self.config
        if hasattr(storage, "update_priority") and self.priority_key is None:
            raise ComponentArgumentError(
                f"{self.owner} computes no TD error to set priorities from: use a uniform storage (replay, "
                f"nstep_replay), not {getattr(storage, 'name', type(storage).__name__)!r}"
            )
        storage_gamma = getattr(storage, "gamma", None)
        if storage_gamma is not None and "reward" in self.components:
            # the n-step transform sums the task reward only, and ("next", obs) becomes s_{t+n}: a bonus would be
            # counted once, of the wrong transition
            name = getattr(storage, "name", type(storage).__name__)
            raise ComponentArgumentError(f"{self.owner}: an intrinsic reward does not combine with n-step storage "
                                         f"{name!r}: use 'replay'")  # fmt: skip
        if storage_gamma is not None and storage_gamma != c.gamma:
            raise ComponentArgumentError(
                f"{self.owner}: storage {getattr(storage, 'name', type(storage).__name__)!r} sums n-step rewards with "
                f"gamma={storage_gamma} but the agent discounts with gamma={c.gamma}: give both the same gamma"
            )
        batch = getattr(storage, "batch_size", None)
        # an n-step storage holds each env's last n steps back until the next ones complete their windows
        held_back = int(getattr(storage, "n", 0)) * self.num_envs
        stored = max(c.learning_starts, self.num_envs * c.num_steps) - held_back
        if batch is not None and batch > stored:
            raise ComponentArgumentError(
                f"{self.owner}: the storage samples batches of {batch} but learning starts with {stored} transitions "
                f"stored: raise learning_starts to at least {batch + held_back} or lower the storage's batch_size"
            )

    # -- building -----------------------------------------------------------------------------------------
    def _build(self) -> None:
        c = self.config
        encoder, policy, storage = (self.components[k] for k in ("encoder", "policy", "storage"))
        aug = self.components.get("augmentation")
        if aug is not None:
            self._check_augmentation(aug)
            aug.to(self.device)
        self._check_storage(storage)
        # per-env specs: TorchRL's value modules check actions against the spec's shape
        observation_spec = self.env.observation_spec_unbatched.to(self.device)
        policy.build(encoder, self.components.get("distribution"), observation_spec, self.action_spec)
        self._check_policy(policy, encoder)  # built: the encoder's weights exist
        policy.to(self.device)
        self.policy = policy
        storage.build(self.device)
        #: where transitions go: the storage, or its transitions in a Ray actor (ray_replay)
        self.replay: Any = storage
        if c.ray_replay:
            from rlte_plugins.collection.ray import RayReplay

            self.replay = RayReplay(storage, self.owner, c.ray_address, self.device)
        self.exploration = self.make_exploration()
        acting = getattr(policy, "exploration_policy", None) or policy.actor
        self._actor = acting if self.exploration is None else TensorDictSequential(acting, self.exploration)
        self._noise = [m for m in self._actor.modules() if hasattr(m, "schedule") and hasattr(m, "steps")]
        if c.collection == "ray" and any(m.schedule.start != m.schedule.end for m in self._noise):
            # the schedule's position is set here from the frames, not sent with the weights
            raise ComponentArgumentError(f"{self.owner}: a noise schedule is not supported with collection='ray': "
                                         "give the noise distribution a constant std")  # fmt: skip
        self._seed_actions = SeedActions(self._actor, self.action_spec)
        self.loss_module = self.make_loss()
        self.groups = self.update_groups()
        self.engines: dict[str, UpdateEngine] = {}
        self._terms: dict[str, Callable[[TensorDictBase], tuple[torch.Tensor, torch.Tensor]]] = {}
        for g in self.groups:
            if not g.params:
                raise ComponentArgumentError(f"{self.owner}: update group {g.name!r} has no parameters to train")
            engine = UpdateEngine(
                g.params, device=self.device, lr=Schedule.parse(g.lr, self.owner), eps=c.adam_eps,
                max_grad_norm=c.max_grad_norm, amp=c.amp, compile=c.compile, owner=self.owner,
            )  # fmt: skip
            self.engines[g.name] = engine
            self._terms[g.name] = self._group_terms(engine.compiled(g.loss), list(g.metrics))
        self.engine = self.engines[self.groups[0].name]
        self.target_updater = self.make_target_updater()
        self.updates = 0
        # with the exploration module: collected actions explore; the seed-frames switch in front of it
        self._build_collection(self._seed_actions, collect_actor=self._seed_actions)

    def close(self) -> None:
        """Release what collection holds and, with ``ray_replay``, the Ray actor holding the transitions."""
        super().close()
        if self.built and self.replay is not self.components["storage"]:
            self.replay.close()

    def _group_terms(
        self, loss: Callable[[TensorDictBase], TensorDictBase], metrics: list[str]
    ) -> Callable[[TensorDictBase], tuple[torch.Tensor, torch.Tensor]]:
        def terms(sample: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
            return self._loss_terms_of(loss(sample), metrics)

        return terms

    def parameters(self) -> Any:
        self.build()
        seen: set[int] = set()
        for g in self.groups:
            for p in g.params:
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p

    # -- the low-level algorithm --------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> TensorDictBase:
        """``num_steps`` steps of every env with the exploring policy (random actions during the seed frames),
        stored in the replay storage."""
        self.build()
        self.before_collect(self.frames)
        for noise in self._noise:
            noise.steps = self.frames  # a noise schedule counts frames; set, not stepped: resumes where it was
        self._seed_actions.random = self.frames < self.config.random_frames
        self._collected_from = self.frames
        batch = self.collection.collect()
        if getattr(self.components.get("reward"), "episodic", False):
            # an episodic bonus needs the history within the episode, which an i.i.d. sample lacks: computed here,
            # in time order, and stored with the transition (a lifelong one is recomputed at update time instead)
            bonus = self.intrinsic_bonus(batch)
            batch.set(("next", "intrinsic_reward"), bonus.reshape(batch.get(("next", "reward")).shape))
        storage = self.replay
        storage.add(batch)
        self.frames += batch.numel()
        if hasattr(storage, "step"):
            storage.step(batch.numel())  # schedules counted in frames (prioritized replay's beta)
        return batch

    def updates_due(self) -> int:
        """Gradient updates owed at the current frame count: ``utd_ratio`` per frame after ``learning_starts``."""
        learned = self.frames - self.config.learning_starts
        if learned < 0:
            return 0
        return max(0, math.floor(self.config.utd_ratio * learned + 1e-9) - self.updates)

    def priority(self, sample: TensorDictBase) -> torch.Tensor:
        """The TD error a prioritized storage sets a sampled transition's priority from (the loss wrote it)."""
        error = sample.get(self.priority_key, None)
        if error is None:
            raise ComponentArgumentError(
                f"{self.owner}: its loss wrote no {self.priority_key!r} to set priorities from; use a uniform storage"
            )
        return error

    def step(self) -> dict[str, Any]:
        """The gradient updates the frames collected so far are owed (none before ``learning_starts``)."""
        self.build()
        stats: dict[str, Any] = {}
        due = self.updates_due()
        if due == 0:
            return stats
        storage = self.replay
        batch_size = getattr(storage, "batch_size", 0)
        if len(storage) < batch_size:
            raise ComponentArgumentError(
                f"{self.owner}: the storage holds {len(storage)} transitions, fewer than its batch_size {batch_size}: "
                "raise learning_starts or lower batch_size"
            )
        at = getattr(self, "_collected_from", self.frames)  # as on-policy: where this iteration's batch began
        lrs = {name: engine.set_lr(at) for name, engine in self.engines.items()}
        self.before_update(at)
        sums = {g.name: torch.zeros(len(g.metrics), device=self.device) for g in self.groups}
        counts = dict.fromkeys(sums, 0)
        for _ in range(due):
            sample = storage.sample()
            self._add_intrinsic_reward(sample, stats, stored=True)
            sample = self.prepare_sample(sample)
            for g in self.groups:
                # the update that makes the count a multiple of `every`: a delayed actor steps with the targets
                if (self.updates + 1) % g.every == 0:
                    # one piece: what a loss writes into the sample (td_error, features) must reach the next group
                    rows = sample.shape[0]
                    sums[g.name] += self.engines[g.name].minibatch(sample, self._terms[g.name], 0, rows)
                    counts[g.name] += 1
            if hasattr(storage, "update_priority"):
                storage.update_priority(sample, self.priority(sample))
            self.updates += 1
            if self.updates % self.config.target_update_every == 0:
                self.target_updater.step()
        for g in self.groups:
            if counts[g.name]:
                stats.update(zip(g.metrics.values(), sums[g.name] / counts[g.name], strict=True))
        stats["charts/learning_rate"] = lrs[self.groups[0].name]
        norms = torch.stack([engine.read_grad_norm() for engine in self.engines.values()])
        stats["_finite/gradient"] = norms.isfinite().all().float()
        return stats

    def iteration(self) -> dict[str, Any]:
        stats = batch_statistics(self.collect())
        stats.update(self.step())
        self.iterations += 1
        return stats

    # -- checkpoints --------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "loss": self.loss_module.state_dict(),  # the online and target networks
            "engines": {name: engine.state_dict() for name, engine in self.engines.items()},
            "storage": self.replay.state_dict(),
            "updates": self.updates,
            # the acting module's exploration state (DQN's epsilon): a loaded actor explores as the saved one did
            "exploration": None if self.exploration is None else self.exploration.state_dict(),
            # seeded noise and augmentation draw from generators of their own, beside torch's global one
            "random": [m.random_state() for m in self._random_modules()],
        }

    def _random_modules(self) -> list[Any]:
        modules = [*self._noise, self.components.get("augmentation")]
        return [m for m in modules if m is not None and hasattr(m, "random_state")]

    def _load_state(self, state: Any) -> None:
        self.loss_module.load_state_dict(state["loss"])
        saved = state["engines"]
        if set(saved) != set(self.engines):
            from rlte_plugins.errors import CheckpointError

            raise CheckpointError(f"{self.owner}: the checkpoint's optimisers {sorted(saved)} are not this agent's "
                                  f"{sorted(self.engines)}")  # fmt: skip
        for name, engine in self.engines.items():
            engine.load_state_dict(saved[name])
        self.replay.load_state_dict(state["storage"])
        self.updates = int(state["updates"])
        if self.exploration is not None and state.get("exploration") is not None:
            self.exploration.load_state_dict(state["exploration"])
        for module, saved_random in zip(self._random_modules(), state.get("random", []), strict=False):
            module.set_random_state(saved_random)
