"""Disagreement: the bonus is the variance of the ensemble's predictions of the next features, which falls on
transitions the members were trained on and stays high far from them."""

from __future__ import annotations

import io

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Categorical, Composite, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.disagreement import Disagreement


def disagreement(**kwargs) -> Disagreement:
    kwargs = {"obs_norm": False, "latent_dim": 32, **kwargs}
    spec = Composite(observation=Unbounded(shape=(6,)))
    return rlte_plugins.make("reward", "disagreement", **kwargs).build(spec, Categorical(4))


def transitions(n: int, seed: int, shift: float = 0.0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(2, n, 6, generator=g) + shift
    action = torch.randint(4, (n,), generator=g)
    done = torch.zeros(n, 1, dtype=torch.bool)
    return TensorDict({"observation": obs, "action": action, "next": {"observation": next_obs, "done": done}}, [n])


def test_bonus_is_the_variance_of_the_members_predictions() -> None:
    reward, batch = disagreement(ensemble_size=3), transitions(10, 0)
    first, second = reward.forward_models.net[0], reward.forward_models.net[2]
    with torch.no_grad():
        x = torch.cat([reward.encoder(batch["observation"]), torch.eye(4)[batch["action"]]], -1)
        hidden = [torch.relu(x @ first.weight[k] + first.bias[k]) for k in range(3)]
        members = [h @ second.weight[k] + second.bias[k] for k, h in enumerate(hidden)]
        mean = sum(members) / 3
        expected = (sum((m - mean) ** 2 for m in members) / 3).mean(-1)
        torch.testing.assert_close(reward.compute(batch), expected)


def test_the_random_encoder_stays_fixed() -> None:
    reward, batch = disagreement(), transitions(16, 0)
    encoder = [p.clone() for p in reward.encoder.parameters()]
    for _ in range(5):
        reward.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(encoder, reward.encoder.parameters(), strict=True))


def test_bonus_falls_on_trained_transitions_and_stays_high_far_from_them() -> None:
    reward, trained, far = disagreement(lr=1e-3), transitions(32, 0), transitions(32, 1, shift=3.0)
    with torch.no_grad():
        before = reward.compute(trained).mean()
    for _ in range(100):
        reward.update(trained)
    with torch.no_grad():
        after, unseen = reward.compute(trained).mean(), reward.compute(far).mean()
    assert after < 0.1 * before
    assert after < 0.2 * unseen


def test_each_member_trains_on_its_own_bootstrap() -> None:
    reward, batch = disagreement(ensemble_size=2), transitions(32, 0)
    # identical members stay identical only if they see identical samples
    with torch.no_grad():
        for layer in (reward.forward_models.net[0], reward.forward_models.net[2]):
            layer.weight[1] = layer.weight[0]
            layer.bias[1] = layer.bias[0]
    reward.update(batch)
    layer = reward.forward_models.net[0]
    assert not torch.equal(layer.weight[0], layer.weight[1])


def test_state_dict_resumes_exactly() -> None:
    reward, batch = disagreement(obs_norm=True), transitions(16, 0)
    for _ in range(3):
        reward(batch.clone())
        reward.update(batch)
    buffer = io.BytesIO()
    torch.save(reward.state_dict(), buffer)
    buffer.seek(0)
    resumed = disagreement(obs_norm=True)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    for module in (reward, resumed):
        module.update(batch)  # the bootstrap draws come from the saved generator
    torch.testing.assert_close(resumed(batch.clone())["intrinsic_reward"], reward(batch.clone())["intrinsic_reward"])


@pytest.mark.parametrize(("name", "value"), [("ensemble_size", 0), ("ensemble_size", 2.5), ("latent_dim", -1)])
def test_bad_arguments_are_refused(name: str, value: object) -> None:
    with pytest.raises(ComponentArgumentError, match=name):
        rlte_plugins.make("reward", "disagreement", **{name: value})
