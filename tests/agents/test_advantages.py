"""Advantages on both PPO paths against a hand-written GAE loop: truncations and terminations in the middle of
multi-step rollouts, several envs."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from rlte_plugins.agents.ppo import PPO
from rlte_plugins.training.fast import FastPPO

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
    with torch.no_grad():
        value = critic(TensorDict(observation=data["observation"], batch_size=data.shape))["state_value"]
        following = critic(TensorDict(observation=data["next", "observation"], batch_size=data.shape))["state_value"]
    nxt = data["next"]
    return reference_gae(value, nxt["reward"], following, nxt["terminated"], nxt["truncated"])


def test_ppo_gae_bootstraps_truncations_inside_a_rollout():
    agent = PPO(env="CartPole-v1", num_envs=3, num_steps=6, num_minibatches=1, gamma=GAMMA, gae_lambda=LAMBDA).build()
    data = rollout()
    want = expected(data, agent.policy.critic)
    with torch.no_grad():
        agent.advantage(data)
    torch.testing.assert_close(data["advantage"], want, rtol=1e-5, atol=1e-6)


def test_fast_path_gae_bootstraps_truncations_inside_a_rollout():
    algo = FastPPO("torch_cartpole", num_envs=3, horizon=6, gamma=GAMMA, gae_lambda=LAMBDA, scale_rewards=False,
                   encoder={"name": "mlp", "num_cells": [16]})  # fmt: skip
    data = rollout()
    want = expected(data, algo.policy.critic)
    with torch.no_grad():
        out = algo._advantages(data)
    torch.testing.assert_close(out["advantage"], want, rtol=1e-5, atol=1e-6)
