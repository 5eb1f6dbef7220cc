"""The agent contract: every registered agent rebuilt from its checkpoint alone, the acting module in TorchRL
rollouts, evaluation that leaves training alone, one clear error per bad argument, logs under CleanRL's names,
intrinsic rewards from Python and YAML, the non-finite guard, devices and collection strategies."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import random
import re
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import GymEnv, SerialEnv, Transform, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

import rlte_plugins
from rlte_plugins.agents.a2c import A2C
from rlte_plugins.agents.base import load_agent
from rlte_plugins.agents.ppo import PPO
from rlte_plugins.errors import CheckpointError, ComponentArgumentError, ConfigError, NonFiniteError
from rlte_plugins.registry import PluginInfo, Registry

AGENTS = [spec.name for spec in rlte_plugins.list_components("agent")]
#: small values for whichever of these an agent takes (off-policy agents learn from frame 32 on)
TINY = {"num_envs": 4, "num_steps": 8, "num_minibatches": 2, "epochs": 1, "learning_starts": 32}
BATCH = 4 * 8

#: what an on-policy run logs (CleanRL's names), with an evaluation every iteration
PPO_KEYS = {
    "charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/learning_rate",
    "eval/episodic_return", "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
    "losses/old_approx_kl", "losses/clipfrac", "losses/explained_variance",
}  # fmt: skip
A2C_KEYS = PPO_KEYS - {"losses/approx_kl", "losses/old_approx_kl", "losses/clipfrac"}


#: a small env each kind of agent fits: continuous-action agents a pendulum, pixel agents a rendered point mass
PIXELS = {"name": "torch_point_mass", "from_pixels": True, "image_size": 16, "frame_stack": 3}


def env_for(name: str) -> Any:
    tags = rlte_plugins.get_spec("agent", name).tags
    if "pixels" in tags:
        return PIXELS
    return "torch_pendulum" if "continuous" in tags and "discrete" not in tags else "torch_cartpole"


def tiny(name: str = "ppo", env=None, **kwargs):
    """Agent ``name`` with the :data:`TINY` values it takes (presets included: their signature is their config),
    on :func:`env_for` its kind; off-policy agents get a replay of their storage's kind that fits 32 frames, and
    pixel agents a narrow network."""
    accepted = inspect.signature(rlte_plugins.get_spec("agent", name).load()).parameters
    options = {k: v for k, v in TINY.items() if k in accepted}
    agent = rlte_plugins.make("agent", name, env=env or env_for(name), seed=0, **{**options, **kwargs})
    storage = agent.slots.get("storage")
    if isinstance(storage, dict) and storage.get("name", "").endswith("replay"):
        agent.set(storage={**storage, "capacity": 1_000, "batch_size": 16})
    tags = rlte_plugins.get_spec("agent", name).tags
    if "pixels" in tags and "on-policy" in tags:
        agent.set(encoder={"name": "tassa_cnn", "features": 32, "channels": 8})
    elif "pixels" in tags:
        agent.set(encoder={"name": "tassa_cnn", "features": None, "channels": 8},
                  policy={"name": "pixel_actor_critic", "hidden": [32], "feature_dim": 16})  # fmt: skip
    return agent


def cartpole(num_envs: int = 3, seed: int = 5):
    return rlte_plugins.make("env", "torch_cartpole", num_envs=num_envs, seed=seed)


def flat_parameters(agent) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in agent.parameters()])


def deterministic_rollout(agent, steps: int = 20) -> TensorDictBase:
    env = agent.wrap_env(agent.make_env_like(3, 5))
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        return env.rollout(steps, agent.actor, break_when_any_done=False)


# -- checkpoints --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AGENTS)
def test_load_agent_rebuilds_every_registered_agent(name, tmp_path):
    agent = tiny(name)
    agent.train(3 * BATCH, progress=False)
    path = agent.save(tmp_path / f"{name}.pt")
    loaded = load_agent(path)  # from the file alone: no env, no components, no class given
    assert type(loaded) is type(agent) and loaded.preset == agent.preset
    assert (loaded.frames, loaded.iterations) == (agent.frames, agent.iterations) == (3 * BATCH, 3)
    trained, restored = dict(agent.actor.named_parameters()), dict(loaded.actor.named_parameters())
    untrained = dict(tiny(name).actor.named_parameters())
    assert any(not torch.equal(trained[k], untrained[k]) for k in trained)  # training moved what is compared
    assert trained.keys() == restored.keys()
    assert [k for k in trained if not torch.equal(trained[k], restored[k])] == []
    # and what the actor carries beside its weights (normalisation statistics, exploration rates)
    buffers, restored_buffers = dict(agent.actor.named_buffers()), dict(loaded.actor.named_buffers())
    assert buffers.keys() == restored_buffers.keys()
    assert [k for k in buffers if not torch.equal(buffers[k], restored_buffers[k])] == []
    # the same actions (and every output and recurrent state) from the same start states
    assert (deterministic_rollout(agent) == deterministic_rollout(loaded)).all()


def test_a_checkpoint_of_an_agent_no_plugin_registers_names_it(tmp_path):
    path = tiny().save(tmp_path / "agent.pt")
    data = torch.load(path, weights_only=True)
    data["agent"] = "nope"
    torch.save(data, path)
    for load in (load_agent, PPO.load):
        with pytest.raises(CheckpointError, match="holds agent 'nope', which no installed plugin registers"):
            load(path)


# -- acting -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ppo", "ppo_lstm"])
def test_the_actor_runs_in_a_torchrl_rollout(name):
    agent = tiny(name)
    actor = agent.actor
    assert isinstance(actor, TensorDictModuleBase) and "action" in actor.out_keys
    read = [k if isinstance(k, str) else k[-1] for k in actor.in_keys]
    assert "observation" in read and not any(k.startswith("episode_") for k in read)
    env = cartpole()
    wrapped = agent.wrap_env(env)
    # only the recurrent policy needs transforms (episode starts, the state primer) on the env it runs on
    assert (wrapped is env) == (name == "ppo")
    td = wrapped.rollout(30, actor, break_when_any_done=False)
    assert td.batch_size == (3, 30) and env.action_spec.is_in(td["action"][:, 0])
    if name == "ppo_lstm":
        state = td["next", "recurrent_state_h"]
        assert state.abs().sum() > 0 and not torch.equal(state[:, 0], state[:, -1])  # the state is carried on


def test_calling_the_agent_acts_and_deterministic_exploration_takes_the_mode():
    agent = tiny()
    td = cartpole(num_envs=256, seed=0).reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = agent(td.clone())
        again = agent.actor(td.clone())
    assert torch.equal(out["action"], out["logits"].argmax(-1))
    assert torch.equal(out["action"], again["action"])
    with set_exploration_type(ExplorationType.RANDOM):
        sampled = agent(td.clone())["action"]
    assert not torch.equal(sampled, out["action"])  # 256 draws from a near-uniform policy are not all the mode


def test_evaluate_changes_nothing_of_the_training_run():
    def run(evaluate: bool) -> torch.Tensor:
        agent = tiny()
        agent.train(BATCH, progress=False)
        if evaluate:
            params, frames, iterations = flat_parameters(agent), agent.frames, agent.iterations
            generators = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
            assert len(agent.evaluate(episodes=3, deterministic=False)) == 3
            assert len(agent.evaluate(episodes=3)) == 3
            assert torch.equal(flat_parameters(agent), params)
            assert (agent.frames, agent.iterations) == (frames, iterations)
            assert torch.equal(torch.get_rng_state(), generators[0])
            assert np.array_equal(np.random.get_state()[1], generators[1]) and random.getstate() == generators[2]
            assert agent.actor.training  # evaluation's eval mode is put back
        agent.train(3 * BATCH, progress=False)
        return flat_parameters(agent)

    # and the rest of the run is the run that never evaluated
    assert torch.equal(run(evaluate=True), run(evaluate=False))


# -- bad input: one clear error each ------------------------------------------------------------------------
def test_train_without_frames_says_what_it_needs():
    with pytest.raises(ComponentArgumentError, match=r"agent 'ppo'.train\(\) needs total_frames"):
        tiny().train()


def test_set_with_an_unknown_slot_lists_the_accepted_ones():
    # PPO's rollout buffer belongs to its collection: storage is not one of its slots
    with pytest.raises(
        ComponentArgumentError,
        match=re.escape("agent 'ppo'.set() got unknown component 'storage' (accepted: encoder, policy, distribution, "
                        "reward)"),
    ):  # fmt: skip
        tiny().set(storage="rollout")


@pytest.mark.parametrize(
    ("cls", "kwargs", "fragment"),
    [
        (PPO, {"num_env": 4}, "agent 'ppo' got unexpected argument 'num_env'; did you mean 'num_envs'?"),
        (A2C, {"gae_lamda": 0.9}, "agent 'a2c' got unexpected argument 'gae_lamda'; did you mean 'gae_lambda'?"),
        (PPO, {"num_envs": 2.0}, "agent 'ppo': num_envs must be int, got 2.0"),
        (PPO, {"normalize_advantage": 1}, "agent 'ppo': normalize_advantage must be bool, got 1"),
        (PPO, {"epochs": True}, "agent 'ppo': epochs must be int, got True"),
        (A2C, {"lr": [1e-3]}, "agent 'a2c': lr must be int or float or str, got [0.001]"),
        (PPO, {"lr": "fast"}, "agent 'ppo': lr: a schedule is a number or 'linear(start, end, steps)', got 'fast'"),
        (PPO, {"gamma": 1.5}, "agent 'ppo': gamma must be > 0.0 and <= 1.0, got 1.5"),
        (A2C, {"gamma": 0}, "agent 'a2c': gamma must be > 0.0 and <= 1.0, got 0"),
        (PPO, {"num_envs": 0}, "agent 'ppo': num_envs must be >= 1, got 0"),
        (PPO, {"clip_epsilon": -0.1}, "agent 'ppo': clip_epsilon must be >= 0.0, got -0.1"),
        (PPO, {"critic_loss": "l3"}, "agent 'ppo': critic_loss must be one of 'l2', 'l1', 'smooth_l1', got 'l3'"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_config_errors_name_the_agent_and_the_argument(cls, kwargs, fragment):
    with pytest.raises(ComponentArgumentError, match=re.escape(fragment)) as info:
        cls("torch_cartpole", **kwargs)
    assert "\n" not in str(info.value)


def test_the_signature_is_the_config_and_make_checks_it():
    sig = inspect.signature(PPO)
    assert list(sig.parameters)[:3] == ["env", "device", "seed"]
    assert list(sig.parameters)[3:] == [f.name for f in dataclasses.fields(PPO.Config)]
    assert sig.parameters["clip_epsilon"].default == 0.2
    assert sig.parameters["clip_epsilon"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["env"].default is inspect.Parameter.empty
    # a preset's signature carries its own defaults
    fast = inspect.signature(rlte_plugins.get_spec("agent", "fast_ppo").load()).parameters
    assert (fast["env"].default, fast["num_envs"].default, fast["gamma"].default) == ("dummy_discrete", 8192, 0.95)
    with pytest.raises(ComponentArgumentError, match="agent 'ppo' .*unexpected argument 'num_env'; did you mean "
                       "'num_envs'"):  # fmt: skip
        rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_env=4)
    with pytest.raises(ComponentArgumentError, match="agent 'ppo' .*missing required argument 'env'"):
        rlte_plugins.make("agent", "ppo")


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_rlte_info_prints_every_config_field_with_its_help(name, capsys):
    from rlte_plugins.cli import main

    assert main(["info", "agent", name]) == 0
    out = capsys.readouterr().out
    cls = rlte_plugins.get_spec("agent", name).load()
    for field in dataclasses.fields(cls.Config):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        line = rf"^  {field.name} +{re.escape(field.metadata['help'])} \(default {re.escape(repr(default))}\)$"
        assert re.search(line, out, re.M), field.name


# -- devices and collection ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cuda", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        pytest.param("cuda:7", marks=pytest.mark.skipif(torch.cuda.device_count() > 7, reason="cuda:7 exists")),
    ],
)
def test_a_device_this_machine_lacks_is_one_error_at_construction(device):
    with pytest.raises(ComponentArgumentError, match=rf"agent 'ppo': device '{device}' (is not available|does not "
                       "exist)") as info:  # fmt: skip
        PPO("torch_cartpole", device=device)
    assert "\n" not in str(info.value)


def plain_torchrl_cartpole() -> SerialEnv:
    """CartPole as TorchRL makes it: not an rlte env (no exact resets, no episode statistics)."""
    return SerialEnv(2, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True))


def test_direct_collection_is_refused_on_an_env_rlte_did_not_make():
    env = plain_torchrl_cartpole()
    with pytest.raises(ComponentArgumentError, match="collection='direct' steps rlte envs .* use collection='torchrl'"):
        PPO(env, collection="direct", **{k: TINY[k] for k in ("num_steps", "num_minibatches", "epochs")}).build()


def test_torchrl_collection_trains_the_same_agent_as_direct_collection():
    """On a gymnasium env (exact resets either way), the two strategies gather the same batches, so the same seed
    trains the same weights; a plain TorchRL env trains through TorchRL's collector."""
    trained = {}
    for collection, used in (("direct", "DirectCollection"), ("torchrl", "TorchRLCollection")):
        agent = tiny(env="CartPole-v1", collection=collection)
        stats = agent.train(3 * BATCH, progress=False)
        assert type(agent.collection).__name__ == used
        assert {"charts/episodic_return", "losses/policy_loss"} <= set(stats)
        trained[collection] = flat_parameters(agent)
    assert torch.equal(trained["direct"], trained["torchrl"])
    agent = PPO(plain_torchrl_cartpole(), **{k: TINY[k] for k in ("num_steps", "num_minibatches", "epochs")})
    assert agent.train(2 * 2 * 8, progress=False)["frames"] == 32
    assert type(agent.collection).__name__ == "TorchRLCollection"


# -- logs ---------------------------------------------------------------------------------------------------
def train_with_logger(name: str, logger: str, tmp_path: Path):
    agent = tiny(name)
    agent.train(4 * BATCH, logger=logger, checkpoint=tmp_path / "agent.pt", eval_every=1, eval_episodes=2,
                progress=False)  # fmt: skip
    return agent


@pytest.mark.parametrize(("name", "keys"), [("ppo", PPO_KEYS), ("a2c", A2C_KEYS)])
def test_csv_logs_carry_exactly_cleanrls_keys(name, keys, tmp_path):
    agent = train_with_logger(name, "csv", tmp_path)
    root = tmp_path / name / "scalars"  # beside the checkpoint, under the agent's name
    logged = {p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.csv")}
    assert logged == keys
    rows = {key: [line.split(",") for line in (root / f"{key}.csv").read_text().split()] for key in keys}
    assert [int(step) for step, _ in rows["charts/SPS"]] == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH]  # frames
    # CartPole pays 1 a step: the logged return of each batch is its episodes' mean length
    assert rows["charts/episodic_return"] == rows["charts/episodic_length"]
    assert [float(v) for _, v in rows["losses/value_loss"]] == [h["losses/value_loss"] for h in agent.history]


@pytest.mark.parametrize(("name", "keys"), [("ppo", PPO_KEYS), ("a2c", A2C_KEYS)])
def test_tensorboard_logs_carry_exactly_cleanrls_keys(name, keys, tmp_path):
    if importlib.util.find_spec("tensorboard") is None:
        # the logger is an extra: without it, one error that names the extra to install
        with pytest.raises(ConfigError, match=re.escape("pip install 'rlte-plugins[tensorboard]'")):
            train_with_logger(name, "tensorboard", tmp_path)
        return
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_with_logger(name, "tensorboard", tmp_path)
    (events,) = {p.parent for p in tmp_path.rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    assert set(accumulator.Tags()["scalars"]) == keys
    assert [e.step for e in accumulator.Scalars("charts/SPS")] == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH]


# -- intrinsic rewards --------------------------------------------------------------------------------------
class ConstantBonus(TensorDictModuleBase):
    """A bonus of ``value`` for every observation (counts the batches it is shown)."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__()
        self.in_keys, self.out_keys = ["observation"], ["intrinsic_reward"]
        self.value, self.updates = value, 0

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get("observation")
        return tensordict.set("intrinsic_reward", torch.full((*obs.shape[:-1], 1), self.value, device=obs.device))

    def update(self, tensordict: TensorDictBase) -> None:
        self.updates += 1


def test_an_intrinsic_reward_is_logged_apart_from_the_episodic_return():
    # batches of 4 envs x 32 steps: random CartPole episodes (about 22 steps) end in the first one
    plain = tiny(num_steps=32)
    plain.train(3 * 128, progress=False)
    bonus = ConstantBonus(0.5)
    agent = tiny(num_steps=32).set(reward=bonus)
    agent.train(3 * 128, progress=False)
    assert bonus.updates == 3
    assert [h["charts/intrinsic_reward"] for h in agent.history] == [0.5] * 3
    assert all("charts/intrinsic_reward" not in h for h in plain.history)
    # the episodic return stays the env's: CartPole pays 1 a step, so the return is the length, bonus or not
    ended = [h for h in agent.history if "charts/episodic_return" in h]
    assert ended and all(h["charts/episodic_return"] == h["charts/episodic_length"] for h in ended)
    # the same episodes were collected first, and the bonus reached what the update learnt from
    assert agent.history[0]["charts/episodic_return"] == plain.history[0]["charts/episodic_return"]
    assert not torch.equal(flat_parameters(agent), flat_parameters(plain))


@pytest.fixture()
def registered_bonus(monkeypatch):
    """The installed plugins plus one registering ConstantBonus as reward 'constant_bonus', for one test."""

    def register_rewards(register):
        register("constant_bonus", ConstantBonus)

    plugin = types.ModuleType("bonus_plugin")
    plugin.register_rewards = rlte_plugins.hookimpl(register_rewards)
    registry = Registry.from_entry_points()
    registry.add_plugin(plugin, PluginInfo("bonus_plugin", "bonus-plugin", "0", "bonus_plugin"))
    monkeypatch.setattr(rlte_plugins.registry, "get_registry", lambda: registry)
    return registry


def test_a_reward_section_in_a_yaml_config_trains_with_it(registered_bonus, tmp_path):
    from rlte_plugins.training.config import load_config, normalize_config
    from rlte_plugins.training.runner import run

    output = tmp_path / "run"
    path = tmp_path / "bonus.yaml"
    path.write_text(
        "agent: {name: ppo, num_steps: 8, num_minibatches: 2, epochs: 1}\n"
        "env: {name: torch_cartpole, num_envs: 4}\n"
        "reward: {name: constant_bonus, value: 0.25}\n"
        f"train: {{total_frames: {3 * BATCH}, eval_episodes: 2, logger: csv, output: '{output}', progress: false}}\n"
    )
    summary = run(normalize_config(*load_config(str(path))), name="bonus")
    assert summary["frames"] == 3 * BATCH
    logged = (output / "bonus" / "scalars" / "charts" / "intrinsic_reward.csv").read_text().split()
    assert [float(line.split(",")[1]) for line in logged] == [0.25] * 3
    # the checkpoint names the reward with its arguments: the run continues with it
    loaded = load_agent(output / "checkpoint.pt")
    assert isinstance(loaded.components["reward"], ConstantBonus) and loaded.components["reward"].value == 0.25


# -- the non-finite guard -----------------------------------------------------------------------------------
class NaNRewardAfter(Transform):
    """Rewards turn NaN after ``steps`` steps of the env."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps, self.taken = steps, 0

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        self.taken += 1
        if self.taken > self.steps:
            reward = next_tensordict.get("reward")
            next_tensordict.set("reward", torch.full_like(reward, float("nan")))
        return next_tensordict


def test_a_nan_reward_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "agent.pt"
    tiny().train(2 * BATCH, checkpoint=path, progress=False)
    good = path.read_bytes()
    env = TransformedEnv(cartpole(num_envs=4, seed=0), NaNRewardAfter(steps=2 * TINY["num_steps"]))
    agent = PPO(env, **{k: TINY[k] for k in ("num_steps", "num_minibatches", "epochs")})
    message = rf"non-finite reward \('next', 'reward'\) in the batch ending at frame {3 * BATCH} .*nothing was saved"
    with pytest.raises(NonFiniteError, match=message):
        agent.train(10 * BATCH, checkpoint=path, progress=False)
    assert agent.frames == 3 * BATCH
    assert path.read_bytes() == good  # the earlier good run's file, untouched
    # within one run, the checkpoints written before the bad batch stay as they were, with finite weights
    env = TransformedEnv(cartpole(num_envs=4, seed=0), NaNRewardAfter(steps=2 * TINY["num_steps"]))
    agent = PPO(env, **{k: TINY[k] for k in ("num_steps", "num_minibatches", "epochs")})
    with pytest.raises(NonFiniteError, match=rf"the last good checkpoint is .* \(frame {2 * BATCH}\)"):
        agent.train(10 * BATCH, checkpoint=path, checkpoint_every=BATCH, progress=False)
    saved = load_agent(path, env=cartpole(num_envs=4, seed=0))
    assert saved.frames == 2 * BATCH and torch.isfinite(flat_parameters(saved)).all()


def test_a_second_train_call_goes_on_with_the_same_collector():
    # rebuilding TorchRL's Collector at every train() call reset every env mid-episode
    agent = rlte_plugins.make(
        "agent", "ppo", env="torch_cartpole", num_envs=2, num_steps=8, num_minibatches=1, collection="torchrl"
    )
    agent.train(16, progress=False)
    collector = agent.collection._collector
    agent.train(32, progress=False)
    assert collector is not None and agent.collection._collector is collector and agent.frames == 32
    agent.close()
    assert agent.collection._collector is None
