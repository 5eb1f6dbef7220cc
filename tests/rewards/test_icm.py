"""ICM: an inverse model that learns the actions of the transitions it is trained on, and a forward error in
feature space that falls on trained transitions and stays high on new ones."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical, Composite, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.icm import ICM

OBS_SPEC = Composite(observation=Unbounded(shape=(6,)))


def transitions(n: int, generator: torch.Generator, action: torch.Tensor) -> TensorDict:
    obs, next_obs = torch.randn(2, n, 6, generator=generator)
    done = torch.zeros(n, 1, dtype=torch.bool)
    return TensorDict({"observation": obs, "action": action, "next": {"observation": next_obs, "done": done}}, [n])


def discrete_batch(n: int, seed: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return transitions(n, g, torch.randint(4, (n,), generator=g))


def saved(module: torch.nn.Module) -> dict:
    """``module``'s state as a checkpoint file holds it (an in-memory state_dict shares the optimiser's tensors)."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def icm(action_spec=None, **kwargs) -> ICM:
    return rlte_plugins.make("reward", "icm", **kwargs).build(OBS_SPEC, action_spec or Categorical(4))


def test_inverse_model_predicts_the_actions_it_was_trained_on() -> None:
    reward, batch = icm(), discrete_batch(32, 0)
    for _ in range(150):
        reward.update(batch)
    with torch.no_grad():
        phi, phi_next = reward.embed(batch)
        predicted = reward.inverse_model(torch.cat([phi, phi_next], -1)).argmax(-1)
    assert (predicted == batch["action"]).float().mean() >= 0.95


def test_inverse_model_regresses_continuous_actions() -> None:
    g = torch.Generator().manual_seed(0)
    batch = transitions(32, g, torch.rand(32, 2, generator=g) * 2 - 1)
    reward = icm(Bounded(-1.0, 1.0, shape=(2,)))
    for _ in range(150):
        reward.update(batch)
    with torch.no_grad():
        phi, phi_next = reward.embed(batch)
        predicted = reward.inverse_model(torch.cat([phi, phi_next], -1))
    # random actions in [-1, 1] have a mean absolute deviation of 0.5 from any constant guess
    assert (predicted - batch["action"]).abs().mean() < 0.1


def test_forward_error_falls_on_trained_transitions_and_stays_high_on_new_ones() -> None:
    reward, trained, new = icm(), discrete_batch(32, 0), discrete_batch(32, 1)
    with torch.no_grad():
        before = reward.compute(trained).mean()
    for _ in range(150):
        reward.update(trained)
    with torch.no_grad():
        after, unseen = reward.compute(trained).mean(), reward.compute(new).mean()
    assert after < 0.01 * before
    assert after < 0.01 * unseen


def test_bonus_is_half_the_squared_forward_error_in_feature_space() -> None:
    reward, batch = icm(), discrete_batch(10, 0)
    with torch.no_grad():
        phi, phi_next = reward.encoder(batch["observation"]), reward.encoder(batch["next", "observation"])
        one_hot = torch.eye(4)[batch["action"]]
        predicted = reward.forward_model(phi, one_hot)[0]
        expected = 0.5 * ((predicted - phi_next) ** 2).sum(-1)
        torch.testing.assert_close(reward.compute(batch), expected)


def test_loss_weighs_inverse_and_forward_losses_with_beta_icm() -> None:
    reward, batch = icm(), discrete_batch(10, 0)
    with torch.no_grad():
        losses = reward.loss(batch)
        phi, phi_next = reward.embed(batch)
        inverse = F.cross_entropy(reward.inverse_model(torch.cat([phi, phi_next], -1)), batch["action"])
        forward = reward.compute(batch).mean()
    torch.testing.assert_close(losses["inverse"], inverse)
    torch.testing.assert_close(losses["forward"], forward)
    torch.testing.assert_close(losses["loss"], 0.8 * inverse + 0.2 * forward)


def test_state_dict_resumes_exactly() -> None:
    reward, batch = icm(obs_norm=True, reward_norm="std"), discrete_batch(16, 0)
    for _ in range(3):
        reward(batch.clone())
        reward.update(batch)
    resumed = icm(obs_norm=True, reward_norm="std")
    resumed.load_state_dict(saved(reward))
    for module in (reward, resumed):
        module.update(batch)
    torch.testing.assert_close(resumed(batch.clone())["intrinsic_reward"], reward(batch.clone())["intrinsic_reward"])


@pytest.mark.parametrize(("name", "value"), [("beta_icm", 1.5), ("beta_icm", "0.2"), ("latent_dim", 0)])
def test_bad_arguments_are_refused(name: str, value: object) -> None:
    with pytest.raises(ComponentArgumentError, match=name):
        rlte_plugins.make("reward", "icm", **{name: value})
