"""``rlte bench ppo`` (CleanRL's settings, a peer command beside ours) and ``rlte bench envs``'s collect column."""

from __future__ import annotations

import sys

import pytest

from rlte_plugins.bench import envs, ppo
from rlte_plugins.errors import ConfigError


def test_bench_ppo_prints_each_run_with_its_backend_path_and_the_ratio_to_the_peer(capsys):
    peer = f"{sys.executable} -c \"print('steady_sps=1000.0')\""
    rows = ppo.benchmark([2], ["CartPole-v1:gymnasium", "torch_cartpole"], frames=1024, peer_command=peer)
    out = capsys.readouterr().out
    assert "CartPole-v1 [gymnasium, plain] eager" in out and "torch_cartpole [torch, plain] eager" in out
    assert [r["run"] for r in rows][0] == "peer" and rows[0]["steady_sps"] == 1000.0
    ours = rows[1:]
    assert all(r["frames"] == 1024 and r["collection"] == "plain" for r in ours)
    # 1024 frames of 2 envs x 128 steps: four iterations, so a steady rate from the second to the last
    assert all(r["steady_sps"] > 0 and 0 < r["first_s"] < r["train_s"] < r["wall_s"] for r in ours)
    assert all(r["sps"] == pytest.approx(1024 / r["wall_s"]) for r in ours)
    assert "x from start" in out and "x steady" in out


def test_bench_ppo_compiles_only_a_torch_native_envs_step():
    # a bare gymnasium id (no backend) and the other rlte envs are made as they are in the compile variant
    assert ppo._torch_native("torch_cartpole") and ppo._torch_native("dummy_discrete")
    assert not ppo._torch_native("CartPole-v1") and not ppo._torch_native("gymnasium")


def test_bench_ppo_refuses_an_unknown_variant():
    with pytest.raises(ConfigError, match="unknown variant 'fast'"):
        ppo.benchmark([2], ["torch_cartpole"], variants=["fast"])


def test_bench_envs_collects_with_a_policy_in_the_loop(capsys):
    rows = envs.benchmark(["torch_cartpole"], [8], seconds=0.2)
    out = capsys.readouterr().out
    assert "collect steps/s" in out and rows[0]["path"] == "plain"
    assert rows[0]["collect"] > 0 and rows[0]["rlte"] > 0
