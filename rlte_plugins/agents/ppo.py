"""Proximal Policy Optimization on TorchRL's Collector, GAE and ClipPPOLoss."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.envs import EnvBase
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from rlte_plugins.agents.base import (
    check_batched,
    component_ref,
    env_like,
    make_env,
    resolve_component,
    run_episodes,
)
from rlte_plugins.distributions.base import default_distribution
from rlte_plugins.errors import CheckpointError, ComponentArgumentError, positive_int
from rlte_plugins.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from rlte_plugins.training.progress import Progress

COMPONENTS = ("encoder", "policy", "distribution", "storage", "reward")


class PPO:
    """Proximal Policy Optimization (clipped objective, GAE, truncation bootstrapped) on TorchRL.

    Components are chosen with :meth:`set` (instances or registry names); unset ones default to the
    ``mlp`` encoder, the ``actor_critic`` policy, the ``rollout`` storage and a distribution matching the
    action space (``categorical``, ``multi_categorical``, ``bernoulli`` or ``diagonal_gaussian``). A batch is
    ``num_envs * num_steps`` frames, updated for ``epochs`` passes of ``num_minibatches`` minibatches.
    Learning-rate and clip annealing are linear in frames over the ``total_frames`` given to :meth:`train`.

    Args:
        env: a TorchRL env (batched), a registered env name, a gymnasium id or ``{"name": ..., **kwargs}``.
        device: where the networks, the rollout and the update live.
        seed: seeds torch, numpy, Python and the env.
        num_envs: parallel envs when the agent makes the env.
        num_steps: steps per env per batch.
        epochs: passes over each batch.
        num_minibatches: minibatches per pass.
        lr: Adam learning rate (start of the schedule when ``anneal_lr``).
        anneal_lr: anneal the learning rate linearly to 0.
        gamma: discount.
        gae_lambda: GAE lambda.
        clip_epsilon: PPO ratio clip (start of the schedule when ``anneal_clip``).
        anneal_clip: anneal the clip range linearly to 0.
        entropy_coef: entropy bonus coefficient.
        value_coef: value loss coefficient.
        max_grad_norm: global gradient-norm clip.
        normalize_advantage: normalise advantages per minibatch.
        clip_value: clip the value update to this range around the old value (``None``: off).
        critic_loss: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        target_kl: stop a batch's epochs early once the approximate KL exceeds it (``None``: off).
        adam_eps: Adam epsilon.
        intrinsic_coef: weight of the intrinsic reward (``set(reward=...)``), added before GAE.
        eval_env: env for :meth:`evaluate` (default: one made like ``env``).

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "ppo", env="CartPole-v1", num_envs=2, num_steps=16, seed=0)
        >>> agent = agent.set(encoder="mlp")
        >>> agent.train(total_frames=64, progress=False)["frames"]
        64
        >>> len(agent.evaluate(episodes=3))
        3
    """

    name = "ppo"

    def __init__(
        self,
        env: Any,
        device: str | torch.device = "cpu",
        seed: int = 0,
        *,
        num_envs: int = 8,
        num_steps: int = 128,
        epochs: int = 4,
        num_minibatches: int = 4,
        lr: float = 2.5e-4,
        anneal_lr: bool = True,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_epsilon: float = 0.2,
        anneal_clip: bool = False,
        entropy_coef: float = 0.01,
        value_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        normalize_advantage: bool = True,
        clip_value: float | None = None,
        critic_loss: str = "l2",
        target_kl: float | None = None,
        adam_eps: float = 1e-5,
        intrinsic_coef: float = 1.0,
        eval_env: Any = None,
    ) -> None:
        self.hparams: dict[str, Any] = dict(
            num_envs=num_envs,
            num_steps=num_steps,
            epochs=epochs,
            num_minibatches=num_minibatches,
            lr=lr,
            anneal_lr=anneal_lr,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_epsilon=clip_epsilon,
            anneal_clip=anneal_clip,
            entropy_coef=entropy_coef,
            value_coef=value_coef,
            max_grad_norm=max_grad_norm,
            normalize_advantage=normalize_advantage,
            clip_value=clip_value,
            critic_loss=critic_loss,
            target_kl=target_kl,
            adam_eps=adam_eps,
            intrinsic_coef=intrinsic_coef,
        )
        self._check_hparams()
        self.device = torch.device(device)
        self.seed = int(seed)
        _seed_everything(self.seed)
        self.env = make_env(env, num_envs, self.seed, self.device)
        check_batched(self.env, "agent 'ppo'")
        if self.frames_per_batch % self.hparams["num_minibatches"]:
            raise ComponentArgumentError(
                f"agent 'ppo': the env's {self.env.batch_size[0]} envs x num_steps {num_steps} = "
                f"{self.frames_per_batch} frames per batch is not divisible by num_minibatches ({num_minibatches})"
            )
        self._eval_env_choice = eval_env
        self._eval_env: EnvBase | None = None
        self._choices: dict[str, Any] = {k: None for k in COMPONENTS}
        self.components: dict[str, Any] = {}
        self.built = False
        self.frames = 0
        self.iterations = 0
        self.total_frames: int | None = None
        self.history: list[dict[str, float]] = []

    # -- composition ------------------------------------------------------------------------------------
    def set(self, **components: Any) -> PPO:
        """Choose components by instance or registry name: ``encoder``, ``policy``, ``distribution``,
        ``storage`` and an optional intrinsic ``reward`` (writes ``intrinsic_reward`` from next observations)."""
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise ComponentArgumentError(
                f"agent 'ppo'.set() got unknown component {sorted(unknown)[0]!r} (accepted: {', '.join(COMPONENTS)})"
            )
        if self.built:
            raise ComponentArgumentError(
                "agent 'ppo' is already built (trained, evaluated or loaded): set components before"
            )
        for kind, choice in components.items():
            self._choices[kind] = resolve_component(kind, choice) if choice is not None else None
        return self

    def build(self) -> PPO:
        """Build every component against the env's specs, the loss, the estimator and the optimiser."""
        if self.built:
            return self
        hp = self.hparams
        action_spec = self.env.action_spec
        default_dist = default_distribution(action_spec)
        encoder = self._choices["encoder"] or resolve_component("encoder", "mlp")
        distribution = self._choices["distribution"] or resolve_component("distribution", default_dist)
        policy = self._choices["policy"] or resolve_component("policy", "actor_critic")
        storage = self._choices["storage"] or resolve_component("storage", "rollout")
        if hasattr(distribution, "on_policy"):  # a plugin's head may predate the hook
            distribution.on_policy()
        policy.build(encoder, distribution, self.env.observation_spec, action_spec)
        policy.to(self.device)
        self.components = dict(encoder=encoder, distribution=distribution, policy=policy, storage=storage)
        reward = self._choices["reward"]
        if reward is not None:
            if hasattr(reward, "build"):
                reward.build(self.env.observation_spec)
            if isinstance(reward, torch.nn.Module):
                reward.to(self.device)
            self.components["reward"] = reward
        self.policy = policy
        frames_per_batch = self.frames_per_batch
        storage.build(frames_per_batch, frames_per_batch // hp["num_minibatches"], self.device)
        self.loss = ClipPPOLoss(
            policy.actor,
            policy.critic,
            clip_epsilon=hp["clip_epsilon"],
            entropy_coeff=hp["entropy_coef"],
            critic_coeff=hp["value_coef"],
            loss_critic_type=hp["critic_loss"],
            normalize_advantage=hp["normalize_advantage"],
            clip_value=hp["clip_value"],
            functional=False,
        )
        self.advantage = GAE(gamma=hp["gamma"], lmbda=hp["gae_lambda"], value_network=policy.critic, vectorized=True)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=hp["lr"], eps=hp["adam_eps"])
        self.built = True
        return self

    @property
    def frames_per_batch(self) -> int:
        return self.env.batch_size[0] * self.hparams["num_steps"]

    # -- training ---------------------------------------------------------------------------------------
    def train(
        self,
        total_frames: int,
        progress: bool = True,
        logger: Any = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
    ) -> dict[str, float]:
        """Train until ``total_frames`` frames in all (a loaded agent continues where it stopped).

        Returns the last batch's statistics plus ``frames`` and ``wall_time``.
        """
        positive_int("agent 'ppo'", "total_frames", total_frames)
        self.build()
        self.total_frames = total_frames
        stats: dict[str, float] = {}
        start = time.perf_counter()
        bar = Progress(total_frames, initial=self.frames, enabled=progress)
        collector = Collector(
            self.env,
            self.policy.actor,
            frames_per_batch=self.frames_per_batch,
            total_frames=-1,
            device=self.device,
            trust_policy=True,
            auto_register_policy_transforms=False,
        )
        last_checkpoint = self.frames
        try:
            for batch in collector:
                if self.frames >= total_frames:
                    break
                stats = self._update(batch, total_frames)
                self.frames += batch.numel()
                self.iterations += 1
                stats["fps"] = bar.fps
                self._record(stats, logger)
                bar.update(self.frames, stats)
                if checkpoint_path and checkpoint_every and self.frames - last_checkpoint >= checkpoint_every:
                    self.save(checkpoint_path)
                    last_checkpoint = self.frames
                if self.frames >= total_frames:
                    break
        finally:
            collector.shutdown(close_env=False)
            bar.close()
        if checkpoint_path:
            self.save(checkpoint_path)
        return {**stats, "frames": self.frames, "wall_time": time.perf_counter() - start}

    def _update(self, batch: TensorDictBase, total_frames: int) -> dict[str, float]:
        hp = self.hparams
        frac = max(0.0, 1.0 - self.frames / total_frames)
        lr = hp["lr"] * frac if hp["anneal_lr"] else hp["lr"]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if hp["anneal_clip"]:
            self.loss.clip_epsilon.fill_(hp["clip_epsilon"] * frac)
        intrinsic = self._add_intrinsic_reward(batch)
        with torch.no_grad():
            self.advantage(batch)
        totals: dict[str, torch.Tensor] = {}
        count = 0
        per_epoch = hp["num_minibatches"]
        for i, minibatch in enumerate(self.components["storage"].minibatches(batch, hp["epochs"])):
            out = self.loss(minibatch)
            loss = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), hp["max_grad_norm"])
            self.optimizer.step()
            for key in ("loss_objective", "loss_critic", "loss_entropy", "kl_approx", "clip_fraction", "entropy"):
                if key in out.keys():
                    totals[key] = totals.get(key, 0.0) + out[key].detach().mean()
            totals["grad_norm"] = totals.get("grad_norm", 0.0) + grad_norm.detach()
            count += 1
            if hp["target_kl"] is not None and (i + 1) % per_epoch == 0 and "kl_approx" in out.keys():
                if float(out["kl_approx"].mean()) > hp["target_kl"]:
                    break
        stats = {k: float(v / count) for k, v in totals.items()}
        # a finished *game* (under Atari's episodic life a lost life is done, but the game goes on)
        end_key = ("next", "episode_end") if ("next", "episode_end") in batch.keys(True) else ("next", "done")
        done = batch.get(end_key).squeeze(-1)
        stats["learning_rate"] = lr
        if intrinsic is not None:
            stats["intrinsic_reward"] = intrinsic
        stats["episodes"] = float(done.sum())
        returns_key = ("next", "episode_reward")
        if done.any() and returns_key in batch.keys(True):
            stats["episode_return"] = float(batch.get(returns_key).squeeze(-1)[done].float().mean())
            lengths_key = ("next", "episode_length")
            if lengths_key in batch.keys(True):
                stats["episode_length"] = float(batch.get(lengths_key).squeeze(-1)[done].float().mean())
        return stats

    @torch.no_grad()
    def _add_intrinsic_reward(self, batch: TensorDictBase) -> float | None:
        """Count the batch in the intrinsic reward, then add its bonus to the reward GAE will read."""
        module = self.components.get("reward")
        if module is None:
            return None
        following = batch.get("next")
        if hasattr(module, "update"):
            module.update(following)
        bonus = module(following.clone(False)).get("intrinsic_reward")
        following.set(
            "reward",
            following.get("reward") + self.hparams["intrinsic_coef"] * bonus.reshape(following.get("reward").shape),
        )
        return float(bonus.mean())

    def _record(self, stats: dict[str, float], logger: Any) -> None:
        entry = {"frames": float(self.frames), **stats}
        self.history.append(entry)
        if logger is None:
            return
        names = {
            "episode_return": "charts/episodic_return",
            "episode_length": "charts/episodic_length",
            "learning_rate": "charts/learning_rate",
            "fps": "charts/SPS",
        }
        for key, value in stats.items():
            if isinstance(value, float) and math.isfinite(value):
                logger.log_scalar(names.get(key, f"losses/{key}"), value, step=self.frames)

    # -- evaluation -------------------------------------------------------------------------------------
    def evaluate(self, episodes: int = 10, deterministic: bool = True) -> list[float]:
        """Per-episode returns of the current policy (the mode action when ``deterministic``)."""
        if not isinstance(episodes, int) or episodes < 1:
            raise ComponentArgumentError(f"episodes must be a positive int, got {episodes!r}")
        self.build()
        env = self._evaluation_env(episodes)
        self.policy.eval()
        try:
            return run_episodes(env, self.policy.actor, episodes, deterministic)
        finally:
            self.policy.train()

    def _evaluation_env(self, episodes: int) -> EnvBase:
        if self._eval_env is None:
            if self._eval_env_choice is not None:
                self._eval_env = make_env(self._eval_env_choice, min(episodes, 16), self.seed + 1_000_003, self.device)
            else:
                self._eval_env = env_like(self.env, min(episodes, 16), self.seed + 1_000_003) or self.env
        return self._eval_env

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self.build()
        return {
            "agent": self.name,
            "hparams": dict(self.hparams),
            "seed": self.seed,
            "device": str(self.device),
            "env": component_ref(self.env),
            "components": {kind: component_ref(obj) for kind, obj in self.components.items()},
            "state": {
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                **({"reward": self.components["reward"].state_dict()} if "reward" in self.components else {}),
            },
            "counters": {"frames": self.frames, "iterations": self.iterations, "total_frames": self.total_frames},
            "rng": rng_state(),
            "history": [dict(h) for h in self.history],
        }

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the agent's state (weights, optimiser, counters, RNG) atomically to ``path``."""
        return str(save_checkpoint(self.state_dict(), path))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: Any = None, device: str | torch.device | None = None, **components: Any
    ) -> PPO:
        """Rebuild an agent from :meth:`save`'s file; pass ``env`` or components the file could not name."""
        data = load_checkpoint(path, kind=cls.name)
        try:
            device = torch.device(device or data["device"])
            env_choice = env if env is not None else data["env"]
            if env_choice is None:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} was trained on an env not made by rlte_plugins.make: pass env=..."
                )
            if env is None:
                kwargs = dict(env_choice["kwargs"])
                if "device" in kwargs:
                    kwargs["device"] = str(device)
                env_choice = {"name": env_choice["name"], **kwargs}
            agent = cls(env=env_choice, device=device, seed=data["seed"], **data["hparams"])
            choices = {}
            for kind in COMPONENTS:
                if components.get(kind) is not None:
                    choices[kind] = components[kind]
                elif kind not in data["components"]:
                    continue  # the saved agent did not use this component
                elif data["components"][kind] is not None:
                    choices[kind] = data["components"][kind]
                else:
                    raise CheckpointError(
                        f"checkpoint {str(path)!r}: its {kind} was not made by rlte_plugins.make; pass {kind}=..."
                    )
            agent.set(**choices).build()
            agent.policy.load_state_dict(data["state"]["policy"])
            agent.optimizer.load_state_dict(data["state"]["optimizer"])
            if "reward" in data["state"]:
                agent.components["reward"].load_state_dict(data["state"]["reward"])
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {str(path)!r} is incomplete or malformed: {exc}") from exc
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit the components it names: {str(exc).splitlines()[0]}"
            ) from exc
        counters = data["counters"]
        agent.frames, agent.iterations = int(counters["frames"]), int(counters["iterations"])
        agent.total_frames = counters["total_frames"]
        agent.history = list(data["history"])
        set_rng_state(data["rng"])
        return agent

    # -- helpers ----------------------------------------------------------------------------------------
    def _check_hparams(self) -> None:
        hp = self.hparams
        for key in ("num_envs", "num_steps", "epochs", "num_minibatches"):
            positive_int("agent 'ppo'", key, hp[key])
        for key in (
            "lr",
            "gamma",
            "gae_lambda",
            "clip_epsilon",
            "entropy_coef",
            "value_coef",
            "max_grad_norm",
            "adam_eps",
        ):
            if not isinstance(hp[key], (int, float)) or isinstance(hp[key], bool) or hp[key] < 0:
                raise ComponentArgumentError(f"agent 'ppo': {key} must be a non-negative number, got {hp[key]!r}")
        if not 0.0 < hp["gamma"] <= 1.0 or not 0.0 <= hp["gae_lambda"] <= 1.0:
            raise ComponentArgumentError("agent 'ppo': gamma must be in (0, 1] and gae_lambda in [0, 1]")
        if hp["critic_loss"] not in ("l1", "l2", "smooth_l1"):
            raise ComponentArgumentError(
                f"agent 'ppo': critic_loss must be 'l1', 'l2' or 'smooth_l1', got {hp['critic_loss']!r}"
            )

    def __repr__(self) -> str:
        return f"PPO(env={self.env!r}, device={self.device}, frames={self.frames})"


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
