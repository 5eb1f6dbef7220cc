"""Any gymnasium id as a batched TorchRL environment with exact per-env resets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, TensorSpec, Unbounded
from torchrl.envs import EnvBase

from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError, SpecMismatchError

#: Keys every rlte environment writes besides its observations.
EPISODE_RETURN_KEY = "episode_reward"
EPISODE_LENGTH_KEY = "episode_length"


class GymnasiumEnv(EnvBase):
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

        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ComponentArgumentError(f"env 'gymnasium': num_envs must be a positive int, got {num_envs!r}")
        if vectorization_mode not in ("sync", "async"):
            raise ComponentArgumentError(
                f"env 'gymnasium': vectorization_mode must be 'sync' or 'async', got {vectorization_mode!r}"
            )
        try:
            gym.spec(env_id)
        except gym.error.Error as exc:
            raise EnvironmentNotFoundError(f"unknown gymnasium id {env_id!r}: {exc}") from exc
        kwargs = dict(env_kwargs or {})
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.env_id = env_id
        self.num_envs = num_envs
        self.clip_actions = clip_actions
        self._vec = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode=vectorization_mode,
            vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
            **kwargs,
        )
        self._obs_converters = self._build_observation_spec(self._vec.single_observation_space)
        self._build_action_spec(self._vec.single_action_space)
        self.reward_spec = Unbounded(shape=(num_envs, 1), dtype=torch.float32, device=self.device)
        flag = Categorical(2, shape=(num_envs, 1), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(
            done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=(num_envs,), device=self.device
        )
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._pending_seed: int | None = seed
        self.seed = seed

    # -- specs ------------------------------------------------------------------------------------------
    def _build_observation_spec(self, space: Any) -> list[tuple[str, Any]]:
        from gymnasium import spaces

        B = self.num_envs
        specs: dict[str, TensorSpec] = {}
        converters: list[tuple[str, Any]] = []
        items = space.spaces.items() if isinstance(space, spaces.Dict) else [(None, space)]
        for key, sub in items:
            if isinstance(sub, spaces.Box) and sub.dtype == np.uint8 and len(sub.shape) == 3:
                name = key or "pixels"
                h, w, c = sub.shape
                specs[name] = Bounded(0, 255, shape=(B, c, h, w), dtype=torch.uint8, device=self.device)
                converters.append((name, lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))))
            elif isinstance(sub, spaces.Box):
                name = key or "observation"
                specs[name] = Unbounded(shape=(B, *sub.shape), dtype=torch.float32, device=self.device)
                converters.append((name, lambda x: torch.as_tensor(x, dtype=torch.float32)))
            elif isinstance(sub, spaces.Discrete):
                name = key or "observation"
                n, start = int(sub.n), int(sub.start)
                specs[name] = Unbounded(shape=(B, n), dtype=torch.float32, device=self.device)
                converters.append(
                    (name, lambda x, n=n, s=start: torch.nn.functional.one_hot(torch.as_tensor(x - s), n).float())
                )
            else:
                raise SpecMismatchError(
                    f"gymnasium id {self.env_id!r}: observation space {sub} is not supported "
                    "(Box, Discrete or a Dict of them)"
                )
        specs[EPISODE_RETURN_KEY] = Unbounded(shape=(B, 1), dtype=torch.float32, device=self.device)
        specs[EPISODE_LENGTH_KEY] = Unbounded(shape=(B, 1), dtype=torch.int64, device=self.device)
        self.observation_spec = Composite(specs, shape=(B,), device=self.device)
        return converters

    def _build_action_spec(self, space: Any) -> None:
        from gymnasium import spaces

        B = self.num_envs
        self._action_offset = 0
        self._action_bounds: tuple[np.ndarray, np.ndarray] | None = None
        if isinstance(space, spaces.Discrete):
            self._action_offset = int(space.start)
            spec: TensorSpec = Categorical(int(space.n), shape=(B,), dtype=torch.int64, device=self.device)
        elif isinstance(space, spaces.Box):
            low, high = space.low.astype(np.float32), space.high.astype(np.float32)
            if np.isfinite(low).all() and np.isfinite(high).all():
                spec = Bounded(
                    torch.as_tensor(low).expand(B, *space.shape),
                    torch.as_tensor(high).expand(B, *space.shape),
                    shape=(B, *space.shape),
                    dtype=torch.float32,
                    device=self.device,
                )
                self._action_bounds = (low, high)
            else:
                spec = Unbounded(shape=(B, *space.shape), dtype=torch.float32, device=self.device)
        elif isinstance(space, spaces.MultiDiscrete):
            spec = MultiCategorical(
                torch.as_tensor(space.nvec).tolist(), shape=(B, len(space.nvec)), dtype=torch.int64, device=self.device
            )
        elif isinstance(space, spaces.MultiBinary):
            spec = Binary(n=int(np.prod(space.shape)), shape=(B, *space.shape), dtype=torch.int64, device=self.device)
        else:
            raise SpecMismatchError(
                f"gymnasium id {self.env_id!r}: action space {space} is not supported "
                "(Discrete, Box, MultiDiscrete or MultiBinary)"
            )
        self.action_spec = spec

    # -- dynamics ---------------------------------------------------------------------------------------
    def _observations(self, obs: Any) -> dict[str, torch.Tensor]:
        if isinstance(obs, dict):
            return {name: convert(obs[name]) for name, convert in self._obs_converters}
        ((name, convert),) = self._obs_converters
        return {name: convert(obs)}

    def _episode_stats(self) -> dict[str, torch.Tensor]:
        return {
            EPISODE_RETURN_KEY: torch.from_numpy(self._returns.astype(np.float32)).unsqueeze(-1),
            EPISODE_LENGTH_KEY: torch.from_numpy(self._lengths.copy()).unsqueeze(-1),
        }

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        reset = None if tensordict is None else tensordict.get("_reset", None)
        mask = None if reset is None else reset.reshape(self.num_envs).cpu().numpy()
        if mask is None or mask.all():
            self._last_obs, _ = self._vec.reset(seed=self._pending_seed)
            self._pending_seed = None
            self._returns[:] = 0.0
            self._lengths[:] = 0
        elif mask.any():
            self._last_obs, _ = self._vec.reset(options={"reset_mask": mask})
            self._returns[mask] = 0.0
            self._lengths[mask] = 0
        obs = self._last_obs
        false = torch.zeros(self.num_envs, 1, dtype=torch.bool)
        out = {**self._observations(obs), **self._episode_stats()}
        out.update(done=false, terminated=false.clone(), truncated=false.clone())
        return TensorDict(out, batch_size=self.batch_size).to(self.device, non_blocking=True)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").detach().cpu().numpy()
        if self._action_offset:
            action = action + self._action_offset
        if self.clip_actions and self._action_bounds is not None:
            action = np.clip(action, *self._action_bounds)
        obs, reward, terminated, truncated, _ = self._vec.step(action)
        self._last_obs = obs
        reward = np.asarray(reward, dtype=np.float64)
        self._returns += reward
        self._lengths += 1
        term = torch.from_numpy(np.asarray(terminated, dtype=bool)).unsqueeze(-1)
        trunc = torch.from_numpy(np.asarray(truncated, dtype=bool)).unsqueeze(-1)
        out = {**self._observations(obs), **self._episode_stats()}
        out.update(
            reward=torch.from_numpy(reward.astype(np.float32)).unsqueeze(-1),
            done=term | trunc,
            terminated=term,
            truncated=trunc,
        )
        return TensorDict(out, batch_size=self.batch_size).to(self.device, non_blocking=True)

    def _set_seed(self, seed: int | None) -> None:
        self._pending_seed = seed
        self.seed = seed
        if seed is not None:
            self._vec.action_space.seed(seed)

    def close(self, *, raise_if_closed: bool = True) -> None:
        if not self.is_closed:
            self._vec.close()
        super().close(raise_if_closed=raise_if_closed)

    def __repr__(self) -> str:
        return f"GymnasiumEnv(env_id={self.env_id!r}, num_envs={self.num_envs}, device={self.device})"
