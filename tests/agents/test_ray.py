"""``collection="ray"``: PPO's batches acted by the learner's weights pushed before each batch, an off-policy agent's
replay filled by remote workers (seed frames, then the learner's actor), IMPALA's asynchronous workers stamping the
version of the weights that acted, workers and Ray released on close, and bad input refused before Ray starts.

One local Ray session (2 CPUs: one worker per CPU beside the learner) serves the whole module."""

from __future__ import annotations

import copy
import importlib.util
import re
import time

import pytest
import torch
from tensordict import TensorDict

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError

ray = pytest.importorskip("ray", reason="collection='ray' needs Ray: pip install 'rlte-plugins[ray]'")


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def assert_ended(actor, within: float = 30.0) -> None:
    """``actor`` ends within ``within`` seconds: ``ray.kill`` ends an actor asynchronously, so a call made right
    after it may still be answered."""
    deadline = time.monotonic() + within
    with pytest.raises(ray.exceptions.RayActorError):
        while time.monotonic() < deadline:
            ray.get(actor.__ray_ready__.remote(), timeout=within)
            time.sleep(0.2)


def assert_released(collector, threads: int) -> None:
    """The collector's worker actors and its weight-sync actor are gone, their CPUs free, and Ray (started by the
    test, not the collection) still runs."""
    for worker in collector.remote_collectors:
        assert_ended(worker)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    assert not [n for n in names if n.startswith("torchrl_weight_sync")]
    assert ray.is_initialized() and torch.get_num_threads() == threads


def log_probs(actor, batch) -> torch.Tensor:
    with torch.no_grad():
        dist = actor.get_dist(TensorDict(observation=batch.get("observation"), batch_size=batch.shape))
        return dist.log_prob(batch.get("action"))


def test_ppo_batches_are_acted_by_the_weights_pushed_before_each_batch_and_close_releases_the_workers():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, num_minibatches=2,
                              collection="ray", num_workers=2, lr=1e-2, anneal_lr=False, seed=0)  # fmt: skip
    threads = torch.get_num_threads()
    first = copy.deepcopy(agent.build().policy.actor)
    try:
        for i in range(3):
            batch = agent.collect()
            assert batch.shape == (4, 8) and type(agent.collection).__name__ == "RayCollection"
            assert {"action", "action_log_prob", "observation", ("next", "reward"), ("next", "episode_reward")} <= set(
                batch.keys(True)
            )
            assert "policy_version" not in batch.keys() and "collector" not in batch.keys()
            # the workers acted with the learner's weights of now, not those of the first batch
            torch.testing.assert_close(batch.get("action_log_prob"), log_probs(agent.policy.actor, batch))
            if i:
                assert not torch.allclose(batch.get("action_log_prob"), log_probs(first, batch), atol=1e-4)
            agent.step()
        stats = agent.train(4 * 8 * 5, progress=False)  # two batches more
        assert agent.frames == 4 * 8 * 5 and torch.isfinite(torch.tensor(stats["losses/policy_loss"]))
        collector = agent.collection._collector
        assert len(collector.remote_collectors) == 2
    finally:
        agent.close()
    assert agent.collection._collector is None
    assert_released(collector, threads)


def test_off_policy_replay_is_filled_by_workers_with_seed_frames_then_the_learners_actor():
    # no noise: collected actions are the learner's deterministic actions, except the random seed frames
    agent = rlte_plugins.make("agent", "ddpg", env="torch_pendulum", num_envs=2, num_steps=4, collection="ray",
                              num_workers=1, random_frames=8, learning_starts=8, seed=0)  # fmt: skip
    agent.set(distribution={"name": "normal_noise", "std": 0.0}, storage={"name": "replay", "batch_size": 8})
    actor = agent.build().policy.actor
    storage = agent.components["storage"]
    try:
        seeded = agent.collect()
        with torch.no_grad():
            own = actor(seeded.select("observation").clone()).get("action")
        assert not torch.allclose(seeded.get("action"), own, atol=1e-3)
        agent.step()
        for _ in range(3):
            batch = agent.collect()
            assert batch.shape == (2, 4)
            with torch.no_grad():
                torch.testing.assert_close(
                    batch.get("action"), actor(batch.select("observation").clone()).get("action")
                )
            agent.step()
        assert len(storage) == agent.frames == 32 and agent.updates == 24
        stored = storage.buffer.storage[:32]
        torch.testing.assert_close(stored.get("action")[-8:], batch.reshape(-1).get("action"))
    finally:
        agent.close()


def test_ray_replay_keeps_the_transitions_in_a_ray_actor_through_a_checkpoint(tmp_path):
    agent = rlte_plugins.make("agent", "dqn", env="torch_cartpole", num_envs=2, num_steps=4, collection="ray",
                              ray_replay=True, learning_starts=16, random_frames=8, seed=0)  # fmt: skip
    agent.set(storage={"name": "replay", "batch_size": 8, "capacity": 100, "seed": 0})
    try:
        agent.train(40, progress=False)
        last = agent.collect()
        replay = agent.replay
        assert type(replay).__name__ == "RayReplay" and len(agent.components["storage"]) == 0
        assert len(replay) == agent.frames == 48 and agent.updates > 0
        torch.testing.assert_close(replay.buffer[40:48].get("observation"), last.reshape(-1).get("observation"))
        assert replay.sample().shape == (8,)
        stored = replay.state_dict()["_storage"]  # a checkpoint carries the filled rows only, not the capacity
        assert TensorDict().load_state_dict(stored["_storage"], strict=False).shape == (48,)
        agent.save(tmp_path / "dqn.pt")
        actor = replay.buffer._rb
    finally:
        agent.close()
    assert_ended(actor)
    with pytest.raises(RuntimeError, match="ended with close"):  # never an empty buffer saved in silence
        agent.save(tmp_path / "closed.pt")
    loaded = rlte_plugins.load_agent(tmp_path / "dqn.pt")
    try:
        # loading starts no actor (evaluating, exporting or playing a checkpoint needs no Ray)
        assert type(loaded.replay).__name__ == "RayReplay" and loaded.replay.buffer is None and len(loaded.replay) == 48
        assert loaded.replay.sample().shape == (8,)  # the actor starts with the checkpoint's transitions
        torch.testing.assert_close(loaded.replay.buffer[40:48].get("action"), last.reshape(-1).get("action"))
    finally:
        loaded.close()


def test_impala_workers_stamp_the_version_of_the_weights_they_act_with():
    agent = rlte_plugins.make("agent", "impala", env="torch_cartpole", num_envs=4, num_steps=5, collection="ray",
                              num_workers=2, seed=0, lr=3e-3, anneal_lr=False)  # fmt: skip
    snapshots = {0: copy.deepcopy(agent.build().policy.actor)}
    threads = torch.get_num_threads()
    matched = total = 0
    versions = []
    try:
        for _ in range(6):
            batch = agent.collect()
            assert batch.shape == (4, 5)
            flat = batch.reshape(-1)
            stamps, ends = flat.get("policy_version"), flat.get("policy_version_end")
            versions.append(int(stamps.max()))
            for v in stamps.unique().tolist():
                rows = flat[(stamps == v) & (ends == v)]
                matched += int(((log_probs(snapshots[v], rows) - rows.get("action_log_prob")).abs() < 1e-5).sum())
                total += rows.shape[0]
            stats = agent.step()
            assert stats["charts/policy_lag"] >= 0 and 0 <= stats["charts/policy_version_ambiguous"] <= 1
            snapshots[agent.iterations] = copy.deepcopy(agent.policy.actor)
        collector = agent.collection._collector
        # loading a state ends the workers; fresh ones start with the last weights pushed (envs from a reset)
        agent.collection.load_state_dict(agent.collection.state_dict())
        assert_released(collector, threads)
        assert agent.collect().get("policy_version").min() == agent.iterations
    finally:
        agent.close()
    assert total >= 0.9 * 6 * 4 * 5 and matched == total
    assert versions[-1] >= 3 and versions == sorted(versions)


@pytest.mark.parametrize(
    ("name", "kwargs", "fragment"),
    [
        ("ppo", {"num_workers": 3}, "agent 'ppo': num_workers (3) must divide the env's 4 envs"),
        (
            "ppo",
            {"normalize_observation": True},
            "agent 'ppo': normalize_observation is not supported with collection=",
        ),
        ("ppo", {"recurrent": {"cell": "gru"}}, "agent 'ppo': recurrent is not supported with collection='ray'"),
        (
            "impala",
            {"policy_lag": 1},
            "agent 'impala': policy_lag delays the weights of synchronous collection; "
            "collection='ray' has its workers' own lag",
        ),  # fmt: skip
        (
            "impala",
            {"normalize_observation": True},
            "agent 'impala': normalize_observation is not supported with collection='ray'",
        ),  # fmt: skip
    ],
)
def test_bad_options_are_refused_before_ray_starts(name, kwargs, fragment):
    with pytest.raises(ComponentArgumentError, match=re.escape(fragment)):
        rlte_plugins.make("agent", name, env="torch_cartpole", num_envs=4, num_steps=4, num_minibatches=1,
                          collection="ray", **kwargs).build()  # fmt: skip
    assert not ray.util.list_named_actors(all_namespaces=True)


def test_an_env_instance_a_noise_schedule_and_ray_replay_of_another_storage_are_refused():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2)
    env._rlte_component = None  # an instance the registry did not make
    with pytest.raises(ComponentArgumentError, match="collection='ray' makes the env again in each worker process"):
        rlte_plugins.make("agent", "ppo", env=env, num_steps=4, num_minibatches=1, collection="ray").build()
    ddpg = rlte_plugins.make("agent", "ddpg", env="torch_pendulum", collection="ray")
    ddpg.set(distribution={"name": "normal_noise", "std": "linear(1.0, 0.1, 1000)"})
    with pytest.raises(ComponentArgumentError, match="agent 'ddpg': a noise schedule is not supported with collection"):
        ddpg.build()
    dqn = rlte_plugins.make("agent", "dqn", env="torch_cartpole", ray_replay=True)
    dqn.set(storage={"name": "nstep_replay", "n": 3, "gamma": 0.99})
    with pytest.raises(ComponentArgumentError, match="agent 'dqn': ray_replay keeps the transitions of a 'replay' "):
        dqn.build()


def test_more_workers_than_the_cluster_has_cpus_are_refused_instead_of_waiting():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=3, num_steps=4, num_minibatches=1,
                              collection="ray", num_workers=3)  # fmt: skip
    with pytest.raises(ComponentArgumentError, match=re.escape("3 workers need 3 CPUs but the Ray cluster has 2")):
        agent.collect()
    assert agent.collection._collector is None and not ray.util.list_named_actors(all_namespaces=True)


def test_the_scaling_benchmark_times_in_process_and_ray_rows_of_the_same_recipe(capsys):
    from rlte_plugins.bench.scaling import benchmark, print_rows

    rows = benchmark(workers=[1], num_envs=2, num_steps=16, frames=96, in_process=["auto"])
    assert [(r["run"], r["workers"], r["frames"]) for r in rows] == [("auto", 0, 96), ("ray", 1, 96)]
    assert rows[0]["ratio"] == 1.0 and rows[1]["steady_sps"] > 0 and ray.is_initialized()
    print_rows(rows, "torch_cartpole", 2, 16, 96)
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["collection", "workers", "sps", "steady", "first", "s", "train", "s", "ratio"]
    assert table[2].split()[:2] == ["auto", "0"] and table[3].split()[:2] == ["ray", "1"]


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    # the agent builds and loads without Ray (a checkpoint of a Ray run evaluates, exports and plays anywhere)
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_minibatches=1, collection="ray").build()
    with pytest.raises(ComponentArgumentError, match=re.escape("pip install 'rlte-plugins[ray]'")):
        agent.collect()
