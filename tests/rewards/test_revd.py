"""RevD: (k-NN distance to the previous rollout / k-NN distance within the current one) ** (1 - alpha), per env,
under a frozen random encoder, with the previous rollout's embeddings as memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Composite, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.revd import RevD

DIM = 3


def make_revd(num_envs: int = 3, **kwargs: object) -> RevD:
    spec = Composite(observation=Unbounded(shape=(num_envs, DIM)), shape=(num_envs,))
    return rlte_plugins.make("reward", "revd", **kwargs).build(spec)


def batch_of(next_obs: torch.Tensor, done: torch.Tensor | None = None) -> TensorDict:
    shape = next_obs.shape[:-1]
    done = torch.zeros(*shape, 1, dtype=torch.bool) if done is None else done
    return TensorDict({"next": {"observation": next_obs, "done": done}}, batch_size=shape)


def embeddings(revd: RevD, next_obs: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return revd.encoder(next_obs).double().numpy()


def kth_distances(y: np.ndarray, pool: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """The k smallest distances from each y[g, i] to the rows of pool[g] (y[g, i] itself left out when pool is
    y), one pair at a time."""
    groups, n, _ = y.shape
    out = np.zeros((groups, n, k))
    for g in range(groups):
        for i in range(n):
            others = [j for j in range(pool.shape[1]) if not (exclude_self and j == i)]
            distances = sorted(float(np.sqrt(((y[g, i] - pool[g, j]) ** 2).sum())) for j in others)
            out[g, i] = distances[:k]
    return out


def reference(revd: RevD, previous_obs: torch.Tensor, next_obs: torch.Tensor, average: bool = False) -> np.ndarray:
    y, previous = embeddings(revd, next_obs), embeddings(revd, previous_obs)
    within = kth_distances(y, y, revd.k, exclude_self=True)
    across = kth_distances(y, previous, revd.k, exclude_self=False)
    ratio = (across / within) ** (1.0 - revd.alpha)
    return ratio.mean(-1) if average else ratio[..., -1]


def test_the_first_rollout_has_no_previous_one_and_earns_zero() -> None:
    torch.manual_seed(0)
    revd = make_revd()
    assert torch.equal(revd.compute(batch_of(torch.randn(3, 10, DIM))), torch.zeros(3, 10))


def test_second_rollout_is_compared_with_the_first_ones_embeddings() -> None:
    torch.manual_seed(1)
    first, other_first, second = torch.randn(3, 10, DIM), torch.randn(3, 12, DIM), torch.randn(3, 10, DIM)
    revd = make_revd()
    revd.compute(batch_of(first))
    bonus = revd.compute(batch_of(second)).numpy()
    np.testing.assert_allclose(bonus, reference(revd, first, second), rtol=1e-5)
    revd = make_revd()
    revd.compute(batch_of(other_first))
    bonus_after_other = revd.compute(batch_of(second)).numpy()
    np.testing.assert_allclose(bonus_after_other, reference(revd, other_first, second), rtol=1e-5)
    assert not np.allclose(bonus, bonus_after_other)


def test_average_takes_the_mean_ratio_over_the_first_k_neighbours() -> None:
    torch.manual_seed(2)
    first, second = torch.randn(3, 9, DIM), torch.randn(3, 9, DIM)
    revd = make_revd(k=3, alpha=0.25, average=True)
    revd.compute(batch_of(first))
    expected = reference(revd, first, second, average=True)
    np.testing.assert_allclose(revd.compute(batch_of(second)).numpy(), expected, rtol=1e-5)


def test_states_the_previous_rollout_did_not_visit_earn_more() -> None:
    torch.manual_seed(3)
    revd = make_revd(num_envs=2)
    revd.compute(batch_of(0.3 * torch.randn(2, 32, DIM)))
    current = 0.3 * torch.randn(2, 32, DIM)
    current[1] += 4.0  # env 1 moved away from where it was, env 0 stayed
    bonus = revd.compute(batch_of(current))
    assert float(bonus[1].min()) > 2.0 * float(bonus[0].max())


def test_memory_is_per_env_kept_by_update_and_not_reset_inside_a_rollout() -> None:
    torch.manual_seed(4)
    first, second = torch.randn(2, 8, DIM), torch.randn(2, 8, DIM)
    revd = make_revd(num_envs=2, k=3)
    revd.compute(batch_of(first))
    revd.update(batch_of(torch.randn(2, 8, DIM)))  # trains nothing, remembers nothing
    done = torch.zeros(2, 8, 1, dtype=torch.bool)
    done[:, 3] = True  # an "episode" is a rollout: an episode end inside it keeps the previous rollout
    expected = reference(revd, first, second)
    np.testing.assert_allclose(revd.compute(batch_of(second, done)).numpy(), expected, rtol=1e-5)
    assert revd.memory_state().shape == (2, 8, 128)


def test_a_different_number_of_envs_starts_over() -> None:
    torch.manual_seed(5)
    revd = make_revd(num_envs=3)
    revd.compute(batch_of(torch.randn(3, 8, DIM)))
    assert torch.equal(revd.compute(batch_of(torch.randn(12, DIM))), torch.zeros(12))
    assert revd.memory_state().shape == (1, 12, 128)
    assert bool((revd.compute(batch_of(torch.randn(12, DIM))) > 0).all())


def test_shapes_on_vector_and_pixel_rollouts() -> None:
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
    revd = rlte_plugins.make("reward", "revd").build(env.observation_spec, env.action_spec)
    revd(env.rollout(8, break_when_any_done=False))
    assert revd(env.rollout(8, break_when_any_done=False))["intrinsic_reward"].shape == (4, 8)
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    revd = rlte_plugins.make("reward", "revd", k=3).build(env.observation_spec, env.action_spec)
    revd.compute(env.rollout(6, break_when_any_done=False))
    bonus = revd.compute(env.rollout(6, break_when_any_done=False))
    assert bonus.shape == (2, 6) and bool(bonus.isfinite().all())


def test_state_dict_round_trip_resumes_the_memory_exactly() -> None:
    torch.manual_seed(6)
    first, second = batch_of(torch.randn(3, 8, DIM)), batch_of(torch.randn(3, 8, DIM))
    revd = make_revd()
    revd(first)
    resumed = make_revd(seed=11)
    resumed.load_state_dict(revd.state_dict())
    assert torch.equal(resumed.memory_state(), revd.memory_state())
    torch.testing.assert_close(resumed(second.clone())["intrinsic_reward"], revd(second)["intrinsic_reward"],
                               rtol=0.0, atol=0.0)  # fmt: skip


def test_an_agent_checkpoint_carries_the_memory(tmp_path: Path) -> None:
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, seed=0).set(reward="revd")
    agent.train(64, progress=False)
    loaded = rlte_plugins.load_agent(agent.save(tmp_path / "ppo.pt"))
    memory, loaded_memory = agent.components["reward"].memory_state(), loaded.components["reward"].memory_state()
    assert memory.shape == (4, 8, 128) and torch.equal(loaded_memory, memory)


@pytest.mark.parametrize(("kwargs", "named"), [({"alpha": 1.0}, "alpha"), ({"alpha": 0}, "alpha"), ({"k": 0}, "k")])
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ComponentArgumentError, match=rf"reward 'revd': {named} "):
        rlte_plugins.make("reward", "revd", **kwargs)
