"""The fast path as an agent: what ``rlte train -f config.yaml`` and ``make("agent", "fast_ppo")`` build."""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

import torch

from rlte_plugins.errors import CheckpointError, ComponentArgumentError, positive_int
from rlte_plugins.training.conditions import FrameBudget, from_config
from rlte_plugins.training.progress import Progress


class FastPPOAgent:
    """PPO on the fast path (:class:`~rlte_plugins.training.fast.FastPPO`) behind the agent interface.

    The env must be batched on ``device`` (torch-native envs: ``torch_cartpole``, ``dummy_discrete``, ...).
    Components are chosen with :meth:`set` (``encoder``, ``distribution``); the policy is always the
    ``actor_critic`` with separate actor and critic encoders.

    Args:
        env: a registered env name or ``{"name": ..., **kwargs}`` (``num_envs`` inside it or as an argument).
        device, seed: as every agent.
        num_envs, horizon: the rollout shape.
        stop_conditions: extra stop conditions as config mappings (``[{"hits_upper_bound": {"key":
            "eval/returns/mean", "bound": 475}}]``); the frame budget of :meth:`train` always applies.
        eval_every: evaluate every this many iterations (``0``: never during training).
        eval_episodes: deterministic episodes per evaluation during training (what ``eval/returns/mean``, and so a
            stop condition on it, averages).
        recurrent: train an LSTM/GRU policy with :class:`~rlte_plugins.training.fast_recurrent.RecurrentFastPPO`:
            its options, e.g. ``{"cell": "gru", "hidden_size": 64, "sequence_length": 16, "burn_in": 4}``.
        **hparams: :class:`~rlte_plugins.training.fast.FastPPO`'s options (``epochs``, ``minibatch_size``,
            ``lr``, ``entropy_coef``, ``gamma``, ``gae_lambda``, ``clip_epsilon``, ``amp``, ``compile``, ...).

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "fast_ppo", env="torch_cartpole", num_envs=16, horizon=16)
        >>> agent.set(encoder={"name": "mlp", "num_cells": [16]}).train(total_frames=512, progress=False)["frames"]
        512
    """

    name = "fast_ppo"

    def __init__(
        self,
        env: Any = "torch_cartpole",
        device: str | torch.device = "cpu",
        seed: int = 0,
        num_envs: int = 64,
        horizon: int = 128,
        stop_conditions: list[dict[str, Any]] | None = None,
        eval_every: int = 0,
        eval_episodes: int = 16,
        recurrent: dict[str, Any] | None = None,
        **hparams: Any,
    ) -> None:
        from rlte_plugins.training.fast import FastPPO

        known = set(inspect.signature(FastPPO).parameters) - {"env", "num_envs", "horizon", "device", "seed"}
        unknown = sorted(set(hparams) - known - {"encoder", "distribution"})
        if unknown:
            raise ComponentArgumentError(
                f"agent 'fast_ppo' got unexpected argument {unknown[0]!r} (FastPPO options: {', '.join(sorted(known))})"
            )
        if isinstance(env, dict):
            env = dict(env)
            num_envs = int(env.pop("num_envs", num_envs))
        self.env, self.device, self.seed = env, torch.device(device), int(seed)
        self.num_envs, self.horizon = num_envs, horizon
        self.stop_conditions = [from_config(c) for c in (stop_conditions or [])]
        self.eval_every = eval_every
        self.eval_episodes = positive_int("agent 'fast_ppo'", "eval_episodes", eval_episodes)
        allowed = {"cell", "hidden_size", "sequence_length", "burn_in"}
        if recurrent is not None and (not isinstance(recurrent, dict) or set(recurrent) - allowed):
            raise ComponentArgumentError(
                f"agent 'fast_ppo': recurrent takes a mapping of {', '.join(sorted(allowed))}, got {recurrent!r}"
            )
        self.recurrent = recurrent
        self.hparams = hparams
        self.components: dict[str, Any] = {}
        self.trainer: Any = None
        self.history: list[dict[str, float]] = []
        self.frames = 0

    def set(self, **components: Any) -> FastPPOAgent:
        """Choose ``encoder`` and/or ``distribution`` (names, mappings or instances)."""
        bad = sorted(set(components) - {"encoder", "distribution", "policy", "storage"})
        if bad:
            raise ComponentArgumentError(f"agent 'fast_ppo' has no component {bad[0]!r} (encoder, distribution)")
        for kind in ("policy", "storage"):
            choice = components.pop(kind, None)
            name = (
                choice if isinstance(choice, str) else (choice or {}).get("name") if isinstance(choice, dict) else None
            )
            if choice is not None and name not in ("actor_critic", "rollout"):
                raise ComponentArgumentError(
                    f"agent 'fast_ppo' uses its own {kind} (actor_critic with separate encoders, a device rollout); "
                    f"got {choice!r}"
                )
        if self.trainer is not None:
            raise ComponentArgumentError("agent 'fast_ppo' is built: set components before training")
        self.components.update(components)
        return self

    def build(self) -> FastPPOAgent:
        from rlte_plugins.training.fast import FastPPO, FastTrainer
        from rlte_plugins.training.fast_recurrent import RecurrentFastPPO

        if self.trainer is None:
            cls: Any = FastPPO if self.recurrent is None else RecurrentFastPPO
            algo = cls(
                self.env, num_envs=self.num_envs, horizon=self.horizon, device=self.device, seed=self.seed,
                **self.components, **self.hparams, **(self.recurrent or {}),
            )  # fmt: skip
            self.trainer = FastTrainer(algo, eval_episodes=self.eval_episodes)
        return self

    def train(
        self,
        total_frames: int,
        progress: bool = True,
        logger: Any = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
    ) -> dict[str, float]:
        """Train until ``total_frames`` (or an earlier stop condition); checkpoints every ``checkpoint_every``
        frames (rounded to whole iterations) and at the end."""
        positive_int("agent 'fast_ppo'", "total_frames", total_frames)
        self.build()
        algo = self.trainer.algorithm
        every = None if not checkpoint_every else max(1, checkpoint_every // algo.batch)
        bar = Progress(total_frames, initial=algo.frames, enabled=progress)
        start = time.perf_counter()

        def log(stats: dict[str, float]) -> None:
            self.history.append({"frames": stats["frames"], "episode_return": stats.get("returns/mean")})
            bar.update(int(stats["frames"]), {"episode_return": stats.get("returns/mean", float("nan"))})
            if logger is not None:
                for key, value in stats.items():
                    logger.log_scalar(key, float(value), step=int(stats["frames"]))

        try:
            history = self.trainer.run(
                [FrameBudget(total_frames), *self.stop_conditions],
                eval_every=self.eval_every or None,
                checkpoint_every=every if checkpoint_path else None,
                checkpoint_path=str(checkpoint_path) if checkpoint_path else None,
                log=log,
            )
        finally:
            bar.close()
        self.frames = algo.frames
        if checkpoint_path:
            self.trainer.save(str(checkpoint_path))
        last = history[-1]
        return {**last, "episode_return": last.get("returns/mean"), "frames": self.frames,
                "wall_time": time.perf_counter() - start}  # fmt: skip

    def evaluate(self, episodes: int = 10, deterministic: bool = True) -> list[float]:
        """Returns of ``episodes`` episodes (mode actions when ``deterministic``), from new start states each call."""
        self.build()
        return self.trainer.algorithm.evaluate(episodes=episodes, deterministic=deterministic)

    def save(self, path: str | os.PathLike[str]) -> str:
        self.build()
        self.trainer.save(str(path))
        return str(path)

    def load(self, path: str | os.PathLike[str]) -> FastPPOAgent:
        self.build()
        try:
            self.trainer.resume(str(path))
        except KeyError as exc:
            raise CheckpointError(f"checkpoint {str(path)!r} lacks {exc} (not a fast_ppo checkpoint?)") from exc
        self.frames = self.trainer.algorithm.frames
        return self

    def __repr__(self) -> str:
        return f"FastPPOAgent(env={self.env!r}, num_envs={self.num_envs}, horizon={self.horizon}, device={self.device})"
