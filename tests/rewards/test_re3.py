"""RE3: log(1 + distance to the k-th nearest neighbour) among the same env's rollout, under a frozen random
encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Composite, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.re3 import RE3

DIM = 3


def make_re3(num_envs: int = 3, **kwargs: object) -> RE3:
    spec = Composite(observation=Unbounded(shape=(num_envs, DIM)), shape=(num_envs,))
    return rlte_plugins.make("reward", "re3", **kwargs).build(spec)


def batch_of(next_obs: torch.Tensor) -> TensorDict:
    shape = next_obs.shape[:-1]
    done = torch.zeros(*shape, 1, dtype=torch.bool)
    return TensorDict({"next": {"observation": next_obs, "done": done}}, batch_size=shape)


def embeddings(reward: RE3, next_obs: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return reward.encoder(next_obs).double().numpy()


def brute_force_knn(y: np.ndarray, k: int) -> np.ndarray:
    """The k smallest distances from each y[g, i] to the other rows of y[g], one pair at a time."""
    groups, n, _ = y.shape
    out = np.zeros((groups, n, k))
    for g in range(groups):
        for i in range(n):
            distances = sorted(float(np.sqrt(((y[g, i] - y[g, j]) ** 2).sum())) for j in range(n) if j != i)
            out[g, i] = distances[:k]
    return out


def test_bonus_is_log_of_the_kth_neighbour_distance_within_each_env() -> None:
    torch.manual_seed(0)
    re3 = make_re3()
    next_obs = torch.randn(3, 12, DIM)
    reference = np.log(brute_force_knn(embeddings(re3, next_obs), 3)[..., 2] + 1.0)
    np.testing.assert_allclose(re3.compute(batch_of(next_obs)).numpy(), reference, rtol=1e-5, atol=1e-6)


def test_average_takes_the_mean_over_the_first_k_neighbours() -> None:
    torch.manual_seed(1)
    re3 = make_re3(k=4, average=True)
    next_obs = torch.randn(3, 10, DIM)
    reference = np.log(brute_force_knn(embeddings(re3, next_obs), 4) + 1.0).mean(-1)
    np.testing.assert_allclose(re3.compute(batch_of(next_obs)).numpy(), reference, rtol=1e-5, atol=1e-6)


def test_envs_are_not_neighbours_of_each_other() -> None:
    torch.manual_seed(2)
    re3 = make_re3(num_envs=2)
    next_obs = torch.randn(2, 8, DIM)
    before = re3.compute(batch_of(next_obs))
    next_obs[1] = next_obs[0, :1]  # env 1 now sits on one of env 0's states
    after = re3.compute(batch_of(next_obs))
    torch.testing.assert_close(after[0], before[0])
    assert not torch.allclose(after[1], before[1])


def test_spread_out_rollout_earns_more_than_a_repeated_state() -> None:
    re3 = make_re3(num_envs=2)
    repeated = torch.full((16, DIM), 0.3)
    spread = torch.linspace(-3.0, 3.0, 16)[:, None].expand(16, DIM)
    bonus = re3.compute(batch_of(torch.stack([repeated, spread])))
    torch.testing.assert_close(bonus[0], torch.zeros(16), atol=1e-5, rtol=0.0)
    assert bool((bonus[1] > 0.05).all())


def test_the_encoder_is_never_trained() -> None:
    torch.manual_seed(3)
    re3 = make_re3()
    assert re3.optimizer is None
    assert not any(p.requires_grad for p in re3.parameters())
    weights = {name: p.clone() for name, p in re3.encoder.named_parameters()}
    for _ in range(3):
        batch = batch_of(torch.randn(3, 8, DIM))
        re3(batch)
        assert re3.update(batch) == {}
    for name, p in re3.encoder.named_parameters():
        assert torch.equal(p, weights[name]), name


def test_a_replay_sample_is_one_set_and_small_sets_use_their_farthest_neighbour() -> None:
    torch.manual_seed(4)
    re3 = make_re3()
    sample = torch.randn(9, DIM)
    reference = np.log(brute_force_knn(embeddings(re3, sample)[None], 3)[0, :, 2] + 1.0)
    np.testing.assert_allclose(re3.compute(batch_of(sample)).numpy(), reference, rtol=1e-5, atol=1e-6)
    # three states have two others each: the second nearest stands for the third
    trio = sample[:3]
    reference = np.log(brute_force_knn(embeddings(re3, trio)[None], 2)[0, :, 1] + 1.0)
    np.testing.assert_allclose(re3.compute(batch_of(trio)).numpy(), reference, rtol=1e-5, atol=1e-6)
    assert float(re3.compute(batch_of(sample[:1]))) == 0.0


def test_shapes_on_vector_and_pixel_rollouts() -> None:
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
    re3 = rlte_plugins.make("reward", "re3").build(env.observation_spec, env.action_spec)
    assert re3(env.rollout(8, break_when_any_done=False))["intrinsic_reward"].shape == (4, 8)
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    re3 = rlte_plugins.make("reward", "re3").build(env.observation_spec, env.action_spec)
    batch = env.rollout(6, break_when_any_done=False)
    bonus = re3(batch)["intrinsic_reward"]
    assert bonus.shape == (2, 6) and bool(bonus.isfinite().all())
    assert re3.encoder(batch["next", "pixels"][0]).shape == (6, 128)


def test_state_dict_round_trip_resumes_exactly() -> None:
    torch.manual_seed(5)
    first, second = batch_of(torch.randn(3, 8, DIM)), batch_of(torch.randn(3, 8, DIM))
    re3 = make_re3()
    re3(first)
    resumed = make_re3(seed=7)
    resumed.load_state_dict(re3.state_dict())
    assert resumed.frames == re3.frames
    torch.testing.assert_close(resumed(second.clone())["intrinsic_reward"], re3(second)["intrinsic_reward"],
                               rtol=0.0, atol=0.0)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"k": 0}, "k"), ({"latent_dim": 0}, "latent_dim"), ({"average": "yes"}, "average"), ({"hidden": [0]}, "hidden")],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ComponentArgumentError, match=rf"reward 're3': {named} "):
        rlte_plugins.make("reward", "re3", **kwargs)
