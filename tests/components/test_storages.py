"""Storages: n-step targets against hand-computed returns, prioritized sampling frequencies against p^alpha,
HER relabelling and rewards, uniform replay basics."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError


def transitions(rewards, dones, obs_offset=0.0):
    """[num_envs, T] transitions with observation = step index (+ offset per env) and next = index + 1."""
    r = torch.as_tensor(rewards, dtype=torch.float32).unsqueeze(-1)
    d = torch.as_tensor(dones, dtype=torch.bool).unsqueeze(-1)
    b, t = r.shape[:2]
    obs = torch.arange(t, dtype=torch.float32).expand(b, t).clone() + torch.arange(b).unsqueeze(-1) * 100 + obs_offset
    nxt = TensorDict(observation=(obs + 1).unsqueeze(-1), reward=r, done=d, terminated=d, truncated=torch.zeros_like(d),
                     batch_size=[b, t])  # fmt: skip
    return TensorDict(observation=obs.unsqueeze(-1), next=nxt, batch_size=[b, t])


def nstep_reference(rewards, dones, n, gamma):
    out = []
    for env_r, env_d in zip(rewards, dones, strict=True):
        row = []
        for t in range(len(env_r)):
            g, k = 0.0, 0
            while k < n and t + k < len(env_r):
                g += gamma**k * env_r[t + k]
                k += 1
                if env_d[t + k - 1]:
                    break
            row.append((g, k))
        out.append(row)
    return out


def test_nstep_targets_match_hand_computed_returns_per_env():
    rewards = [[1, 2, 3, 4, 5, 6, 7, 8], [10, 20, 30, 40, 50, 60, 70, 80]]
    dones = [[0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0]]
    n, gamma = 3, 0.9
    rb = rlte_plugins.make("storage", "nstep_replay", n=n, gamma=gamma, capacity=100).build()
    rb.add(transitions([r[:5] for r in rewards], [d[:5] for d in dones]))  # two adds: windows cross the boundary
    second = transitions([r[5:] for r in rewards], [d[5:] for d in dones], obs_offset=5.0)
    rb.add(second)
    stored = rb.buffer[:]
    ref = nstep_reference(rewards, dones, n, gamma)
    seen = 0
    for item in stored.unbind(0):
        obs = int(item["observation"].item())
        env, t = divmod(obs, 100)
        g, k = ref[env][t]
        assert item["next", "reward"].item() == pytest.approx(g, rel=1e-6), (env, t)
        assert int(item["steps_to_next_obs"]) == k
        assert item["next", "observation"].item() == env * 100 + t + k  # the observation k steps later
        seen += 1
    # the last n steps of each env are held back until more data completes their windows
    assert seen == 2 * (8 - n)


def test_nstep_refuses_flat_data():
    rb = rlte_plugins.make("storage", "nstep_replay").build()
    with pytest.raises(ComponentArgumentError, match="num_envs, T"):
        rb.add(TensorDict(x=torch.zeros(2, 3, 4), batch_size=[2, 3, 4]))


def test_prioritized_sampling_frequencies_follow_p_alpha():
    alpha = 0.7
    rb = rlte_plugins.make("storage", "prioritized_replay", alpha=alpha, beta=0.5, capacity=8, batch_size=4096, seed=0)
    rb.build()
    rb.add(TensorDict(x=torch.arange(6.0), batch_size=[6]))
    priorities = torch.tensor([1.0, 2.0, 4.0, 0.5, 8.0, 3.0])
    rb.buffer.update_priority(torch.arange(6), priorities)
    counts = torch.zeros(6)
    draws = 0
    for _ in range(25):
        batch = rb.sample()
        counts += torch.bincount(batch["index"], minlength=6).float()
        draws += batch.shape[0]
    expected = priorities**alpha / (priorities**alpha).sum() * draws
    chi2 = (((counts - expected) ** 2) / expected).sum().item()
    assert chi2 < 20.5  # chi-square, 5 degrees of freedom: p = 0.001
    # importance weights: (p_i / p_min) ** -beta, the rarest transition has weight 1
    batch = rb.sample()
    w = batch["priority_weight"]
    ref = ((priorities[batch["index"]] + 1e-6) ** alpha / (priorities.min() + 1e-6) ** alpha) ** -0.5
    assert torch.allclose(w, ref.float(), rtol=1e-4)


def test_prioritized_new_transitions_get_max_priority_and_updates_from_td_errors():
    rb = rlte_plugins.make("storage", "prioritized_replay", alpha=1.0, capacity=16, batch_size=8, seed=1).build()
    rb.add(TensorDict(x=torch.arange(4.0), batch_size=[4]))
    batch = rb.sample()
    rb.update_priority(batch, torch.full((8,), 10.0))
    rb.add(TensorDict(x=torch.arange(4.0, 6.0), batch_size=[2]))
    p = rb.sampler.priorities(6)
    assert p[4] == pytest.approx(10.0, rel=1e-5) and p[5] == pytest.approx(10.0, rel=1e-5)
    rb.step(500_000)
    assert rb.sampler.beta == pytest.approx(0.7)


def test_prioritized_sampler_tree_is_consistent_after_many_updates():
    from rlte_plugins.storages.replay import SumTreeSampler

    s = SumTreeSampler(capacity=37, alpha=1.0, beta=0.4)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = torch.randint(0, 37, (9,), generator=g)
        s.update_priority(idx, torch.rand(9, generator=g) * 5)
    assert s.tree[1].item() == pytest.approx(s.priorities(37).sum().item(), rel=1e-9)


def her_batch(num_envs=2, steps=6, done_at=(3,)):
    g = torch.Generator().manual_seed(0)
    achieved = torch.rand(num_envs, steps, 2, generator=g)
    desired = torch.full((num_envs, steps, 2), 5.0)  # unreachable: every original reward is -1
    done = torch.zeros(num_envs, steps, 1, dtype=torch.bool)
    for t in done_at:
        done[:, t] = True
    nxt = TensorDict(achieved_goal=achieved, desired_goal=desired, reward=-torch.ones(num_envs, steps, 1), done=done,
                     terminated=done, truncated=torch.zeros_like(done), batch_size=[num_envs, steps])  # fmt: skip
    step = torch.arange(steps).expand(num_envs, steps)
    return TensorDict(desired_goal=desired, step=step, env=torch.arange(num_envs)[:, None].expand(num_envs, steps),
                      next=nxt, batch_size=[num_envs, steps])  # fmt: skip


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_her_relabels_within_the_episode_and_recomputes_rewards(strategy):
    data = her_batch()
    rb = rlte_plugins.make("storage", "her_replay", capacity=100, batch_size=512, strategy=strategy, seed=0)
    rb.build(num_envs=2).add(data)
    batch = rb.sample()
    relabelled = batch["relabelled"]
    assert 0.7 < relabelled.float().mean() < 0.9
    achieved = data["next", "achieved_goal"]
    for i in range(batch.shape[0]):
        env, t = int(batch["env"][i]), int(batch["step"][i])
        goal = batch["desired_goal"][i]
        assert torch.equal(goal, batch["next", "desired_goal"][i])
        if not relabelled[i]:
            assert torch.equal(goal, torch.full((2,), 5.0))
            assert batch["next", "reward"][i].item() == -1.0
            continue
        episode = range(0, 4) if t <= 3 else range(4, 6)  # done at t = 3 ends the first episode
        allowed = {"future": range(t, episode[-1] + 1), "final": [episode[-1]], "episode": episode}[strategy]
        assert any(torch.equal(goal, achieved[env, s]) for s in allowed)
        reached = (batch["next", "achieved_goal"][i] - goal).norm() <= 0.05
        assert batch["next", "reward"][i].item() == (0.0 if reached else -1.0)
    # the future strategy relabels some transitions with their own achieved goal: reward 0
    if strategy == "future":
        assert (batch["next", "reward"] == 0).any()


def test_her_checks_its_input():
    rb = rlte_plugins.make("storage", "her_replay").build(num_envs=2)
    with pytest.raises(SpecMismatchError, match="2 envs"):
        rb.add(her_batch(num_envs=3))
    with pytest.raises(SpecMismatchError, match="achieved_goal"):
        rb.add(her_batch().exclude(("next", "achieved_goal")))
    with pytest.raises(ComponentArgumentError, match="strategy"):
        rlte_plugins.make("storage", "her_replay", strategy="past")


def test_uniform_replay_wraps_and_samples_reproducibly(tmp_path):
    def filled(seed, memmap=False):
        rb = rlte_plugins.make("storage", "replay", capacity=10, batch_size=5, seed=seed, memmap=memmap,
                               scratch_dir=str(tmp_path / f"m{seed}") if memmap else None).build()  # fmt: skip
        rb.add(TensorDict(x=torch.arange(24.0).reshape(2, 12), batch_size=[2, 12]))
        return rb

    rb = filled(0)
    assert len(rb) == 10
    assert set(rb.buffer[:]["x"].tolist()) == set(range(14, 24))  # the oldest were overwritten
    assert torch.equal(filled(0).sample()["x"], filled(0).sample()["x"])
    assert len(filled(3, memmap=True)) == 10
    with pytest.raises(RuntimeError, match="empty"):
        rlte_plugins.make("storage", "dict_replay").build().sample()
