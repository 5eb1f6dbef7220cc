"""On-policy agents: collect a batch with the current policy, estimate advantages (GAE), take a few epochs of
minibatch steps. PPO, A2C and their relatives write their ``Config``, their TorchRL loss and at most a hook.

The batch comes from a collection strategy (``direct`` for rlte envs: a buffer allocated once, no TorchRL
per-step machinery; ``torchrl``: TorchRL's ``Collector`` for any TorchRL env; ``ray``: Ray workers acting with the
learner's weights, pushed before every batch), the update runs through the
:class:`~rlte_plugins.optim.engine.UpdateEngine`, and statistics stay on the device until the run loop fetches
them once per iteration. With ``recurrent=`` the policy is an LSTM/GRU trained by truncated backpropagation
through time over stored states (with optional burn-in), on both strategies.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictSequential
from torchrl.modules import set_recurrent_mode
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from rlte_plugins.agents.base import (
    Agent,
    AgentConfig,
    collection_option,
    num_workers_option,
    option,
    ray_address_option,
)
from rlte_plugins.collection import batch_statistics
from rlte_plugins.collection.direct import run_chunked
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError
from rlte_plugins.optim.engine import AMP_MODES, UpdateEngine
from rlte_plugins.optim.normalization import ObservationNorm, RunningMeanStd
from rlte_plugins.optim.schedules import Schedule

_MAYBE_NUMBER = (int, float, type(None))
RECURRENT_KEYS = ("cell", "hidden_size", "sequence_length", "burn_in")


def next_state_values(
    values: torch.Tensor, nxt: TensorDictBase, done: torch.Tensor, evaluate: Callable[[TensorDictBase], torch.Tensor]
) -> torch.Tensor:
    """``V(x_{t+1})`` for ``[B, T]`` rows, from their values ``values`` (``[B, T, 1]``): the value of step ``t + 1``
    within a row; ``evaluate`` (``V`` of the stored next observations ``nxt``) after the last step and where an
    episode ended (``done``), the only next observations evaluated again."""
    next_values = torch.cat([values[:, 1:], evaluate(nxt[:, -1]).unsqueeze(1)], dim=1)
    rows, cols = done[:, :-1].reshape(values.shape[0], -1).nonzero(as_tuple=True)
    if rows.numel():
        next_values[rows, cols] = evaluate(nxt[rows, cols])
    return next_values


@dataclasses.dataclass
class OnPolicyConfig(AgentConfig):
    """What every on-policy agent takes (CleanRL's PPO defaults; their names are this project's)."""

    num_envs: int = option(4, "parallel envs when the agent makes the env", low=1)
    num_steps: int = option(128, "steps per env per batch (a batch is num_envs x num_steps frames)", low=1)
    epochs: int = option(4, "passes over each batch", low=1)
    num_minibatches: int = option(4, "minibatches per pass (must divide the batch)", low=1)
    lr: float | str = option(2.5e-4, "learning rate: a number or 'linear(start, end, frames)'", schedule=True,
                             types=(int, float, str), low=0.0)  # fmt: skip
    anneal_lr: bool = option(True, "anneal a numeric lr linearly to 0 over train()'s total_frames")
    gamma: float = option(0.99, "discount", low=0.0, high=1.0, low_open=True)
    gae_lambda: float = option(0.95, "GAE lambda", low=0.0, high=1.0)
    entropy_coef: float | str = option(0.01, "entropy bonus weight: a number or 'linear(start, end, frames)'",
                                       schedule=True, types=(int, float, str), low=0.0)  # fmt: skip
    # TorchRL's l2 critic loss is the plain squared error: CleanRL's vf_coef 0.5 on its 0.5 * MSE is 0.25 here
    value_coef: float = option(0.25, "weight of the squared value error", low=0.0)
    max_grad_norm: float | None = option(0.5, "global gradient-norm clip (null: off)", types=_MAYBE_NUMBER, low=0.0,
                                         low_open=True)  # fmt: skip
    adam_eps: float = option(1e-5, "Adam epsilon", low=0.0, low_open=True)
    normalize_advantage: bool = option(True, "normalise advantages over each minibatch")
    target_kl: float | None = option(None, "stop a batch's remaining epochs once KL(old || new) exceeds it (null: "
                                     "off)", types=_MAYBE_NUMBER, low=0.0, low_open=True)  # fmt: skip
    normalize_observation: bool = option(False, "running mean/std normalisation of the 'observation' key")
    scale_rewards: bool = option(False, "divide rewards by the running std of the discounted return (rl8)")
    intrinsic_coef: float = option(1.0, "weight of the intrinsic reward (set(reward=...)), added before GAE", low=0.0)
    pretraining: bool = option(False, "learn from the intrinsic reward alone (set(reward=...)): reward-free "
                               "pre-training")  # fmt: skip
    intrinsic_critic: bool = option(False, "give the intrinsic reward its own value head and discount, with "
                                    "non-episodic returns (RND's two-stream critic); the advantage is extrinsic_coef "
                                    "A_ext + intrinsic_coef A_int")  # fmt: skip
    intrinsic_gamma: float = option(0.99, "discount of the intrinsic stream (intrinsic_critic)", low=0.0, high=1.0,
                                    low_open=True)  # fmt: skip
    extrinsic_coef: float = option(1.0, "weight of the extrinsic advantage (intrinsic_critic; RND: 2)", low=0.0)
    recurrent: dict | None = option(None, "LSTM/GRU policy: {cell: lstm|gru, hidden_size, sequence_length, burn_in}",
                                    types=(dict, type(None)))  # fmt: skip
    collection: str = collection_option()
    num_workers: int = num_workers_option()
    ray_address: str | None = ray_address_option()
    amp: str | None = option(None, "mixed precision of the update: null, bf16 or fp16 (CUDA)", types=(str, type(None)),
                             choices=AMP_MODES)  # fmt: skip
    compile: bool | str = option(False, "torch.compile the acting module and the loss: true or a mode name (a "
                                 "torch-native env compiles its own step: compile=True)",
                                 types=(bool, str))  # fmt: skip
    cudagraphs: bool = option(False, "capture each update chunk in a CUDA graph (CUDA only)")
    chunk_size: int = option(8192, "rows per actor call and per gradient chunk (cache-sized passes)", low=1)
    grad_accumulation: int = option(1, "minibatches averaged into one optimiser step (divides num_minibatches)", low=1)
    retain_memory: bool = option(True, "on CPU, keep freed memory in the process (fewer page faults)")


class OnPolicyAgent(Agent):
    """Collection, advantages, minibatch epochs, schedules and statistics for on-policy agents.

    A subclass writes ``Config`` (subclassing :class:`OnPolicyConfig`), :meth:`make_loss` (a TorchRL loss reading
    ``advantage``, ``value_target``, ``action_log_prob``) and :attr:`loss_metrics` (loss output -> logged name);
    :meth:`before_update` is the hook for per-batch schedules of its own.
    """

    Config: ClassVar[type] = OnPolicyConfig
    slots: ClassVar[dict[str, Any]] = {"encoder": "mlp", "policy": "auto", "distribution": "auto", "reward": None}
    #: loss output key -> logged name (CleanRL's); the keys are averaged over the minibatches of a batch
    loss_metrics: ClassVar[dict[str, str]] = {}
    #: ``normalize_advantage`` over the whole batch once (the Procgen papers' code) instead of per minibatch (CleanRL)
    normalize_per_batch: ClassVar[bool] = False

    # -- configuration ------------------------------------------------------------------------------------
    def check_config(self) -> None:
        c = self.config
        if c.recurrent is not None:
            bad = sorted(set(c.recurrent) - set(RECURRENT_KEYS))
            if bad:
                raise ComponentArgumentError(
                    f"{self.owner}: recurrent got unknown key {bad[0]!r} (accepted: {', '.join(RECURRENT_KEYS)})"
                )
            for key in ("hidden_size", "sequence_length", "burn_in"):
                if isinstance(c.recurrent.get(key), bool):  # an int to isinstance, never a size
                    raise ComponentArgumentError(
                        f"{self.owner}: recurrent.{key} must be an int, got {c.recurrent[key]!r}"
                    )
            length = c.recurrent.get("sequence_length") or c.num_steps
            if not isinstance(length, int) or length < 1 or c.num_steps % length:
                raise ComponentArgumentError(
                    f"{self.owner}: recurrent.sequence_length must divide num_steps={c.num_steps}, got {length!r}"
                )
            burn_in = c.recurrent.get("burn_in", 0)
            if not isinstance(burn_in, int) or not 0 <= burn_in < length:
                raise ComponentArgumentError(
                    f"{self.owner}: recurrent.burn_in must be in [0, sequence_length={length}), got {burn_in!r}"
                )
            if c.compile or c.cudagraphs:
                raise ComponentArgumentError(f"{self.owner}: compile/cudagraphs do not support recurrent policies")
            if c.normalize_observation:
                raise ComponentArgumentError(f"{self.owner}: normalize_observation is not supported with recurrent")
            if c.intrinsic_critic:
                raise ComponentArgumentError(f"{self.owner}: intrinsic_critic is not supported with recurrent")
        if c.num_minibatches % c.grad_accumulation:
            # accumulate over the minibatches of one epoch (rl8's meaning): a remainder would mix epochs, or with
            # the whole batch as one minibatch never step the optimiser at all
            raise ComponentArgumentError(
                f"{self.owner}: grad_accumulation ({c.grad_accumulation}) must divide num_minibatches "
                f"({c.num_minibatches})"
            )

    @property
    def frames_per_batch(self) -> int:
        return int(self.env.batch_size.numel()) * self.config.num_steps

    @property
    def sequence_length(self) -> int:
        """Transitions per row of what the update shuffles (the training sequence length when recurrent)."""
        rec = self.config.recurrent
        return 1 if rec is None else rec.get("sequence_length") or self.config.num_steps

    def default_component(self, slot: str) -> Any:
        if slot == "policy":
            rec = self.config.recurrent
            if rec is None:
                return "actor_critic"
            return {"name": "recurrent_actor_critic", **{k: rec[k] for k in ("cell", "hidden_size") if k in rec}}
        if slot == "distribution":
            from rlte_plugins.distributions.base import default_distribution

            return default_distribution(self.env.action_spec)
        return super().default_component(slot)

    # -- building -----------------------------------------------------------------------------------------
    def check_env(self) -> None:
        c = self.config
        batch = self.frames_per_batch
        if batch % c.num_minibatches or (batch // c.num_minibatches) % self.sequence_length:
            raise ComponentArgumentError(
                f"{self.owner}: the env's {self.env.batch_size.numel()} envs x num_steps {c.num_steps} = {batch} "
                f"frames per batch must split into num_minibatches ({c.num_minibatches}) minibatches of whole "
                f"sequences of {self.sequence_length} steps"
            )

    def _build(self) -> None:
        c = self.config
        encoder, policy, distribution = (self.components[k] for k in ("encoder", "policy", "distribution"))
        if c.recurrent is not None and not hasattr(policy, "env_transforms"):
            raise ComponentArgumentError(
                f"{self.owner}: recurrent= trains a recurrent policy (recurrent_actor_critic), got "
                f"{getattr(policy, 'registry_name', type(policy).__name__)!r}"
            )
        if hasattr(distribution, "on_policy"):  # a plugin's head may predate the hook
            distribution.on_policy()
        aug = self._augmentation = self.components.get("augmentation")
        if aug is not None:
            self._check_augmentation(aug)
            aug.to(self.device)
        policy.build(encoder, distribution, self.env.observation_spec, self.env.action_spec)
        policy.to(self.device)
        self.policy = policy
        self.obs_norm: ObservationNorm | None = None
        if c.normalize_observation and "reward" in self.components:
            # the batch holds the policy's normalised observations, whose statistics move every batch: counts and
            # (s, s') pairs of a reward would change meaning from one batch to the next
            raise ComponentArgumentError(f"{self.owner}: normalize_observation normalises the observations an "
                                         "intrinsic reward reads too; normalise them in the reward instead "
                                         "(its obs_norm=True)")  # fmt: skip
        if c.normalize_observation:
            if "observation" not in self.env.observation_spec.keys():
                raise SpecMismatchError(f"{self.owner}: normalize_observation needs an 'observation' key")
            shape = self.env.observation_spec["observation"].shape[len(self.env.batch_size) :]
            self.obs_norm = ObservationNorm(shape, self.device)
        self._actor = policy.actor if self.obs_norm is None else TensorDictSequential(self.obs_norm, policy.actor)
        self.int_critic: torch.nn.Module | None = None
        self.metrics = dict(self.loss_metrics)
        if c.intrinsic_critic:
            if "reward" not in self.components:
                raise ComponentArgumentError(f"{self.owner}: intrinsic_critic=True needs an intrinsic reward: "
                                             "set(reward=...) first")  # fmt: skip
            # the extrinsic critic's architecture (and starting weights), its own trunk and head from here on
            self.int_critic = copy.deepcopy(policy.critic).to(self.device)
            self.metrics["loss_intrinsic_value"] = "losses/intrinsic_value_loss"
        self.loss_module = self.make_loss()
        self.loss_module.set_keys(value_target="value_target", sample_log_prob="action_log_prob")
        # the policy on plain tensors, where every part of it has that path: direct collection acts with it and
        # a loss that reads it (PPO's) scores with it (the same networks and distribution, no TensorDict per call)
        self.tensor_policy = self.policy.tensor_path() if hasattr(self.policy, "tensor_path") else None
        if self.tensor_policy is not None and hasattr(self.loss_module, "use_tensor_path"):
            self.loss_module.use_tensor_path(self.tensor_policy)
        trained = [*policy.parameters(), *(self.int_critic.parameters() if self.int_critic is not None else ())]
        self.engine = self.make_engine(trained, c.lr)
        self._loss = self.engine.compiled(self.loss_module)
        self._entropy = Schedule.parse(c.entropy_coef, self.owner)
        if c.retain_memory and self.device.type == "cpu":
            from rlte_plugins.training.allocator import retain_freed_memory

            retain_freed_memory()
        self.ret_rms = RunningMeanStd((), self.device) if c.scale_rewards else None
        self._discounted = torch.zeros(self.env.batch_size.numel(), device=self.device)
        self._shuffle = torch.Generator(device=self.device).manual_seed(self.seed)
        self._batch: TensorDictBase | None = None
        tensor_actor = None if self.tensor_policy is None else self._tensor_actor(self.tensor_policy)
        self._build_collection(self.policy.actor, self.obs_norm, tensor_actor)

    def make_loss(self) -> Any:
        """The agent's TorchRL loss over ``self.policy.actor`` and ``self.policy.critic``."""
        raise NotImplementedError

    def make_engine(self, params: list[torch.nn.Parameter], lr: float | str) -> UpdateEngine:
        """An update engine over ``params`` with the agent's update options (optimiser from :meth:`engine_options`,
        clipping, precision, compilation, chunks, accumulation) and learning rate ``lr`` (a number or a schedule)."""
        c = self.config
        return UpdateEngine(
            params, device=self.device, lr=Schedule.parse(lr, self.owner), **self.engine_options(),
            max_grad_norm=c.max_grad_norm, amp=c.amp, compile=c.compile, cudagraphs=c.cudagraphs,
            chunk_size=c.chunk_size, grad_accumulation=c.grad_accumulation, owner=self.owner,
        )  # fmt: skip

    def engine_options(self) -> dict[str, Any]:
        """The optimiser's options for the update engine (``optimizer``, ``eps``, RMSprop's ``alpha`` and
        ``momentum``): Adam with ``adam_eps`` unless a subclass declares another."""
        return {"eps": self.config.adam_eps}

    def _tensor_actor(self, path: Any) -> Any:
        """The acting path (observation normalisation, then sampling) as a plain-tensor function; ``None`` where
        the normalised key is not the one the policy reads (the TensorDict path then normalises its key)."""
        key, act, norm = path.obs_key, self.engine.compiled(path.act), self.obs_norm
        if norm is not None and norm.key != key:
            return None

        def actor(obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            x = obs[key] if norm is None else norm.normalize_tracking(obs[key])
            action, log_prob = act(x)
            out = {"action": action, "action_log_prob": log_prob}
            if norm is not None:  # the update re-scores what the policy acted on
                out[key] = x
            return out

        return actor

    def _env_transforms(self) -> list[Any]:
        return list(self.policy.env_transforms()) if hasattr(self.policy, "env_transforms") else []

    # -- the low-level algorithm --------------------------------------------------------------------------
    def iteration(self) -> dict[str, Any]:
        return self.step(self.collect())

    @torch.no_grad()
    def collect(self) -> TensorDictBase:
        """One batch, ``[num_envs, num_steps]``, with the current policy (sampling)."""
        self.build()
        if self.obs_norm is not None:
            self.obs_norm.updating = True
        try:
            batch = self.collection.collect()
        finally:
            if self.obs_norm is not None:
                self.obs_norm.updating = False
        if self.obs_norm is not None:
            # the last statistics for the bootstrap values (the stored observations were normalised as acted on)
            nxt = batch.get("next")
            nxt.set("observation", self.obs_norm.normalize(nxt.get("observation")))
        self.frames += batch.numel()
        self._batch = batch
        return batch

    def set_total_frames(self, total_frames: int) -> None:
        """The run's budget: a numeric ``lr`` with ``anneal_lr`` decays to 0 at it, counted in frames."""
        super().set_total_frames(total_frames)
        if self.config.anneal_lr and not isinstance(self.config.lr, str):
            self.engine.lr = Schedule(float(self.config.lr), 0.0, total_frames)

    def before_update(self, frames: int) -> None:
        """Per-batch schedules of a subclass, read at ``frames`` (the frames before this batch)."""

    def step(self, batch: TensorDictBase | None = None) -> dict[str, Any]:
        """Learn from ``batch`` (default: the last collected); returns statistics as device tensors."""
        self.build()
        batch = self._batch if batch is None else batch
        if batch is None:
            raise RuntimeError(f"{self.owner}: call collect() before step()")
        at = self.frames - batch.numel()  # schedules are read where this batch's collection started
        lr = self.engine.set_lr(at)
        if hasattr(self.loss_module, "entropy_coeff"):
            self.loss_module.entropy_coeff.fill_(float(self._entropy(at)))
        self.before_update(at)
        stats = batch_statistics(batch)
        with torch.no_grad():
            self._add_intrinsic_reward(batch, stats, separate=self.int_critic is not None, frames=at)
            rollout = self._advantages(batch)
        target, value = rollout.get("value_target").float(), rollout.get("state_value").float()
        stats["_explained_variance"] = 1 - (target - value).var() / target.var().clamp_min(1e-8)
        flat = self._samples(rollout)
        stats.update(self._update(flat))
        self.engine.zero_grad()  # nothing of this batch's gradient reaches the next one
        self.iterations += 1
        stats["losses/explained_variance"] = stats.pop("_explained_variance")
        stats["charts/learning_rate"] = lr
        stats["_finite/gradient"] = self.engine.read_grad_norm().isfinite().float()
        return stats

    def _update(self, flat: TensorDictBase) -> dict[str, torch.Tensor]:
        """Learn from the batch's rows: ``epochs`` passes of the agent's loss (:meth:`_loss_terms`), stopped early
        past ``target_kl``. Returns the logged means (name -> device tensor). An agent with phases of its own
        (separate value epochs, an auxiliary phase) overrides this and runs each through :meth:`_epochs`."""
        per_batch = self.normalize_per_batch and self.config.normalize_advantage
        if per_batch:
            adv = flat.get("advantage")
            flat.set("advantage", (adv - adv.mean()) / adv.std().clamp_min(1e-8))
        means = self._epochs(flat, self.config.epochs, self._loss_terms, list(self.metrics), early_stop=True,
                             normalize_advantage=False if per_batch else None)  # fmt: skip
        return dict(zip(self.metrics.values(), means, strict=True))

    def _epochs(
        self,
        flat: TensorDictBase,
        epochs: int,
        loss_terms: Any,
        metrics: list[str],
        early_stop: bool = False,
        num_minibatches: int | None = None,
        normalize_advantage: bool | None = None,
    ) -> torch.Tensor:
        """``epochs`` shuffled passes over ``flat`` in ``num_minibatches`` (default: the config's) minibatches,
        each a step of the engine on ``loss_terms(piece) -> (loss, diagnostics over metrics)``; returns the
        diagnostics' mean over the minibatches. ``early_stop`` checks ``target_kl`` after every epoch."""
        c = self.config
        rows = flat.shape[0]
        mb = rows // (num_minibatches or c.num_minibatches)
        normalize = c.normalize_advantage if normalize_advantage is None else normalize_advantage
        sums = torch.zeros(len(metrics), device=self.device)
        count = 0  # minibatches of this phase, across epochs: the optimiser steps every grad_accumulation
        rows_per_chunk = max(1, c.chunk_size // self.sequence_length)
        for _ in range(epochs):
            # one gather per epoch, then contiguous minibatches: the same rows as indexing each minibatch, with a
            # quarter of the indexing calls at CleanRL's four minibatches
            shuffled = flat[torch.randperm(rows, device=self.device, generator=self._shuffle)] if mb < rows else flat
            for i in range(rows // mb):
                minibatch = shuffled[i * mb : (i + 1) * mb]
                if normalize:  # over the whole minibatch, before it is cut into chunks
                    adv = minibatch.get("advantage")
                    seen = self._trained_part(adv)
                    minibatch = minibatch.clone(False).set(
                        "advantage", (adv - seen.mean()) / seen.std().clamp_min(1e-8)
                    )
                sums += self.engine.minibatch(minibatch, loss_terms, count, rows_per_chunk)
                count += 1
            if early_stop and c.target_kl is not None and float(self._kl(flat)) > c.target_kl:
                break  # one extra actor pass and one host transfer per epoch, only when asked
        self.engine.zero_grad()  # nothing of this phase's gradient reaches the next one
        return sums / max(count, 1)

    # -- advantages ---------------------------------------------------------------------------------------
    def _advantages(self, data: TensorDictBase) -> TensorDictBase:
        c = self.config
        reward = data.get(("next", "reward")).float()
        if self.ret_rms is not None:
            # rl8's reward scaling: rewards divided by the running std of the discounted return
            done = data.get(("next", "done")).squeeze(-1)
            returns = []
            disc = self._discounted
            for t in range(reward.shape[1]):
                disc = disc * c.gamma * (~done[:, t]).float() + reward[:, t, 0]
                returns.append(disc)
            self._discounted = disc
            self.ret_rms.update(torch.stack(returns))
            reward = reward / (self.ret_rms.var + 1e-8).sqrt()
        values, next_values = self._values(data)
        adv, target = vec_generalized_advantage_estimate(
            c.gamma, c.gae_lambda, values, next_values, reward,
            data.get(("next", "done")), data.get(("next", "terminated")), time_dim=1,
        )  # fmt: skip
        out = data.select(*self._keep_keys(data))
        if self.int_critic is not None:
            # RND's intrinsic stream: its own values and discount, and returns that run across episode ends (the
            # novelty of what follows a reset is still worth reaching)
            bonus = data.get(("next", "intrinsic_reward")).float().reshape(reward.shape)
            int_values, int_next = self._values(data, self.int_critic)
            never = torch.zeros_like(data.get(("next", "done")))
            int_adv, int_target = vec_generalized_advantage_estimate(
                c.intrinsic_gamma, c.gae_lambda, int_values, int_next, bonus, never, never, time_dim=1
            )
            adv = c.extrinsic_coef * adv + c.intrinsic_coef * int_adv
            out.set("value_target_int", int_target)
        out.set("advantage", adv)
        out.set("value_target", target)
        out.set("state_value", values)
        return out

    def _keep_keys(self, data: TensorDictBase) -> list[Any]:
        """What the update reads from the batch (everything else is dropped after the advantages)."""
        wanted = {*self.policy.actor.in_keys, *self.policy.critic.in_keys, "action", "action_log_prob"}
        wanted |= {k for k in data.keys() if isinstance(k, str) and k.endswith("_mask")}
        present = set(data.keys(True))
        return [k for k in wanted if k in present]

    def _critic_input(self, td: TensorDictBase) -> TensorDictBase:
        """The keys of ``td`` the critics read."""
        return td.select(*[k for k in self.policy.critic.in_keys if k in td.keys(True)])

    def _critic_rows(self, td: TensorDictBase, critic: Any = None) -> torch.Tensor:
        """``V`` over cache-sized chunks of the flattened rows."""
        critic = self.policy.critic if critic is None else critic
        return run_chunked(critic, td, self.config.chunk_size, ["state_value"]).get("state_value").float()

    def _values(self, data: TensorDictBase, critic: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``V(obs)`` and ``V(next obs)`` with one critic pass over the batch: the next observation of step ``t``
        is the observation of step ``t + 1`` except after the last step and where an env was reset, the only
        next observations evaluated separately."""
        if self.config.recurrent is not None:
            # each step from the state stored with it (the critic shares the recurrent trunk, no recurrent mode);
            # the state after step t is ("next", state) of step t: what the cell consumed at t + 1
            values = self.policy.critic(data.clone().exclude("next")).get("state_value").float()
            return values, self.policy.critic(data.get("next").clone()).get("state_value").float()
        values = self._critic_rows(self._critic_input(data), critic)
        nxt = self._critic_input(data.get("next"))
        done = data.get(("next", "done"))
        return values, next_state_values(values, nxt, done, lambda rows: self._critic_rows(rows, critic))

    # -- the update ---------------------------------------------------------------------------------------
    def _samples(self, rollout: TensorDictBase) -> TensorDictBase:
        """The batch as the rows the update shuffles: transitions, or ``[rows, L]`` sequences when recurrent
        (each starts with the state stored at its first step, so it is marked as a start for the cell)."""
        length = self.sequence_length
        if self.config.recurrent is None:
            return rollout.reshape(-1)
        seqs = rollout.reshape(rollout.shape[0], -1, length).flatten(0, 1)
        init = seqs.get("is_init").clone()
        init[:, 0] = True
        seqs.set("is_init", init)
        return seqs

    @property
    def burn_in(self) -> int:
        return 0 if self.config.recurrent is None else int(self.config.recurrent.get("burn_in", 0))

    def _trained_part(self, rows: torch.Tensor) -> torch.Tensor:
        """The part of per-row values the loss reads (burn-in steps only warm the recurrent state up)."""
        return rows[:, self.burn_in :] if self.config.recurrent is not None else rows

    def _policy_mode(self) -> contextlib.AbstractContextManager[Any]:
        return set_recurrent_mode(True) if self.config.recurrent is not None else contextlib.nullcontext()

    def _loss_terms(self, piece: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed ``loss*`` terms of the agent's loss on ``piece`` and its diagnostics, as one tensor."""
        if self.burn_in:
            piece = self._burn_in(piece)
        with self._policy_mode():
            out = self._loss(piece)
            self.extra_losses(piece, out)
        return self._loss_terms_of(out, list(self.metrics))

    def extra_losses(self, piece: TensorDictBase, out: TensorDictBase) -> None:
        """Set the agent's terms beyond its TorchRL loss into ``out``: ``loss_*`` entries are summed into what is
        differentiated, and every key of :attr:`metrics` is logged (averaged over the minibatches). Here: the
        intrinsic critic's value loss; a subclass adds its own and calls this."""
        if self.int_critic is not None:
            value = self.int_critic(self._critic_input(piece)).get("state_value").float()
            target = piece.get("value_target_int").float().reshape(value.shape)
            out.set("loss_intrinsic_value", self.config.value_coef * (value - target).pow(2).mean())

    @torch.no_grad()
    def _burn_in(self, piece: TensorDictBase) -> TensorDictBase:
        """Run the first ``burn_in`` steps to refresh the state the rest of each sequence starts from (where an
        episode starts right there, its stored reset state is kept)."""
        with set_recurrent_mode(True):
            warm = self.policy.trunk(piece[:, : self.burn_in].clone())
        rest = piece[:, self.burn_in :].clone()
        started = rest.get("is_init")[:, 0]
        for key in [k for k in rest.keys() if isinstance(k, str) and k.startswith("recurrent_state")]:
            stored = rest.get(key)
            fresh = warm.get(("next", key))[:, -1]
            mask = started.reshape(-1, *([1] * (stored.dim() - 2)))
            stored[:, 0] = torch.where(mask, stored[:, 0], fresh)
        init = rest.get("is_init").clone()
        init[:, 0] = True  # the (refreshed) stored state is where each sequence starts
        rest.set("is_init", init)
        return rest

    @torch.no_grad()
    def _kl(self, rows: TensorDictBase) -> torch.Tensor:
        """``KL(old || new)`` over the batch with the non-negative estimator ``(r - 1) - log r`` (Schulman's k3).

        Early stopping needs the KL of the policy after the epoch; the loss's ``kl_approx`` is the signed k1
        estimator ``log(old / new)`` measured before each minibatch step, whose sample mean is often negative
        (after 20 updates on ``torch_cartpole`` with 256-sample minibatches, k1 was below zero 5 times while k3
        stayed positive)."""
        if self.burn_in:
            rows = self._burn_in(rows)
        with self.engine.autocast(), self._policy_mode():
            dist = self.policy.actor.get_dist(rows.clone())
            log_ratio = dist.log_prob(rows.get("action")).float() - rows.get("action_log_prob").float()
        return (log_ratio.exp() - 1 - log_ratio).mean()

    # -- checkpoints --------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "int_critic": None if self.int_critic is None else self.int_critic.state_dict(),
            "engine": self.engine.state_dict(),
            "obs_norm": None if self.obs_norm is None else self.obs_norm.state_dict(),
            "ret_rms": None if self.ret_rms is None else self.ret_rms.state_dict(),
            "discounted": self._discounted,
            "shuffle_rng": self._shuffle.get_state(),
            # an augmentation seeded for the update (DrAC's) draws the same parameters after a resume
            "augmentation_rng": None if self._augmentation is None else self._augmentation.random_state(),
        }

    def _load_state(self, state: Any) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.int_critic is not None:
            self.int_critic.load_state_dict(state["int_critic"])
        self.engine.load_state_dict(state["engine"])
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(state["obs_norm"])
        if self.ret_rms is not None:
            self.ret_rms.load_state_dict(state["ret_rms"])
        self._discounted = state["discounted"].to(self.device)
        self._shuffle.set_state(state["shuffle_rng"])
        if self._augmentation is not None:
            self._augmentation.set_random_state(state.get("augmentation_rng") or {})

    def parameters(self) -> Any:
        self.build()
        extra = () if self.int_critic is None else self.int_critic.parameters()
        return itertools.chain(self.policy.parameters(), extra)
