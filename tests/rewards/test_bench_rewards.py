from rlte_plugins.bench.rewards import benchmark


def test_the_rewards_benchmark_times_every_reward_on_each_input(capsys):
    rows = benchmark(["rnd", "e3b"], kinds=["vectors"], num_envs=2, num_steps=8, repeats=1)
    assert [(r["reward"], r["input"]) for r in rows] == [("rnd", "vectors"), ("e3b", "vectors")]
    assert all(r["compute_ms_per_1k"] > 0 and r["update_ms_per_1k"] > 0 for r in rows)
    assert "compute ms/1k" in capsys.readouterr().out


def test_the_exploration_benchmark_runs_its_suite_and_prints_success_rates(tmp_path, capsys):
    from rlte_plugins.bench.exploration import benchmark

    table = benchmark(["ppo", "rnd"], task="Empty-5x5", frames=256, seeds=2, eval_episodes=2,
                      output=tmp_path / "explore", threads=1)  # fmt: skip
    assert set(table) == {"ppo", "rnd"} and all(row["runs"] == 2 for row in table.values())
    assert all(0.0 <= row["ci"][0] <= row["success"] <= row["ci"][1] <= 1.0 for row in table.values())
    out = capsys.readouterr().out
    assert "Empty-5x5, 256 frames, success rate" in out and (tmp_path / "explore" / "manifest.json").is_file()
