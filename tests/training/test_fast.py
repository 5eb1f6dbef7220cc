"""The fast path: CartPole solved on CPU, exact resume after SIGKILL, options, stop conditions."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlte_plugins.errors import CheckpointError, ComponentArgumentError
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
    total = 8
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    assert _run(straight, total).wait(timeout=300) == 0
    proc = _run(killed, total)
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
    # it continued from the last complete checkpoint (iteration 2 or 3, depending on where the kill landed)
    assert int(lines[1]) in (3, 4)
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
    with pytest.raises(Exception, match="num_envs"):
        other.resume(str(tmp_path / "c.pt"))


@pytest.mark.parametrize(
    "options",
    [
        {"amp": "bf16"},
        {"grad_accumulation": 2, "minibatch_size": 64},
        {"target_kl": 1e-9, "epochs": 4},
        {"clip_value": 0.2, "normalize_observation": True, "scale_rewards": False},
        {"entropy_coef": "linear(0.1, 0.0, 512)", "lr": "linear(1e-3, 0.0, 512)"},
    ],
    ids=["bf16", "grad-accumulation", "target-kl", "value-clip-obs-norm", "schedules"],
)
def test_options_run_and_report(options):
    algo = FastPPO("torch_cartpole", num_envs=16, horizon=16, encoder={"name": "mlp", "num_cells": [16]}, **options)
    before = [p.detach().clone() for p in algo.policy.parameters()]
    algo.collect()
    stats = algo.step()
    assert all(math.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.policy.parameters(), strict=True))
    if "target_kl" in options:
        # the KL of the updated policy is measured after each epoch: past the target after the first one
        assert stats["epochs"] == 1
    if "lr" in options:  # schedules are read at the frames collected so far: 256 of 512
        assert stats["lr"] == pytest.approx(5e-4) and stats["entropy_coef"] == pytest.approx(0.05)


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
    assert last > first + 5  # the state is pushed back towards 0: rewards -|state| rise


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


def test_recurrent_fast_ppo_trains_with_burn_in_and_refuses_bad_sequences():
    from rlte_plugins.training.fast_recurrent import RecurrentFastPPO

    algo = RecurrentFastPPO("torch_cartpole", num_envs=16, horizon=32, sequence_length=16, burn_in=4,
                            hidden_size=32, encoder={"name": "mlp", "num_cells": [32]}, lr=3e-3, gamma=0.99,
                            minibatch_size=128, seed=0)  # fmt: skip
    first = algo.collect()["returns/mean"]
    algo.step()
    for _ in range(25):
        algo.collect()
        algo.step()
    returns = algo.evaluate(episodes=8)  # deterministic, each from a fresh episode with a fresh state
    assert sum(returns) / len(returns) > first + 15
    with pytest.raises(ComponentArgumentError, match="sequence_length must divide"):
        RecurrentFastPPO("torch_cartpole", num_envs=4, horizon=16, sequence_length=5)
    with pytest.raises(ComponentArgumentError, match="burn_in"):
        RecurrentFastPPO("torch_cartpole", num_envs=4, horizon=16, sequence_length=4, burn_in=4)


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


def test_update_through_the_cuda_graph_wrapper_matches_eager():
    """The function ``cudagraphs=True`` captures (a chunk's loss and backward) gives the eager update's parameters
    when run through tensordict's ``CudaGraphModule``. Without CUDA the wrapper runs it eagerly, so this checks
    what is wrapped and how gradients accumulate, not the capture itself."""
    import warnings

    kwargs = dict(num_envs=32, horizon=16, encoder={"name": "mlp", "num_cells": [16]}, chunk_size=128, seed=3)
    trained = []
    for wrap in (False, True):  # one after the other: each seeds the global generator its actions come from
        algo = FastPPO("torch_cartpole", **kwargs)
        if wrap:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "instantiated on a machine without CUDA"
                algo._chunk_gradient = algo._capture(algo._loss_and_gradient)
        for _ in range(2):
            algo.collect()
            stats = algo.step()
        assert all(math.isfinite(v) for v in stats.values())
        trained.append(algo)
    for a, b in zip(trained[0].policy.parameters(), trained[1].policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_retain_freed_memory_checks_its_thresholds():
    import platform

    from rlte_plugins.training.allocator import MAX_MMAP_THRESHOLD, retain_freed_memory

    with pytest.raises(ValueError, match="mmap_threshold"):
        retain_freed_memory(mmap_threshold=MAX_MMAP_THRESHOLD + 1)
    with pytest.raises(ValueError, match="trim_threshold"):
        retain_freed_memory(trim_threshold=0)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert retain_freed_memory(mmap_threshold=16 * 1024 * 1024) is glibc
    assert retain_freed_memory() is glibc  # back to the defaults the fast path uses
