"""Off-policy agents: collect a few steps with the exploring policy, store them in a replay storage, take gradient
steps on sampled batches, update target networks. DQN, DDPG, TD3, SAC and their relatives write their ``Config``,
their TorchRL loss, the exploration module and at most a hook.

Collection (``direct`` or ``torchrl``), the update engine and the run loop are the ones on-policy agents use; the
storage is the ``storage`` slot (any rlte replay storage: uniform, n-step, prioritized, memory-mapped).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictSequential
from torchrl.objectives import HardUpdate, SoftUpdate

from rlte_plugins.agents.base import Agent, AgentConfig, option
from rlte_plugins.collection import STRATEGIES, batch_statistics
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.optim.engine import AMP_MODES, UpdateEngine
from rlte_plugins.optim.schedules import Schedule

_MAYBE_NUMBER = (int, float, type(None))


@dataclasses.dataclass
class OffPolicyConfig(AgentConfig):
    """What every off-policy agent takes."""

    num_envs: int = option(1, "parallel envs when the agent makes the env", low=1)
    num_steps: int = option(1, "steps per env per iteration (then gradient_steps updates)", low=1)
    gradient_steps: int = option(1, "gradient steps per iteration once learning has started", low=1)
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
    collection: str = option("auto", "auto (direct for rlte envs, else torchrl), torchrl or direct", choices=STRATEGIES)
    amp: str | None = option(None, "mixed precision of the update: null, bf16 or fp16 (CUDA)", types=(str, type(None)),
                             choices=AMP_MODES)  # fmt: skip
    compile: bool | str = option(False, "torch.compile the acting module and the loss: true or a mode name",
                                 types=(bool, str))  # fmt: skip
    chunk_size: int = option(8192, "rows per actor call when collecting", low=1)


class OffPolicyAgent(Agent):
    """Replay, gradient steps on sampled batches and target updates for off-policy agents.

    A subclass writes ``Config`` (subclassing :class:`OffPolicyConfig`), :meth:`make_loss` (a TorchRL loss whose
    target parameters :class:`~torchrl.objectives.SoftUpdate` / ``HardUpdate`` maintain), :meth:`make_exploration`
    (the module added after the policy while collecting, e.g. epsilon-greedy) and :attr:`loss_metrics`;
    :meth:`before_collect` sets exploration schedules.
    """

    Config: ClassVar[type] = OffPolicyConfig
    slots: ClassVar[dict[str, Any]] = {"encoder": "mlp", "policy": "auto", "storage": "replay", "reward": None}
    loss_metrics: ClassVar[dict[str, str]] = {}

    @property
    def action_spec(self) -> Any:
        """The action spec of one env."""
        return self.env.action_spec_unbatched.to(self.device)

    def make_loss(self) -> Any:
        raise NotImplementedError

    def make_exploration(self) -> Any:
        """A module run after the policy that explores under ``ExplorationType.RANDOM`` (``None``: none)."""
        return None

    def before_collect(self, frames: int) -> None:
        """Exploration schedules, read at ``frames`` (the frames before this iteration's steps)."""

    def _build(self) -> None:
        c = self.config
        encoder, policy, storage = (self.components[k] for k in ("encoder", "policy", "storage"))
        # per-env specs: TorchRL's value modules check actions against the spec's shape
        policy.build(encoder, self.components.get("distribution"), self.env.observation_spec, self.action_spec)
        policy.to(self.device)
        self.policy = policy
        storage.build(self.device)
        self.exploration = self.make_exploration()
        acting = getattr(policy, "exploration_policy", None) or policy.actor
        self._actor = acting if self.exploration is None else TensorDictSequential(acting, self.exploration)
        self.loss_module = self.make_loss()
        self.engine = UpdateEngine(
            [p for p in self.loss_module.parameters() if p.requires_grad], device=self.device,
            lr=Schedule.parse(c.lr, self.owner), eps=c.adam_eps, max_grad_norm=c.max_grad_norm, amp=c.amp,
            compile=c.compile, owner=self.owner,
        )  # fmt: skip
        self._loss = self.engine.compiled(self.loss_module)
        # stepped every target_update_every gradient steps, counted by self.updates (checkpointed): TorchRL's
        # HardUpdate would count its own interval (interval + 1 steps apart) in a counter no checkpoint holds
        self.target_updater = (
            HardUpdate(self.loss_module, value_network_update_interval=0)
            if c.tau == 1.0
            else SoftUpdate(self.loss_module, tau=c.tau)
        )
        storage_gamma = getattr(storage, "gamma", None)
        if storage_gamma is not None and storage_gamma != c.gamma:
            raise ComponentArgumentError(
                f"{self.owner}: storage {getattr(storage, 'name', type(storage).__name__)!r} sums n-step rewards with "
                f"gamma={storage_gamma} but the agent discounts with gamma={c.gamma}: give both the same gamma"
            )
        self.updates = 0
        self._build_collection(self._actor)  # with the exploration module: collected actions explore

    def parameters(self) -> Any:
        self.build()
        return (p for p in self.loss_module.parameters() if p.requires_grad)

    # -- the low-level algorithm --------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> TensorDictBase:
        """``num_steps`` steps of every env with the exploring policy, stored in the replay storage."""
        self.build()
        self.before_collect(self.frames)
        self._collected_from = self.frames
        batch = self.collection.collect()
        storage = self.components["storage"]
        storage.add(batch)
        self.frames += batch.numel()
        if hasattr(storage, "step"):
            storage.step(batch.numel())  # schedules counted in frames (prioritized replay's beta)
        return batch

    def priority(self, sample: TensorDictBase) -> torch.Tensor:
        """The TD error a prioritized storage sets a sampled transition's priority from (the loss wrote it)."""
        return sample.get("td_error")

    def step(self) -> dict[str, Any]:
        """``gradient_steps`` updates on sampled batches (none before ``learning_starts``)."""
        self.build()
        c = self.config
        stats: dict[str, Any] = {}
        if self.frames < c.learning_starts:
            return stats
        lr = self.engine.set_lr(getattr(self, "_collected_from", self.frames))  # as on-policy: where it began
        storage = self.components["storage"]
        sums = torch.zeros(len(self.loss_metrics), device=self.device)
        for _ in range(c.gradient_steps):
            sample = storage.sample()
            intrinsic = self._add_intrinsic_reward(sample)
            if intrinsic is not None:
                stats["charts/intrinsic_reward"] = intrinsic
            sums += self.engine.minibatch(sample, self._loss_terms, 0)
            if hasattr(storage, "update_priority"):
                storage.update_priority(sample, self.priority(sample))
            self.updates += 1
            if self.updates % c.target_update_every == 0:
                self.target_updater.step()
        stats.update(zip(self.loss_metrics.values(), sums / c.gradient_steps, strict=True))
        stats["charts/learning_rate"] = lr
        stats["_finite/gradient"] = self.engine.read_grad_norm().isfinite().float()
        return stats

    def iteration(self) -> dict[str, Any]:
        stats = batch_statistics(self.collect())
        stats.update(self.step())
        self.iterations += 1
        return stats

    def _loss_terms(self, piece: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss_terms_of(self._loss(piece), list(self.loss_metrics))

    # -- checkpoints --------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "loss": self.loss_module.state_dict(),  # the online and target networks
            "engine": self.engine.state_dict(),
            "storage": self.components["storage"].state_dict(),
            "updates": self.updates,
            # the acting module's exploration state (DQN's epsilon): a loaded actor explores as the saved one did
            "exploration": None if self.exploration is None else self.exploration.state_dict(),
        }

    def _load_state(self, state: Any) -> None:
        self.loss_module.load_state_dict(state["loss"])
        self.engine.load_state_dict(state["engine"])
        self.components["storage"].load_state_dict(state["storage"])
        self.updates = int(state["updates"])
        if self.exploration is not None and state.get("exploration") is not None:
            self.exploration.load_state_dict(state["exploration"])
