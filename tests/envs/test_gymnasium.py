"""The gymnasium env maker: specs, exact transitions, terminated vs truncated, seeding, bad ids."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from helpers import simulator_actions
from torchrl.envs.utils import check_env_specs

import rlte_plugins


def make(env_id="CartPole-v1", **kwargs):
    return rlte_plugins.make("env", "gymnasium", env_id=env_id, **kwargs)


def test_specs_keys_dtypes_and_shapes():
    env = make(num_envs=3, seed=0)
    check_env_specs(env)
    td = env.rollout(20, break_when_any_done=False)
    assert td.batch_size == (3, 20)
    assert td["observation"].dtype == torch.float32 and td["observation"].shape == (3, 20, 4)
    assert td["action"].dtype == torch.int64
    for key in ("reward", "done", "terminated", "truncated", "episode_reward", "episode_length"):
        assert td["next", key].shape == (3, 20, 1)
    assert td["next", "done"].dtype == torch.bool


def test_truncation_is_distinct_and_transitions_are_exact():
    env = make(num_envs=2, seed=1, max_episode_steps=5)
    td = env.rollout(12, break_when_any_done=False)
    trunc, term, done = (td["next", k].squeeze(-1) for k in ("truncated", "terminated", "done"))
    assert trunc.any() and not (trunc & term).any() and torch.equal(done, trunc | term)
    assert torch.equal(trunc[0], torch.tensor([False] * 4 + [True] + [False] * 4 + [True] + [False] * 2))
    # after a non-final step the next observation is the following step's observation; after a done step it
    # is the episode's real last observation and the following step starts from a reset one
    nxt, obs = td["next", "observation"][:, :-1], td["observation"][:, 1:]
    same = (nxt == obs).all(-1)
    assert torch.equal(same, ~done[:, :-1])
    assert torch.equal(td["next", "episode_length"][0, :6].squeeze(-1), torch.tensor([1, 2, 3, 4, 5, 1]))


def test_truncated_step_holds_the_real_last_observation_and_the_next_step_a_reset_one():
    # env 0 replayed in a plain CartPole with its seed and actions: what the value bootstrap reads at the
    # truncation must be that episode's real last observation, and the next step must start from its reset
    env = make(num_envs=2, seed=1, max_episode_steps=5)
    torch.manual_seed(0)
    td = env.rollout(8, break_when_any_done=False)[0]
    ref = gym.make("CartPole-v1", max_episode_steps=5)
    expected, _ = ref.reset(seed=1)
    for t in range(8):
        assert torch.equal(td["observation"][t], torch.as_tensor(expected))
        expected, _, terminated, truncated, _ = ref.step(int(td["action"][t]))
        assert torch.equal(td["next", "observation"][t], torch.as_tensor(expected))
        flags = [bool(td["next", k][t]) for k in ("truncated", "terminated", "done")]
        assert flags == [truncated, terminated, truncated or terminated]
        if truncated or terminated:
            expected, _ = ref.reset()
    assert td["next", "truncated"].squeeze(-1).tolist() == [False] * 4 + [True] + [False] * 3


def test_episode_return_is_the_sum_of_the_episode_rewards():
    env = make("Pendulum-v1", num_envs=2, seed=0, max_episode_steps=7)
    td = env.rollout(7, break_when_any_done=False)
    assert torch.allclose(td["next", "episode_reward"][:, -1], td["next", "reward"].sum(1), atol=1e-4)


def test_seeded_rollouts_reproduce():
    torch.manual_seed(0)
    a = make(num_envs=2, seed=7).rollout(30, break_when_any_done=False)
    torch.manual_seed(0)
    b = make(num_envs=2, seed=7).rollout(30, break_when_any_done=False)
    assert torch.equal(a["next", "observation"], b["next", "observation"])
    c = make(num_envs=2, seed=8).reset()
    assert not torch.equal(a["observation"][:, 0], c["observation"])


@pytest.mark.parametrize("clip_actions,received", [(True, [2.0, -2.0]), (False, [100.0, -100.0])])
def test_continuous_actions_are_clipped_into_bounds(clip_actions, received):
    env = make("Pendulum-v1", num_envs=1, seed=0, clip_actions=clip_actions)
    # Pendulum clamps the torque itself, so only the action its step receives shows the maker's clipping
    seen = simulator_actions(env)
    td = env.reset()
    for value in (100.0, -100.0):
        td = env.step(td.set("action", torch.full((1, 1), value)))["next"]
    assert [float(a[0]) for a in seen] == received


def test_discrete_observations_are_one_hot():
    env = make("FrozenLake-v1", num_envs=2, seed=0)
    obs = env.reset()["observation"]
    assert obs.shape == (2, 16) and torch.equal(obs.sum(-1), torch.ones(2))


def test_unknown_id_and_bad_arguments():
    with pytest.raises(rlte_plugins.EnvironmentNotFoundError, match="CartPol.*Did you mean: `CartPole`"):
        make("CartPol-v1")
    with pytest.raises(rlte_plugins.ComponentArgumentError, match="num_envs must be a positive int"):
        make(num_envs=0)
