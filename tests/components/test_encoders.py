"""Encoders: shapes, uint8 scaling, frame stacks, key configuration, gradient flow, refused specs, and PPO
training a few iterations with each one on a matching environment."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Composite, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

sys.path.insert(0, str(Path(__file__).parents[1] / "envs"))
from gradients import assert_trained, assert_untouched  # noqa: E402
from helpers import needs  # noqa: E402

PIXELS = [
    ("mnih_cnn", (4, 84, 84), 512),
    ("tassa_cnn", (9, 84, 84), 50),
    ("pathak_cnn", (4, 84, 84), 1152),
    ("espeholt_resnet", (3, 64, 64), 256),
]


@pytest.mark.parametrize("name,shape,features", PIXELS, ids=[p[0] for p in PIXELS])
def test_pixel_encoders(name, shape, features):
    enc = rlte_plugins.make("encoder", name, in_shape=list(shape))
    frames = torch.randint(0, 256, (2, 3, *shape), dtype=torch.uint8)  # leading dims [2, 3]
    out = enc(TensorDict(pixels=frames, batch_size=[2, 3]))["features"]
    assert out.shape == (2, 3, features) and out.dtype == torch.float32
    # uint8 frames are scaled inside: the same frames as floats in [0, 1] give the same features
    as_float = enc(TensorDict(pixels=frames.float() / 255.0, batch_size=[2, 3]))["features"]
    assert torch.allclose(out, as_float, atol=1e-5)
    out.sum().backward()
    assert_trained(enc.named_parameters(), "enc")


def test_frame_stack_axis_is_folded_into_channels():
    enc = rlte_plugins.make("encoder", "mnih_cnn", in_shape=[4, 1, 84, 84])
    stacked = torch.randint(0, 256, (2, 4, 1, 84, 84), dtype=torch.uint8)
    out = enc(TensorDict(pixels=stacked, batch_size=[2]))["features"]
    flat = rlte_plugins.make("encoder", "mnih_cnn", in_shape=[4, 84, 84])
    flat.load_state_dict(enc.state_dict())
    assert torch.allclose(out, flat(TensorDict(pixels=stacked.squeeze(2), batch_size=[2]))["features"])


@pytest.mark.parametrize("name", [p[0] for p in PIXELS])
def test_pixel_encoders_refuse_vectors_and_tiny_images(name):
    with pytest.raises(SpecMismatchError, match="'mlp' or 'identity'"):
        rlte_plugins.make("encoder", name, observation_spec=Composite(pixels=Unbounded((8,))))
    with pytest.raises(SpecMismatchError, match="at least"):
        rlte_plugins.make("encoder", name, in_shape=[3, 4, 4])


def test_vector_encoders_refuse_images_and_check_keys():
    with pytest.raises(SpecMismatchError, match="pixel encoder"):
        rlte_plugins.make(
            "encoder", "mlp", observation_spec=Composite(observation=Bounded(0, 255, (3, 8, 8), dtype=torch.uint8))
        )
    with pytest.raises(SpecMismatchError, match="reads 'state'"):
        rlte_plugins.make("encoder", "mlp", in_keys=["state"], observation_spec=Composite(observation=Unbounded((3,))))
    with pytest.raises(ComponentArgumentError, match="unknown activation"):
        rlte_plugins.make("encoder", "mlp", activation="swishy")
    enc = rlte_plugins.make("encoder", "mlp", in_keys=["state"], out_keys=["z"], num_cells=[8], activation="relu",
                            observation_spec=Composite(state=Unbounded((3,))))  # fmt: skip
    assert enc(TensorDict(state=torch.zeros(4, 3), batch_size=[4]))["z"].shape == (4, 8)


def test_combined_encoder_concatenates_per_key_features():
    spec = Composite(
        pixels=Bounded(0, 255, (3, 64, 64), dtype=torch.uint8),
        state=Unbounded((7,)),
        episode_reward=Unbounded((1,)),  # statistics are never encoded
    )
    enc = rlte_plugins.make("encoder", "combined", observation_spec=spec, pixel_encoder="espeholt_resnet",
                            vector_kwargs={"num_cells": [16]})  # fmt: skip
    assert enc.in_keys == ["pixels", "state"] and enc.out_features == 256 + 16
    pixels = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)  # zero frames would leave conv weights untrained
    td = TensorDict(pixels=pixels, state=torch.randn(2, 7), batch_size=[2])
    out = enc(td)["features"]
    assert out.shape == (2, 272)
    pixel_part, state_part = enc.encoders["e0"], enc.encoders["e1"]
    # each key's features come from its own encoder only, in in_keys order: a slice trains one encoder, not the other
    out[:, :256].sum().backward(retain_graph=True)
    assert_trained(pixel_part.named_parameters(), "pixel_part")
    assert_untouched(state_part.named_parameters(), "state_part")
    enc.zero_grad(set_to_none=True)
    out[:, 256:].sum().backward()
    assert_trained(state_part.named_parameters(), "state_part")
    assert_untouched(pixel_part.named_parameters(), "pixel_part")
    with pytest.raises(SpecMismatchError, match="dict observations"):
        rlte_plugins.make("encoder", "combined", observation_spec=Unbounded((3,)))
    only_state = rlte_plugins.make("encoder", "combined", in_keys=["state"], observation_spec=spec)
    assert only_state.out_features == 64


def test_seeded_construction_is_deterministic():
    torch.manual_seed(0)
    a = rlte_plugins.make("encoder", "tassa_cnn", in_shape=[3, 32, 32])
    torch.manual_seed(0)
    b = rlte_plugins.make("encoder", "tassa_cnn", in_shape=[3, 32, 32])
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


ENCODER_ON_ENV = [
    pytest.param("atari", {"game": "Pong"}, "mnih_cnn", {}, marks=needs("envpool"), id="mnih_cnn-atari"),
    pytest.param("procgen", {"game": "coinrun"}, "espeholt_resnet", {}, marks=needs("procgen-qt5"),
                 id="espeholt_resnet-procgen"),
    pytest.param("atari", {"game": "Pong"}, "pathak_cnn", {"features": 64}, marks=needs("envpool"),
                 id="pathak_cnn-atari"),
    pytest.param("dmc", {"task": "cartpole_balance", "from_pixels": True, "image_size": 64, "frame_stack": 3},
                 "tassa_cnn", {}, marks=needs("dmc-egl"), id="tassa_cnn-dmc-pixels"),
    pytest.param("torch_cartpole", {}, "mlp", {}, id="mlp-torch_cartpole"),
    pytest.param("torch_cartpole", {}, "identity", {}, id="identity-torch_cartpole"),
    pytest.param("torch_pendulum", {}, "combined", {}, id="combined-torch_pendulum"),
]  # fmt: skip


@pytest.mark.parametrize("family,kwargs,encoder,encoder_kwargs", ENCODER_ON_ENV)
def test_ppo_trains_with_each_encoder(family, kwargs, encoder, encoder_kwargs):
    env = rlte_plugins.make("env", family, num_envs=2, seed=0, **kwargs)
    agent = rlte_plugins.make("agent", "ppo", env=env, num_steps=8, epochs=1, num_minibatches=2, seed=0)
    agent.set(encoder={"name": encoder, **encoder_kwargs}).build()
    before = [p.detach().clone() for p in agent.policy.parameters()]
    stats = agent.train(total_frames=32, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    last = stats[-1] if isinstance(stats, list) else stats
    assert all(math.isfinite(v) for v in last.values() if isinstance(v, float))
