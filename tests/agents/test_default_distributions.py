"""PPO on both collection strategies chooses the distribution that fits the action spec when none is set:
MultiDiscrete and MultiBinary actions included (TorchRL's ``MultiCategorical`` and ``Binary`` subclass
``Categorical``)."""

from __future__ import annotations

import math

import pytest
import torch
from torchrl.data import Binary, MultiCategorical

from rlte_plugins.agents.ppo import PPO
from rlte_plugins.envs.torch_native.tasks import DummyDiscrete


class MultiDiscreteDummy(DummyDiscrete):
    """Two sub-actions of 3 choices each; the state moves by their sum minus 2."""

    def action_spec_for(self, num_envs, device):
        return MultiCategorical([3, 3], shape=(num_envs, 2), dtype=torch.int64, device=device)

    def dynamics(self, state, action):
        state = state + (action.sum(-1, keepdim=True) - 2).to(state.dtype)
        return state, -state.abs(), torch.zeros_like(state, dtype=torch.bool)


class MultiBinaryDummy(DummyDiscrete):
    """Three switches; the state moves by the number switched on minus 1.5."""

    def action_spec_for(self, num_envs, device):
        return Binary(n=3, shape=(num_envs, 3), dtype=torch.int64, device=device)

    def dynamics(self, state, action):
        state = state + (action.sum(-1, keepdim=True) - 1.5).to(state.dtype)
        return state, -state.abs(), torch.zeros_like(state, dtype=torch.bool)


CASES = [
    (MultiDiscreteDummy, "MultiCategoricalHead", "MultiCategoricalDistribution"),
    (MultiBinaryDummy, "BernoulliHead", "IndependentBernoulli"),
]


@pytest.mark.parametrize("collection", ["direct", "torchrl"])
@pytest.mark.parametrize("env_cls,head,dist", CASES, ids=["multi_discrete", "multi_binary"])
def test_ppo_defaults_to_the_distribution_of_the_action_spec(env_cls, head, dist, collection):
    agent = PPO(env=env_cls(num_envs=4, seed=0), num_steps=8, num_minibatches=2, epochs=1, collection=collection)
    agent.set(encoder={"name": "mlp", "num_cells": [8]})
    batch = agent.collect()
    assert type(agent.components["distribution"]).__name__ == head
    assert type(agent.policy.actor.get_dist(batch[:, 0].clone())).__name__ == dist
    assert batch["action"].shape == (4, 8, agent.env.action_spec.shape[-1])
    stats = agent.train(total_frames=64, progress=False)
    assert math.isfinite(stats["losses/policy_loss"]) and math.isfinite(stats["losses/value_loss"])
