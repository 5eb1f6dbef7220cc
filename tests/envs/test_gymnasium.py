"""The gymnasium env maker: specs, exact transitions, terminated vs truncated, seeding, bad ids."""

from __future__ import annotations

import pytest
import torch
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


def test_continuous_actions_are_clipped_into_bounds():
    env = make("Pendulum-v1", num_envs=1, seed=0)
    td = env.reset()
    td["action"] = torch.full((1, 1), 100.0)
    out = env.step(td)
    # Pendulum's reward penalises torque**2: a clipped action (2.0) costs 0.001 * 4, not 0.001 * 1e4
    assert out["next", "reward"].item() > -20


def test_discrete_observations_are_one_hot():
    env = make("FrozenLake-v1", num_envs=2, seed=0)
    obs = env.reset()["observation"]
    assert obs.shape == (2, 16) and torch.equal(obs.sum(-1), torch.ones(2))


def test_unknown_id_and_bad_arguments():
    with pytest.raises(rlte_plugins.EnvironmentNotFoundError, match="CartPol.*Did you mean: `CartPole`"):
        make("CartPol-v1")
    with pytest.raises(rlte_plugins.ComponentArgumentError, match="num_envs must be a positive int"):
        make(num_envs=0)
