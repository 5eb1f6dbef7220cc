"""Exploration works: on Deep Sea (bsuite's hard-exploration grid, 12 x 12 here, where a random walk finds the
treasure once in 4,096 episodes (2 ** -12) and every step right costs), PPO with a directed bonus visits more cells and
reaches the treasure, PPO alone never does, at the same seeded budget. bsuite's published deep_sea results show
the same split: dithering agents (DQN, A2C) fail beyond size ~10 while bonus-driven ones keep solving it."""

import pytest
import torch

import rlte_plugins

SIZE, FRAMES = 12, 200_000


def _explore(reward, seed):
    agent = rlte_plugins.make("agent", "ppo", env={"name": "torch_deep_sea", "size": SIZE}, num_envs=16,
                              num_steps=4 * SIZE, seed=seed, entropy_coef=0.01, lr=1e-3)  # fmt: skip
    if reward is not None:
        agent.set(reward=reward)
    cells, treasures = set(), 0
    while agent.frames < FRAMES:
        batch = agent.collect()
        cells |= set(batch["next", "observation"].reshape(-1, SIZE * SIZE).argmax(-1).tolist())
        treasures += int((batch["next", "reward"] > 0.5).sum())
        agent.step(batch)
    return len(cells), treasures


@pytest.fixture(scope="module")
def baseline():
    torch.set_num_threads(1)
    return {seed: _explore(None, seed) for seed in (0, 1)}


@pytest.mark.parametrize(("reward", "seeds", "least"), [("rnd", (0, 1), 1000), ("re3", (0,), 1)])
def test_a_bonus_visits_more_cells_and_finds_the_treasure_that_ppo_alone_never_finds(baseline, reward, seeds, least):
    for seed in seeds:
        cells, treasures = _explore(reward, seed)
        plain_cells, plain_treasures = baseline[seed]
        assert plain_treasures == 0
        assert treasures >= least and cells > plain_cells
