"""Storages: n-step targets against hand-computed returns, prioritized sampling frequencies against p^alpha,
HER relabelling and rewards, uniform replay basics."""

from __future__ import annotations

import io

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


def value_net(fn):
    from tensordict.nn import TensorDictModule

    return TensorDictModule(fn, in_keys=["observation"], out_keys=["state_value"])


def td0_targets(batch, gamma, fn):
    """TorchRL's TD(0) target on stored/sampled n-step transitions (it reads steps_to_next_obs for gamma**k)."""
    from torchrl.objectives.value import TD0Estimator

    return TD0Estimator(gamma=gamma, value_network=value_net(fn))(batch.clone())["value_target"].flatten()


def test_nstep_does_not_bootstrap_through_a_termination_inside_the_window():
    # the review's case: one episode of rewards 1, 2, 4 ending in a termination, n = 3, gamma = 0.5, V = 10
    rb = rlte_plugins.make("storage", "nstep_replay", n=3, gamma=0.5, capacity=10).build()
    rb.add(transitions([[1, 2, 4, 0, 0, 0]], [[0, 0, 1, 0, 0, 0]]))
    targets = td0_targets(rb.buffer[:], 0.5, lambda obs: torch.full_like(obs, 10.0))
    # 1 + .5*2 + .25*4, 2 + .5*4, 4 (TorchRL's flags at step t gave 4.25, 6.5, 4.0)
    assert targets.tolist() == [3.0, 4.0, 4.0]


def ended_rollout(terminated, truncated):
    """[num_envs, T] transitions, observation env*1000 + t; an episode's last next observation is env*1000 + 500 + t
    (not the observation the env resets to), so bootstrapping from the wrong observation shows in the targets."""
    term = torch.as_tensor(terminated, dtype=torch.bool)
    trunc = torch.as_tensor(truncated, dtype=torch.bool)
    b, t = term.shape
    obs = torch.arange(t).expand(b, t) + torch.arange(b).unsqueeze(-1) * 1000.0
    reward = torch.randn(b, t, generator=torch.Generator().manual_seed(0))
    next_obs = torch.where(term | trunc, obs + 500, obs + 1)
    nxt = TensorDict(observation=next_obs.unsqueeze(-1), reward=reward.unsqueeze(-1), done=(term | trunc).unsqueeze(-1),
                     terminated=term.unsqueeze(-1), truncated=trunc.unsqueeze(-1), batch_size=[b, t])  # fmt: skip
    return TensorDict(observation=obs.unsqueeze(-1), next=nxt, batch_size=[b, t])


def nstep_td0_reference(data, env, t, n, gamma, value):
    """sum_k gamma^k r_{t+k} up to n steps or the episode's end; + gamma^k V(next obs) unless it terminated."""
    nxt = data["next"][env]
    target, k = 0.0, 0
    while True:
        step = nxt[t + k]
        target += gamma**k * step["reward"].item()
        k += 1
        if step["terminated"].item():
            return target
        if step["truncated"].item() or k == n:
            return target + gamma**k * value(step["observation"]).item()


def test_nstep_td0_targets_with_terminations_and_truncations_in_batched_rollouts_across_adds():
    n, gamma = 3, 0.9

    def value(obs):
        return 0.01 * obs + 1.0

    # three envs, 14 steps added in chunks of 4, 1, 6, 3: windows cross every add
    terminated = [
        [0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],  # t=9 ends the window of t=7 at its last step
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0],  # termination in a one-step add; one right after a truncation
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],  # no end before t=12: plain n-step bootstraps
    ]
    truncated = [
        [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    data = ended_rollout(terminated, truncated)
    rb = rlte_plugins.make("storage", "nstep_replay", n=n, gamma=gamma, capacity=100, batch_size=64, seed=0).build()
    start = 0
    for size in (4, 1, 6, 3):
        rb.add(data[:, start : start + size])
        start += size
    stored = rb.buffer[:]
    assert stored.shape[0] == 3 * (14 - n)  # the last n steps of each env wait for a later add

    def check(batch):
        targets = td0_targets(batch, gamma, value)
        for item, target in zip(batch.unbind(0), targets.tolist(), strict=True):
            env, t = divmod(int(item["observation"].item()), 1000)
            assert target == pytest.approx(nstep_td0_reference(data, env, t, n, gamma, value), rel=1e-5), (env, t)
            # the end flags are those of the window's last step, the step whose next observation is stored
            last = t + int(item["steps_to_next_obs"]) - 1
            for key in ("done", "terminated", "truncated", "observation"):
                assert torch.equal(item["next", key], data["next", key][env, last]), (env, t, key)

    check(stored)
    check(rb.sample())


def checkpoint(rb, through_file):
    """``rb``'s state as a resumed run gets it: saved with ``torch.save`` and read back with ``weights_only=True``."""
    state = rb.state_dict()
    if not through_file:
        return state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_same_leaves(actual, expected):
    actual = dict(actual.items(include_nested=True, leaves_only=True))
    expected = dict(expected.items(include_nested=True, leaves_only=True))
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and torch.equal(actual[key], value), key


@pytest.mark.parametrize("through_file", [False, True])
@pytest.mark.parametrize("first", [6, 2])  # a first add longer than n, and one shorter (nothing stored before it)
def test_nstep_resumed_between_adds_stores_exactly_the_uninterrupted_transitions(first, through_file):
    # the review's case: n = 3, two envs, 12 steps. Resumed without the held-back steps, 6 + 6 stored 12 of 18
    # (steps 3-5 of each env never stored, no window across the adds). Episode ends on both sides of the boundary.
    n = 3
    terminated = [[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    truncated = [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]]
    data = ended_rollout(terminated, truncated)

    def make():
        return rlte_plugins.make("storage", "nstep_replay", n=n, gamma=0.9, capacity=100, batch_size=8, seed=0).build()

    uninterrupted = make()
    uninterrupted.add(data[:, :first])
    uninterrupted.add(data[:, first:])
    before = make()
    before.add(data[:, :first])
    resumed = make()
    resumed.load_state_dict(checkpoint(before, through_file))
    resumed.add(data[:, first:])
    assert len(uninterrupted) == 2 * (12 - n)
    assert len(resumed) == len(uninterrupted)
    assert_same_leaves(resumed.buffer[:], uninterrupted.buffer[:])  # same values in the same slots
    assert_same_leaves(resumed.sample(), uninterrupted.sample())
    # and the steps held back now are the same too: the next add continues identically
    more = ended_rollout([[0] * 4] * 2, [[0] * 4] * 2)
    for rb in (uninterrupted, resumed):
        rb.add(more)
    assert_same_leaves(resumed.buffer[:], uninterrupted.buffer[:])


def test_nstep_checkpoint_of_a_storage_without_data_resumes_empty():
    rb = rlte_plugins.make("storage", "nstep_replay", n=3, capacity=10).build()
    resumed = rlte_plugins.make("storage", "nstep_replay", n=3, capacity=10).build()
    resumed.load_state_dict(checkpoint(rb, through_file=True))
    assert len(resumed) == 0 and resumed._multistep._buffer is None


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


@pytest.mark.parametrize("through_file", [False, True])
def test_prioritized_resume_continues_the_beta_schedule_and_samples_identically(through_file):
    # the review's case: beta linear 0.4 -> 1.0 over 1000 frames. The resumed run restarted the schedule: after
    # 900 frames beta was 0.94 in the original and 0.46 in the resumed run.
    def make():
        return rlte_plugins.make("storage", "prioritized_replay", alpha=0.6, beta="linear(0.4, 1.0, 1000)",
                                 capacity=32, batch_size=16, seed=3).build()  # fmt: skip

    rb = make()
    g = torch.Generator().manual_seed(0)
    for chunk in range(3):
        rb.add(TensorDict(x=torch.arange(8.0) + 8 * chunk, batch_size=[8]))
        rb.step(300)
        batch = rb.sample()
        rb.update_priority(batch, torch.rand(16, generator=g) * 5)  # new transitions get the max seen so far
    resumed = make()
    resumed.load_state_dict(checkpoint(rb, through_file))
    for storage in (rb, resumed):
        storage.step(0)  # the schedule recomputes beta from its position (from the start after the resume: 0.4)
    assert resumed.sampler.beta == rb.sampler.beta == pytest.approx(0.94)
    assert resumed.sampler.max_priority == rb.sampler.max_priority
    assert torch.equal(resumed.sampler.tree, rb.sampler.tree)
    for _ in range(3):
        batches = rb.sample(), resumed.sample()
        assert torch.equal(batches[1]["index"], batches[0]["index"])
        assert torch.equal(batches[1]["priority_weight"], batches[0]["priority_weight"])
        assert torch.equal(batches[1]["x"], batches[0]["x"])
        for storage, batch in zip((rb, resumed), batches, strict=True):
            storage.update_priority(batch, batch["x"] + 1.0)
            storage.add(TensorDict(x=torch.arange(2.0) + 100, batch_size=[2]))  # at the max priority
            storage.step(50)
        assert resumed.sampler.beta == rb.sampler.beta
    assert torch.equal(resumed.sampler.tree, rb.sampler.tree)
    assert_same_leaves(resumed.buffer[:], rb.buffer[:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prioritized_on_cuda_samples_reproducibly_and_resumes():
    # the sum tree is on the storage's device; the buffer's seeded generator is on the CPU (its state is saved)
    def make():
        return rlte_plugins.make("storage", "prioritized_replay", capacity=32, batch_size=16, seed=3).build("cuda")

    runs = [make() for _ in range(2)]
    for rb in runs:
        rb.add(TensorDict(x=torch.arange(20.0, device="cuda"), batch_size=[20]))
    assert torch.equal(runs[0].sample()["index"], runs[1].sample()["index"])
    resumed = make()
    resumed.load_state_dict(checkpoint(runs[0], through_file=True))
    assert torch.equal(resumed.sample()["index"], runs[0].sample()["index"])


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


def her_chunk(t0, steps=6, num_envs=2, done_at=8):
    """Steps t0.. of every env, one episode per env ending at ``done_at``; the achieved goal encodes its origin:
    (env * 100 + t, env * 100 + t)."""
    t = torch.arange(t0, t0 + steps)
    achieved = (torch.arange(num_envs)[:, None] * 100 + t).float().unsqueeze(-1).expand(num_envs, steps, 2)
    done = (t == done_at).expand(num_envs, steps).unsqueeze(-1)
    goal = torch.full((num_envs, steps, 2), -1.0)
    nxt = TensorDict(achieved_goal=achieved, desired_goal=goal, reward=-torch.ones(num_envs, steps, 1), done=done,
                     terminated=done, truncated=torch.zeros_like(done), batch_size=[num_envs, steps])  # fmt: skip
    return TensorDict(desired_goal=goal, env=torch.arange(num_envs)[:, None].expand(num_envs, steps),
                      step=t.expand(num_envs, steps), next=nxt, batch_size=[num_envs, steps])  # fmt: skip


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_her_goals_stay_in_the_env_and_episode_when_episodes_cross_adds(strategy):
    # what TorchRL's HERReplayBuffer gets wrong on flattened [num_envs, T] batches (see her.py)
    rb = rlte_plugins.make("storage", "her_replay", capacity=100, batch_size=2000, strategy=strategy,
                           relabel_prob=1.0, seed=0).build(num_envs=2)  # fmt: skip
    rb.add(her_chunk(0))
    rb.add(her_chunk(6))  # the first episodes (steps 0-8) end in this add; the second ones are still running
    batch = rb.sample()
    source = batch["desired_goal"][:, 0].long()
    source_env, source_t = source // 100, source % 100
    t = batch["step"]
    assert torch.equal(source_env, batch["env"])
    assert torch.equal(source_t <= 8, t <= 8)  # the same episode
    if strategy == "future":
        assert (source_t >= t).all()
    if strategy == "final":
        assert torch.equal(source_t, torch.where(t <= 8, 8, 11))  # a running episode: its latest step


def test_her_seed_fixes_the_transitions_and_the_relabelled_goals():
    batches = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        rb = rlte_plugins.make("storage", "her_replay", capacity=100, batch_size=64, seed=0).build(num_envs=2)
        rb.add(her_chunk(0))
        rb.add(her_chunk(6))
        batches.append(rb.sample())
    assert (batches[0] == batches[1]).all()


def test_torchrl_her_still_lacks_what_her_replay_needs():
    """her.py keeps its own HER for these two TorchRL 0.14.1 behaviours: when this fails, revisit its docstring."""
    from torchrl.data import HERReplayBuffer, LazyTensorStorage

    def reward_fn(td):
        return -((td["next", "achieved_goal"] - td["desired_goal"]).norm(dim=-1, keepdim=True) > 0.05).float()

    def make(ndim):
        generator = torch.Generator().manual_seed(0)
        return HERReplayBuffer(reward_fn, storage=LazyTensorStorage(100, ndim=ndim), batch_size=64,
                               achieved_goal_key=("next", "achieved_goal"), generator=generator)  # fmt: skip

    rb = make(ndim=2)
    rb.extend(her_chunk(0))
    with pytest.raises(NotImplementedError, match="1D"):
        rb.sample()
    batches = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        rb = make(ndim=1)
        rb.extend(her_chunk(0, steps=12)[0])
        batches.append(rb.sample())
    assert torch.equal(batches[0]["step"], batches[1]["step"])  # the buffer's generator draws the transitions
    assert not torch.equal(batches[0]["desired_goal"], batches[1]["desired_goal"])  # the global RNG, the goals


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


@pytest.mark.parametrize("memmap", [False, True])
def test_replay_keeps_each_transition_whole_when_one_add_exceeds_the_capacity(tmp_path, memmap):
    # TorchRL alone wrote the 200 steps to 10 slots with repeated indices: on 2 threads 16 of 20 buffers held
    # frames of other steps than their "x"
    for rep in range(20):
        rb = rlte_plugins.make("storage", "replay", capacity=10, memmap=memmap,
                               scratch_dir=str(tmp_path / str(rep)) if memmap else None).build()  # fmt: skip
        frames = torch.arange(200, dtype=torch.int32)[:, None, None].expand(200, 48, 16)
        rb.add(TensorDict(x=torch.arange(200), frames=frames, batch_size=[200]))
        stored = rb.buffer[:]
        assert sorted(stored["x"].tolist()) == list(range(190, 200))
        assert torch.equal(stored["frames"], stored["x"].int()[:, None, None].expand(10, 48, 16))


def test_nstep_held_back_steps_survive_a_batch_refilled_in_place():
    """A direct collector refills one preallocated rollout every iteration: the steps held back for the next add
    must not change with it."""

    def stored(reuse: bool) -> torch.Tensor:
        rb = rlte_plugins.make("storage", "nstep_replay", n=3, gamma=0.5, capacity=64).build()
        batch = ended_rollout(torch.zeros(2, 6), torch.zeros(2, 6))
        rb.add(batch)
        second = ended_rollout(torch.zeros(2, 6), torch.zeros(2, 6))
        second.apply_(lambda x: x + 6 if x.is_floating_point() else x)  # the next 6 steps
        if reuse:
            batch.update_(second)  # the same memory, refilled
        else:
            batch = second
        rb.add(batch)
        return rb.buffer[: len(rb.buffer)]["observation"].flatten()

    assert torch.equal(stored(reuse=True), stored(reuse=False))


def test_nstep_checkpoint_of_other_n_or_gamma_is_refused():
    rb = rlte_plugins.make("storage", "nstep_replay", n=3, gamma=0.9, capacity=64).build()
    rb.add(ended_rollout(torch.zeros(2, 6), torch.zeros(2, 6)))
    state = rb.state_dict()
    for n, gamma in ((5, 0.9), (3, 0.99)):
        other = rlte_plugins.make("storage", "nstep_replay", n=n, gamma=gamma, capacity=64).build()
        with pytest.raises(rlte_plugins.CheckpointError, match="holds 3-step returns with gamma=0.9"):
            other.load_state_dict(state)
    same = rlte_plugins.make("storage", "nstep_replay", n=3, gamma=0.9, capacity=64).build()
    same.load_state_dict(state)
    assert len(same.buffer) == len(rb.buffer)


def frames_rollout(num_envs=2, steps=6):
    """``ended_rollout`` transitions with uint8 frames at the root and in ``"next"``."""
    data = ended_rollout(torch.zeros(num_envs, steps), torch.zeros(num_envs, steps))
    g = torch.Generator().manual_seed(0)
    for key in ("pixels", ("next", "pixels")):
        data.set(key, torch.randint(0, 256, (num_envs, steps, 3, 8, 8), dtype=torch.uint8, generator=g))
    return data


@pytest.mark.parametrize("kind", ["replay", "nstep_replay", "prioritized_replay"])
def test_in_memory_checkpoint_keeps_uint8_frames_and_loads_onto_the_storage_device(kind):
    def make(device=None):
        return rlte_plugins.make("storage", kind, capacity=16, batch_size=8, seed=0, device=device).build()

    rb = make()
    rb.add(frames_rollout())
    state = checkpoint(rb, through_file=True)
    assert state["_storage"]["_storage"]["pixels"].dtype == torch.uint8  # one byte per pixel in the file too
    resumed = make()
    resumed.load_state_dict(state)
    assert_same_leaves(resumed.buffer[:], rb.buffer[:])  # uint8 frames stay uint8
    assert_same_leaves(resumed.sample(), rb.sample())
    # loaded without a file (the state's tensors are rb's own): adds to the resumed storage leave rb as it was
    direct = make()
    direct.load_state_dict(rb.state_dict())
    before = rb.buffer[:].clone()
    direct.add(frames_rollout())
    assert_same_leaves(rb.buffer[:], before)
    # a storage built on another device than the checkpoint's (read onto the CPU) holds its data there; "meta"
    # stands in for an accelerator on CPU-only machines
    on_meta = make("meta")
    on_meta.load_state_dict(state)
    stored = dict(on_meta.buffer.storage._storage.items(include_nested=True, leaves_only=True))
    assert {value.device.type for value in stored.values()} == {"meta"}
    assert stored["pixels"].dtype == stored["next", "pixels"].dtype == torch.uint8


def test_her_checkpoint_round_trips_and_the_resumed_storage_owns_its_data():
    def make():
        return rlte_plugins.make("storage", "her_replay", capacity=40, batch_size=16, seed=0).build(num_envs=2)

    rb = make()
    first = her_chunk(0)
    first.set("pixels", torch.randint(0, 256, (2, 6, 3, 4, 4), dtype=torch.uint8))
    rb.add(first)
    resumed = make()
    resumed.load_state_dict(checkpoint(rb, through_file=True))
    assert resumed.data["pixels"].dtype == torch.uint8
    assert_same_leaves(resumed.sample(), rb.sample())
    # loaded without a file (the state's tensors are rb's own): adds to the resumed storage leave rb as it was
    direct = make()
    direct.load_state_dict(rb.state_dict())
    before = rb.data.clone(), rb.ep_end.clone()
    second = her_chunk(6)
    second.set("pixels", torch.zeros(2, 6, 3, 4, 4, dtype=torch.uint8))
    direct.add(second)
    assert (rb.data == before[0]).all() and torch.equal(rb.ep_end, before[1])
    assert rb.written == 6 and direct.written == 12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_checkpoints_read_onto_the_cpu_load_onto_a_cuda_storage():
    rb = rlte_plugins.make("storage", "replay", capacity=16, batch_size=8, seed=0).build("cuda")
    rb.add(frames_rollout().to("cuda"))
    buffer = io.BytesIO()
    torch.save(rb.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)  # as load_checkpoint reads it
    resumed = rlte_plugins.make("storage", "replay", capacity=16, batch_size=8, seed=0).build("cuda")
    resumed.load_state_dict(state)
    assert all(v.is_cuda for v in resumed.buffer.storage._storage.values(include_nested=True, leaves_only=True))
    assert_same_leaves(resumed.sample(), rb.sample())
    her = rlte_plugins.make("storage", "her_replay", capacity=40, batch_size=16, seed=0).build(2, device="cuda")
    her.add(her_chunk(0))
    buffer = io.BytesIO()
    torch.save(her.state_dict(), buffer)
    buffer.seek(0)
    her_resumed = rlte_plugins.make("storage", "her_replay", capacity=40, batch_size=16, seed=0).build(2, "cuda")
    her_resumed.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
    assert her_resumed.data.device.type == her_resumed.ep_end.device.type == "cuda"
    assert_same_leaves(her_resumed.sample(), her.sample())


def test_prioritized_sampler_state_holds_the_written_leaves_and_rebuilds_the_same_tree():
    from rlte_plugins.storages.replay import SumTreeSampler

    def sampler():
        return SumTreeSampler(capacity=1000, alpha=0.7, beta=0.4)

    s = sampler()
    s.extend(torch.arange(37))
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        s.update_priority(torch.randint(0, 37, (9,), generator=g), torch.rand(9, generator=g) * 5)
    state = checkpoint(s, through_file=True)
    assert state["leaves"].shape == (37,)  # not the 2 * 1024 nodes of the tree
    resumed = sampler()
    resumed.load_state_dict(state)
    assert torch.equal(resumed.tree, s.tree)  # bit for bit: every inner node summed as the updates summed it
    assert resumed.max_priority == s.max_priority
    empty = sampler()
    empty.load_state_dict(checkpoint(sampler(), through_file=True))
    assert not empty.tree.any()


def her_storage(capacity=40):
    return rlte_plugins.make("storage", "her_replay", capacity=capacity, batch_size=16, seed=0).build(num_envs=2)


def assert_her_resumes_exactly(resumed, rb):
    for name in ("ep_start", "ep_end", "_open_start"):
        assert torch.equal(getattr(resumed, name), getattr(rb, name)), name
    assert_same_leaves(resumed.data, rb.data)  # every row, the ones not yet written too
    assert resumed.written == rb.written
    assert_same_leaves(resumed.sample(), rb.sample())
    for storage in (rb, resumed):
        storage.add(her_chunk(100, steps=7))
    assert_same_leaves(resumed.data, rb.data)
    assert_same_leaves(resumed.sample(), rb.sample())


@pytest.mark.parametrize("steps", [6, 26])  # 6 of 500 rows per env; 26 of 20: wrapped
def test_her_checkpoint_carries_only_the_written_rows_and_resumes_exactly(steps):
    capacity = 1000 if steps == 6 else 40
    rb = her_storage(capacity)
    rb.add(her_chunk(0, steps=steps))
    rb.sample()
    state = checkpoint(rb, through_file=True)
    rows = min(steps, capacity // 2)
    assert state["ep_end"].shape == state["data"]["desired_goal"].shape[:2] == (rows, 2)
    resumed = her_storage(capacity)
    resumed.load_state_dict(state)
    assert_her_resumes_exactly(resumed, rb)


def test_her_checkpoint_that_carried_every_row_still_loads_and_another_capacity_is_refused():
    rb = her_storage()
    rb.add(her_chunk(0))
    state = checkpoint(rb, through_file=True)
    state.update(data=rb.data.to_dict(), ep_start=rb.ep_start.clone(), ep_end=rb.ep_end.clone())  # all 20 rows
    resumed = her_storage()
    resumed.load_state_dict(state)
    assert_her_resumes_exactly(resumed, rb)
    for saved in (state, checkpoint(rb, through_file=True)):
        with pytest.raises(rlte_plugins.CheckpointError, match="keeps 20 rows of 2 envs, this storage keeps 30 rows"):
            her_storage(capacity=60).load_state_dict(saved)
