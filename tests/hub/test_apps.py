"""The hub's one-line training apps: the published configs they resolve, ``rlte train``'s overrides, one-line
errors for unknown env ids, and tiny end-to-end runs whose checkpoints load."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import pytest
import yaml

import rlte_plugins
from rlte_plugins.hub.apps import APPS
from rlte_plugins.training.config import load_config, normalize_config


def app_main(name: str) -> Any:
    return importlib.import_module(f"rlte_plugins.hub.apps.{name}").main


def printed_config(capsys: pytest.CaptureFixture[str], app: str, *argv: str) -> dict[str, Any]:
    assert app_main(app)([*argv, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


PUBLISHED = {
    "ppo_procgen": (
        "starpilot",
        {"agent": {"name": "ppo", "num_steps": 256, "epochs": 3, "num_minibatches": 8, "lr": 5e-4,
                   "anneal_lr": False, "gamma": 0.999, "gae_lambda": 0.95, "clip_epsilon": 0.2, "entropy_coef": 0.01},
         "env": {"name": "procgen", "game": "starpilot", "num_envs": 64, "num_levels": 200,
                 "distribution_mode": "easy"},
         "encoder": {"name": "espeholt_resnet"},
         "train": {"total_frames": 25_000_000}},
    ),
    "ppo_atari": (
        "ALE/Pong-v5",
        {"agent": {"name": "ppo", "num_steps": 128, "epochs": 4, "num_minibatches": 4, "lr": 2.5e-4,
                   "anneal_lr": True, "gamma": 0.99, "gae_lambda": 0.95, "clip_epsilon": 0.1, "entropy_coef": 0.01,
                   "value_coef": 0.25, "max_grad_norm": 0.5},
         "env": {"name": "atari", "game": "Pong", "num_envs": 8, "frame_stack": 4},
         "encoder": {"name": "mnih_cnn", "features": 512},
         "train": {"total_frames": 10_000_000}},
    ),
    "drqv2_dmc": (
        "walker_walk",  # a one-step task with batches of 512 and the easy noise schedule
        {"agent": {"name": "drqv2", "lr": 1e-4, "utd_ratio": 0.5, "tau": 0.01},
         "env": {"name": "dmc", "task": "walker_walk", "from_pixels": True, "action_repeat": 2},
         "distribution": {"std": "linear(1.0, 0.1, 100000)", "clip": 0.3},
         "storage": {"n": 1, "batch_size": 512, "capacity": 50_000},
         "train": {"total_frames": 50_000}},
    ),
    "sac_dmc_state": (
        "cheetah_run",
        {"agent": {"name": "sac", "lr": 3e-4, "gamma": 0.99, "tau": 0.005, "learning_starts": 5000, "utd_ratio": 1.0},
         "env": {"name": "dmc", "task": "cheetah_run", "num_envs": 1},
         "policy": {"hidden": [256, 256], "shared_encoder": False},
         "storage": {"name": "replay", "capacity": 1_000_000, "batch_size": 256},
         "train": {"total_frames": 1_000_000}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("app", APPS)
def test_print_config_gives_the_published_values(app: str, capsys: pytest.CaptureFixture[str]) -> None:
    env_id, expected = PUBLISHED[app]
    config = printed_config(capsys, app, "--env-id", env_id)
    for section, values in expected.items():
        assert {key: config[section][key] for key in values} == values, section
    assert config == normalize_config(config)  # what rlte train runs again from the printed YAML


def test_drqv2_dmc_is_the_packaged_config(capsys: pytest.CaptureFixture[str]) -> None:
    packaged = normalize_config(load_config("drqv2_dmc")[0])
    assert printed_config(capsys, "drqv2_dmc", "--env-id", "cartpole_swingup") == packaged


def test_ppo_procgen_is_the_benchmarks_ppo(capsys: pytest.CaptureFixture[str]) -> None:
    from rlte_plugins.agents.drac import PROCGEN_DEFAULTS

    config = printed_config(capsys, "ppo_procgen")
    settings = {**config["agent"], "num_envs": config["env"]["num_envs"]}
    assert {key: settings[key] for key in PROCGEN_DEFAULTS} == PROCGEN_DEFAULTS


def test_flags_and_set_override_the_published_config(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--set", "agent.lr=1e-3", "--set", "train.seed=5", "--seed", "3", "--total-frames", "4096",
            "--device", "meta", "--logger", "none", "--threads", "2", "--output", "run", "--no-progress"]  # fmt: skip
    config = printed_config(capsys, "ppo_atari", *argv)
    assert config["agent"]["lr"] == 1e-3
    assert {k: config["train"][k] for k in ("seed", "total_frames", "device", "logger", "threads", "output")} == {
        "seed": 3, "total_frames": 4096, "device": "meta", "logger": "none", "threads": 2, "output": "run"
    }  # fmt: skip
    assert config["train"]["progress"] is False
    # drqv2's buffer holds at most the run's agent steps
    assert printed_config(capsys, "drqv2_dmc", "--total-frames", "3000")["storage"]["capacity"] == 3000


@pytest.mark.parametrize(
    ("app", "env_id", "message"),
    [
        ("ppo_procgen", "bigfsh", "unknown Procgen game 'bigfsh' (games: bigfish,"),
        ("ppo_atari", "Breakou", "did you mean Breakout?"),
        ("drqv2_dmc", "humanoid_run", "not 'humanoid_run'"),
        ("sac_dmc_state", "cheetah_rn", "did you mean 'cheetah_run'?"),
    ],
)
def test_an_unknown_env_id_is_one_line_and_exit_2(
    app: str, env_id: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert app_main(app)(["--env-id", env_id, "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and message in captured.err and captured.err.count("\n") == 1


def test_bad_set_and_usage_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert app_main("ppo_procgen")(["--set", "train.nope=1", "--print-config"]) == 2
    assert "unknown key 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        app_main("ppo_procgen")(["--total-frames", "0"])
    assert exc.value.code == 2


def test_python_m_exits_with_the_status() -> None:
    done = subprocess.run([sys.executable, "-m", "rlte_plugins.hub.apps.ppo_procgen", "--env-id", "nope"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: ppo_procgen: unknown Procgen game 'nope'")


TINY_RUNS = {
    "ppo_procgen": ["--env-id", "bigfish", "--total-frames", "64", "--set", "env.num_envs=2",
                    "--set", "agent.num_steps=16", "--set", "agent.num_minibatches=2"],
    "sac_dmc_state": ["--env-id", "cartpole_swingup", "--total-frames", "96", "--set", "agent.learning_starts=64",
                      "--set", "agent.random_frames=64", "--set", "storage.capacity=1000",
                      "--set", "storage.batch_size=16"],
}  # fmt: skip


@pytest.mark.parametrize("app", TINY_RUNS)
def test_a_tiny_run_saves_a_loadable_agent(app: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "run"
    argv = [*TINY_RUNS[app], "--set", "train.eval_episodes=0", "--threads", "1", "--logger", "none",
            "--no-progress", "--output", str(output)]  # fmt: skip
    assert app_main(app)(argv) == 0
    assert f"run directory: {output}" in capsys.readouterr().out
    expected = printed_config(capsys, app, *argv)
    assert yaml.safe_load((output / "config.yaml").read_text()) == expected  # what rlte train --resume reads
    agent = rlte_plugins.load_agent(output / "checkpoint.pt")
    try:
        assert agent.name == expected["agent"]["name"]
        assert agent.frames == expected["train"]["total_frames"]
    finally:
        agent.close()
