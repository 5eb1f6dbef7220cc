"""The shared numpy-backed env core: outputs are independent of the env's running state, type checks still run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from rlte_plugins.envs.core import BatchedEnv


class Counter(BatchedEnv):
    """A backend whose arrays are reused between steps, as a C++ pool's buffers could be."""

    def __init__(self, num_envs: int = 3, horizon: int = 4, rewards: list[float] | None = None, **batched) -> None:
        super().__init__(
            family="counter",
            num_envs=num_envs,
            device="cpu",
            observation_space=gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
            action_space=gym.spaces.Discrete(2),
            **batched,
        )
        self.horizon = horizon
        self.rewards = np.ones(num_envs) if rewards is None else np.asarray(rewards, np.float64)
        self.t = np.zeros(num_envs, np.int64)
        self.obs = np.zeros((num_envs, 2), np.float32)
        self.term = np.zeros(num_envs, bool)
        self.trunc = np.zeros(num_envs, bool)

    def _set_seed(self, seed: int | None) -> None:
        pass

    def _backend_reset(self, mask: np.ndarray | None) -> np.ndarray:
        self.t[slice(None) if mask is None else mask] = 0
        self.obs[:, 0] = self.t
        return self.obs

    def _backend_step(self, action: np.ndarray):
        self.t += 1
        self.obs[:, 0] = self.t
        self.obs[:, 1] = action
        self.term[:] = self.t >= self.horizon
        self.trunc[:] = False
        return self.obs, self.rewards, self.term, self.trunc, {}


def test_outputs_do_not_alias_running_state_or_backend_buffers():
    env = Counter()
    td = env.reset()
    first, nxt = env.step_and_maybe_reset(td.set("action", torch.ones(3, dtype=torch.int64)))
    kept = first["next"].clone()
    for _ in range(5):
        _, nxt = env.step_and_maybe_reset(nxt.set("action", torch.zeros(3, dtype=torch.int64)))
    assert (first["next"] == kept).all()
    assert first["next", "observation"][:, 0].tolist() == [1.0, 1.0, 1.0]
    assert first["next", "episode_length"].flatten().tolist() == [1, 1, 1]


def test_episode_statistics_and_done_flags():
    env = Counter(horizon=2)
    data = env.rollout(4, break_when_any_done=False)
    assert data["next", "terminated"].squeeze(-1).tolist() == [[False, True, False, True]] * 3
    assert data["next", "done"].equal(data["next", "terminated"] | data["next", "truncated"])
    assert data["next", "episode_length"].squeeze(-1).tolist() == [[1, 2, 1, 2]] * 3
    assert data["next", "episode_reward"].squeeze(-1).tolist() == [[1.0, 2.0, 1.0, 2.0]] * 3
    assert data["next", "episode_end"].equal(data["next", "done"])


@pytest.mark.parametrize("clip_rewards,written", [(True, [-1.0, 1.0, 0.0]), (False, [-5.0, 0.25, 0.0])])
def test_clip_rewards_writes_the_sign_and_the_statistics_keep_the_raw_reward(clip_rewards, written):
    # a fractional reward tells the sign (DQN's clipping) from a clamp to [-1, 1]
    env = Counter(rewards=[-5.0, 0.25, 0.0], clip_rewards=clip_rewards)
    data = env.rollout(2)
    assert data["next", "reward"].squeeze(-1).tolist() == [[w, w] for w in written]
    assert data["next", "episode_reward"].squeeze(-1).tolist() == [[-5.0, -10.0], [0.25, 0.5], [0.0, 0.0]]


@pytest.mark.parametrize("type_checks", [False, True])
def test_specs_hold_with_and_without_torchrl_type_checks(type_checks):
    env = Counter()
    env.run_type_checks = type_checks
    check_env_specs(env, seed=0)
    assert env.rollout(3)["next", "reward"].shape == (3, 3, 1)
