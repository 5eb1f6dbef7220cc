"""The high-throughput PPO path for environments batched on the training device (rl8's design, on TorchRL).

:class:`FastPPO` is the low-level algorithm: :meth:`FastPPO.collect` fills a rollout buffer allocated once on the
device, :meth:`FastPPO.step` runs one PPO update; each returns a dict of statistics. Inside both loops nothing
is copied to the host: statistics are reduced on the device and fetched once per call. :class:`FastTrainer`
drives it with stop conditions, periodic evaluation and checkpoints that resume exactly.

Components come from the registry like everywhere else (encoder, distribution, the ``actor_critic`` policy
with separate actor and critic encoders), advantages come from TorchRL's vectorised GAE
(``vec_generalized_advantage_estimate``) and the loss is TorchRL's ``ClipPPOLoss``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from rlte_plugins.agents.base import resolve_component
from rlte_plugins.distributions.noise import Schedule
from rlte_plugins.errors import CheckpointError, ComponentArgumentError, positive_int
from rlte_plugins.training.checkpoint import rng_state, set_rng_state

#: rl8's defaults (``rl8.AlgorithmConfig``), which the throughput benchmark compares at.
#: ``torch.compile`` modes the ``compile`` option takes besides ``True``
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

RL8_DEFAULTS = dict(num_envs=8192, horizon=32, epochs=4, minibatch_size=None, gamma=0.95, gae_lambda=0.95)


class RunningMeanStd:
    """Running mean and variance over a batch axis (Chan et al.'s parallel update), kept on the device."""

    def __init__(self, shape: Sequence[int], device: torch.device) -> None:
        self.mean = torch.zeros(tuple(shape), device=device)
        self.var = torch.ones(tuple(shape), device=device)
        self.count = torch.tensor(1e-4, device=device)

    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape).float()
        n = torch.tensor(float(x.shape[0]), device=x.device)
        mean, var = x.mean(0), x.var(0, unbiased=False)
        delta, total = mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.mean, self.var, self.count = (state[k].to(self.mean.device) for k in ("mean", "var", "count"))


class FastPPO:
    """PPO with env, policy, rollout buffer, advantages and update on one device.

    Args:
        env: an env instance batched on ``device``, or a registered env name made with ``num_envs``, ``seed``,
            ``device`` and ``env_kwargs`` (default ``"dummy_discrete"``, rl8's discrete dummy task).
        num_envs, horizon: the rollout is ``num_envs x horizon`` transitions (rl8: 8192 x 32).
        device, seed: where everything lives; the seed of torch, the env and the minibatch shuffling.
        encoder, distribution: registry names, ``{"name": ..., **kwargs}`` or instances; default a 256x256 ReLU
            MLP (one for the actor, a separate one for the critic: rl8's default model) and the distribution
            matching the action space.
        epochs: passes over each rollout; ``minibatch_size``: samples per gradient step (``None``: the whole
            rollout, rl8's default); ``grad_accumulation``: consecutive minibatches of an epoch averaged into one
            optimiser step (rl8's meaning); it must divide the minibatches per epoch.
        lr, entropy_coef: numbers or schedules in environment transitions (``"linear(3e-4, 0, 10000000)"``), read
            at the frames collected before the rollout being trained on (the first update uses their start).
        gamma, gae_lambda: discount and GAE lambda (rl8: 0.95 and 0.95).
        clip_epsilon: PPO ratio clip. ``clip_value``: clip the value update around the old value (``None``: off).
        value_coef, max_grad_norm: loss weight of the critic, global gradient-norm clip.
        normalize_advantage: per minibatch. ``normalize_observation``: running mean/std of observations.
        scale_rewards: divide rewards by the running std of the discounted return (rl8's ``normalize_rewards``).
        target_kl: stop a step's remaining epochs once the approximate KL exceeds it.
        amp: ``None``, ``"bf16"`` or ``"fp16"`` (fp16 with a gradient scaler; CUDA only).
        compile: ``torch.compile`` the policy forward and the loss: ``True`` (default mode) or a mode name;
            ``"max-autotune"`` times candidate kernels while compiling: the fastest CPU setting measured (updates
            about 20% faster than eager on rl8's task), at about 15 s of compiling.
        cudagraphs: capture each update chunk's forward and backward in a CUDA graph (tensordict's
            ``CudaGraphModule``; CUDA only). The optimiser step, gradient clipping and advantage normalisation
            run outside the graph; gradients are zeroed in place rather than freed, so the graph's writes land
            where the optimiser reads them.
        chunk_size: the loss and its gradient are computed over chunks of this many samples and summed: the
            same gradient as the whole minibatch at once, with activations that stay in cache (on this
            2-core CPU, 8192-row matrix products run at 229 GFLOP/s and 262,144-row ones at 160).
        retain_memory: on CPU, keep freed memory in the process (:mod:`rlte_plugins.training.allocator`): the
            update frees and reallocates megabyte-sized activations thousands of times per step, which glibc's
            defaults turn into page faults. Process-wide; ``False`` leaves the allocator alone.
        env_kwargs: arguments of a registered env.

    Examples:
        >>> algo = FastPPO("dummy_discrete", num_envs=64, horizon=8, encoder={"name": "mlp", "num_cells": [16]})
        >>> algo.collect()["frames"]
        512
        >>> "losses/total" in algo.step()
        True
    """

    def __init__(
        self,
        env: Any = "dummy_discrete",
        *,
        num_envs: int = 8192,
        horizon: int = 32,
        device: str | torch.device = "cpu",
        seed: int = 0,
        encoder: Any = None,
        distribution: Any = None,
        epochs: int = 4,
        minibatch_size: int | None = None,
        grad_accumulation: int = 1,
        lr: Any = 3e-4,
        entropy_coef: Any = 0.0,
        gamma: float = 0.95,
        gae_lambda: float = 0.95,
        clip_epsilon: float = 0.2,
        clip_value: float | None = None,
        value_coef: float = 1.0,
        max_grad_norm: float | None = 5.0,
        normalize_advantage: bool = True,
        normalize_observation: bool = False,
        scale_rewards: bool = True,
        target_kl: float | None = None,
        amp: str | None = None,
        compile: bool | str = False,
        cudagraphs: bool = False,
        chunk_size: int = 8192,
        retain_memory: bool = True,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        owner = "algorithm 'fast_ppo'"
        self.device = torch.device(device)
        for name, value in (("num_envs", num_envs), ("horizon", horizon), ("epochs", epochs),
                            ("grad_accumulation", grad_accumulation), ("chunk_size", chunk_size)):  # fmt: skip
            positive_int(owner, name, value)
        if amp not in (None, "bf16", "fp16"):
            raise ComponentArgumentError(f"{owner}: amp must be None, 'bf16' or 'fp16', got {amp!r}")
        if amp == "fp16" and self.device.type != "cuda":
            raise ComponentArgumentError(f"{owner}: amp='fp16' needs a CUDA device; use amp='bf16' on {self.device}")
        if not isinstance(compile, bool) and compile not in COMPILE_MODES:
            raise ComponentArgumentError(
                f"{owner}: compile must be True, False or one of {', '.join(COMPILE_MODES)}, got {compile!r}"
            )
        if cudagraphs and self.device.type != "cuda":
            raise ComponentArgumentError(f"{owner}: cudagraphs needs a CUDA device, got {self.device}")
        self.hp = dict(
            num_envs=num_envs, horizon=horizon, epochs=epochs, minibatch_size=minibatch_size,
            grad_accumulation=grad_accumulation, gamma=gamma, gae_lambda=gae_lambda, clip_epsilon=clip_epsilon,
            clip_value=clip_value, value_coef=value_coef, max_grad_norm=max_grad_norm,
            normalize_advantage=normalize_advantage, normalize_observation=normalize_observation,
            scale_rewards=scale_rewards, target_kl=target_kl, amp=amp, compile=compile, cudagraphs=cudagraphs,
        )  # fmt: skip
        if retain_memory and self.device.type == "cpu":
            from rlte_plugins.training.allocator import retain_freed_memory

            retain_freed_memory()
        self.lr = Schedule.parse(lr, owner)
        self.entropy_coef = Schedule.parse(entropy_coef, owner)
        self.seed = int(seed)
        torch.manual_seed(self.seed)
        self.env = self._make_env(env, num_envs, dict(env_kwargs or {}))
        if "observation" not in self.env.observation_spec.keys():
            raise ComponentArgumentError(
                f"{owner} trains on a vector 'observation' (torch-native envs); this env provides "
                f"{[k for k in self.env.observation_spec.keys() if not str(k).startswith('episode_')]}: use the "
                "'ppo' agent for pixel envs"
            )
        self.num_envs = int(self.env.batch_size[0]) if self.env.batch_size else 1
        self.batch = self.num_envs * horizon
        if minibatch_size is not None and (minibatch_size < 1 or self.batch % minibatch_size):
            raise ComponentArgumentError(
                f"{owner}: minibatch_size must divide the rollout ({self.num_envs} x {horizon} = {self.batch}), "
                f"got {minibatch_size}"
            )
        self.minibatch_size = minibatch_size or self.batch
        per_epoch = self.batch // self.minibatch_size
        if per_epoch % grad_accumulation:
            # rl8's meaning: accumulate over the minibatches of one epoch; a remainder would mix epochs (or, with
            # the whole rollout as one minibatch, never step the optimiser at all)
            raise ComponentArgumentError(
                f"{owner}: grad_accumulation ({grad_accumulation}) must divide the minibatches per epoch "
                f"({self.batch} / minibatch_size {self.minibatch_size} = {per_epoch}); lower minibatch_size or "
                "grad_accumulation"
            )
        self.chunk_size = chunk_size
        self._build_policy(encoder, distribution)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr(0), eps=1e-5)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self._autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
        self.frames = 0
        self.iterations = 0
        self._shuffle = torch.Generator(device=self.device).manual_seed(self.seed)
        self._eval_seeds = torch.Generator().manual_seed(self.seed + 10_000)
        obs_shape = self.env.observation_spec["observation"].shape[len(self.env.batch_size) :]
        self.obs_rms = RunningMeanStd(obs_shape, self.device) if normalize_observation else None
        self.ret_rms = RunningMeanStd((), self.device) if scale_rewards else None
        self._discounted = torch.zeros(self.num_envs, device=self.device)
        self.buffer: TensorDictBase | None = None
        self._rollout: TensorDictBase | None = None
        from rlte_plugins.envs.torch_native.base import TorchEnv

        # torch-native envs step without TorchRL's per-step host sync (see _env_step)
        self._native = isinstance(self.env, TorchEnv)
        self._td = self.env.reset()
        if compile:
            mode = None if compile is True else compile
            self.actor_forward = torch.compile(self.policy.actor, mode=mode)
            self._loss = torch.compile(self.loss_module, mode=mode)
        else:
            self.actor_forward = self.policy.actor
            self._loss = self.loss_module
        self._chunk_gradient = self._loss_and_gradient
        if cudagraphs:
            self._chunk_gradient = self._capture(self._loss_and_gradient)

    def _capture(self, fn: Any) -> Any:
        """``fn`` (a chunk's forward and backward) as a CUDA graph, captured after warm-up calls; the optimiser
        step stays outside it (tensordict's ``CudaGraphModule``; on a machine without CUDA it runs eagerly)."""
        from tensordict.nn import CudaGraphModule
        from tensordict.nn.functional_modules import _exclude_td_from_pytree

        _exclude_td_from_pytree().set()  # CudaGraphModule's requirement, set up front instead of with a warning
        return CudaGraphModule(fn, warmup=3, device=self.device)

    # -- construction ------------------------------------------------------------------------------------
    def _make_env(self, env: Any, num_envs: int, kwargs: dict[str, Any]) -> EnvBase:
        if isinstance(env, EnvBase):
            if env.device != self.device:
                raise ComponentArgumentError(
                    f"algorithm 'fast_ppo': the env lives on {env.device} but the algorithm on {self.device}; the "
                    "fast path keeps both on one device"
                )
            return env
        name, extra = (
            (env, {}) if isinstance(env, str) else (env["name"], {k: v for k, v in env.items() if k != "name"})
        )
        from rlte_plugins.registry import make

        return make("env", name, num_envs=num_envs, seed=self.seed, device=self.device, **extra, **kwargs)

    def _policy_choice(self) -> Any:
        return {"name": "actor_critic", "shared_encoder": False}

    def _build_policy(self, encoder: Any, distribution: Any) -> None:
        from rlte_plugins.distributions.base import default_distribution

        encoder = resolve_component(
            "encoder", encoder or {"name": "mlp", "num_cells": [256, 256], "activation": "relu"}
        )
        if distribution is None:
            distribution = default_distribution(self.env.action_spec)
        distribution = resolve_component("distribution", distribution)
        self.policy = resolve_component("policy", self._policy_choice())
        if hasattr(distribution, "on_policy"):  # a plugin's head may predate the hook
            distribution.on_policy()
        self.policy.build(encoder, distribution, self.env.observation_spec, self.env.action_spec)
        self.policy.to(self.device)
        self.loss_module = ClipPPOLoss(
            self.policy.actor,
            self.policy.critic,
            clip_epsilon=self.hp["clip_epsilon"],
            entropy_coeff=float(self.entropy_coef(0)),
            critic_coeff=self.hp["value_coef"],
            loss_critic_type="l2",
            normalize_advantage=False,  # done here over the whole minibatch (the loss sees chunks of it)
            clip_value=self.hp["clip_value"],
        )
        self.loss_module.set_keys(value_target="value_target", sample_log_prob="action_log_prob")
        encoder_keys = {k for m in self.policy.actor.modules() if hasattr(m, "out_features") and hasattr(m, "out_keys")
                        for k in m.out_keys}  # fmt: skip
        self._actor_keys = [k for k in self.policy.actor.out_keys if k not in encoder_keys]

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    # -- observation normalisation ----------------------------------------------------------------------
    def _normalize(self, td: TensorDictBase, update: bool) -> TensorDictBase:
        if self.obs_rms is None:
            return td
        obs = td.get("observation")
        if update:
            self.obs_rms.update(obs)
        normed = ((obs - self.obs_rms.mean) / (self.obs_rms.var + 1e-8).sqrt()).clamp(-10.0, 10.0)
        return td.set("observation", normed)

    # -- collect ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> dict[str, float]:
        """Run ``horizon`` steps of every env with the current policy into the device-resident buffer."""
        start = time.perf_counter()
        td = self._td
        # no autocast here: the stored log-probs are the ratio's denominator and the values feed GAE, both kept in
        # float32 (under bf16, |V| = 40 came out up to 0.12 off); AMP applies to the update
        with set_exploration_type(ExplorationType.RANDOM):
            for t in range(self.hp["horizon"]):
                td = self._normalize(td.exclude("next"), update=True)
                td = self._chunked(self.actor_forward, td, self._actor_keys)
                step, td = self._env_step(td)
                self._store(t, step)
        self._td = td
        data = self._rollout  # [num_envs, horizon], allocated once and overwritten every collect
        data.set(("next", "observation"), self._normalize(data.get("next").select("observation"), False)["observation"])
        self.buffer = self._advantages(data)
        self.frames += self.batch
        stats = self._episode_stats(data)
        elapsed = time.perf_counter() - start
        stats.update({"frames": self.frames, "collect/time_s": elapsed, "collect/frames_per_s": self.batch / elapsed})
        return stats

    def _env_step(self, td: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
        """``env.step_and_maybe_reset``; for a torch-native env, the same transition without TorchRL's generic
        per-step work and without its host synchronisation (``any_done`` reads a bool off the device every step):
        every env's partial reset is computed and applied where ``done``, on the device."""
        if not self._native:
            return self.env.step_and_maybe_reset(td)
        env = self.env
        nxt = env._step(td)
        step = td.set("next", nxt)
        after = env._reset(TensorDict(_reset=nxt.get("done"), batch_size=env.batch_size, device=self.device))
        return step, after

    def _store(self, t: int, step: TensorDictBase) -> None:
        if self._rollout is None or self._rollout.get("next").keys() != step.get("next").keys():
            horizon = self.hp["horizon"]
            self._rollout = step.unsqueeze(1).expand(*step.shape, horizon).clone()
        self._rollout[:, t] = step

    def _advantages(self, data: TensorDictBase) -> TensorDictBase:
        reward = data.get(("next", "reward")).float()
        if self.ret_rms is not None:
            # rl8's reward normalisation: rewards divided by the running std of the discounted return
            done = data.get(("next", "done")).squeeze(-1)
            returns = []
            disc = self._discounted
            for t in range(reward.shape[1]):
                disc = disc * self.hp["gamma"] * (~done[:, t]).float() + reward[:, t, 0]
                returns.append(disc)
            self._discounted = disc
            self.ret_rms.update(torch.stack(returns))
            reward = reward / (self.ret_rms.var + 1e-8).sqrt()
        values, next_values = self._values(data)
        adv, target = vec_generalized_advantage_estimate(
            self.hp["gamma"], self.hp["gae_lambda"], values, next_values, reward,
            data.get(("next", "done")), data.get(("next", "terminated")), time_dim=1,
        )  # fmt: skip
        out = data.select(*self._keep_keys(data))
        out.set("advantage", adv)
        out.set("value_target", target)
        out.set("state_value", values)
        return out

    def _chunked(self, module: Any, td: TensorDictBase, keys: list[str]) -> TensorDictBase:
        """``module(td)`` over cache-sized chunks of the flattened batch (large activations are memory-bound:
        one pass over 65,536 rows runs several times slower per row than eight passes over 8,192)."""
        flat = td.reshape(-1)
        if flat.shape[0] <= self.chunk_size:
            out = module(td.clone(False)).select(*keys)
        else:
            parts = [module(flat[i : i + self.chunk_size].clone(False)).select(*keys)
                     for i in range(0, flat.shape[0], self.chunk_size)]  # fmt: skip
            out = torch.cat(parts).reshape(td.shape)
        # only the outputs asked for: intermediate features (256 floats per sample) are not kept or copied
        return td.update(out)

    def _keep_keys(self, data: TensorDictBase) -> list[str]:
        """What the update reads from the rollout (everything else is dropped after the advantages)."""
        keep = ["observation", "action", "action_log_prob"]
        return keep + [k for k in data.keys() if isinstance(k, str) and k.endswith("_mask")]

    def _values(self, data: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """``V(obs)`` and ``V(next obs)`` with one critic pass over the rollout: the next observation of step
        ``t`` is the observation of step ``t + 1`` except after the last step and where an env was reset,
        which are the only next observations evaluated separately."""

        def critic(td: TensorDictBase) -> TensorDictBase:
            return self._chunked(self.policy.critic, td, ["state_value"])

        values = critic(data.select("observation").clone())["state_value"].float()
        nxt = data.get("next").get("observation")
        last = critic(TensorDict(observation=nxt[:, -1], batch_size=nxt.shape[:1]))["state_value"].float()
        next_values = torch.cat([values[:, 1:], last.unsqueeze(1)], dim=1)
        reset = data.get(("next", "done"))[:, :-1].squeeze(-1)
        rows, cols = reset.nonzero(as_tuple=True)
        if rows.numel():
            fresh = critic(TensorDict(observation=nxt[rows, cols], batch_size=rows.shape))["state_value"].float()
            next_values[rows, cols] = fresh
        return values, next_values

    def _episode_stats(self, data: TensorDictBase) -> dict[str, float]:
        nxt = data.get("next")
        end_key = "episode_end" if "episode_end" in nxt.keys() else "done"
        ended = nxt.get(end_key).squeeze(-1)
        reward = nxt.get("reward").float()
        out = torch.stack([reward.mean(), reward.std(), ended.sum().float()])
        stats = {"rewards/mean": 0.0, "rewards/std": 0.0, "episodes": 0.0}
        if "episode_reward" in nxt.keys():
            ret = nxt.get("episode_reward").squeeze(-1).float()
            inf = torch.full_like(ret, math.inf)
            mean = torch.where(ended, ret, torch.zeros_like(ret)).sum() / ended.sum().clamp_min(1)
            out = torch.cat(
                [out, torch.stack([mean, torch.where(ended, ret, -inf).max(), torch.where(ended, ret, inf).min()])]
            )
        values = out.tolist()  # the one host transfer of collect
        stats.update(zip(["rewards/mean", "rewards/std", "episodes"], values[:3], strict=True))
        if len(values) > 3 and values[2] > 0:
            stats.update(zip(["returns/mean", "returns/max", "returns/min"], values[3:], strict=True))
        return stats

    # -- update -------------------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One PPO update over the collected rollout; returns the mean losses, KL and learning rate."""
        if self.buffer is None:
            raise RuntimeError("algorithm 'fast_ppo': call collect() before step()")
        start = time.perf_counter()
        # schedules are read where this rollout's collection started (the frames before it), as the ppo agent does
        at = self.frames - self.batch
        lr = float(self.lr(at))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.loss_module.entropy_coeff.fill_(float(self.entropy_coef(at)))
        flat = self._samples(self.buffer)
        mb, accumulate = self.minibatch_size // self._sample_length, self.hp["grad_accumulation"]
        rows = flat.shape[0]
        sums = torch.zeros(5, device=self.device)
        count = 0  # minibatches of this update, across epochs: the optimiser steps every `accumulate` of them
        epochs_done = 0
        for _ in range(self.hp["epochs"]):
            order = torch.randperm(rows, device=self.device, generator=self._shuffle) if mb < rows else None
            for i in range(rows // mb):
                batch = flat if order is None else flat[order[i * mb : (i + 1) * mb]]
                sums += self._update_minibatch(batch, count, accumulate)
                count += 1
            epochs_done += 1
            target = self.hp["target_kl"]
            if target is not None:  # one extra actor pass and one host sync per epoch, only when asked
                kl = self._kl(batch)
                if float(kl) > target:
                    break
        # accumulation divides an epoch, so nothing is pending here; zeroing still guarantees that no gradient of
        # this rollout reaches the next update (and that checkpoints never need to carry a partial sum)
        self.optimizer.zero_grad(set_to_none=not self.hp["cudagraphs"])
        self.iterations += 1
        self.buffer = None
        means = (sums / max(count, 1)).tolist()
        stats = dict(zip(["losses/policy", "losses/value", "monitors/entropy", "losses/total", "monitors/kl"], means,
                         strict=True))  # fmt: skip
        stats.update({"lr": lr, "epochs": epochs_done, "update/time_s": time.perf_counter() - start,
                      "entropy_coef": float(self.loss_module.entropy_coeff)})  # fmt: skip
        return stats

    _sample_length = 1  # transitions per row of what the update shuffles (sequence length when recurrent)

    def _samples(self, buffer: TensorDictBase) -> TensorDictBase:
        """The rollout as the rows the update shuffles and cuts into minibatches: single transitions."""
        return buffer.reshape(-1)

    def _policy_mode(self) -> contextlib.AbstractContextManager[Any]:
        """How the policy runs over update rows (the recurrent variant runs it over sequences)."""
        return contextlib.nullcontext()

    def _trained_part(self, rows: torch.Tensor) -> torch.Tensor:
        """The part of a minibatch's per-row values that the loss reads (the recurrent variant drops burn-in)."""
        return rows

    def _loss_call(self, piece: TensorDictBase) -> TensorDictBase:
        with self._policy_mode():
            return self._loss(piece)

    @torch.no_grad()
    def _kl(self, batch: TensorDictBase) -> torch.Tensor:
        """``KL(old || new)`` on ``batch`` with the non-negative estimator ``(r - 1) - log r`` (Schulman's k3).

        Not ``ClipPPOLoss``'s ``kl_approx``: that one is the signed k1 estimator ``log(old / new)``, measured by
        the loss before the minibatch's optimiser step. Early stopping needs the KL of the policy after the
        epoch, and k1's sample mean is often negative: after each of 20 updates on ``torch_cartpole`` (256-sample
        minibatches), k1 was below zero 5 times while k3 stayed positive (e.g. -0.0045 against 0.0085)."""
        with self._autocast(), self._policy_mode():
            dist = self.policy.actor.get_dist(batch.clone())
            log_ratio = dist.log_prob(batch.get("action")).float() - batch.get("action_log_prob").float()
        return (log_ratio.exp() - 1 - log_ratio).mean()

    def _update_minibatch(self, batch: TensorDictBase, index: int, accumulate: int) -> torch.Tensor:
        """Gradient of the PPO loss on ``batch``, computed in cache-sized chunks and summed (the same gradient as
        one pass over the whole minibatch: every term is a mean, chunks are equal), then an optimiser step
        every ``accumulate`` minibatches."""
        if self.hp["normalize_advantage"]:  # over the whole minibatch, before it is cut into chunks
            adv = batch.get("advantage")
            seen = self._trained_part(adv)
            batch = batch.clone(False).set("advantage", (adv - seen.mean()) / seen.std().clamp_min(1e-8))
        n = batch.shape[0]
        rows_per_chunk = max(1, self.chunk_size // self._sample_length)
        chunk = rows_per_chunk if n % rows_per_chunk == 0 else n
        parts = n // chunk
        sums = torch.zeros(5, device=self.device)
        for c in range(parts):
            piece = batch if parts == 1 else batch[c * chunk : (c + 1) * chunk]
            sums += self._chunk_gradient(piece, 1.0 / (accumulate * parts))
        if (index + 1) % accumulate == 0:
            if self.hp["max_grad_norm"] is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.hp["max_grad_norm"])
            self.scaler.step(self.optimizer)
            self.scaler.update()
            # CUDA graphs replay into the gradients' memory: it must stay where it was when captured
            self.optimizer.zero_grad(set_to_none=not self.hp["cudagraphs"])
        return sums / parts

    def _loss_and_gradient(self, piece: TensorDictBase, weight: float) -> torch.Tensor:
        """Loss on one chunk and its gradient times ``weight``, added to the parameters' ``.grad``; returns the
        policy, value, entropy, total and KL terms (what the CUDA graph captures when ``cudagraphs``)."""
        zero = torch.zeros((), device=self.device)
        with self._autocast():
            out = self._loss_call(piece)
            total = out["loss_objective"] + out["loss_critic"] + out.get("loss_entropy", zero)
        self.scaler.scale(total * weight).backward()
        return torch.stack([
            out["loss_objective"].detach().float(), out["loss_critic"].detach().float(),
            out.get("entropy", zero).detach().float(), total.detach().float(),
            out.get("kl_approx", zero).detach().float(),
        ])  # fmt: skip

    # -- evaluation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self, env: EnvBase | None = None, episodes: int = 16, max_steps: int = 100_000, deterministic: bool = True
    ) -> list[float]:
        """Returns of ``episodes`` complete episodes, one per env of ``env`` (the mode action when
        ``deterministic``, sampled otherwise). Without ``env``, one is made like the training env with
        ``episodes`` envs and a new seed drawn from the algorithm's evaluation generator, so successive
        evaluations see new start states and a resumed run draws the same ones (a given ``env`` keeps its own
        generator, which no checkpoint holds). Sampled actions come from a second seed drawn alike, inside a
        fork of torch's generators, with the policy in eval mode: evaluating never changes the training run.
        Raises if an episode has not ended after ``max_steps`` steps."""
        positive_int("algorithm 'fast_ppo'", "episodes", episodes)
        env_seed, action_seed = torch.randint(2**31 - 1, (2,), generator=self._eval_seeds).tolist()
        cuda = self.device.type == "cuda"
        # only the generators the fork restores are reseeded (torch.manual_seed would reseed every device's)
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            torch.default_generator.manual_seed(action_seed)
            if cuda:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(action_seed)
            env = env or self._make_env_copy(episodes, env_seed)
            was_training = self.policy.training
            self.policy.eval()
            try:
                return self._run_evaluation(env, episodes, max_steps, deterministic)
            finally:
                self.policy.train(was_training)

    def _run_evaluation(self, env: EnvBase, episodes: int, max_steps: int, deterministic: bool) -> list[float]:
        td = env.reset()
        done_once = torch.zeros(env.batch_size, dtype=torch.bool, device=self.device)
        returns = torch.zeros(env.batch_size, device=self.device)
        mode = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
        with set_exploration_type(mode):
            for _ in range(max_steps):
                td = self.policy.actor(self._normalize(td.exclude("next"), update=False))
                step, td = env.step_and_maybe_reset(td)
                nxt = step.get("next")
                end_key = "episode_end" if "episode_end" in nxt.keys() else "done"
                ended = nxt.get(end_key).reshape(env.batch_size) & ~done_once
                returns = torch.where(ended, nxt.get("episode_reward").reshape(env.batch_size), returns)
                done_once |= ended
                if bool(done_once.all()):
                    break
            else:
                raise RuntimeError(
                    f"algorithm 'fast_ppo': {int((~done_once).sum())} of {done_once.numel()} evaluation episodes did "
                    f"not end within max_steps={max_steps}"
                )
        return returns[:episodes].tolist()

    def _make_env_copy(self, num_envs: int, seed: int) -> EnvBase:
        from rlte_plugins.registry import ComponentRef

        ref = getattr(self.env, "_rlte_component", None)
        if not isinstance(ref, ComponentRef):
            raise ComponentArgumentError(
                "algorithm 'fast_ppo': pass an evaluation env (the training env was given as an instance)"
            )
        from rlte_plugins.registry import make

        kwargs = {**ref.kwargs, "num_envs": num_envs, "seed": seed, "device": self.device}
        return make("env", ref.name, **kwargs)

    # -- checkpoint state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, optimiser, scaler, counters, the
        normalisation statistics, the RNG states, the env's state and the current observation."""
        if not hasattr(self.env, "env_state"):
            raise CheckpointError(
                f"algorithm 'fast_ppo': env {type(self.env).__name__} cannot save its state, so a run on it cannot "
                "resume exactly (torch-native envs can)"
            )
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "frames": self.frames,
            "iterations": self.iterations,
            "obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(),
            "ret_rms": None if self.ret_rms is None else self.ret_rms.state_dict(),
            "discounted": self._discounted,
            "shuffle_rng": self._shuffle.get_state(),
            "eval_seed_rng": self._eval_seeds.get_state(),
            "rng": rng_state(),
            "env": self.env.env_state(),
            "td": self._td.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k in self.state_dict() if k not in state]
        if missing:  # checked before anything is loaded, so a refused checkpoint leaves the algorithm as it was
            raise CheckpointError(
                f"algorithm 'fast_ppo': the checkpoint lacks {', '.join(missing)} (written by another version, or not "
                "a fast_ppo checkpoint)"
            )
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.frames, self.iterations = int(state["frames"]), int(state["iterations"])
        for rms, key in ((self.obs_rms, "obs_rms"), (self.ret_rms, "ret_rms")):
            if (rms is None) != (state[key] is None):
                raise CheckpointError(f"checkpoint and algorithm disagree on {key} (normalisation switched on or off)")
            if rms is not None:
                rms.load_state_dict(state[key])
        self._discounted = state["discounted"].to(self.device)
        self._shuffle.set_state(state["shuffle_rng"])
        self._eval_seeds.set_state(state["eval_seed_rng"])
        set_rng_state(state["rng"])
        self.env.load_env_state(state["env"])
        self._td = TensorDict(state["td"], batch_size=self.env.batch_size, device=self.device)
        self.buffer = None


class FastTrainer:
    """Runs a :class:`FastPPO` until a stop condition holds: collect, step, evaluate every ``eval_every``
    iterations, checkpoint every ``checkpoint_every`` iterations (atomically; :meth:`resume` continues exactly).

    Examples:
        >>> from rlte_plugins.training.conditions import FrameBudget
        >>> algo = FastPPO("torch_cartpole", num_envs=16, horizon=8, encoder={"name": "mlp", "num_cells": [8]})
        >>> history = FastTrainer(algo).run([FrameBudget(256)])
        >>> len(history), history[-1]["frames"]
        (2, 256)
    """

    def __init__(self, algorithm: FastPPO, eval_env: EnvBase | None = None, eval_episodes: int = 16) -> None:
        self.algorithm = algorithm
        self.eval_env = eval_env
        self.eval_episodes = eval_episodes
        self.elapsed = 0.0

    def eval(self) -> dict[str, float]:
        returns = torch.tensor(self.algorithm.evaluate(self.eval_env, self.eval_episodes))
        return {"eval/returns/mean": float(returns.mean()), "eval/returns/min": float(returns.min()),
                "eval/returns/max": float(returns.max())}  # fmt: skip

    def step(self) -> dict[str, float]:
        start = time.perf_counter()
        stats = {**self.algorithm.collect(), **self.algorithm.step()}
        self.elapsed += time.perf_counter() - start
        stats["time_s"] = self.elapsed
        stats["iteration"] = self.algorithm.iterations
        return stats

    def run(
        self,
        stop_conditions: Sequence[Any] = (),
        eval_every: int | None = None,
        checkpoint_every: int | None = None,
        checkpoint_path: str | None = None,
        log: Any = None,
    ) -> list[dict[str, float]]:
        """Train until any of ``stop_conditions`` holds (never, without one: pass a budget). Returns the
        per-iteration statistics; ``log(stats)`` is called with each."""
        if not stop_conditions:
            raise ComponentArgumentError("FastTrainer.run needs a stop condition (e.g. FrameBudget(1_000_000))")
        if checkpoint_every and not checkpoint_path:
            raise ComponentArgumentError("FastTrainer.run: checkpoint_every needs a checkpoint_path")
        history = []
        while True:
            stats = self.step()
            if eval_every and self.algorithm.iterations % eval_every == 0:
                stats.update(self.eval())
            history.append(stats)
            if log is not None:
                log(stats)
            if checkpoint_every and self.algorithm.iterations % checkpoint_every == 0:
                self.save(checkpoint_path)
            if any([cond(stats) for cond in stop_conditions]):
                return history

    def save(self, path: str) -> None:
        from rlte_plugins.training.checkpoint import save_checkpoint

        save_checkpoint({"agent": "fast_ppo", "state": self.algorithm.state_dict(), "elapsed": self.elapsed}, path)

    def resume(self, path: str) -> None:
        """Load a checkpoint written by :meth:`save`: training then continues as if never interrupted."""
        from rlte_plugins.training.checkpoint import load_checkpoint

        data = load_checkpoint(path, kind="fast_ppo")
        self.algorithm.load_state_dict(data["state"])
        self.elapsed = float(data.get("elapsed", 0.0))
