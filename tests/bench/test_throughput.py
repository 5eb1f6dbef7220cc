"""``rlte bench throughput``: the fast_ppo agent's rows, the matmul floor, rl8 beside it where installed."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from rlte_plugins.bench.throughput import benchmark, update_flops
from rlte_plugins.errors import ConfigError


def test_throughput_benchmark_prints_ours_and_the_floor(capsys):
    rows = benchmark([64], [8, 16], iterations=1, warmup=0, compare=False)
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and out.count("ours (eager)") == 2 and "rl8" not in out
    assert [r["batch"] for r in rows] == [512, 1024] and [r["num_steps"] for r in rows] == [8, 16]
    assert all(0 < r["collect_s"] < r["total_s"] and 0 < r["update_s"] < r["total_s"] for r in rows)
    assert all(r["floor_s"] > 0 for r in rows)
    # fast_ppo's separate 256x256 actor and critic, 4 epochs over the batch
    actor_and_critic = 2 * (1 * 256 + 256 * 256) + 256 * 2 + 256 * 1
    assert rows[0]["flops"] == 3 * 2 * actor_and_critic * 512 * 4


def test_throughput_benchmark_refuses_what_it_cannot_run():
    with pytest.raises(ConfigError, match="unknown variant 'fast'"):
        benchmark([64], [8], variants=["fast"])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="need a CUDA device"):
            benchmark([64], [8], variants=["cudagraphs"])
        with pytest.raises(ConfigError, match="no CUDA"):
            benchmark([64], [8], device="cuda")


def test_update_flops_counts_every_linear_layer_forward_and_backward():
    net = torch.nn.Sequential(torch.nn.Linear(1, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256))
    assert update_flops(net, samples=10, epochs=2) == 3 * 2 * (256 + 256 * 256) * 10 * 2


@pytest.mark.skipif(importlib.util.find_spec("rl8") is None, reason="rl8 is not installed (the bench extra)")
def test_throughput_benchmark_runs_rl8_beside_ours(capsys):
    rows = benchmark([64], [8], iterations=1, warmup=0)
    out = capsys.readouterr().out
    assert [r["impl"] for r in rows] == ["ours", "rl8", "rl8 (retain_memory)"]
    assert "best ours / rl8 end to end" in out
    assert all(r["ratio"] == pytest.approx(r["total_s"] / rows[0]["total_s"]) for r in rows[1:])
