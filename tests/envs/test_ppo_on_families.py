"""PPO from the foundation runs a few iterations on every env family (parameters move, losses are finite)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import needs

import rlte_plugins

CASES = [
    pytest.param("atari", {"game": "Pong"}, "mnih_cnn", "categorical", marks=needs("envpool"), id="atari"),
    pytest.param("procgen", {"game": "coinrun"}, "mnih_cnn", "categorical", marks=needs("procgen-qt5"), id="procgen"),
    pytest.param("dmc", {"task": "cartpole_balance"}, "mlp", "diagonal_gaussian", marks=needs("dm_control"),
                 id="dmc-state"),
    pytest.param("dmc", {"task": "cartpole_balance", "from_pixels": True, "image_size": 64}, "mnih_cnn",
                 "diagonal_gaussian", marks=needs("dmc-egl"), id="dmc-pixels"),
    pytest.param("minigrid", {"task": "Empty-5x5"}, "mlp", "categorical", marks=needs("minigrid"), id="minigrid"),
    pytest.param("bullet", {"task": "Hopper"}, "mlp", "diagonal_gaussian", marks=needs("pybullet"), id="bullet"),
    pytest.param("gymnasium", {"env_id": "CartPole-v1"}, "mlp", "categorical", id="gymnasium"),
    pytest.param("torch_cartpole", {}, "mlp", "categorical", id="torch_cartpole"),
    pytest.param("torch_pendulum", {}, "mlp", "diagonal_gaussian", id="torch_pendulum"),
    pytest.param("dummy_discrete", {"max_episode_steps": 16}, "mlp", "categorical", id="dummy_discrete"),
    pytest.param("dummy_continuous", {"max_episode_steps": 16}, "mlp", "diagonal_gaussian", id="dummy_continuous"),
]  # fmt: skip


@pytest.mark.parametrize("family,kwargs,encoder,distribution", CASES)
def test_ppo_trains_a_few_iterations(family, kwargs, encoder, distribution):
    env = rlte_plugins.make("env", family, num_envs=2, seed=0, **kwargs)
    agent = rlte_plugins.make("agent", "ppo", env=env, num_steps=8, epochs=2, num_minibatches=2, seed=0)
    agent.set(encoder=encoder, distribution=distribution)
    agent.build()
    before = [p.detach().clone() for p in agent.parameters()]
    stats = agent.train(total_frames=3 * 16, progress=False)
    moved = any(not torch.equal(a, b) for a, b in zip(before, agent.parameters(), strict=True))
    assert moved
    assert agent.frames == 48
    assert {"losses/policy_loss", "losses/value_loss", "losses/entropy"} <= set(stats)
    assert all(math.isfinite(v) for v in stats.values())
