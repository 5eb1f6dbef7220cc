"""Tests of the template plugin, through rlte-plugins' registry (the plugin must be installed)."""

import torch
from tensordict import TensorDict

import rlte_plugins


def test_registered_with_provider():
    specs = {(s.kind, s.name): s for s in rlte_plugins.list_components()}
    assert specs[("encoder", "residual_mlp")].provider == "rlte-example"
    assert specs[("reward", "simhash_count")].provider == "rlte-example"


def test_residual_mlp_trains():
    enc = rlte_plugins.make("encoder", "residual_mlp", in_features=3, width=16, blocks=1)
    head = torch.nn.Linear(16, 1)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    losses = []
    for _ in range(50):
        loss = ((head(enc(TensorDict(observation=x, batch_size=[64]))["features"]) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_simhash_bonus_decays_with_visits_and_separates_states():
    bonus = rlte_plugins.make("reward", "simhash_count", beta=1.0, bits=16)
    seen = TensorDict(observation=torch.tensor([[1.0, -2.0, 0.5]]).repeat(4, 1), batch_size=[4])
    novel = TensorDict(observation=torch.tensor([[-1.0, 2.0, -0.5]]), batch_size=[1])
    bonus.update(seen)
    assert torch.allclose(bonus(seen)["intrinsic_reward"], torch.full((4, 1), 0.5))
    assert bonus(novel)["intrinsic_reward"].item() == 1.0
