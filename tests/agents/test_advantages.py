"""On-policy advantages against a hand-written GAE loop: truncations and terminations in the middle of multi-step
rollouts, several envs, on a hand-made batch and on batches both collection strategies gather."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

import rlte_plugins
from rlte_plugins.agents.ppo import PPO

GAMMA, LAMBDA = 0.9, 0.8


def reference_gae(value, reward, next_obs_value, terminated, truncated):
    """CleanRL-style backward loop over ``[E, T]`` tensors, written out: bootstrap from ``V(next obs)`` unless the
    step terminated; a truncated step ends the lambda-trace but still bootstraps from its real final state."""
    adv = torch.zeros_like(reward)
    running = torch.zeros_like(reward[:, 0])
    for t in reversed(range(reward.shape[1])):
        delta = reward[:, t] + GAMMA * next_obs_value[:, t] * (~terminated[:, t]) - value[:, t]
        running = delta + GAMMA * LAMBDA * (~(terminated[:, t] | truncated[:, t])) * running
        adv[:, t] = running
    return adv


def rollout(num_envs: int = 3, steps: int = 6) -> TensorDict:
    """A rollout whose envs end episodes mid-way: env 0 is truncated at t=1 and terminates at t=4, env 1
    terminates at t=2, env 2 runs through. After an end the next step's observation is a fresh one (a reset),
    unlike the end step's ``("next", "observation")``, so bootstrapping from the wrong state would show."""
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(num_envs, steps, 4, generator=gen)
    terminated = torch.zeros(num_envs, steps, 1, dtype=torch.bool)
    truncated = torch.zeros_like(terminated)
    truncated[0, 1] = True
    terminated[0, 4] = terminated[1, 2] = True
    done = terminated | truncated
    nxt = torch.cat([obs[:, 1:], torch.randn(num_envs, 1, 4, generator=gen)], dim=1)
    # where an episode ended, the real final observation is not the reset observation that follows
    nxt = torch.where(done, torch.randn(num_envs, steps, 4, generator=gen), nxt)
    reward = torch.rand(num_envs, steps, 1, generator=gen)
    return TensorDict(
        observation=obs,
        action=torch.zeros(num_envs, steps, dtype=torch.long),
        action_log_prob=torch.zeros(num_envs, steps),
        next=TensorDict(
            observation=nxt,
            reward=reward,
            done=done,
            terminated=terminated,
            truncated=truncated,
            batch_size=[num_envs, steps],
        ),  # fmt: skip
        batch_size=[num_envs, steps],
    )


def expected(data: TensorDict, critic) -> torch.Tensor:
    """The reference over the critic's values of every observation and every real next observation."""
    with torch.no_grad():
        value = critic(TensorDict(observation=data["observation"], batch_size=data.shape))["state_value"]
        following = critic(TensorDict(observation=data["next", "observation"], batch_size=data.shape))["state_value"]
    nxt = data["next"]
    return reference_gae(value, nxt["reward"].float(), following, nxt["terminated"], nxt["truncated"])


@pytest.mark.parametrize("agent_name", ["ppo", "a2c"])
def test_gae_bootstraps_truncations_inside_a_rollout(agent_name):
    agent = rlte_plugins.make(
        "agent", agent_name, env="CartPole-v1", num_envs=3, num_steps=6, num_minibatches=1, gamma=GAMMA,
        gae_lambda=LAMBDA,
    ).build()  # fmt: skip
    data = rollout()
    want = expected(data, agent.policy.critic)
    with torch.no_grad():
        out = agent._advantages(data)
    torch.testing.assert_close(out["advantage"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("collection", ["direct", "torchrl"])
def test_collected_batches_give_the_reference_advantages(collection):
    """The agent evaluates ``V(next obs)`` as the next step's ``V(obs)`` except where an env was reset; on a real
    batch (episodes cut every 3 steps, so truncations fall inside it) that must agree with evaluating every stored
    next observation, on both strategies: each keeps the real final observation beside the reset one."""
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=3, seed=0, max_episode_steps=3)
    agent = PPO(env, num_steps=8, num_minibatches=1, gamma=GAMMA, gae_lambda=LAMBDA, collection=collection)
    batch = agent.collect()
    assert batch["next", "truncated"].any() and batch["next", "done"][:, :-1].any()
    want = expected(batch, agent.policy.critic)
    with torch.no_grad():
        out = agent._advantages(batch)
    torch.testing.assert_close(out["advantage"], want, rtol=1e-5, atol=1e-6)
    agent.close()
