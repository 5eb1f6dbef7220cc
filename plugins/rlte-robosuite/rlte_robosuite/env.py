"""robosuite tasks (Lift, Door, Stack, ...) with state observations, batched through gymnasium."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlte_plugins.envs.backends import require
from rlte_plugins.envs.core import BatchedEnv, check_num_envs, unit_to_bounds
from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError, positive_int

FAMILY = "robosuite"


def make_robosuite(
    task: str,
    num_envs: int = 4,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    robots: str = "Panda",
    horizon: int = 500,
    control_freq: int = 20,
    reward_shaping: bool = True,
    obs_keys: tuple[str, ...] = ("robot0_proprio-state", "object-state"),
) -> BatchedEnv:
    """A robosuite task with a float ``"observation"`` (the state keys), actions in [-1, 1], truncated at ``horizon``.

    Args:
        task: a robosuite environment, e.g. ``"Lift"``, ``"Door"``, ``"Stack"``.
        num_envs, seed, device: as every rlte env.
        robots: the robot(s), e.g. ``"Panda"``.
        horizon: steps per episode; the end of one is ``truncated`` (robosuite tasks have no failure state).
        control_freq: controller steps per simulated second.
        reward_shaping: dense shaped rewards (``False``: the sparse success reward).
        obs_keys: robosuite observation keys concatenated, in order, into ``"observation"``.
    """
    check_num_envs(FAMILY, num_envs)
    positive_int("env 'robosuite'", "horizon", horizon)
    suite = require("robosuite", FAMILY)
    if task not in suite.ALL_ENVIRONMENTS:
        import difflib

        close = difflib.get_close_matches(task, sorted(suite.ALL_ENVIRONMENTS), n=3)
        raise EnvironmentNotFoundError(f"env 'robosuite': unknown task {task!r}; did you mean {close}?")
    from rlte_plugins.envs.gymnasium import VectorEnvAdapter

    base = 0 if seed is None else int(seed)
    fns = [
        (lambda i=i: RobosuiteEnv(task, robots, horizon, control_freq, reward_shaping, tuple(obs_keys), base + i))
        for i in range(num_envs)
    ]
    return VectorEnvAdapter(VectorEnvAdapter.vector(fns), family=FAMILY, seed=seed, device=device)


class RobosuiteEnv(gym.Env):
    """One robosuite env as a gymnasium env with a flat state observation."""

    def __init__(
        self, task: str, robots: str, horizon: int, control_freq: int, shaping: bool, keys: tuple[str, ...], seed: int
    ) -> None:
        import robosuite

        self._env = robosuite.make(
            task,
            robots=robots,
            has_renderer=False,
            has_offscreen_renderer=False,
            use_camera_obs=False,
            use_object_obs=True,
            horizon=horizon,
            control_freq=control_freq,
            reward_shaping=shaping,
            seed=seed,
        )
        self._keys = keys
        obs = self._env.reset()
        missing = [k for k in keys if k not in obs]
        if missing:
            raise ComponentArgumentError(
                f"env 'robosuite': observation keys {missing} not produced by {task}; it has {sorted(obs)}"
            )
        low, high = self._env.action_spec
        self._low, self._high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, self._low.shape, np.float32)
        size = len(self._flat(obs))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self._horizon = horizon

    def _flat(self, obs: dict[str, Any]) -> np.ndarray:
        return np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k in self._keys])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            np.random.seed(seed)  # robosuite's placement samplers draw from numpy's global generator
        return self._flat(self._env.reset()), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = unit_to_bounds(action, self._low, self._high)
        obs, reward, done, info = self._env.step(action)
        # robosuite's `done` is its horizon: a time limit, so the value bootstraps through it
        return self._flat(obs), float(reward), False, bool(done), {"success": bool(self._env._check_success())}

    def close(self) -> None:
        self._env.close()
