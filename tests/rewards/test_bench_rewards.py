from rlte_plugins.bench.rewards import benchmark


def test_the_rewards_benchmark_times_every_reward_on_each_input(capsys):
    rows = benchmark(["rnd", "e3b"], kinds=["vectors"], num_envs=2, num_steps=8, repeats=1)
    assert [(r["reward"], r["input"]) for r in rows] == [("rnd", "vectors"), ("e3b", "vectors")]
    assert all(r["compute_ms_per_1k"] > 0 and r["update_ms_per_1k"] > 0 for r in rows)
    assert "compute ms/1k" in capsys.readouterr().out
