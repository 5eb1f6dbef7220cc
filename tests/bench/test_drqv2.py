"""``rlte bench drqv2``: its arguments, the authors' figures it compares with, and tiny runs of both modes on the
torch-native pixel pendulum (no MuJoCo rendering), one thread."""

from __future__ import annotations

import pytest
import torch

from rlte_plugins.bench import drqv2
from rlte_plugins.cli import build_parser, main
from rlte_plugins.errors import ConfigError

TINY = ["--batch-size", "16", "--image-size", "32", "--threads", "1"]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_defaults_are_the_authors_settings():
    args = build_parser().parse_args(["bench", "drqv2"])
    assert not args.updates and args.tasks == ["cartpole_swingup", "walker_walk", "cheetah_run"]
    assert (args.frames, args.seeds, args.eval_every, args.eval_episodes) == (100_000, 1, 10_000, 10)
    assert (args.image_size, args.seed_frames, args.batch_size, args.envs) == (84, 4000, None, None)
    args = build_parser().parse_args(["bench", "drqv2", "--updates", "--variants", "eager", "--device", "cuda"])
    assert args.updates and args.variants == ["eager"] and args.device == "cuda"


@pytest.mark.parametrize(
    ("argv", "function", "envs", "batch"),
    [([], "benchmark_returns", ["dmc"], None), (["--updates"], "benchmark_updates", ["dmc", "torch_pendulum"], 256)],
)
def test_each_mode_runs_its_benchmark_with_its_default_envs(monkeypatch, argv, function, envs, batch):
    calls = []
    monkeypatch.setattr(drqv2, function, lambda *a, **k: calls.append((a, k)))
    assert main(["bench", "drqv2", *argv]) == 0
    (positional, keywords), = calls  # fmt: skip
    assert envs in positional and (keywords.get("batch_size") if batch is None else positional[1]) == batch


def test_published_points_and_speed_are_the_papers():
    assert drqv2.PUBLISHED["cartpole_swingup"] == {100_000: 626, 500_000: 846}
    assert drqv2.PUBLISHED["walker_walk"][500_000] == 722 and drqv2.PUBLISHED["cheetah_run"][100_000] == 273
    assert drqv2.AUTHORS_FPS == pytest.approx(95.8, abs=0.1)


def test_the_replay_holds_the_run_and_learning_waits_for_a_first_batch():
    agent = drqv2.make_agent("torch_pendulum", frames=400, image_size=16, batch_size=16, seed_frames=10)
    storage = agent.build().components["storage"]
    assert storage.capacity == 200 and storage.batch_size == 16
    # 5 agent steps asked for, but n-step replay holds 3 back: learning starts once a batch is stored
    assert agent.config.learning_starts == agent.config.random_frames == 16 + 3
    agent.close()


def test_a_tiny_returns_run_prints_our_curve_beside_the_published_one(monkeypatch, capsys):
    monkeypatch.setitem(drqv2.PUBLISHED, "torch_pendulum", {400: 123})
    argv = ["bench", "drqv2", "--envs", "torch_pendulum", "--frames", "400", "--eval-every", "200",
            "--eval-episodes", "1", "--seed-frames", "80", *TINY]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "torch_pendulum:" in out and "frames/s in training (authors ~96:" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("200", "400"))]
    assert [r[0] for r in rows] == ["200", "400"]
    assert rows[0][2] == "-" and rows[1][2] == "123" and float(rows[1][1]) < 0  # pendulum returns are negative


def test_a_tiny_updates_run_prints_updates_and_end_to_end_rates(capsys):
    argv = ["bench", "drqv2", "--updates", "--envs", "torch_pendulum", "--variants", "eager", "--fill", "20",
            "--warmup-updates", "2", "--timed-updates", "3", *TINY]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "batch 16, [9, 32, 32] uint8" in out and "1 threads, torch" in out
    updates = next(line.split() for line in out.splitlines() if line.startswith("eager"))
    assert float(updates[3]) > 0  # updates/s
    end_to_end = next(line.split() for line in out.splitlines() if line.startswith("torch_pendulum"))
    assert end_to_end[1] == "eager" and float(end_to_end[2]) > 0


def test_an_unknown_variant_is_refused():
    with pytest.raises(ConfigError, match="unknown variant 'fast'"):
        drqv2.benchmark_updates(["fast"])
