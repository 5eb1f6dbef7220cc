"""Procgen, DeepMind Control, MiniGrid and PyBullet: specs, rollouts, seeding, time limits, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import check_family, check_reproducible, needs, simulator_actions

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError


# -- Procgen -------------------------------------------------------------------------------------------------
@needs("procgen-qt5")
def test_procgen_specs_and_reproducibility():
    td = check_family("procgen", game="coinrun", num_levels=10, steps=8)
    assert td["next", "pixels"].shape[2:] == (3, 64, 64)
    check_reproducible("procgen", ("next", "pixels"), game="starpilot", backend="envpool")


def test_procgen_bad_input():
    with pytest.raises(EnvironmentNotFoundError, match="did you mean 'coinrun'"):
        rlte_plugins.make("env", "procgen", game="coinrn")
    with pytest.raises(ComponentArgumentError, match="distribution_mode"):
        rlte_plugins.make("env", "procgen", game="coinrun", distribution_mode="medium")
    with pytest.raises(ComponentArgumentError, match="num_levels"):
        rlte_plugins.make("env", "procgen", game="coinrun", num_levels=-1)


# -- DeepMind Control ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [pytest.param("envpool", marks=needs("envpool")), "dm_control"])
def test_dmc_state(backend):
    pytest.importorskip("dm_control")
    td = check_family("dmc", task="cartpole_balance", backend=backend, steps=10)
    assert td["next", "observation"].shape[-1] == 5
    check_reproducible("dmc", ("next", "observation"), task="cartpole_balance", backend=backend)


@needs("dmc-egl")
def test_dmc_pixels_render_through_egl_with_frame_stack():
    td = check_family("dmc", task="cartpole_balance", from_pixels=True, frame_stack=3, action_repeat=2, steps=3)
    pixels = td["next", "pixels"]
    assert pixels.shape[2:] == (9, 84, 84)
    assert pixels.float().std() > 5  # a real rendered scene, not a blank frame


@pytest.mark.parametrize("backend", [pytest.param("envpool", marks=needs("envpool")), "dm_control"])
def test_dmc_actions_in_the_unit_box_are_rescaled_to_the_task_bounds(backend):
    pytest.importorskip("dm_control")
    # quadruped's actuators are not all [-1, 1] (hips [-1, 1.1], knees [-0.8, 0.8]): a rescaling is visible
    env = rlte_plugins.make("env", "dmc", task="quadruped_walk", backend=backend, num_envs=1, seed=0)
    assert (env.action_spec.space.low == -1).all() and (env.action_spec.space.high == 1).all()
    seen = simulator_actions(env)
    td = env.reset()
    for value in (-5.0, -1.0, 0.0, 0.5, 1.0, 5.0):
        td = env.step(td.set("action", torch.full((1, 12), value)))["next"]
    low, high = np.tile([-1.0, -1.0, -0.8], 4), np.tile([1.0, 1.1, 0.8], 4)
    expected = [low, low, np.tile([0.0, 0.05, 0.0], 4), np.tile([0.5, 0.575, 0.4], 4), high, high]
    np.testing.assert_allclose(np.stack(seen), np.stack(expected), atol=1e-6)


def test_dmc_time_limit_is_truncation_and_out_of_range_actions_are_not_errors():
    pytest.importorskip("dm_control")
    env = rlte_plugins.make("env", "dmc", task="cartpole_balance", backend="dm_control", num_envs=1, seed=0,
                            action_repeat=8)  # fmt: skip
    td = env.reset()
    for _ in range(125):  # 1000 control steps / 8
        td["action"] = torch.full((1, 1), 5.0)  # out of [-1, 1]: clipped, never an error
        td = env.step(td)
        nxt = td["next"]
        td = nxt
    assert bool(nxt["truncated"]) and not bool(nxt["terminated"])


def test_dmc_bad_task():
    pytest.importorskip("dm_control")
    with pytest.raises(EnvironmentNotFoundError, match="walker_walk"):
        rlte_plugins.make("env", "dmc", task="walker_wlak")


# -- MiniGrid ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "backend,observation,size",
    [
        pytest.param("envpool", "image", 147, marks=needs("envpool")),
        pytest.param("gymnasium", "image", 147, marks=needs("minigrid")),
        pytest.param("gymnasium", "full", 75, marks=needs("minigrid")),
        pytest.param("gymnasium", "one_hot", 7 * 7 * 20, marks=needs("minigrid")),
    ],
)
def test_minigrid_encodings(backend, observation, size):
    td = check_family("minigrid", task="Empty-5x5", backend=backend, observation=observation)
    assert td["next", "observation"].shape[-1] == size
    check_reproducible("minigrid", ("next", "observation"), steps=20, task="Empty-Random-6x6", backend=backend,
                       observation=observation)  # fmt: skip


@pytest.mark.parametrize("backend", [pytest.param("envpool", marks=needs("envpool")), "gymnasium"])
def test_minigrid_time_limit_truncates(backend):
    pytest.importorskip("minigrid")
    env = rlte_plugins.make("env", "minigrid", task="Empty-8x8", backend=backend, num_envs=2, seed=0,
                            max_episode_steps=6)  # fmt: skip
    left = torch.zeros(2, dtype=torch.long)
    td = env.rollout(12, break_when_any_done=False, policy=lambda td: td.set("action", left))
    # turning left forever never reaches the goal: every end is the time limit
    trunc = td["next", "truncated"].squeeze(-1)
    assert trunc[:, 5].all() and trunc[:, 11].all() and not td["next", "terminated"].any()


def test_minigrid_bad_input():
    with pytest.raises(ComponentArgumentError, match="observation"):
        rlte_plugins.make("env", "minigrid", task="Empty-5x5", observation="rgb")
    with pytest.raises(EnvironmentNotFoundError, match="image"):
        rlte_plugins.make("env", "minigrid", task="Empty-5x5", observation="full", backend="envpool")


# -- PyBullet ------------------------------------------------------------------------------------------------
@needs("pybullet")
def test_bullet_specs_seeding_and_truncation():
    td = check_family("bullet", task="half_cheetah", steps=6)
    assert td["next", "observation"].shape[-1] == 26
    check_reproducible("bullet", ("next", "observation"), task="HalfCheetah")
    env = rlte_plugins.make("env", "bullet", task="HalfCheetah", num_envs=1, seed=0, max_episode_steps=5)
    td = env.rollout(5, break_when_any_done=False)
    assert bool(td["next", "truncated"][0, -1]) and not td["next", "terminated"].any()


@needs("pybullet")
def test_bullet_actions_are_clipped_into_the_unit_box():
    env = rlte_plugins.make("env", "bullet", task="Hopper", num_envs=1, seed=0)
    assert (env.action_spec.space.low == -1).all() and (env.action_spec.space.high == 1).all()
    seen = simulator_actions(env)
    env.step(env.reset().set("action", torch.tensor([[5.0, -5.0, 0.25]])))
    np.testing.assert_allclose(seen[0], [1.0, -1.0, 0.25], atol=1e-6)


@needs("pybullet")
def test_bullet_bad_task_lists_tasks():
    with pytest.raises(EnvironmentNotFoundError, match="Hopper"):
        rlte_plugins.make("env", "bullet", task="Hoper")
