"""RISE: the distance to the k-th nearest neighbour among the same env's rollout, raised to 1 - alpha, under a
frozen random encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Composite, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.rise import RISE

DIM = 3


def make_rise(num_envs: int = 3, **kwargs: object) -> RISE:
    spec = Composite(observation=Unbounded(shape=(num_envs, DIM)), shape=(num_envs,))
    return rlte_plugins.make("reward", "rise", **kwargs).build(spec)


def batch_of(next_obs: torch.Tensor) -> TensorDict:
    shape = next_obs.shape[:-1]
    done = torch.zeros(*shape, 1, dtype=torch.bool)
    return TensorDict({"next": {"observation": next_obs, "done": done}}, batch_size=shape)


def brute_force_knn(y: np.ndarray, k: int) -> np.ndarray:
    """The k smallest distances from each y[g, i] to the other rows of y[g], one pair at a time."""
    groups, n, _ = y.shape
    out = np.zeros((groups, n, k))
    for g in range(groups):
        for i in range(n):
            distances = sorted(float(np.sqrt(((y[g, i] - y[g, j]) ** 2).sum())) for j in range(n) if j != i)
            out[g, i] = distances[:k]
    return out


def reference(rise: RISE, next_obs: torch.Tensor, average: bool = False) -> np.ndarray:
    with torch.no_grad():
        y = rise.encoder(next_obs).double().numpy()
    powered = brute_force_knn(y, rise.k) ** (1.0 - rise.alpha)
    return powered.mean(-1) if average else powered[..., -1]


@pytest.mark.parametrize("alpha", [0.5, 0.1, 2.0])
def test_bonus_is_the_kth_neighbour_distance_to_the_power_one_minus_alpha(alpha: float) -> None:
    torch.manual_seed(0)
    rise = make_rise(alpha=alpha)
    next_obs = torch.randn(3, 12, DIM)
    np.testing.assert_allclose(rise.compute(batch_of(next_obs)).numpy(), reference(rise, next_obs), rtol=1e-5)


def test_average_takes_the_mean_over_the_first_k_neighbours() -> None:
    torch.manual_seed(1)
    rise = make_rise(k=4, average=True)
    next_obs = torch.randn(3, 10, DIM)
    expected = reference(rise, next_obs, average=True)
    np.testing.assert_allclose(rise.compute(batch_of(next_obs)).numpy(), expected, rtol=1e-5)


def test_defaults_are_alpha_one_half_and_five_neighbours() -> None:
    rise = make_rise()
    assert (rise.alpha, rise.k, rise.latent_dim, rise.episodic) == (0.5, 5, 128, False)


def test_spread_out_rollout_earns_more_than_a_repeated_state() -> None:
    rise = make_rise(num_envs=2)
    repeated = torch.full((16, DIM), -0.7)
    spread = torch.linspace(-3.0, 3.0, 16)[:, None].expand(16, DIM)
    bonus = rise.compute(batch_of(torch.stack([repeated, spread])))
    # distances of 0 count as 1e-8, whose square root is 1e-4
    assert float(bonus[0].max()) < 1e-2
    assert bool((bonus[1] > 0.2).all())


def test_the_encoder_is_never_trained() -> None:
    torch.manual_seed(2)
    rise = make_rise()
    weights = {name: p.clone() for name, p in rise.encoder.named_parameters()}
    batch = batch_of(torch.randn(3, 8, DIM))
    rise(batch)
    assert rise.optimizer is None and rise.update(batch) == {}
    for name, p in rise.encoder.named_parameters():
        assert torch.equal(p, weights[name]), name


def test_shapes_on_vector_and_pixel_rollouts() -> None:
    env = rlte_plugins.make("env", "torch_pendulum", num_envs=4)
    rise = rlte_plugins.make("reward", "rise").build(env.observation_spec, env.action_spec)
    assert rise(env.rollout(8, break_when_any_done=False))["intrinsic_reward"].shape == (4, 8)
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    rise = rlte_plugins.make("reward", "rise").build(env.observation_spec, env.action_spec)
    bonus = rise(env.rollout(7, break_when_any_done=False))["intrinsic_reward"]
    assert bonus.shape == (2, 7) and bool(bonus.isfinite().all())


def test_state_dict_round_trip_resumes_exactly() -> None:
    torch.manual_seed(3)
    first, second = batch_of(torch.randn(3, 8, DIM)), batch_of(torch.randn(3, 8, DIM))
    rise = make_rise()
    rise(first)
    resumed = make_rise(seed=9)
    resumed.load_state_dict(rise.state_dict())
    torch.testing.assert_close(resumed(second.clone())["intrinsic_reward"], rise(second)["intrinsic_reward"],
                               rtol=0.0, atol=0.0)  # fmt: skip


@pytest.mark.parametrize("alpha", [1, 1.0, 0.0, -0.5, math.inf, math.nan, "0.5", True])
def test_alpha_must_be_a_renyi_order(alpha: object) -> None:
    with pytest.raises(ComponentArgumentError, match=r"reward 'rise': alpha must be a number in \(0, 1\) or \(1, inf"):
        rlte_plugins.make("reward", "rise", alpha=alpha)


@pytest.mark.parametrize(("kwargs", "named"), [({"k": 0}, "k"), ({"latent_dim": -1}, "latent_dim")])
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ComponentArgumentError, match=rf"reward 'rise': {named} "):
        rlte_plugins.make("reward", "rise", **kwargs)
