"""NGU: the lifelong modulator against its formula on hand-made errors (running statistics, clipping to [1, L]),
the bonus as the episodic pseudo-count times the modulator, both networks trained, shapes on vectors and pixels,
exact resume and refused arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.ngu import NGU
from rlte_plugins.rewards.pseudo_counts import PseudoCounts

L = 5.0


@pytest.fixture(scope="module")
def cartpole():
    return rlte_plugins.make("env", "torch_cartpole", num_envs=4)


def make(env, **kw) -> NGU:
    return rlte_plugins.make("reward", "ngu", **kw).build(env.observation_spec, env.action_spec)


def test_modulator_is_the_clipped_standardised_error(cartpole):
    ngu = make(cartpole, max_modulation=L)
    first = np.array([0.0] * 30 + [1.0, 20.0])
    z = (first - first.mean()) / first.std()
    assert 1 + z.max() > L and 1 + z.min() < 1 and 1 < 1 + z[30] < L  # both clips and the inside are met
    seen = np.array([])
    for errors in (first, np.array([0.5, 3.0, 0.2, 8.0, 0.0, 1.5])):
        alpha = ngu.modulator(torch.tensor(errors, dtype=torch.float32)).numpy()
        seen = np.concatenate([seen, errors])  # the mean and std run over every error seen so far
        np.testing.assert_allclose(alpha, np.clip(1 + (errors - seen.mean()) / seen.std(), 1, L), rtol=1e-4)
        assert alpha.min() >= 1 and alpha.max() <= L


def test_bonus_is_the_episodic_count_times_the_modulator(cartpole):
    ngu, twin = make(cartpole), make(cartpole)
    batch = cartpole.rollout(12, break_when_any_done=False)
    for half in (batch[:, :6], batch[:, 6:]):
        bonus = ngu.compute(half)
        expected = PseudoCounts.compute(twin, half) * twin.modulator(twin.rnd_errors(half))
        torch.testing.assert_close(bonus, expected)
        assert bonus.shape == (4, 6)
    episodic = PseudoCounts.compute(make(cartpole), batch)
    assert (bonus != episodic[:, 6:]).any()  # the modulator is not 1 everywhere


def test_update_trains_the_embedding_and_the_rnd_predictor(cartpole):
    ngu = make(cartpole, lr=1e-3)
    batch = cartpole.rollout(16, break_when_any_done=False)
    target = [p.clone() for p in ngu.rnd.target.parameters()]
    embedding = [p.clone() for p in ngu.embedding.parameters()]
    losses = [ngu.update(batch) for _ in range(40)]
    assert losses[-1]["losses/ngu_rnd"] < 0.5 * losses[0]["losses/ngu_rnd"]
    assert losses[-1]["losses/ngu_inverse"] < losses[0]["losses/ngu_inverse"]
    torch.testing.assert_close(
        losses[0]["losses/ngu_loss"], losses[0]["losses/ngu_inverse"] + losses[0]["losses/ngu_rnd"]
    )
    assert all(torch.equal(a, b) for a, b in zip(target, ngu.rnd.target.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(embedding, ngu.embedding.parameters(), strict=True))
    assert ngu.rnd.optimizer is None  # one optimiser, NGU's, holds the predictor


def test_shapes_on_pixels():
    pixels = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    ngu = make(pixels)
    batch = pixels.rollout(4, break_when_any_done=False)
    out = ngu(batch)["intrinsic_reward"]
    assert out.shape == (2, 4) and out.isfinite().all()
    assert ngu.update(batch)["losses/ngu_loss"].isfinite()


def test_state_dict_resumes_exactly(cartpole):
    ngu = make(cartpole)
    batch = cartpole.rollout(10, break_when_any_done=False)
    ngu(batch[:, :5])
    ngu.update(batch)
    resumed = make(cartpole, seed=3)
    resumed.load_state_dict(ngu.state_dict())
    for key, value in ngu.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(resumed.state_dict()[key], value), key
    assert torch.equal(resumed.memory_state()["error_rms"]["var"], ngu.memory_state()["error_rms"]["var"])
    assert torch.equal(resumed.memory_state()["memory"], ngu.memory_state()["memory"])
    rest = batch[:, 5:]
    assert torch.equal(resumed(rest.clone())["intrinsic_reward"], ngu(rest.clone())["intrinsic_reward"])


@pytest.mark.parametrize(
    "kw,name", [({"max_modulation": 0.5}, "max_modulation"), ({"rnd_latent_dim": 0}, "rnd_latent_dim"), ({"k": 0}, "k")]
)
def test_bad_arguments_are_refused(kw, name):
    with pytest.raises(ComponentArgumentError, match=f"reward 'ngu': {name} "):
        rlte_plugins.make("reward", "ngu", **kw)
