"""On-policy agents on direct collection (the ``fast_ppo`` preset, torch-native envs): learning, exact resume after
SIGKILL, checkpoints, the update options, evaluation, recurrent sequences, native stepping and action masks."""

from __future__ import annotations

import math
import random
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict

import rlte_plugins
from rlte_plugins.agents.a2c import A2C
from rlte_plugins.agents.base import load_agent
from rlte_plugins.agents.ppo import PPO
from rlte_plugins.errors import CheckpointError, ComponentArgumentError
from rlte_plugins.training.conditions import HitsUpperBound

RUN = Path(__file__).with_name("direct_run.py")


@pytest.fixture(autouse=True)
def one_thread():
    """These batches are small: a second thread mostly waits for a core (on 2 shared cores, iterations of the rl8
    task ran 5-20x slower with 2 threads than with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fast_ppo(env="torch_cartpole", num_cells=(16,), **options):
    """``fast_ppo`` (rl8's defaults) on a small batch with a small encoder."""
    options = {"num_envs": 16, "num_steps": 16, **options}
    agent = rlte_plugins.make("agent", "fast_ppo", env=env, **options)
    return agent.set(encoder={"name": "mlp", "num_cells": list(num_cells)})


def adam_steps(agent):
    return {int(v["step"]) for v in agent.engine.optimizer.state_dict()["state"].values()}


def flat_parameters(agent):
    return torch.cat([p.detach().flatten() for p in agent.parameters()])


def record_loss_inputs(agent):
    """The pieces the agent's loss is called on, recorded as they come."""
    seen = []
    loss = agent._loss
    agent._loss = lambda piece: seen.append(piece.clone()) or loss(piece)
    return seen


# -- learning -----------------------------------------------------------------------------------------------
def test_solves_torch_cartpole_on_cpu():
    # rl-baselines3-zoo's tuned CartPole PPO (8 envs x 32 steps, 20 epochs, lr and clip annealed) on the direct
    # path: seeds 0-3 reached a 16-episode evaluation of 475 after 10-31k frames (3-8 s on 2 busy cores) and then
    # scored 500 on fresh episodes; untrained, their deterministic policies scored 9, 121, 161 and 334
    agent = fast_ppo(
        num_envs=8, num_steps=32, num_minibatches=1, epochs=20, lr=1e-3, anneal_lr=True, anneal_clip=True,
        gamma=0.98, gae_lambda=0.8, max_grad_norm=0.5, value_coef=0.5, scale_rewards=False, seed=0,
        num_cells=(64, 64),
    )  # fmt: skip
    assert agent.build().collection.native
    stats = agent.train(50_000, stop_conditions=[HitsUpperBound("eval/episodic_return", 475)], eval_every=20,
                        eval_episodes=16, progress=False)  # fmt: skip
    assert stats["eval/episodic_return"] >= 475 and stats["frames"] < 50_000, stats
    assert statistics.fmean(agent.evaluate(episodes=16)) >= 400  # fresh start states, not the ones it stopped on


def test_rl8_dummy_task_trains_towards_zero():
    agent = fast_ppo("dummy_discrete", num_envs=256, num_steps=32, num_cells=(64, 64), seed=0)
    first = float(agent.collect().get(("next", "reward")).mean())
    agent.step()
    for _ in range(30):
        last = float(agent.collect().get(("next", "reward")).mean())
        agent.step()
    # the state is pushed back towards 0: rewards -|state| rise (trained runs gain 49-52 here; untrained ones
    # drift by a few units)
    assert last > first + 35, (first, last)


# -- resume and checkpoints ---------------------------------------------------------------------------------
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
    # a line is printed once its iteration is saved: the run went on from iteration 3 or a later one (the kill
    # may land after a few more), before the straight run's end
    assert 4 <= int(lines[1]) <= total
    a = torch.load(straight / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and int(a["frames"]) == total * 16 * 32
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_is_weights_only_loadable_and_checked(tmp_path):
    agent = fast_ppo(num_envs=8, num_steps=8)
    agent.train(64, checkpoint=tmp_path / "c.pt", checkpoint_every=1, progress=False)
    data = torch.load(tmp_path / "c.pt", weights_only=True)
    assert data["counters"]["frames"] == 64 and data["preset"] == "fast_ppo"
    loaded = PPO.load(tmp_path / "c.pt")
    assert loaded.frames == 64 and loaded.preset == "fast_ppo"
    assert torch.equal(flat_parameters(loaded), flat_parameters(agent))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_agent(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="holds a 'ppo' agent, not 'a2c'"):
        A2C.load(tmp_path / "c.pt")


@pytest.mark.parametrize("missing", [("eval_seed_rng",), ("state", "collection"), ("state", "engine")])
def test_a_checkpoint_missing_entries_is_refused_and_leaves_the_process_as_it_was(tmp_path, missing):
    fast_ppo(seed=3).save(tmp_path / "full.pt")
    data = torch.load(tmp_path / "full.pt", weights_only=True)
    *parents, key = missing
    holder = data
    for parent in parents:
        holder = holder[parent]
    del holder[key]
    torch.save(data, tmp_path / "partial.pt")
    torch.manual_seed(123)
    generators = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    with pytest.raises(CheckpointError, match=f"incomplete or malformed: '{key}'"):
        load_agent(tmp_path / "partial.pt")
    # building the agent to load into seeds the global generators: a refused checkpoint gives them back
    assert torch.equal(torch.get_rng_state(), generators[0])
    assert np.array_equal(np.random.get_state()[1], generators[1]) and random.getstate() == generators[2]
    assert load_agent(tmp_path / "full.pt").seed == 3


# -- update options -----------------------------------------------------------------------------------------
def test_grad_accumulation_steps_once_per_group_of_minibatches_across_epochs():
    # 16 x 16 = 256 samples in 4 minibatches per epoch, 2 per optimiser step, 3 epochs -> 6 steps
    agent = fast_ppo(grad_accumulation=2, num_minibatches=4, epochs=3).build()
    before = flat_parameters(agent)
    agent.step(agent.collect())
    assert adam_steps(agent) == {6}
    assert not torch.equal(before, flat_parameters(agent))
    # nothing of this batch's gradient is left for the next update
    assert all(p.grad is None or not p.grad.any() for p in agent.parameters())


def test_grad_accumulation_equals_one_step_over_the_accumulated_minibatches():
    # the same shuffle cuts 256 samples into 4 minibatches accumulated in pairs, or into 2: without per-minibatch
    # advantage normalisation both give the same gradient, so the same parameters
    trained = []
    for options in ({"grad_accumulation": 2, "num_minibatches": 4}, {"num_minibatches": 2}):
        agent = fast_ppo(normalize_advantage=False, epochs=2, seed=5, **options)
        agent.step(agent.collect())
        trained.append(agent)
    assert adam_steps(trained[0]) == adam_steps(trained[1]) == {4}
    torch.testing.assert_close(flat_parameters(trained[0]), flat_parameters(trained[1]), rtol=1e-5, atol=1e-6)


def test_grad_accumulation_must_divide_the_minibatches():
    with pytest.raises(ComponentArgumentError, match=r"grad_accumulation \(2\) must divide num_minibatches \(1\)"):
        fast_ppo(grad_accumulation=2)  # the whole batch is one minibatch: nothing to accumulate over
    with pytest.raises(ComponentArgumentError, match=r"grad_accumulation \(3\) must divide num_minibatches \(4\)"):
        fast_ppo(grad_accumulation=3, num_minibatches=4)


def test_schedules_are_read_where_the_batch_collection_started():
    # 256-frame batches on a 512-frame schedule: the first update at frame 0, the second at frame 256
    agent = fast_ppo(entropy_coef="linear(0.1, 0.0, 512)", lr="linear(1e-3, 0.0, 512)")
    seen = []
    for _ in range(2):
        stats = agent.iteration()
        seen.append((float(stats["charts/learning_rate"]), float(agent.loss_module.entropy_coeff),
                     agent.engine.optimizer.param_groups[0]["lr"]))  # fmt: skip
    assert seen == [pytest.approx((1e-3, 0.1, 1e-3)), pytest.approx((5e-4, 0.05, 5e-4))]


def test_bf16_amp_keeps_the_batch_in_float32_and_runs_the_update_in_bf16():
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    runs, pieces = {}, {}
    for amp in (None, "bf16"):
        agent = fast_ppo(amp=amp, seed=4).build()
        pieces[amp] = record_loss_inputs(agent)
        runs[amp] = (agent, agent.collect())
    (agent, batch), (_, ref) = runs["bf16"], runs[None]
    # the batch's log-probs (the ratio's denominator) come from a float32 pass
    assert batch["action_log_prob"].dtype == torch.float32
    assert torch.equal(batch["action_log_prob"], ref["action_log_prob"])
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        obs = batch["observation"][:4, 0]
        dist = agent.policy.actor.get_dist(TensorDict(observation=obs, batch_size=[4]))
        assert torch.allclose(dist.log_prob(batch["action"][:4, 0]), batch["action_log_prob"][:4, 0], atol=1e-6)
    for agent, batch in runs.values():
        agent.step(batch)
    # GAE's values and targets come from float32 passes too: the first minibatch (the whole batch) is the same
    first, ref_first = pieces["bf16"][0], pieces[None][0]
    for key in ("state_value", "value_target", "advantage"):
        assert first[key].dtype == torch.float32 and torch.equal(first[key], ref_first[key]), key
    # the update itself ran under bf16 autocast: close to the float32 update, not equal to it
    diff = (flat_parameters(runs["bf16"][0]) - flat_parameters(runs[None][0])).abs().max().item()
    assert 0 < diff < 1e-2


def test_value_clipping_is_applied_to_the_critic_loss():
    losses = {}
    for clip in (None, 1e-3):
        agent = fast_ppo(clip_value=clip, normalize_advantage=False, seed=2).build()
        rows = agent._samples(agent._advantages(agent.collect()))
        # stored values far from what the critic predicts now: clipping caps the value update at 1e-3
        moved = rows.clone().set("state_value", rows["state_value"] + 5.0)
        losses[clip] = [agent.loss_module(td.clone())["loss_critic"].detach() for td in (rows, moved)]
    # where the critic has not moved from the stored values, clipping changes nothing; where it has, it does
    torch.testing.assert_close(losses[None][0], losses[1e-3][0])
    assert not torch.allclose(losses[None][1], losses[1e-3][1])


def test_observation_normalisation_feeds_the_policy_normalised_observations():
    from rlte_plugins.optim.normalization import ObservationNorm

    agent = fast_ppo(normalize_observation=True, scale_rewards=False, num_steps=64).build()
    assert agent.ret_rms is None
    # the statistics are a module of the acting policy: evaluation and export normalise alike
    assert any(isinstance(m, ObservationNorm) for m in agent.actor.modules())
    batch = agent.collect()
    stored = batch["observation"].reshape(-1, 4)
    assert float(agent.obs_norm.count) == pytest.approx(16 * 64, abs=1e-3)  # every observation the policy saw
    # what the policy saw (and the update reads) is standardised per dimension; raw CartPole states are not
    # (positions and angles have standard deviations of about 0.05-0.5)
    assert stored.mean(0).abs().max() < 0.3 and ((stored.std(0) - 1).abs() < 0.3).all()
    raw = torch.randn(5, 4) * 0.05
    acted = agent.actor(TensorDict(observation=raw.clone(), batch_size=[5]))
    assert torch.allclose(acted["observation"], agent.obs_norm.normalize(raw))
    assert float(agent.obs_norm.count) == pytest.approx(16 * 64, abs=1e-3)  # outside collection it never moves
    plain = fast_ppo(num_steps=64).collect()
    assert ((plain["observation"].reshape(-1, 4).std(0) - 1).abs() > 0.3).any()


def test_target_kl_stops_the_epochs():
    # one minibatch per epoch, so one optimiser step per epoch done: the KL of the updated policy is measured
    # after each epoch and is past the target after the first one
    stopped, full = fast_ppo(target_kl=1e-9, epochs=4), fast_ppo(epochs=4)
    for agent in (stopped, full):
        agent.iteration()
    assert adam_steps(stopped) == {1} and adam_steps(full) == {4}


# -- evaluation ---------------------------------------------------------------------------------------------
def test_evaluation_honours_the_flag_draws_new_start_states_and_raises_at_the_cap(tmp_path):
    from torchrl.envs.utils import ExplorationType, exploration_type

    agent = fast_ppo(num_envs=8, num_steps=8).build()
    modes = []
    agent.policy.actor.register_forward_pre_hook(lambda *_: modes.append(exploration_type()))
    agent.evaluate(episodes=2, deterministic=False)
    assert set(modes) == {ExplorationType.RANDOM}
    modes.clear()
    agent.evaluate(episodes=2)
    assert set(modes) == {ExplorationType.DETERMINISTIC}
    # each evaluation starts from new states, drawn reproducibly: an agent loaded from a checkpoint continues alike
    agent.save(tmp_path / "a.pt")
    first, second = agent.evaluate(episodes=8), agent.evaluate(episodes=8)
    assert first != second
    assert load_agent(tmp_path / "a.pt").evaluate(episodes=8) == first
    never_ends = fast_ppo("dummy_discrete", num_envs=4, num_steps=8)
    with pytest.raises(RuntimeError, match="did not end within 50 steps"):
        never_ends.evaluate(episodes=4, max_steps=50)


def test_evaluation_never_changes_the_training_run():
    def train(deterministic):
        agent = fast_ppo(seed=0)
        agent.iteration()
        if deterministic is not None:
            agent.evaluate(episodes=4, deterministic=deterministic)
        agent.iteration()
        return flat_parameters(agent)

    plain = train(None)
    assert torch.equal(train(True), plain) and torch.equal(train(False), plain)
    # sampled evaluations are reproducible from the agent's seed: same seed, same sampled actions
    first, second = fast_ppo(seed=1), fast_ppo(seed=1)
    assert first.evaluate(episodes=6, deterministic=False) == second.evaluate(episodes=6, deterministic=False)


# -- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options,message",
    [
        ({"num_minibatches": 10}, "must split into num_minibatches"),
        ({"amp": "fp16"}, "amp='fp16' needs a CUDA device"),
        ({"cudagraphs": True}, "cudagraphs needs a CUDA device"),
        ({"compile": "max_autotune"}, "compile must be .* max-autotune"),
        ({"epoch": 3}, "unexpected argument 'epoch'; did you mean 'epochs'"),
        ({"lr": "linear(1e-3)"}, "lr: a schedule is a number or 'linear"),
        ({"gamma": 0.0}, "gamma must be > 0.0"),
        ({"recurrent": {"cells": "lstm"}}, "recurrent got unknown key 'cells'"),
    ],
)
def test_bad_arguments_are_refused_with_one_error_naming_the_argument(options, message):
    with pytest.raises(ComponentArgumentError, match=message):
        fast_ppo(num_envs=8, num_steps=8, **options).build()


def test_misuse_is_refused():
    agent = fast_ppo(num_envs=8, num_steps=8)
    with pytest.raises(ComponentArgumentError, match="unknown component 'polcy'"):
        agent.set(polcy="actor_critic")
    with pytest.raises(ComponentArgumentError, match="needs total_frames"):
        agent.train()
    with pytest.raises(RuntimeError, match=r"call collect\(\) before step\(\)"):
        agent.build().step()


def test_fast_ppo_agent_trains_from_a_config_file(tmp_path):
    from rlte_plugins.training.config import load_config, normalize_config
    from rlte_plugins.training.runner import run

    config, name = load_config("fast_ppo_cartpole")
    config["train"].update(total_frames=8192, output=str(tmp_path), logger="csv", eval_episodes=4, progress=False)
    summary = run(normalize_config(config), name)
    assert summary["frames"] == 8192
    assert len(summary["eval_returns"]) == 4
    restored = load_agent(tmp_path / "checkpoint.pt")
    assert restored.preset == "fast_ppo" and restored.frames == 8192 and restored.collection.native


# -- recurrent policies -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell,length,collection", [("lstm", 16, "direct"), ("gru", 8, "direct"),
                                                    ("lstm", 4, "torchrl")])  # fmt: skip
def test_recurrent_sequences_replay_the_collected_log_probs_exactly(cell, length, collection):
    from torchrl.modules import set_recurrent_mode

    agent = fast_ppo(num_envs=6, num_steps=16, num_cells=(8,), seed=1, collection=collection,
                     recurrent={"cell": cell, "hidden_size": 8, "sequence_length": length})  # fmt: skip
    batch = agent.collect()
    seqs = agent._samples(agent._advantages(batch))
    assert seqs.shape == (6 * 16 // length, length)
    assert batch["is_init"][:, 1:].any()  # episodes restart inside the batch (short CartPole runs)
    with torch.no_grad(), set_recurrent_mode(True):
        replayed = agent.policy.actor.get_dist(seqs.clone()).log_prob(seqs["action"])
    # the sequences start from the states stored at collection and reset at episode starts: same log-probs
    assert torch.allclose(replayed, seqs["action_log_prob"], atol=1e-5)


def recurrent(seed, **options):
    recurrent = {"cell": "lstm", "hidden_size": 32, "sequence_length": 16, "burn_in": 4}
    recurrent.update(options.pop("recurrent", {}))
    defaults = dict(num_envs=16, num_steps=32, num_minibatches=4, lr=3e-3, gamma=0.99, seed=seed, num_cells=(32,))
    return fast_ppo(recurrent=recurrent, **{**defaults, **options})


def test_recurrent_ppo_learns_cartpole_with_burn_in():
    scores = []
    for seed in range(3):
        agent = recurrent(seed)
        for _ in range(26):
            agent.iteration()
        # deterministic, each from a fresh episode with a fresh state
        scores.append(statistics.fmean(agent.evaluate(episodes=8)))
    # untrained policies score 9-26 here; after these 13k frames seeds 0-2 scored 152, 406 and 254:
    # neither bar can be passed by an untrained or barely trained policy
    assert sorted(scores)[1] >= 150 and min(scores) >= 100, scores


def test_recurrent_option_trains_and_evaluates_through_the_run_loop():
    agent = recurrent(0, num_envs=8, num_steps=16, num_minibatches=2, recurrent={"cell": "gru", "hidden_size": 8,
                      "sequence_length": 8, "burn_in": 2})  # fmt: skip
    assert agent.train(total_frames=256, progress=False)["frames"] == 256
    assert isinstance(agent.policy.rnn, torch.nn.Module)
    assert len(agent.evaluate(episodes=2)) == 2


def test_recurrent_refuses_bad_sequences():
    with pytest.raises(ComponentArgumentError, match="sequence_length must divide num_steps=16"):
        fast_ppo(num_envs=4, num_steps=16, recurrent={"cell": "lstm", "sequence_length": 5})
    with pytest.raises(ComponentArgumentError, match=r"burn_in must be in \[0, sequence_length=4\)"):
        fast_ppo(num_envs=4, num_steps=16, recurrent={"cell": "lstm", "sequence_length": 4, "burn_in": 4})
    with pytest.raises(ComponentArgumentError, match="normalize_observation is not supported with recurrent"):
        fast_ppo(num_envs=4, num_steps=16, recurrent={"cell": "lstm"}, normalize_observation=True)


def test_recurrent_advantages_are_normalised_over_the_steps_the_loss_sees():
    agent = recurrent(0, recurrent={"burn_in": 6}, num_minibatches=1, epochs=1).build()
    seen = record_loss_inputs(agent)
    agent.iteration()
    (piece,) = seen  # one minibatch (the whole batch) in one chunk
    adv = piece["advantage"]
    assert adv.shape[1] == 16 - 6  # the burn-in steps are cut off before the loss
    assert abs(float(adv.mean())) < 1e-5 and float(adv.std()) == pytest.approx(1.0, abs=1e-4)


# -- direct collection --------------------------------------------------------------------------------------
def test_native_stepping_matches_torchrl_semantics():
    # the torch-native path (no TorchRL per-step machinery, no host sync) still gives exact transitions
    agent = fast_ppo(num_envs=16, num_steps=64, num_cells=(8,), seed=2).build()
    assert agent.collection.native
    data = agent.collect()
    done = data["next", "done"].squeeze(-1)
    assert done.any()
    nxt_obs, following = data["next", "observation"][:, :-1], data["observation"][:, 1:]
    continued = ~done[:, :-1]
    assert torch.equal(nxt_obs[continued], following[continued])  # no reset: the next input is the next obs
    assert (following[~continued].abs() <= 0.05).all()  # reset: a fresh initial state
    assert (data["episode_length"][:, 1:][~continued] == 0).all()
    assert torch.equal(data["next", "terminated"] | data["next", "truncated"], data["next", "done"])
    # TorchRL's own stepping gives the same transitions up to the first reset (after it the start states differ:
    # the native path draws every env's reset state at every step, TorchRL only at steps where one ended)
    reference = fast_ppo(num_envs=16, num_steps=64, num_cells=(8,), seed=2, collection="torchrl").collect()
    first_end = int(done.any(0).nonzero()[0])
    for key in ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "done")):
        assert torch.equal(data[key][:, : first_end + 1], reference[key][:, : first_end + 1]), key
    first_batch = data["observation"].data_ptr()
    agent.step(data)
    assert agent.collect()["observation"].data_ptr() == first_batch  # the buffer is allocated once


def test_action_masks_on_direct_collection():
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

    agent = rlte_plugins.make("agent", "fast_ppo", env=MaskedDummy(num_envs=64, seed=0), num_steps=16, seed=0)
    agent.set(encoder={"name": "mlp", "num_cells": [16]}, distribution="masked_categorical").build()
    assert agent.collection.native
    seen = record_loss_inputs(agent)
    for _ in range(3):
        batch = agent.collect()
        assert (batch["action"] != 2).all()
        stats = agent.step(batch)
        assert all(math.isfinite(float(v)) for v in stats.values())
    assert "action_mask" in seen[-1].keys()  # kept for the update's log-probabilities


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cudagraphs_option_matches_the_eager_update():
    """``cudagraphs=True`` (each chunk's loss and backward captured and replayed) trains the same parameters as
    the eager update on the same device."""
    trained = []
    for cudagraphs in (False, True):  # one after the other: each seeds the generator its actions come from
        agent = fast_ppo(num_envs=32, num_steps=16, chunk_size=128, seed=3, device="cuda", num_minibatches=2,
                         cudagraphs=cudagraphs)  # fmt: skip
        for _ in range(3):  # past the wrapper's warm-up calls, into replays
            stats = agent.iteration()
        assert all(math.isfinite(float(v)) for v in stats.values())
        trained.append(agent)
    torch.testing.assert_close(flat_parameters(trained[0]), flat_parameters(trained[1]), rtol=1e-4, atol=1e-5)
