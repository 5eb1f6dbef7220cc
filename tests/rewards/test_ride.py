"""RIDE: the impact ``||phi(s_{t+1}) - phi(s_t)||`` divided by the root of the next state's visit count in the
current episode, the counts carried across batches and reset where episodes end."""

from __future__ import annotations

import io
import math
from collections import Counter

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Categorical, Composite, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.ride import RIDE


def ride(obs_dim: int = 2, **kwargs) -> RIDE:
    spec = Composite(observation=Unbounded(shape=(obs_dim,)))
    return rlte_plugins.make("reward", "ride", **kwargs).build(spec, Categorical(3))


def rollout(next_obs: torch.Tensor, done: torch.Tensor | None = None) -> TensorDict:
    """A ``[num_envs, T]`` batch whose next observations are ``next_obs`` (``[num_envs, T, obs_dim]``)."""
    obs = torch.cat([torch.zeros_like(next_obs[:, :1]), next_obs[:, :-1]], 1)
    done = torch.zeros(next_obs.shape[:2], dtype=torch.bool) if done is None else done
    action = torch.zeros(next_obs.shape[:2], dtype=torch.int64)
    following = {"observation": next_obs, "done": done[..., None]}
    return TensorDict({"observation": obs, "action": action, "next": following}, list(next_obs.shape[:2]))


def impact(reward: RIDE, batch: TensorDict) -> torch.Tensor:
    with torch.no_grad():
        return (reward.encoder(batch["next", "observation"]) - reward.encoder(batch["observation"])).norm(dim=-1)


def brute_force_counts(next_obs: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    counts = torch.zeros(done.shape, dtype=torch.int64)
    for e in range(done.shape[0]):
        seen: Counter[tuple[float, ...]] = Counter()
        for t in range(done.shape[1]):
            state = tuple(next_obs[e, t].tolist())
            seen[state] += 1
            counts[e, t] = seen[state]
            if done[e, t]:
                seen.clear()
    return counts


def test_a_state_reached_for_the_kth_time_earns_impact_over_root_k() -> None:
    states = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    order = torch.tensor([[0, 1, 0, 0, 2, 1], [2, 2, 2, 2, 2, 2]])
    batch = rollout(states[order])
    reward = ride()
    with torch.no_grad():
        bonus = reward.compute(batch)
    counts = torch.tensor([[1, 1, 2, 3, 1, 2], [1, 2, 3, 4, 5, 6]], dtype=torch.float32)
    torch.testing.assert_close(bonus, impact(reward, batch) / counts.sqrt())


def test_counts_restart_after_the_episode_ends() -> None:
    states = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    done = torch.tensor([[False, True, False, False, True, False]])
    batch = rollout(states[torch.tensor([[0, 0, 1, 0, 1, 0]])], done)
    reward = ride()
    with torch.no_grad():
        bonus = reward.compute(batch)
    counts = torch.tensor([[1.0, 2.0, 1.0, 1.0, 2.0, 1.0]])
    torch.testing.assert_close(bonus, impact(reward, batch) / counts.sqrt())


def test_counts_match_a_brute_force_reference_across_batches_and_single_steps() -> None:
    g = torch.Generator().manual_seed(0)
    next_obs = torch.randint(2, (3, 40, 2), generator=g).float()  # four states: many repeats
    done = torch.rand(3, 40, generator=g) < 0.1
    expected = brute_force_counts(next_obs, done)
    batch = rollout(next_obs, done)
    reward = ride()
    pieces = [reward.episodic_counts(batch[:, a:b]) for a, b in ((0, 7), (7, 8), (8, 30))]
    pieces += [reward.episodic_counts(batch[:, t]).unsqueeze(1) for t in range(30, 40)]  # [B]: one step of B envs
    torch.testing.assert_close(torch.cat(pieces, 1), expected)


def test_bin_size_counts_continuous_observations_on_a_grid() -> None:
    batch = rollout(torch.tensor([[[0.1, 0.1], [0.2, 0.3], [0.7, 0.1], [0.4, 0.2]]]))
    assert ride().episodic_counts(batch).tolist() == [[1, 1, 1, 1]]
    assert ride(bin_size=0.5).episodic_counts(batch).tolist() == [[1, 2, 1, 3]]


def test_loss_weighs_forward_and_inverse_losses() -> None:
    g = torch.Generator().manual_seed(0)
    batch = rollout(torch.randn(2, 5, 2, generator=g)).reshape(-1)
    losses = ride(forward_coef=3.0, inverse_coef=0.5).loss(batch)
    torch.testing.assert_close(losses["loss"], 3.0 * losses["forward"] + 0.5 * losses["inverse"])


def test_bonus_shape_on_rollouts() -> None:
    env = rlte_plugins.make("env", "torch_pendulum", num_envs=4)
    reward = rlte_plugins.make("reward", "ride").build(env.observation_spec, env.action_spec)
    batch = env.rollout(8, break_when_any_done=False)
    assert reward(batch)["intrinsic_reward"].shape == (4, 8)
    assert torch.isfinite(reward.update(batch)["losses/ride_loss"])


def test_bonus_shape_and_counts_on_pixels() -> None:
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    reward = rlte_plugins.make("reward", "ride").build(env.observation_spec, env.action_spec)
    batch = env.rollout(3, break_when_any_done=False)
    assert reward(batch)["intrinsic_reward"].shape == (2, 3)
    fresh = rlte_plugins.make("reward", "ride").build(env.observation_spec, env.action_spec)
    repeated = batch[:, :1].expand(2, 3).clone()
    assert fresh.episodic_counts(repeated).tolist() == [[1, 2, 3], [1, 2, 3]]


def test_state_dict_resumes_memories_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    next_obs = torch.randint(2, (3, 20, 2), generator=g).float()
    batch = rollout(next_obs, torch.rand(3, 20, generator=g) < 0.1)
    reward = ride()
    reward(batch[:, :10])
    reward.update(batch)
    buffer = io.BytesIO()
    torch.save(reward.state_dict(), buffer)
    buffer.seek(0)
    resumed = ride()
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    torch.testing.assert_close(resumed(batch[:, 10:])["intrinsic_reward"], reward(batch[:, 10:])["intrinsic_reward"])
    assert resumed.episodic_counts(batch[:, :1]).tolist() == reward.episodic_counts(batch[:, :1]).tolist()


@pytest.mark.parametrize(
    ("name", "value"), [("bin_size", 0.0), ("bin_size", "1"), ("forward_coef", -1.0), ("inverse_coef", math.nan)]
)
def test_bad_arguments_are_refused(name: str, value: object) -> None:
    with pytest.raises(ComponentArgumentError, match=name):
        rlte_plugins.make("reward", "ride", **{name: value})
