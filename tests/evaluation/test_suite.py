"""Benchmark suites end to end: a small suite of real runs into a results folder, resumed, read back as rliable
score matrices, plotted and driven from the command line."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlte_plugins.bench import suite as suite_module
from rlte_plugins.bench.suite import config_hash, load_suite, run_suite
from rlte_plugins.cli import main
from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation import aggregate_iqm, aggregate_mean
from rlte_plugins.evaluation.results import FORMAT, RunScores, load_results

TINY = {
    "name": "tiny",
    "seeds": 2,
    "set": {"train.eval_episodes": 2, "train.threads": 1, "train.logger": "none"},
    "tasks": {
        "torch_cartpole": {
            "env": {"name": "torch_cartpole", "max_episode_steps": 8},
            "frames": 128,
            "score_range": [0, 8],
        },
    },
    "algorithms": {
        "ppo": {"config": {"agent": {"name": "ppo", "num_envs": 2, "num_steps": 8}, "env": "torch_cartpole"}},
        "a2c": {"config": {"agent": {"name": "a2c", "num_envs": 2, "num_steps": 8}, "env": "torch_cartpole"}},
    },
}


def _write(tmp_path, data, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    lines = []
    results = run_suite(load_suite(_write(tmp, TINY)), tmp / "results", echo=lines.append)
    return results, lines


def test_a_suite_stores_every_run_in_the_documented_format(tiny_results):
    results, lines = tiny_results
    manifest = json.loads((results.path / "manifest.json").read_text())
    assert manifest["format"] == FORMAT and manifest["suite"] == "tiny"
    assert sorted(manifest["runs"]) == ["a2c__torch_cartpole__0", "a2c__torch_cartpole__1", "ppo__torch_cartpole__0",
                                        "ppo__torch_cartpole__1"]  # fmt: skip
    assert (results.path / "suite.yaml").is_file()
    for record in manifest["runs"].values():
        assert record["status"] == "finished" and record["frames"] >= 128
        assert set(record["versions"]) >= {"python", "rlte-plugins", "torch", "torchrl", "tensordict"}
        scores = RunScores.read(results.path / record["scores_file"])
        assert len(scores.final_returns) == 2
        assert record["final_score"] == pytest.approx(float(np.mean(scores.final_returns)))
        assert scores.history["frames"][-1] == record["frames"]
        run_dir = results.path / record["run_dir"]
        assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "config.yaml").is_file()
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["seed"] == record["seed"]
    hashes = {r["algorithm"]: set() for r in manifest["runs"].values()}
    for r in manifest["runs"].values():
        hashes[r["algorithm"]].add(r["config_hash"])
    assert all(len(h) == 1 for h in hashes.values())  # the seeds of one configuration share its hash
    assert hashes["ppo"] != hashes["a2c"]
    assert any("[4/4]" in line for line in lines)


def test_results_read_back_as_rliable_score_matrices(tiny_results):
    results, _ = tiny_results
    raw = results.score_dict(normalize=False)
    assert list(raw) == ["a2c", "ppo"] and raw["ppo"].shape == (2, 1)
    finals = {(r["algorithm"], r["seed"]): r["final_score"] for r in results.runs}
    np.testing.assert_allclose(raw["ppo"][:, 0], [finals["ppo", 0], finals["ppo", 1]])
    normalized = results.score_dict()  # every task has a score range: normalised by default
    np.testing.assert_allclose(normalized["ppo"], raw["ppo"] / 8.0)
    frames, curves = results.curves(num_points=5)
    assert curves["a2c"].shape == (2, 1, 5) and frames.shape == (5,)
    assert frames[-1] <= min(r["frames"] for r in results.runs)
    assert aggregate_mean(normalized["ppo"]) == pytest.approx(np.mean(raw["ppo"]) / 8.0)


def test_running_a_suite_again_skips_what_finished_and_reruns_what_changed(tiny_results, tmp_path, monkeypatch):
    results, _ = tiny_results
    before = json.loads((results.path / "manifest.json").read_text())
    ran = []
    real = suite_module.execute_job

    def spy(job, *args):
        ran.append(job.id)
        return real(job, *args)

    monkeypatch.setattr(suite_module, "execute_job", spy)
    lines = []
    run_suite(load_suite(_write(tmp_path, TINY)), results.path, echo=lines.append)
    assert ran == [] and "4 already finished, 0 to run" in lines[0]
    assert json.loads((results.path / "manifest.json").read_text())["runs"] == before["runs"]
    changed = json.loads(json.dumps(TINY))
    changed["algorithms"]["a2c"]["set"] = {"agent.lr": 0.001}
    run_suite(load_suite(_write(tmp_path, changed)), results.path, echo=lines.append)
    assert ran == ["a2c__torch_cartpole__0", "a2c__torch_cartpole__1"]
    assert any("configuration changed" in line for line in lines)


def test_a_failed_run_is_recorded_the_suite_goes_on_and_a_rerun_retries_it(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["seeds"] = 1
    data["algorithms"]["broken"] = {"config": {"agent": {"name": "ppo", "num_envs": 2, "num_steps": 8,
                                                         "num_minibatches": 3}, "env": "torch_cartpole"}}  # fmt: skip
    data["algorithms"] = {"broken": data["algorithms"].pop("broken"), **data["algorithms"]}
    lines = []
    results = run_suite(load_suite(_write(tmp_path, data)), tmp_path / "out", echo=lines.append)
    status = {r["id"]: r["status"] for r in results.runs}
    assert status == {"broken__torch_cartpole__0": "failed", "ppo__torch_cartpole__0": "finished",
                      "a2c__torch_cartpole__0": "finished"}  # fmt: skip
    failed = next(r for r in results.runs if r["status"] == "failed")
    assert "num_minibatches" in failed["error"]
    assert "Traceback" in (results.path / failed["run_dir"] / "error.txt").read_text()
    assert any("1 run(s) failed: broken__torch_cartpole__0" in line for line in lines)
    assert results.algorithms == ["a2c", "ppo"]  # failed runs stay out of the score matrices
    lines.clear()
    run_suite(load_suite(_write(tmp_path, data)), tmp_path / "out", echo=lines.append)
    assert "2 already finished, 1 to run" in lines[0]


def test_ctrl_c_keeps_every_finished_run(tmp_path, monkeypatch):
    real = suite_module.execute_job
    calls = []

    def interrupt_second(job, *args):
        calls.append(job.id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, *args)

    monkeypatch.setattr(suite_module, "execute_job", interrupt_second)
    path = _write(tmp_path, TINY)
    with pytest.raises(KeyboardInterrupt):
        run_suite(load_suite(path), tmp_path / "out", echo=lambda line: None)
    runs = json.loads((tmp_path / "out" / "manifest.json").read_text())["runs"]
    assert list(runs) == [calls[0]] and runs[calls[0]]["status"] == "finished"


def test_config_hash_ignores_what_does_not_change_results():
    suite = load_suite(Path(__file__).parents[2] / "suites" / "classic_control.yaml")
    jobs = suite.jobs(Path("results/x"))
    assert len(jobs) == 20 and {j.seed for j in jobs} == set(range(5))
    by_key = {(j.algorithm, j.task): set() for j in jobs}
    for j in jobs:
        by_key[j.algorithm, j.task].add(j.config_hash)
    assert all(len(h) == 1 for h in by_key.values()) and len({h.pop() for h in by_key.values()}) == 4
    config = jobs[0].config
    assert config_hash({**config, "train": {**config["train"], "threads": 2, "logger": "none"}}) == jobs[0].config_hash
    assert config_hash({**config, "train": {**config["train"], "eval_episodes": 3}}) != jobs[0].config_hash
    assert config_hash({**config, "agent": {**config["agent"], "lr": 0.1}}) != jobs[0].config_hash
    ppo_pendulum = next(j for j in jobs if j.id == "ppo__torch_pendulum__3").config
    assert ppo_pendulum["env"] == {"name": "torch_pendulum", "num_envs": 16}
    assert ppo_pendulum["train"]["total_frames"] == 200_000 and ppo_pendulum["train"]["eval_episodes"] == 20


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(bogus=1), "unknown key 'bogus' in suite"),
        (lambda d: d.update(seeds=0), "seeds must be a count >= 1"),
        (lambda d: d["tasks"]["torch_cartpole"].update(score_range=[5, 1]), "score_range must be \\[low, high\\]"),
        (lambda d: d["tasks"]["torch_cartpole"].update(normalize="mujoco"), "unknown normalize table 'mujoco'"),
        (lambda d: d["algorithms"]["ppo"].update(tasks={"Pong": {}}), "unknown key 'Pong' in .*ppo.*tasks"),
        (lambda d: d["algorithms"]["ppo"].update(config="no_such_recipe"), "unknown recipe 'no_such_recipe'"),
        (lambda d: d["algorithms"]["ppo"].update(set={"train.eval_episodes": 0}), "eval_episodes must be >= 1"),
        (lambda d: d["algorithms"].update(a__b="ppo_cartpole"), "'__' and ',' separate"),
        (lambda d: d.pop("tasks"), "needs 'tasks'"),
        (lambda d: d["algorithms"].update({"ppo,lr3": "ppo_cartpole"}), "'__' and ',' separate"),
        (lambda d: d["tasks"]["torch_cartpole"].update(normalize="procgen"), "not in the Procgen easy"),
    ],
)
def test_bad_suite_files_are_one_clear_error_before_anything_runs(tmp_path, edit, message):
    data = json.loads(json.dumps(TINY))
    edit(data)
    with pytest.raises(ConfigError, match=message):
        load_suite(_write(tmp_path, data))


def test_a_results_folder_of_another_suite_is_not_overwritten(tiny_results, tmp_path):
    results, _ = tiny_results
    other = dict(TINY, name="other")
    with pytest.raises(ConfigError, match="holds suite 'tiny', not 'other'"):
        run_suite(load_suite(_write(tmp_path, other)), results.path, echo=lambda line: None)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and has no manifest.json"):
        run_suite(load_suite(_write(tmp_path, other)), tmp_path / "busy", echo=lambda line: None)


def test_plots_and_aggregates_of_a_results_folder(tiny_results, tmp_path):
    from rlte_plugins.evaluation.report import plot_results

    results, _ = tiny_results
    written = plot_results(results, tmp_path / "plots", metrics=["iqm", "mean"], reps=200, curve_reps=20)
    names = sorted(p.name for p in written)
    assert names == sorted([f"{stem}.{ext}" for stem in ("aggregates", "performance_profile",
                            "probability_of_improvement", "sample_efficiency") for ext in ("png", "svg")]
                           + ["aggregates.json"])  # fmt: skip
    table = json.loads((tmp_path / "plots" / "aggregates.json").read_text())
    scores = results.score_dict()
    assert table["normalized"] is True and table["runs"] == {"a2c": 2, "ppo": 2}
    assert table["metrics"]["iqm"]["ppo"]["point"] == pytest.approx(aggregate_iqm(scores["ppo"]))
    low, high = table["metrics"]["mean"]["a2c"]["ci"]
    assert low <= table["metrics"]["mean"]["a2c"]["point"] <= high
    assert len(table["probability_of_improvement"]) == 1


def test_cli_runs_lists_and_plots_a_suite(tiny_results, tmp_path, capsys):
    results, _ = tiny_results
    path = _write(tmp_path, TINY)
    assert main(["bench", "suite", str(path), "--output", str(results.path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all(" finished " in line for line in out)
    assert main(["eval", "plot", str(results.path), "--reps", "100", "--curve-reps", "10", "--metrics", "iqm",
                 "--output", str(tmp_path / "figs")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "suite 'tiny'" in out and "IQM" in out and "P(" in out
    assert (tmp_path / "figs" / "aggregates.svg").is_file()
    assert main(["eval", "plot", str(tmp_path), "--reps", "10"]) == 2
    assert "not a results folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "plot", str(results.path), "--metrics", "max"])
    assert exit_info.value.code == 2 and "invalid choice: 'max'" in capsys.readouterr().err
    assert main(["bench", "suite", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_shipped_suite_results_read_back():
    folder = Path(__file__).parents[2] / "results" / "classic_control"
    results = load_results(folder)
    assert results.algorithms == ["a2c", "ppo"] and results.tasks == ["CartPole-v1", "torch_pendulum"]
    scores = results.score_dict()
    assert all(m.shape == (5, 2) for m in scores.values())
    assert (folder / "plots" / "aggregates.png").is_file() and (folder / "plots" / "aggregates.svg").is_file()


def _fake_results(folder, runs, tasks):
    """A results folder from ``(algorithm, task, seed, final score)`` tuples, without training."""
    from rlte_plugins.evaluation.results import run_id, write_json_atomic, write_run_scores

    records = {}
    for alg, task, seed, score in runs:
        rid = run_id(alg, task, seed)
        history = [{"frames": f, "charts/episodic_return": score * f / 300} for f in (100, 200, 300)]
        write_run_scores(folder / "scores" / f"{rid}.npz", [score, score], history)
        records[rid] = {"id": rid, "algorithm": alg, "task": task, "seed": seed, "status": "finished",
                        "frames": 300, "final_score": score, "scores_file": f"scores/{rid}.npz"}  # fmt: skip
    write_json_atomic(folder / "manifest.json", {"format": FORMAT, "suite": "fake", "tasks": tasks, "runs": records})
    return load_results(folder)


def test_algorithms_compare_on_the_tasks_they_all_finished_with_their_seeds_per_task(tmp_path):
    runs = [("ppo", "A", 0, 100.0), ("ppo", "A", 1, 200.0), ("ppo", "B", 0, -500.0), ("ppo", "B", 1, -100.0),
            ("dqn", "A", 0, 300.0), ("dqn", "A", 2, 400.0), ("dqn", "A", 3, 0.0)]  # fmt: skip
    results = _fake_results(tmp_path, runs, {"A": {"score_range": [0, 500]}, "B": {"score_range": [-1000, 0]}})
    assert results.common_tasks() == ["A"] and results.tasks == ["A", "B"]
    scores = results.score_dict()
    np.testing.assert_allclose(scores["ppo"], [[0.2], [0.4]])
    np.testing.assert_allclose(scores["dqn"], [[0.6], [0.8], [0.0]])  # seeds need not match across algorithms
    np.testing.assert_allclose(results.score_dict(algorithms=["ppo"])["ppo"], [[0.2, 0.5], [0.4, 0.9]])
    with pytest.raises(ConfigError, match="'dqn' has no finished run on B"):
        results.score_dict(tasks=["A", "B"])
    from rlte_plugins.evaluation.report import plot_results

    plot_results(results, tmp_path / "plots", metrics=["iqm"], reps=50, curve_reps=10, formats=("png",))
    table = json.loads((tmp_path / "plots" / "aggregates.json").read_text())
    assert table["tasks"] == ["A"] and table["tasks_left_out"] == ["B"]


def test_a_seed_missing_on_one_task_drops_one_run_of_that_task_only(tmp_path):
    runs = [("ppo", "A", 0, 100.0), ("ppo", "A", 1, 200.0), ("ppo", "A", 2, 300.0), ("ppo", "B", 1, 50.0),
            ("ppo", "B", 2, 60.0)]  # fmt: skip
    scores = _fake_results(tmp_path, runs, {})
    np.testing.assert_allclose(scores.score_dict()["ppo"], [[100.0, 50.0], [200.0, 60.0]])  # raw: no ranges


def test_raw_and_normalised_scores_never_mix(tmp_path):
    runs = [("ppo", "A", 0, 100.0), ("ppo", "B", 0, 1.0)]
    results = _fake_results(tmp_path, runs, {"A": {"score_range": [0, 500]}, "B": {}})
    with pytest.raises(ConfigError, match="tasks B have no score_range"):
        results.score_dict()
    np.testing.assert_allclose(results.score_dict(normalize=False)["ppo"], [[100.0, 1.0]])


def test_speed_settings_do_not_rerun_finished_runs_and_dropped_tasks_keep_their_ranges(tiny_results, monkeypatch):
    results, _ = tiny_results
    ran = []
    monkeypatch.setattr(suite_module, "execute_job", lambda job, *args: ran.append(job.id))
    suite = load_suite(results.path / "suite.yaml")
    run_suite(suite, results.path, threads=2, echo=lambda line: None)
    assert ran == []
    suite.tasks = {"other": {"score_range": [0, 1]}}
    manifest = suite_module._open_manifest(results.path, suite)
    assert manifest["tasks"]["torch_cartpole"] == {**TINY["tasks"]["torch_cartpole"]}
    assert manifest["tasks"]["other"] == {"score_range": [0, 1]}


def test_a_run_with_non_finite_final_returns_is_recorded_as_failed(tmp_path, monkeypatch):
    from rlte_plugins.bench.suite import Job, execute_job
    from rlte_plugins.training import runner

    summary = {"eval_returns": [1.0, float("nan")], "frames": 8, "eval_return_mean": float("nan"), "history": []}
    monkeypatch.setattr(runner, "run", lambda config, name: summary)
    record = execute_job(Job("ppo", "t", 0, {"train": {}}), tmp_path, {})
    assert record["status"] == "failed" and "non-finite" in record["error"]
    assert not (tmp_path / "scores").exists()
