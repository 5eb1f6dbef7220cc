"""E3B: the elliptical bonus against its closed form on a fixed embedding, the episodic reset, one-step batches,
the inverse-dynamics training, shapes on vectors and pixels, exact resume and refused arguments."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.e3b import E3B

RIDGE = 0.1


@pytest.fixture(scope="module")
def cartpole():
    return rlte_plugins.make("env", "torch_cartpole", num_envs=2)


def identity_e3b(env, **kw) -> E3B:
    """An E3B whose embedding is the observation itself, so that the bonus can be checked by hand."""
    reward = rlte_plugins.make("reward", "e3b", latent_dim=4, ridge=RIDGE, **kw).build(
        env.observation_spec, env.action_spec
    )
    reward.embedding.encoder = nn.Identity()
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


def closed_form(next_obs: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """phi^T (ridge I + sum of the episode's earlier phi phi^T)^-1 phi, with an explicit inverse."""
    phi = next_obs.double()
    out = torch.empty(done.shape, dtype=torch.float64)
    for e in range(done.shape[0]):
        seen: list[torch.Tensor] = []
        for t in range(done.shape[1]):
            cov = RIDGE * torch.eye(phi.shape[-1], dtype=torch.float64) + sum(
                (torch.outer(p, p) for p in seen), torch.zeros(phi.shape[-1], phi.shape[-1], dtype=torch.float64)
            )
            out[e, t] = phi[e, t] @ torch.linalg.inv(cov) @ phi[e, t]
            seen = [] if done[e, t] else [*seen, phi[e, t]]
    return out


def test_bonus_is_the_closed_form_across_calls_and_resets(cartpole):
    torch.manual_seed(0)
    next_obs = torch.randn(2, 9, 4)
    done = torch.zeros(2, 9, dtype=torch.bool)
    done[0, 2] = done[1, 6] = True
    reward = identity_e3b(cartpole)
    # two calls: the covariance of an episode that spans them is carried from the first to the second
    first = reward.compute(steps(next_obs[:, :4], done[:, :4]))
    second = reward.compute(steps(next_obs[:, 4:], done[:, 4:]))
    bonus = torch.cat([first, second], 1)
    torch.testing.assert_close(bonus.double(), closed_form(next_obs, done), rtol=1e-4, atol=1e-5)


def test_repeats_fall_and_a_reset_restores_the_first_value(cartpole):
    x = torch.tensor([0.5, -1.0, 2.0, 0.3])
    next_obs = x.expand(1, 6, 4).clone()
    done = torch.tensor([[False, False, True, False, False, False]])
    bonus = identity_e3b(cartpole).compute(steps(next_obs, done))[0]
    first = x.pow(2).sum() / RIDGE
    torch.testing.assert_close(bonus[0], first)
    assert bonus[1] < bonus[0] / 10 and bonus[2] < bonus[1]
    torch.testing.assert_close(bonus[3], first)  # the episode ended at step 2: a fresh covariance
    torch.testing.assert_close(bonus[3:], bonus[:3])


def test_one_step_batches_match_a_rollout(cartpole):
    torch.manual_seed(1)
    next_obs = torch.randn(2, 5, 4)
    done = torch.zeros(2, 5, dtype=torch.bool)
    done[1, 1] = True
    rollout = identity_e3b(cartpole).compute(steps(next_obs, done))
    stepper = identity_e3b(cartpole)
    one_by_one = torch.stack(
        [stepper.compute(steps(next_obs[:, t : t + 1], done[:, t : t + 1])[:, 0]) for t in range(5)], 1
    )
    torch.testing.assert_close(one_by_one, rollout)


def test_the_embedding_learns_the_actions(cartpole):
    reward = rlte_plugins.make("reward", "e3b", lr=1e-3).build(cartpole.observation_spec, cartpole.action_spec)
    batch = cartpole.rollout(32, break_when_any_done=False)
    losses = [float(reward.update(batch)["losses/e3b_loss"]) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]


def test_shapes_on_vectors_continuous_actions_and_pixels():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
    reward = rlte_plugins.make("reward", "e3b").build(env.observation_spec, env.action_spec)
    out = reward(env.rollout(8, break_when_any_done=False))["intrinsic_reward"]
    assert out.shape == (4, 8) and out.isfinite().all() and (out > 0).all()
    pendulum = rlte_plugins.make("env", "torch_pendulum", num_envs=3)
    reward = rlte_plugins.make("reward", "e3b").build(pendulum.observation_spec, pendulum.action_spec)
    batch = pendulum.rollout(5, break_when_any_done=False)
    assert reward(batch)["intrinsic_reward"].shape == (3, 5) and "losses/e3b_loss" in reward.update(batch)
    pixels = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    reward = rlte_plugins.make("reward", "e3b", latent_dim=16).build(pixels.observation_spec, pixels.action_spec)
    batch = pixels.rollout(4, break_when_any_done=False)
    assert reward(batch)["intrinsic_reward"].shape == (2, 4) and reward.update(batch)["losses/e3b_loss"].isfinite()


def test_state_dict_resumes_exactly(cartpole):
    reward = rlte_plugins.make("reward", "e3b", latent_dim=8).build(cartpole.observation_spec, cartpole.action_spec)
    batch = cartpole.rollout(6, break_when_any_done=False)
    reward(batch[:, :3])
    reward.update(batch)
    resumed = rlte_plugins.make("reward", "e3b", latent_dim=8).build(cartpole.observation_spec, cartpole.action_spec)
    resumed.load_state_dict(reward.state_dict())
    for key, value in reward.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(resumed.state_dict()[key], value), key
    assert torch.equal(resumed.memory_state()["cov_inv"], reward.memory_state()["cov_inv"])
    rest = batch[:, 3:]
    assert torch.equal(resumed(rest.clone())["intrinsic_reward"], reward(rest.clone())["intrinsic_reward"])


@pytest.mark.parametrize(
    "kw,name", [({"ridge": 0.0}, "ridge"), ({"latent_dim": 0}, "latent_dim"), ({"hidden": []}, "hidden")]
)
def test_bad_arguments_are_refused(kw, name):
    with pytest.raises(ComponentArgumentError, match=f"reward 'e3b': {name}"):
        rlte_plugins.make("reward", "e3b", **kw)
