"""Any gymnasium id (or gymnasium vector env) as a batched TorchRL environment with exact per-env resets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rlte_plugins.envs.core import (  # noqa: F401  (re-exported: the keys' historical home)
    EPISODE_END_KEY,
    EPISODE_LENGTH_KEY,
    EPISODE_RETURN_KEY,
    BatchedEnv,
    check_choice,
    check_num_envs,
)
from rlte_plugins.errors import EnvironmentNotFoundError


class VectorEnvAdapter(BatchedEnv):
    """A gymnasium ``VectorEnv`` built with ``autoreset_mode=DISABLED``, as a batched TorchRL env.

    The families that run on gymnasium (Atari's fallback, MiniGrid, PyBullet, DeepMind Control) build their
    sub-environments and hand the vector env here; :class:`GymnasiumEnv` does the same for a plain id.
    """

    fresh_arrays = True  # gymnasium vector envs copy their observations by default (``copy=True``)

    def __init__(self, vec: Any, *, family: str, seed: int | None, device: str | torch.device, **kwargs: Any):
        self._vec = vec
        super().__init__(
            family=family,
            num_envs=vec.num_envs,
            device=device,
            observation_space=vec.single_observation_space,
            action_space=vec.single_action_space,
            **kwargs,
        )
        self._pending_seed: int | None = seed
        self.seed = seed

    @staticmethod
    def vector(fns: Sequence[Callable[[], Any]], mode: str = "sync") -> Any:
        """A gymnasium vector env over ``fns`` with auto-reset off (TorchRL resets finished envs)."""
        from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

        cls = SyncVectorEnv if mode == "sync" else AsyncVectorEnv
        return cls(list(fns), autoreset_mode=AutoresetMode.DISABLED)

    def _backend_reset(self, mask: np.ndarray | None) -> Any:
        if mask is None:
            obs, _ = self._vec.reset(seed=self._pending_seed)
            self._pending_seed = None
        else:
            obs, _ = self._vec.reset(options={"reset_mask": mask})
        return obs

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        return self._vec.step(action)

    def _set_seed(self, seed: int | None) -> None:
        self._pending_seed = seed
        self.seed = seed
        if seed is not None:
            self._vec.action_space.seed(seed)

    def close(self, *, raise_if_closed: bool = True) -> None:
        if not self.is_closed:
            self._vec.close()
        super().close(raise_if_closed=raise_if_closed)


class GymnasiumEnv(VectorEnvAdapter):
    """Any gymnasium id as a batched TorchRL env (exact resets, distinct terminated/truncated).

    The sub-environments run in a gymnasium vector env with auto-reset disabled; TorchRL's collector resets
    the finished ones through ``"_reset"``, so every stored transition is real: the observation after a
    truncation is the true last observation (the value bootstrap needs it), not the first of the next
    episode.

    Observations: vectors as float32 ``"observation"``; ``uint8`` images as channels-first ``"pixels"``;
    ``Discrete`` observations one-hot encoded; ``Dict`` spaces key by key. Actions: ``Discrete`` (integer,
    ``start`` handled), ``Box`` (clipped into bounds when ``clip_actions``, so an unbounded Gaussian policy is
    safe while the log-probability keeps the sampled action), ``MultiDiscrete`` and ``MultiBinary``.
    ``"episode_reward"`` and ``"episode_length"`` hold the running return and length of each episode (at a
    done step: the finished episode's).

    Args:
        env_id: a registered gymnasium id, e.g. ``"CartPole-v1"``.
        num_envs: number of parallel sub-environments (the batch size).
        seed: seeds sub-environment ``i`` with ``seed + i`` at the first reset; ``None`` draws one.
        device: where the tensors live.
        vectorization_mode: ``"sync"`` (one process, best for cheap envs) or ``"async"`` (one process each).
        max_episode_steps: overrides the id's time limit (steps beyond it are truncated).
        clip_actions: clip continuous actions into the action space before stepping.
        env_kwargs: keyword arguments for ``gymnasium.make``.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "gymnasium", env_id="CartPole-v1", num_envs=4, seed=0)
        >>> rollout = env.rollout(3)
        >>> rollout["next", "observation"].shape, rollout["next", "terminated"].dtype
        (torch.Size([4, 3, 4]), torch.bool)
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        vectorization_mode: str = "sync",
        max_episode_steps: int | None = None,
        clip_actions: bool = True,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        check_num_envs("gymnasium", num_envs)
        check_choice("gymnasium", "vectorization_mode", vectorization_mode, ("sync", "async"))
        try:
            gym.spec(env_id)
        except gym.error.Error as exc:
            raise EnvironmentNotFoundError(f"unknown gymnasium id {env_id!r}: {exc}") from exc
        kwargs = dict(env_kwargs or {})
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        vec = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode=vectorization_mode,
            vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
            **kwargs,
        )
        self.env_id = env_id
        super().__init__(vec, family="gymnasium", seed=seed, device=device, clip_actions=clip_actions)

    def __repr__(self) -> str:
        return f"GymnasiumEnv(env_id={self.env_id!r}, num_envs={self.num_envs}, device={self.device})"
