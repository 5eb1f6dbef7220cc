"""Tests of the template plugin, through rlte-plugins' registry (the plugin must be installed)."""

import pytest
import torch
from tensordict import TensorDict

import rlte_plugins


def test_registered_with_provider():
    specs = {(s.kind, s.name): s for s in rlte_plugins.list_components()}
    assert specs[("encoder", "residual_mlp")].provider == "rlte-example"
    assert specs[("reward", "simhash_count")].provider == "rlte-example"


def test_residual_mlp_trains():
    # a smooth target the encoder can learn (random targets only test memorisation, and their loss ratio spreads
    # up to 0.5 over seeds); seeded, so the ratio is the same on every run: 0.03, with a 10x drop required
    torch.manual_seed(0)
    enc = rlte_plugins.make("encoder", "residual_mlp", in_features=3, width=16, blocks=1)
    head = torch.nn.Linear(16, 1)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)
    x = torch.randn(64, 3)
    y = x.sin().sum(-1, keepdim=True)
    losses = []
    for _ in range(50):
        loss = ((head(enc(TensorDict(observation=x, batch_size=[64]))["features"]) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def _next(observation):
    return TensorDict({"next": {"observation": observation}}, batch_size=observation.shape[:1])


def test_simhash_bonus_decays_with_visits_and_separates_states():
    env = rlte_plugins.make("env", "dummy_continuous", num_envs=4)
    bonus = rlte_plugins.make("reward", "simhash_count", beta=1.0, bits=16).build(env.observation_spec)
    size = env.observation_spec["observation"].shape[-1]
    seen = _next(torch.linspace(-1.0, 1.0, size).repeat(4, 1))
    novel = _next(-torch.linspace(-1.0, 1.0, size).reshape(1, -1))
    bonus.update(seen)
    assert torch.allclose(bonus(seen)["intrinsic_reward"], torch.full((4,), 0.5))
    assert bonus(novel)["intrinsic_reward"].item() == 1.0
    restored = rlte_plugins.make("reward", "simhash_count", beta=1.0, bits=16).build(env.observation_spec)
    restored.load_state_dict(bonus.state_dict())  # counts and projection resume exactly
    assert torch.equal(restored(seen)["intrinsic_reward"], bonus(seen)["intrinsic_reward"])


def test_bad_arguments_are_one_clear_error():
    error = rlte_plugins.ComponentArgumentError
    with pytest.raises(error, match=r"reward 'simhash_count': bits must be an int in \[1, 62\], got 100"):
        rlte_plugins.make("reward", "simhash_count", bits=100)
    with pytest.raises(error, match="encoder 'residual_mlp': width must be a positive int, got 0"):
        rlte_plugins.make("encoder", "residual_mlp", width=0)


def test_observations_that_do_not_fit_are_a_spec_mismatch():
    from torchrl.data import Composite, Unbounded

    pixels = Composite(observation=Unbounded(shape=(3, 8, 8)))
    with pytest.raises(rlte_plugins.SpecMismatchError, match="encoder 'residual_mlp' encodes flat vectors"):
        rlte_plugins.make("encoder", "residual_mlp", observation_spec=pixels)


def test_the_size_command_counts_what_training_would_build(capsys):
    import json

    from rlte_plugins.cli import main

    assert main(["residual-mlp-size", "--in-features", "3", "--width", "16", "--blocks", "0", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        encoder = rlte_plugins.make("encoder", "residual_mlp", in_features=3, width=16, blocks=row["blocks"])
        assert row["parameters"] == sum(p.numel() for p in encoder.parameters())
    assert rows[1]["parameters"] - rows[0]["parameters"] == 2 * (2 * 16 + 2 * (16 * 16 + 16))  # two blocks
    assert main(["residual-mlp-size", "--in-features", "3", "--width", "16", "64"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["WIDTH", "BLOCKS", "PARAMETERS"] and len(table) == 3
