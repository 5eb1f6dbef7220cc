"""The fast path: CartPole solved on CPU, exact resume after SIGKILL, options, stop conditions."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlte_plugins.errors import CheckpointError, ComponentArgumentError, SpecMismatchError
from rlte_plugins.training.conditions import (
    And,
    FrameBudget,
    HitsLowerBound,
    HitsUpperBound,
    Or,
    Plateaus,
    StopsDecreasing,
    StopsIncreasing,
    TimeBudget,
    from_config,
)  # fmt: skip
from rlte_plugins.training.fast import FastPPO, FastTrainer

RUN = Path(__file__).with_name("fast_run.py")


def test_solves_torch_cartpole_on_cpu():
    torch.set_num_threads(2)
    algo = FastPPO(
        "torch_cartpole", num_envs=32, horizon=128, seed=0, encoder={"name": "mlp", "num_cells": [64, 64],
        "activation": "tanh"}, minibatch_size=1024, epochs=4, lr="linear(1e-3, 1e-4, 300000)", gamma=0.99,
        max_grad_norm=0.5,
    )  # fmt: skip
    history = FastTrainer(algo, eval_episodes=32).run(
        [HitsUpperBound("eval/returns/mean", 475), FrameBudget(400_000)], eval_every=5
    )
    assert history[-1]["eval/returns/mean"] >= 475, history[-1]
    assert algo.frames <= 400_000


def _run(tmp: Path, iterations: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUN), str(tmp), str(iterations), *extra], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip


def test_sigkill_then_resume_gives_the_uninterrupted_parameters(tmp_path):
    total = 12
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    assert _run(straight, total).wait(timeout=300) == 0
    proc = _run(killed, 0)  # runs until killed: the kill cannot miss a process that already finished
    for line in proc.stdout:  # kill it part-way, once a few checkpoints exist
        if line.strip() == "iteration 3":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "final.pt").exists()
    resumed = _run(killed, total, "--resume")
    lines = resumed.communicate(timeout=300)[0].split()
    assert resumed.returncode == 0
    # it continued from the last complete checkpoint: iteration 2 at the earliest (the kill may land between the
    # line of iteration 3 and its checkpoint), before the straight run's end
    assert 3 <= int(lines[1]) <= total
    a = torch.load(straight / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_is_weights_only_loadable_and_checked(tmp_path):
    algo = FastPPO("torch_cartpole", num_envs=8, horizon=8, encoder={"name": "mlp", "num_cells": [8]})
    trainer = FastTrainer(algo)
    trainer.run([FrameBudget(64)], checkpoint_every=1, checkpoint_path=str(tmp_path / "c.pt"))
    data = torch.load(tmp_path / "c.pt", weights_only=True)
    assert data["state"]["frames"] == 64
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        trainer.resume(str(tmp_path / "bad.pt"))
    other = FastTrainer(FastPPO("torch_cartpole", num_envs=4, horizon=8, encoder={"name": "mlp", "num_cells": [8]}))
    with pytest.raises(SpecMismatchError, match="a different num_envs"):
        other.resume(str(tmp_path / "c.pt"))


def _small(**options):
    options = {"num_envs": 16, "horizon": 16, "encoder": {"name": "mlp", "num_cells": [16]}, **options}
    return FastPPO("torch_cartpole", **options)


def _adam_steps(algo):
    return {int(v["step"]) for v in algo.optimizer.state_dict()["state"].values()}


def test_grad_accumulation_steps_once_per_group_of_minibatches_across_epochs():
    # 16 x 16 = 256 samples in minibatches of 64: 4 per epoch, 2 per optimiser step, 3 epochs -> 6 steps
    algo = _small(grad_accumulation=2, minibatch_size=64, epochs=3)
    before = [p.detach().clone() for p in algo.policy.parameters()]
    algo.collect()
    algo.step()
    assert _adam_steps(algo) == {6}
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.policy.parameters(), strict=True))
    # nothing of this rollout's gradient is left for the next update
    assert all(p.grad is None or not p.grad.any() for p in algo.policy.parameters())


def test_grad_accumulation_equals_one_step_over_the_accumulated_minibatches():
    # the same shuffle cuts 256 samples into 64-sample minibatches accumulated in pairs, or into 128-sample ones:
    # without per-minibatch advantage normalisation both give the same gradient, so the same parameters
    trained = []
    for options in ({"grad_accumulation": 2, "minibatch_size": 64}, {"minibatch_size": 128}):
        algo = _small(normalize_advantage=False, epochs=2, seed=5, **options)
        algo.collect()
        algo.step()
        trained.append(algo)
    assert _adam_steps(trained[0]) == _adam_steps(trained[1]) == {4}
    for a, b in zip(trained[0].policy.parameters(), trained[1].policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_grad_accumulation_must_divide_the_minibatches_of_an_epoch():
    with pytest.raises(ComponentArgumentError, match=r"grad_accumulation \(2\) must divide .* = 1\)"):
        _small(grad_accumulation=2)  # the whole rollout is one minibatch: nothing to accumulate over
    with pytest.raises(ComponentArgumentError, match=r"grad_accumulation \(3\) must divide .* = 4\)"):
        _small(grad_accumulation=3, minibatch_size=64)


def test_schedules_are_read_where_the_rollout_started():
    # 256-frame rollouts on a 512-frame schedule: the first update at frame 0, the second at frame 256
    algo = _small(entropy_coef="linear(0.1, 0.0, 512)", lr="linear(1e-3, 0.0, 512)")
    seen = []
    for _ in range(2):
        algo.collect()
        stats = algo.step()
        seen.append((stats["lr"], stats["entropy_coef"], algo.optimizer.param_groups[0]["lr"]))
    assert seen == [pytest.approx((1e-3, 0.1, 1e-3)), pytest.approx((5e-4, 0.05, 5e-4))]


def test_bf16_amp_keeps_the_rollout_in_float32_and_runs_the_update_in_bf16():
    from tensordict import TensorDict
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    runs = {}
    for amp in (None, "bf16"):
        algo = _small(amp=amp, seed=4)
        algo.collect()
        runs[amp] = algo
    buf, ref = runs["bf16"].buffer, runs[None].buffer
    # the rollout's log-probs (the ratio's denominator) and GAE's values come from float32 passes
    assert buf["action_log_prob"].dtype == buf["state_value"].dtype == torch.float32
    assert torch.equal(buf["action_log_prob"], ref["action_log_prob"])
    assert torch.equal(buf["state_value"], ref["state_value"]) and torch.equal(buf["advantage"], ref["advantage"])
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        obs = buf["observation"][:4, 0]
        fp32 = runs["bf16"].policy.actor.get_dist(TensorDict(observation=obs, batch_size=[4]))
        assert torch.allclose(fp32.log_prob(buf["action"][:4, 0]), buf["action_log_prob"][:4, 0], atol=1e-6)
    for algo in runs.values():
        algo.step()
    # the update itself ran under bf16 autocast: close to the float32 update, not equal to it
    diffs = [(a - b).abs().max().item() for a, b in zip(runs["bf16"].policy.parameters(),
                                                        runs[None].policy.parameters(), strict=True)]  # fmt: skip
    assert 0 < max(diffs) < 1e-2


def test_value_clipping_is_applied_to_the_critic_loss():
    algo = _small(clip_value=1e-3, normalize_advantage=False)
    algo.collect()
    batch = algo._samples(algo.buffer)
    # a critic update that moved every value away from the stored ones: clipping caps the change at 1e-3
    moved = batch.clone().set("state_value", batch["state_value"] + 5.0)
    clipped = algo.loss_module(moved)["loss_critic"]
    algo.loss_module.clip_value = None
    unclipped = algo.loss_module(moved)["loss_critic"]
    assert not torch.allclose(clipped, unclipped)


def test_observation_normalisation_feeds_the_policy_normalised_observations():
    algo = _small(normalize_observation=True, scale_rewards=False, horizon=64)
    assert algo.ret_rms is None
    algo.collect()
    stored = algo.buffer["observation"].reshape(-1, 4)
    assert float(algo.obs_rms.count) == pytest.approx(16 * 64, abs=1e-3)  # every observation the policy saw
    # what the policy saw (and the update reads) is standardised per dimension; raw CartPole states are not
    # (positions and angles have standard deviations of about 0.05-0.5)
    assert stored.mean(0).abs().max() < 0.3 and ((stored.std(0) - 1).abs() < 0.3).all()
    plain = _small(horizon=64)
    plain.collect()
    assert ((plain.buffer["observation"].reshape(-1, 4).std(0) - 1).abs() > 0.3).any()


def test_target_kl_stops_the_epochs():
    algo = _small(target_kl=1e-9, epochs=4)
    algo.collect()
    # the KL of the updated policy is measured after each epoch: past the target after the first one
    assert algo.step()["epochs"] == 1


def test_evaluation_honours_the_flag_draws_new_start_states_and_raises_at_the_cap():
    from torchrl.envs.utils import ExplorationType, exploration_type

    import rlte_plugins

    agent = rlte_plugins.make("agent", "fast_ppo", env="torch_cartpole", num_envs=8, horizon=8)
    agent.set(encoder={"name": "mlp", "num_cells": [8]}).build()
    algo = agent.trainer.algorithm
    modes = []
    algo.policy.actor.register_forward_pre_hook(lambda *_: modes.append(exploration_type()))
    agent.evaluate(episodes=2, deterministic=False)
    assert set(modes) == {ExplorationType.RANDOM}
    modes.clear()
    agent.evaluate(episodes=2)
    assert set(modes) == {ExplorationType.DETERMINISTIC}
    # each evaluation starts from new states, drawn reproducibly: a copy restored from the state continues alike
    state = algo.state_dict()
    first, second = algo.evaluate(episodes=8), algo.evaluate(episodes=8)
    assert first != second
    copy = _small(num_envs=8, horizon=8, encoder={"name": "mlp", "num_cells": [8]})
    copy.load_state_dict(state)
    assert copy.evaluate(episodes=8) == first
    never_ends = FastPPO("dummy_discrete", num_envs=4, horizon=8, encoder={"name": "mlp", "num_cells": [8]})
    with pytest.raises(RuntimeError, match="4 of 4 evaluation episodes did not end within max_steps=50"):
        never_ends.evaluate(episodes=4, max_steps=50)


def test_evaluation_never_changes_the_training_run():
    def train(evaluate):
        algo = _small(seed=0)
        algo.collect()
        algo.step()
        if evaluate is not None:
            algo.evaluate(episodes=4, deterministic=evaluate)
        algo.collect()
        algo.step()
        return torch.cat([p.detach().flatten() for p in algo.policy.parameters()])

    plain = train(None)
    assert torch.equal(train(True), plain) and torch.equal(train(False), plain)
    # sampled evaluations are reproducible from the algorithm's state: same seed, same sampled actions
    first, second = _small(seed=1), _small(seed=1)
    assert first.evaluate(episodes=6, deterministic=False) == second.evaluate(episodes=6, deterministic=False)


def test_a_checkpoint_missing_entries_is_refused_before_anything_is_loaded():
    algo = _small()
    state = algo.state_dict()
    del state["eval_seed_rng"]
    other = _small(seed=9)
    before = [p.detach().clone() for p in other.policy.parameters()]
    with pytest.raises(CheckpointError, match="lacks eval_seed_rng"):
        other.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(before, other.policy.parameters(), strict=True))


def test_bad_arguments_are_refused():
    with pytest.raises(ComponentArgumentError, match="minibatch_size must divide"):
        FastPPO("torch_cartpole", num_envs=8, horizon=8, minibatch_size=10)
    with pytest.raises(ComponentArgumentError, match="fp16"):
        FastPPO("torch_cartpole", num_envs=8, horizon=8, amp="fp16")
    with pytest.raises(ComponentArgumentError, match="CUDA"):
        FastPPO("torch_cartpole", num_envs=8, horizon=8, cudagraphs=True)
    with pytest.raises(ComponentArgumentError, match="max-autotune"):
        FastPPO("torch_cartpole", num_envs=8, horizon=8, compile="max_autotune")
    with pytest.raises(ComponentArgumentError, match="stop condition"):
        FastTrainer(FastPPO("torch_cartpole", num_envs=8, horizon=8)).run([])
    algo = FastPPO("torch_cartpole", num_envs=8, horizon=8)
    with pytest.raises(RuntimeError, match="collect"):
        algo.step()


def test_rl8_dummy_task_trains_towards_zero():
    algo = FastPPO("dummy_discrete", num_envs=256, horizon=32, encoder={"name": "mlp", "num_cells": [64, 64]}, seed=0)
    first = algo.collect()["rewards/mean"]
    algo.step()
    for _ in range(30):
        last = algo.collect()["rewards/mean"]
        algo.step()
    # the state is pushed back towards 0: rewards -|state| rise (trained runs gain 49-52 here; untrained ones
    # drift by a few units)
    assert last > first + 35


def test_stop_conditions():
    up, low = HitsUpperBound("r", 1.0), HitsLowerBound("loss", 0.1)
    assert not up({"r": 0.5}) and up({"r": 1.0}) and not up({"x": 3})
    assert low({"loss": 0.05}) and not low({"loss": float("nan")})
    plateau = Plateaus("r", patience=2, rtol=0.01)
    assert [plateau({"r": v}) for v in (1.0, 1.005, 0.998, 1.5)] == [False, False, True, False]
    inc = StopsIncreasing("r", patience=2)
    assert [inc({"r": v}) for v in (1, 2, 3, 2.5, 2.9)] == [False, False, False, False, True]
    dec = StopsDecreasing("l", patience=1)
    assert [dec({"l": v}) for v in (3, 2, 2.5)] == [False, False, True]
    both = And([FrameBudget(10), TimeBudget(1.0)])
    assert not both({"frames": 20, "time_s": 0.5}) and both({"frames": 20, "time_s": 2.0})
    assert Or([FrameBudget(10), TimeBudget(1.0)])({"frames": 20, "time_s": 0.5})
    cond = from_config({"and": [{"frame_budget": 5}, {"hits_upper_bound": {"key": "eval/returns/mean", "bound": 3}}]})
    assert cond({"frames": 6, "eval/returns/mean": 4})
    with pytest.raises(ComponentArgumentError, match="unknown stop condition"):
        from_config({"hits_upperbound": {"key": "r", "bound": 1}})
    with pytest.raises(ComponentArgumentError, match="patience"):
        Plateaus("r", patience=0)


def test_fast_ppo_agent_trains_from_a_config_file(tmp_path):
    from rlte_plugins.training.config import load_config, normalize_config
    from rlte_plugins.training.runner import run

    config, name = load_config("fast_ppo_cartpole")
    config["train"].update(total_frames=8192, output=str(tmp_path), logger="csv", eval_episodes=4)
    summary = run(normalize_config(config), name)
    assert summary["frames"] == 8192
    assert len(summary["eval_returns"]) == 4
    assert (tmp_path / "checkpoint.pt").exists()


def test_fast_ppo_agent_refuses_unknown_options_and_components():
    import rlte_plugins

    with pytest.raises(ComponentArgumentError, match="unexpected argument 'epoch'"):
        rlte_plugins.make("agent", "fast_ppo", env="torch_cartpole", epoch=3)
    agent = rlte_plugins.make("agent", "fast_ppo", env="torch_cartpole", num_envs=8, horizon=8)
    with pytest.raises(ComponentArgumentError, match="own policy"):
        agent.set(policy="recurrent_actor_critic")


def test_throughput_benchmark_prints_ours_and_the_floor(capsys):
    from rlte_plugins.bench.throughput import benchmark, update_flops

    rows = benchmark([64], [8, 16], iterations=1, warmup=0, compare=False)
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and out.count("ours") == 2
    assert [r["batch"] for r in rows] == [512, 1024]
    assert all(r["total_s"] > 0 and r["floor_s"] > 0 for r in rows)
    from rlte_plugins.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown variant 'fast'"):
        benchmark([64], [8], variants=["fast"])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="need a CUDA device"):
            benchmark([64], [8], variants=["cudagraphs"])
        with pytest.raises(ConfigError, match="no CUDA"):
            benchmark([64], [8], device="cuda")
    net = torch.nn.Sequential(torch.nn.Linear(1, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256))
    assert update_flops(net, samples=10, epochs=2) == 3 * 2 * (256 + 256 * 256) * 10 * 2


@pytest.mark.parametrize("cell,length", [("lstm", 16), ("gru", 8), ("lstm", 4)])
def test_recurrent_sequences_replay_the_collected_log_probs_exactly(cell, length):
    from torchrl.modules import set_recurrent_mode

    from rlte_plugins.training.fast_recurrent import RecurrentFastPPO

    algo = RecurrentFastPPO("torch_cartpole", cell=cell, num_envs=6, horizon=16, sequence_length=length,
                            hidden_size=8, encoder={"name": "mlp", "num_cells": [8]}, seed=1)  # fmt: skip
    algo.collect()
    seqs = algo._samples(algo.buffer)
    assert seqs.shape == (6 * 16 // length, length)
    assert algo.buffer.get("is_init")[:, 1:].any()  # episodes restart inside the rollout (short CartPole runs)
    with torch.no_grad(), set_recurrent_mode(True):
        dist = algo.policy.actor.get_dist(seqs.clone())
        replayed = dist.log_prob(seqs["action"])
    # the sequences start from the states stored at collection and reset at episode starts: same log-probs
    assert torch.allclose(replayed, seqs["action_log_prob"], atol=1e-5)


def _recurrent(seed, **options):
    from rlte_plugins.training.fast_recurrent import RecurrentFastPPO

    defaults = dict(num_envs=16, horizon=32, sequence_length=16, burn_in=4, hidden_size=32, lr=3e-3, gamma=0.99,
                    encoder={"name": "mlp", "num_cells": [32]}, minibatch_size=128, seed=seed)  # fmt: skip
    options = {**defaults, **options}
    return RecurrentFastPPO("torch_cartpole", **options)


def test_recurrent_fast_ppo_learns_cartpole_with_burn_in():
    torch.set_num_threads(1)
    scores = []
    for seed in range(3):
        algo = _recurrent(seed)
        for _ in range(26):
            algo.collect()
            algo.step()
        returns = algo.evaluate(episodes=8)  # deterministic, each from a fresh episode with a fresh state
        scores.append(sum(returns) / len(returns))
    # untrained policies score 9-26 here; after these 13k frames seeds 0-5 scored 155, 409, 268, 500, 221 and 228
    # (1 thread): neither bar can be passed by an untrained or barely trained policy
    assert sorted(scores)[1] >= 150 and min(scores) >= 100, scores


def test_recurrent_fast_ppo_refuses_bad_sequences():
    from rlte_plugins.training.fast_recurrent import RecurrentFastPPO

    with pytest.raises(ComponentArgumentError, match="sequence_length must divide"):
        RecurrentFastPPO("torch_cartpole", num_envs=4, horizon=16, sequence_length=5)
    with pytest.raises(ComponentArgumentError, match="burn_in"):
        RecurrentFastPPO("torch_cartpole", num_envs=4, horizon=16, sequence_length=4, burn_in=4)


def test_recurrent_advantages_are_normalised_over_the_steps_the_loss_sees():
    algo = _recurrent(0, burn_in=6, minibatch_size=None, epochs=1)
    seen = []
    loss = algo._loss
    algo._loss = lambda piece: seen.append(piece["advantage"].clone()) or loss(piece)
    algo.collect()
    algo.step()
    (adv,) = seen  # one minibatch (the whole rollout) in one chunk
    assert adv.shape[1] == 16 - 6  # the burn-in steps are cut off before the loss
    assert abs(float(adv.mean())) < 1e-5 and float(adv.std()) == pytest.approx(1.0, abs=1e-4)


def test_native_stepping_matches_torchrl_semantics():
    # the torch-native path (no TorchRL per-step machinery, no host sync) still gives exact transitions
    algo = FastPPO("torch_cartpole", num_envs=16, horizon=64, encoder={"name": "mlp", "num_cells": [8]}, seed=2)
    assert algo._native
    algo.collect()
    data = algo._rollout
    done = data["next", "done"].squeeze(-1)
    assert done.any()
    nxt_obs, following = data["next", "observation"][:, :-1], data["observation"][:, 1:]
    continued = ~done[:, :-1]
    assert torch.equal(nxt_obs[continued], following[continued])  # no reset: the next input is the next obs
    assert (following[~continued].abs() <= 0.05).all()  # reset: a fresh initial state
    assert (data["episode_length"][:, 1:][~continued] == 0).all()
    first_rollout = data["observation"].data_ptr()
    algo.step()
    algo.collect()
    assert algo._rollout["observation"].data_ptr() == first_rollout  # the buffer is allocated once


def test_fast_ppo_agent_recurrent_option():
    import rlte_plugins

    recurrent = {"cell": "gru", "hidden_size": 8, "sequence_length": 8, "burn_in": 2}
    agent = rlte_plugins.make("agent", "fast_ppo", env="torch_cartpole", num_envs=8, horizon=16, recurrent=recurrent)
    agent.set(encoder={"name": "mlp", "num_cells": [8]})
    assert agent.train(total_frames=256, progress=False)["frames"] == 256
    assert type(agent.trainer.algorithm).__name__ == "RecurrentFastPPO"
    assert len(agent.evaluate(episodes=2)) == 2
    with pytest.raises(ComponentArgumentError, match="recurrent takes"):
        rlte_plugins.make("agent", "fast_ppo", env="torch_cartpole", recurrent={"cells": "lstm"})


def test_action_masks_on_the_fast_path():
    from torchrl.data import Categorical

    from rlte_plugins.envs.torch_native.tasks import DummyDiscrete

    class MaskedDummy(DummyDiscrete):
        """Three actions; the third (a jump far from 0) is never allowed."""

        def action_spec_for(self, num_envs, device):
            return Categorical(3, shape=(num_envs,), dtype=torch.int64, device=device)

        def extra_observation_specs(self, num_envs, device):
            return {"action_mask": Categorical(2, shape=(num_envs, 3), dtype=torch.bool, device=device)}

        def extra_observations(self, state):
            mask = torch.tensor([True, True, False], device=state.device)
            return {"action_mask": mask.expand(state.shape[0], 3).clone()}

        def dynamics(self, state, action):
            step = torch.tensor([-1.0, 1.0, 50.0], device=state.device)[action].reshape(-1, 1)
            state = state + step
            return state, -state.abs(), torch.zeros_like(state, dtype=torch.bool)

    env = MaskedDummy(num_envs=64, seed=0)
    algo = FastPPO(env, num_envs=64, horizon=16, distribution="masked_categorical", seed=0,
                   encoder={"name": "mlp", "num_cells": [16]})  # fmt: skip
    for _ in range(3):
        algo.collect()
        assert (algo._rollout["action"] != 2).all()
        assert "action_mask" in algo.buffer.keys()  # kept for the update's log-probabilities
        stats = algo.step()
        assert math.isfinite(stats["losses/total"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cudagraphs_option_matches_the_eager_update():
    """``cudagraphs=True`` (each chunk's loss and backward captured and replayed) trains the same parameters as
    the eager update on the same device."""
    kwargs = dict(num_envs=32, horizon=16, encoder={"name": "mlp", "num_cells": [16]}, chunk_size=128, seed=3,
                  device="cuda", minibatch_size=256)  # fmt: skip
    trained = []
    for cudagraphs in (False, True):  # one after the other: each seeds the generator its actions come from
        algo = FastPPO("torch_cartpole", cudagraphs=cudagraphs, **kwargs)
        for _ in range(3):  # past the wrapper's warm-up calls, into replays
            algo.collect()
            stats = algo.step()
        assert all(math.isfinite(v) for v in stats.values())
        trained.append(algo)
    for a, b in zip(trained[0].policy.parameters(), trained[1].policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


_PAGE_FAULTS = """
import resource, sys, torch
if sys.argv[1] == "retain":
    from rlte_plugins.training.allocator import retain_freed_memory
    assert retain_freed_memory()
def activations():  # eight 4 MiB tensors made and freed, as a forward and backward pass does
    acts = [torch.empty(2**20).fill_(1.0) for _ in range(8)]
    del acts
activations()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    activations()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _glibc() -> bool:
    import os

    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):
        return False


def test_retain_freed_memory_checks_its_thresholds():
    from rlte_plugins.training.allocator import MAX_MMAP_THRESHOLD, retain_freed_memory

    with pytest.raises(ValueError, match="mmap_threshold"):
        retain_freed_memory(mmap_threshold=MAX_MMAP_THRESHOLD + 1)
    with pytest.raises(ValueError, match="trim_threshold"):
        retain_freed_memory(trim_threshold=0)
    # the C library's own answer (confstr), not the platform check the module makes
    assert retain_freed_memory(mmap_threshold=16 * 1024 * 1024) is _glibc()
    assert retain_freed_memory() is _glibc()  # back to the defaults the fast path uses


@pytest.mark.skipif(not _glibc(), reason="the setting exists only under glibc")
def test_retained_memory_is_reused_without_page_faults():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _PAGE_FAULTS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    # glibc's defaults hand the freed activations back to the kernel and fault them in again (about 17,000
    # minor faults here); retained, they are reused warm (about 1,000)
    plain, retained = faults("plain"), faults("retain")
    assert retained * 4 < plain, (retained, plain)
