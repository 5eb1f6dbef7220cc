"""The Python recipes and the packaged YAML recipes describe the same runs; every packaged recipe builds its agent;
the off-policy recipes and their YAML twins run end to end on tiny budgets (torch-native envs, one thread)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from rlte_plugins.agents.drq import drqv2_settings
from rlte_plugins.cli import main
from rlte_plugins.envs.backends import BACKENDS, check
from rlte_plugins.training.config import load_config, normalize_config, recipe_names
from rlte_plugins.training.runner import build_agent

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CONFIGS = Path(__file__).resolve().parents[1] / "rlte_plugins" / "configs"


def load_recipe(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_recipe", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_python_recipe_matches_packaged_config():
    args = dataclasses.asdict(load_recipe("ppo_cartpole").Args())
    config = normalize_config(load_config("ppo_cartpole")[0])
    for key, value in config["agent"].items():
        if key not in ("name", "anneal_lr", "anneal_clip"):
            assert args[key] == value, key
    assert config["agent"]["anneal_lr"] and config["agent"]["anneal_clip"]
    assert args["env_id"] == config["env"]["env_id"] and args["num_envs"] == config["env"]["num_envs"]
    assert list(args["num_cells"]) == config["encoder"]["num_cells"]
    assert args["activation"] == config["encoder"]["activation"]
    for key in ("total_frames", "seed", "device", "eval_episodes", "logger"):
        assert args[key] == config["train"][key], key


@pytest.mark.parametrize("name", recipe_names())
def test_every_packaged_recipe_builds_its_agent(name):
    # a recipe written for an older agent (a removed option, a slot the agent no longer has) fails here, not
    # minutes into `rlte train`
    config = normalize_config(*load_config(name))
    if config["env"]["name"] == "dmc" and config["env"].get("from_pixels"):
        works, detail = check("dmc-egl")
        if not works:
            pytest.skip(f"DeepMind Control pixels do not render here ({detail}); fix: {BACKENDS['dmc-egl'].fix()}")
    agent = build_agent(config).build()
    for key, value in config["agent"].items():
        if key != "name":
            assert getattr(agent.config, key) == value, key
    agent.close()


def test_drqv2_recipe_matches_packaged_config():
    args = load_recipe("drqv2_dmc").Args()
    config = normalize_config(load_config("drqv2_dmc")[0])
    task = drqv2_settings(args.task)
    steps = args.frames // args.action_repeat
    agent, env, train = config["agent"], config["env"], config["train"]
    assert (env["name"], env["task"]) == (args.env, args.task) and env["from_pixels"]
    for key in ("action_repeat", "frame_stack", "image_size"):
        assert env[key] == getattr(args, key), key
    assert agent["learning_starts"] == agent["random_frames"] == args.seed_frames // args.action_repeat
    assert agent["utd_ratio"] == 1 / args.update_every
    assert (agent["lr"], agent["gamma"], agent["tau"]) == (args.lr, args.gamma, args.tau)
    assert config["encoder"] == {"name": "tassa_cnn", "features": None}
    assert config["policy"]["feature_dim"] == args.feature_dim and config["policy"]["hidden"] == [args.hidden_dim] * 2
    assert config["distribution"] == {**task["distribution"], "clip": args.std_clip}
    assert config["storage"] == {**task["storage"], "gamma": args.gamma, "capacity": min(args.capacity, steps)}
    assert config["augmentation"] == {"name": "random_shift", "pad": args.pad}
    assert train["total_frames"] == steps and train["eval_every"] == args.eval_every // args.action_repeat
    assert (train["seed"], train["device"], train["eval_episodes"]) == (args.seed, args.device, args.eval_episodes)


def test_sac_recipe_matches_packaged_config():
    args = load_recipe("sac_pendulum").Args()
    config = normalize_config(load_config("sac_pendulum")[0])
    agent = config["agent"]
    assert agent["learning_starts"] == agent["random_frames"] == args.learning_starts
    for key in ("utd_ratio", "lr", "gamma", "tau", "alpha_init"):
        assert agent[key] == getattr(args, key), key
    assert config["env"] == {"name": args.env} and config["encoder"] == {"name": "identity"}
    assert config["policy"]["hidden"] == [args.hidden] * 2 and config["distribution"] == {"name": "squashed_normal"}
    assert config["storage"] == {"name": "replay", "capacity": args.capacity, "batch_size": args.batch_size}
    assert config["train"]["total_frames"] == args.frames and config["train"]["eval_episodes"] == args.eval_episodes


def test_recipes_parse_their_flags_and_optional_values():
    args = load_recipe("drqv2_dmc").parse_args(["--batch-size", "16", "--std-schedule", "linear(1, 0.1, 10)"])
    assert (args.batch_size, args.std_schedule, args.nstep) == (16, "linear(1, 0.1, 10)", None)
    assert load_recipe("sac_pendulum").parse_args(["--utd-ratio", "0.5"]).utd_ratio == 0.5


def _rows(run: Path, key: str) -> list[str]:
    return (run / key).read_text().splitlines()


def test_drqv2_recipe_trains_on_torch_native_pixels_with_evaluations(tmp_path, one_thread):
    module = load_recipe("drqv2_dmc")
    args = module.Args(env="torch_pendulum", task="pendulum_swingup", frames=200, seed_frames=80, batch_size=16,
                       image_size=32, hidden_dim=32, eval_every=100, eval_episodes=1, output=str(tmp_path))  # fmt: skip
    final = module.main(args)
    assert math.isfinite(final) and final < 0
    logs = tmp_path / "drqv2_dmc" / "scalars"
    assert len(_rows(logs, "eval/episodic_return.csv")) == 2  # at 100 and 200 frames: 50 and 100 agent steps
    assert _rows(logs, "charts/episodic_return.csv") and _rows(logs, "losses/critic_loss.csv")


def test_sac_recipe_trains_and_evaluates_at_the_end(tmp_path, one_thread):
    module = load_recipe("sac_pendulum")
    args = module.Args(frames=300, learning_starts=100, batch_size=32, hidden=32, eval_episodes=1,
                       output=str(tmp_path))  # fmt: skip
    final = module.main(args)
    assert math.isfinite(final) and (tmp_path / "checkpoint.pt").is_file()
    logs = tmp_path / "sac_pendulum" / "scalars"
    assert _rows(logs, "eval/episodic_return.csv") and _rows(logs, "charts/episodic_return.csv")


PIXEL_PENDULUM = "env={name: torch_pendulum, from_pixels: true, action_repeat: 2, frame_stack: 3, image_size: 32}"


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("drqv2_dmc", [PIXEL_PENDULUM, "storage.batch_size=16", "storage.capacity=100", "agent.learning_starts=40",
                       "agent.random_frames=40", "policy.hidden=[32]", "train.eval_every=50"]),
        ("sac_pendulum", ["storage.batch_size=32", "agent.learning_starts=50", "agent.random_frames=50",
                          "policy.hidden=[32]"]),
    ],
)  # fmt: skip
def test_rlte_train_runs_the_yaml_recipe(tmp_path, one_thread, name, overrides):
    sets = [arg for item in [*overrides, "train.eval_episodes=1"] for arg in ("--set", item)]
    argv = ["train", "-f", str(CONFIGS / f"{name}.yaml"), *sets, "--total-frames", "100", "--threads", "1",
            "--no-progress", "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 100 and len(summary["eval_returns"]) == 1


def test_ppo_rnd_recipe_matches_its_config_and_runs(tmp_path, one_thread):
    recipe = load_recipe("ppo_rnd_minigrid")
    args = dataclasses.asdict(recipe.Args())
    config = normalize_config(load_config("ppo_rnd_minigrid")[0])
    for key, value in config["agent"].items():
        if key != "name":
            assert args[key] == value, key
    assert args["task"] == config["env"]["task"] and args["num_envs"] == config["env"]["num_envs"]
    reward = config["reward"]
    assert (args["rnd_lr"], args["update_proportion"]) == (reward["lr"], reward["update_proportion"])
    assert (args["beta"], args["kappa"]) == (reward["beta"], reward["kappa"])
    assert args["frames"] == config["train"]["total_frames"]
    success = recipe.main(recipe.parse_args(["--frames", "256", "--num-envs", "2", "--num-steps", "32",
                                             "--eval-episodes", "1", "--task", "Empty-5x5", "--logger", "none",
                                             "--output", str(tmp_path / "run")]))  # fmt: skip
    assert 0.0 <= success <= 1.0 and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_ppg_recipe_matches_its_config_and_runs(tmp_path, one_thread):
    pytest.importorskip("envpool")
    recipe = load_recipe("ppg_procgen")
    args = dataclasses.asdict(recipe.Args())
    config = normalize_config(load_config("ppg_procgen")[0])
    for key, value in config["agent"].items():
        if key != "name":
            assert args[key] == value, key
    for key in ("game", "num_envs", "num_levels", "distribution_mode"):
        assert args[key] == config["env"][key], key
    assert list(args["channels"]) == config["encoder"]["channels"] and args["features"] == config["encoder"]["features"]
    gain = args["head_init_gain"]
    assert (config["policy"]["value_init_gain"], config["distribution"]["init_gain"]) == (gain, gain)
    assert args["frames"] == config["train"]["total_frames"]
    train, test = recipe.main(recipe.parse_args([
        "--frames", "128", "--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2", "--n-pi", "2",
        "--aux-num-minibatches", "2", "--channels", "4", "8", "--features", "16", "--eval-episodes", "1",
        "--logger", "none", "--output", str(tmp_path / "run"),
    ]))  # fmt: skip
    assert math.isfinite(train) and math.isfinite(test) and (tmp_path / "run" / "checkpoint.pt").is_file()
