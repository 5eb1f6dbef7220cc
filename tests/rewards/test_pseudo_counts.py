"""Pseudo-counts: the bonus against a brute-force implementation of NGU's formula on a fixed embedding (ring
memory, running mean distance, cluster distance, maximum similarity, resets), repeated states against new ones,
one-step batches, shapes on vectors and pixels, exact resume and refused arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torch import nn

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.pseudo_counts import PseudoCounts


@pytest.fixture(scope="module")
def cartpole():
    return rlte_plugins.make("env", "torch_cartpole", num_envs=2)


def identity_counts(env, **kw) -> PseudoCounts:
    """Pseudo-counts whose embedding is the observation itself, so that the bonus can be checked by hand."""
    reward = rlte_plugins.make("reward", "pseudo_counts", latent_dim=4, **kw)
    reward.build(env.observation_spec, env.action_spec).embedding.encoder = nn.Identity()
    return reward


def steps(next_obs: torch.Tensor, done: torch.Tensor) -> TensorDict:
    num_envs, t = done.shape
    return TensorDict(
        {
            "observation": torch.zeros_like(next_obs),
            "action": torch.zeros(num_envs, t, dtype=torch.long),
            ("next", "observation"): next_obs,
            ("next", "done"): done[..., None],
        },
        batch_size=[num_envs, t],
    )


def brute_force(phi: np.ndarray, done: np.ndarray, k: int, eps: float, xi: float, c: float, s_m: float, capacity: int):
    """NGU's episodic bonus step by step, with lists for memories; d_m^2 the mean of every k-NN squared distance
    so far (all envs' of a step included before any of them is normalised)."""
    num_envs, steps_, _ = phi.shape
    memories: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
    total, count = 0.0, 0
    out = np.zeros((num_envs, steps_))
    for t in range(steps_):
        nearest = [sorted(float(((phi[e, t] - m) ** 2).sum()) for m in memories[e])[:k] for e in range(num_envs)]
        total += sum(sum(d) for d in nearest)
        count += sum(len(d) for d in nearest)
        mean = max(total / max(count, 1), 1e-12)
        for e in range(num_envs):
            if nearest[e]:
                similarity = math.sqrt(sum(eps / (max(d / mean - xi, 0.0) + eps) for d in nearest[e])) + c
                out[e, t] = 0.0 if similarity > s_m else 1.0 / similarity
            memories[e] = [] if done[e, t] else [*memories[e], phi[e, t]][-capacity:]
    return out


def test_bonus_is_ngus_formula(cartpole):
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(2, 14, 4)).astype(np.float32)
    phi[0, 3:9] = phi[0, 2]  # a state that stays: cluster distance and maximum similarity come into play
    phi[1, 5] = phi[1, 4] + 1e-3
    done = np.zeros((2, 14), dtype=bool)
    done[0, 10] = done[1, 6] = True
    args = {"k": 4, "kernel_epsilon": 1e-3, "cluster_distance": 0.008, "c": 0.001, "max_similarity": 1.9}
    reward = identity_counts(cartpole, capacity=5, **args)
    next_obs, ends = torch.from_numpy(phi), torch.from_numpy(done)
    # calls of different lengths: memories carried, grown and wrapped around the ring of 5 between them
    bonus = torch.cat([reward.compute(steps(next_obs[:, a:b], ends[:, a:b])) for a, b in ((0, 3), (3, 4), (4, 14))], 1)
    expected = brute_force(phi, done, args["k"], args["kernel_epsilon"], 0.008, 0.001, 1.9, capacity=5)
    np.testing.assert_allclose(bonus.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert (expected[0, 6:9] == 0).all() and (expected > 1).any()  # both sides of the maximum similarity were met


def test_a_repeated_state_is_less_novel_than_a_new_one(cartpole):
    a, b = torch.tensor([0.1, 0.2, -0.3, 0.0]), torch.tensor([2.0, -1.0, 0.5, 1.5])
    bonus = identity_counts(cartpole).compute(
        steps(torch.stack([a] * 14 + [b])[None], torch.zeros(1, 15, dtype=torch.bool))
    )[0]
    assert bonus[0] == 0  # no neighbour yet
    assert (bonus[2:14].diff() <= 1e-6).all() and bonus[13] < bonus[1]
    torch.testing.assert_close(bonus[13], torch.tensor(1 / (math.sqrt(10) + 1e-3)))  # 10 neighbours at distance 0
    assert bonus[14] > 2 * bonus[13]


def test_memory_is_emptied_where_an_episode_ends(cartpole):
    a = torch.tensor([0.1, 0.2, -0.3, 0.0])
    next_obs = a.expand(1, 5, 4).clone()
    ends = torch.tensor([[False, False, True, False, False]])
    reset = identity_counts(cartpole).compute(steps(next_obs, ends))[0]
    kept = identity_counts(cartpole).compute(steps(next_obs, torch.zeros_like(ends)))[0]
    assert reset[3] == 0 and kept[3] > 0  # the state seen three times before the end counts no more
    torch.testing.assert_close(reset[4], reset[1])


def test_one_step_batches_match_a_rollout(cartpole):
    torch.manual_seed(1)
    next_obs = torch.randn(2, 6, 4)
    ends = torch.zeros(2, 6, dtype=torch.bool)
    ends[0, 2] = True
    rollout = identity_counts(cartpole).compute(steps(next_obs, ends))
    stepper = identity_counts(cartpole)
    one_by_one = torch.stack(
        [stepper.compute(steps(next_obs[:, t : t + 1], ends[:, t : t + 1])[:, 0]) for t in range(6)], 1
    )
    torch.testing.assert_close(one_by_one, rollout)


def test_shapes_on_vectors_and_pixels():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
    reward = rlte_plugins.make("reward", "pseudo_counts").build(env.observation_spec, env.action_spec)
    batch = env.rollout(8, break_when_any_done=False)
    out = reward(batch)["intrinsic_reward"]
    assert out.shape == (4, 8) and out.isfinite().all() and (out[:, 1:] > 0).all()
    assert "losses/pseudo_counts_loss" in reward.update(batch)
    pixels = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    reward = rlte_plugins.make("reward", "pseudo_counts").build(pixels.observation_spec, pixels.action_spec)
    batch = pixels.rollout(4, break_when_any_done=False)
    assert reward(batch)["intrinsic_reward"].shape == (2, 4)
    assert reward.update(batch)["losses/pseudo_counts_loss"].isfinite()


def test_state_dict_resumes_exactly(cartpole):
    reward = rlte_plugins.make("reward", "pseudo_counts").build(cartpole.observation_spec, cartpole.action_spec)
    batch = cartpole.rollout(10, break_when_any_done=False)
    reward(batch[:, :6])
    reward.update(batch)
    resumed = rlte_plugins.make("reward", "pseudo_counts").build(cartpole.observation_spec, cartpole.action_spec)
    resumed.load_state_dict(reward.state_dict())
    for key, value in reward.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(resumed.state_dict()[key], value), key
    for key, value in reward.memory_state().items():
        assert torch.equal(resumed.memory_state()[key], value), key
    memory = reward.memory_state()
    assert memory["memory"].shape[1] == int(memory["count"].max())  # only the filled slots are saved
    rest = batch[:, 6:]
    assert torch.equal(resumed(rest.clone())["intrinsic_reward"], reward(rest.clone())["intrinsic_reward"])


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"k": 0}, "k"),
        ({"capacity": 0}, "capacity"),
        ({"kernel_epsilon": 0}, "kernel_epsilon"),
        ({"cluster_distance": -0.1}, "cluster_distance"),
        ({"c": "small"}, "c"),
        ({"max_similarity": float("inf")}, "max_similarity"),
        ({"hidden": [64, 0]}, "hidden"),
    ],
)
def test_bad_arguments_are_refused(kw, name):
    with pytest.raises(ComponentArgumentError, match=f"reward 'pseudo_counts': {name} "):
        rlte_plugins.make("reward", "pseudo_counts", **kw)
