"""The off-policy agents on their base: update-to-data ratio, seed frames, update groups, augmentation inside the
update, pre-training, exact resume, and a clear error for each kind of bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModuleBase

import rlte_plugins
from rlte_plugins.agents.dqn import DQN
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

SMALL = {"name": "replay", "capacity": 2_000, "batch_size": 32, "seed": 0}
PIXELS = {"name": "torch_pendulum", "from_pixels": True, "image_size": 16, "frame_stack": 3}
SMALL_PIXEL_POLICY = {"name": "pixel_actor_critic", "hidden": [32], "feature_dim": 16}
NARROW = {"name": "tassa_cnn", "features": None, "channels": 8}


def _agent(name, env="torch_pendulum", storage=SMALL, **kwargs):
    options = {"learning_starts": 32, "random_frames": 32, "seed": 0, **kwargs}
    agent = rlte_plugins.make("agent", name, env=env, **options)
    if name in ("ddpg", "td3", "sac", "sac_discrete"):
        agent.set(policy={**dict(agent.slots["policy"]), "hidden": [32, 32]})
    return agent.set(storage=storage)


def _pixel_agent(name, **kwargs):
    storage = {"name": "nstep_replay", "n": 3, "capacity": 1_000, "batch_size": 16, "seed": 0} if name == "drqv2" \
        else {"name": "replay", "capacity": 1_000, "batch_size": 16, "seed": 0}  # fmt: skip
    agent = rlte_plugins.make("agent", name, env=PIXELS, learning_starts=32, random_frames=32, seed=0, **kwargs)
    return agent.set(storage=storage, policy=SMALL_PIXEL_POLICY, encoder=NARROW)


# -- the update-to-data ratio ------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_envs, utd, expected", [(1, 0.5, [0, 1, 1, 2, 2, 3]), (4, 0.5, [2, 4, 6, 8, 10, 12]),
                                                     (1, 2.0, [2, 4, 6, 8, 10, 12])])  # fmt: skip
def test_updates_follow_the_ratio_per_frame_whatever_the_number_of_envs(num_envs, utd, expected):
    agent = _agent("td3", num_envs=num_envs, utd_ratio=utd, learning_starts=0, random_frames=0,
                   storage={**SMALL, "batch_size": 1}).build()  # fmt: skip
    seen = []
    for _ in expected:
        agent.iteration()
        seen.append(agent.updates)
    assert seen == expected


def test_no_update_before_learning_starts_and_seed_frames_act_at_random():
    agent = _agent("td3", learning_starts=64, random_frames=64, num_envs=8, num_steps=4).build()
    first = agent.collect()
    assert agent.updates == 0 and agent.step() == {}
    # uniform on [-2, 2]: a quarter of the draws beyond +-1; the fresh actor with 0.1 noise stays near its tanh output
    assert (first["action"].abs() > 1).float().mean() > 0.1
    agent.collect()  # 64 frames: the seed frames are over
    batch = agent.collect()
    with torch.no_grad():
        greedy = agent.policy.actor(batch.select("observation").clone())["action"]
    assert (batch["action"] - greedy).abs().max() < 0.6  # noise of std 0.1 around the actor's action


def test_torchrl_collection_feeds_the_replay_too():
    agent = _agent("td3", env="Pendulum-v1", collection="torchrl", num_envs=2, storage={**SMALL, "batch_size": 16})
    agent.train(96, progress=False)
    assert type(agent.collection).__name__ == "TorchRLCollection"
    assert len(agent.components["storage"]) == 96 and agent.updates == 96 - 32
    agent.close()


# -- the agents' own update rules ------------------------------------------------------------------------------
def test_td3_trains_its_actor_every_policy_delay_critic_steps():
    agent = _agent("td3", learning_starts=32, utd_ratio=1.0, storage={**SMALL, "batch_size": 16}).build()
    before = [p.detach().clone() for p in agent.engines["actor"].params]
    agent.train(64 + 32, progress=False)
    after = agent.engines["actor"].params
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # RLLTE's TD3 never moved it
    critic_steps = agent.engines["critic"].optimizer.state[agent.engines["critic"].params[0]]["step"]
    actor_steps = agent.engines["actor"].optimizer.state[agent.engines["actor"].params[0]]["step"]
    assert int(critic_steps) == agent.updates == 64 and int(actor_steps) == 32


def test_td3_steps_its_actor_on_the_updates_that_average_the_targets():
    agent = _agent("td3", learning_starts=32, utd_ratio=1.0, storage={**SMALL, "batch_size": 16}).build()
    actor = agent.engines["actor"]
    target = agent.loss_module.target_actor_network_params.clone()
    agent.train(33, progress=False)  # the first update: critics only
    assert agent.updates == 1 and not actor.optimizer.state
    assert all(torch.equal(a, b) for a, b in zip(target.values(True, True),
                                                 agent.loss_module.target_actor_network_params.values(True, True),
                                                 strict=True))  # fmt: skip
    agent.train(34, progress=False)  # the second: the actor steps and the targets move, as in TD3
    assert agent.updates == 2 and int(actor.optimizer.state[actor.params[0]]["step"]) == 1
    assert not all(torch.equal(a, b) for a, b in zip(target.values(True, True),
                                                     agent.loss_module.target_actor_network_params.values(True, True),
                                                     strict=True))  # fmt: skip


def test_discrete_sac_learns_its_temperature():
    agent = _agent("sac_discrete", env="torch_cartpole", random_frames=0)
    start = float(agent.build().loss_module.log_alpha.detach())
    stats = agent.train(160, progress=False)
    assert float(agent.loss_module.log_alpha.detach()) != start  # RLLTE's discrete SAC froze it at 0
    assert stats["losses/alpha"] != pytest.approx(1.0)


def test_sac_temperature_can_be_fixed():
    agent = _agent("sac", fixed_alpha=True, alpha_init=0.2)
    stats = agent.train(96, progress=False)
    assert stats["losses/alpha"] == pytest.approx(0.2)


def test_drqv2_augments_observation_and_next_observation_independently_inside_the_update():
    agent = _pixel_agent("drqv2").set(storage={"name": "replay", "capacity": 1_000, "batch_size": 16, "seed": 0})
    agent.train(64, progress=False)
    raw = agent.components["storage"].sample(64)
    shifted = agent.prepare_sample(raw.clone())
    assert shifted["pixels"].dtype == torch.uint8
    # a stack of 3 frames: the next observation's first two frames are the observation's last two (within an
    # episode); one shift for both would keep them equal, independent shifts do not
    same = (raw["pixels"][:, 3:] == raw["next", "pixels"][:, :6]).flatten(1).all(1)
    kept = (shifted["pixels"][:, 3:] == shifted["next", "pixels"][:, :6]).flatten(1).all(1)
    assert same.sum() > 32 and kept[same].float().mean() < 0.5


def test_drqv2_noise_follows_the_schedule_in_collection_and_in_the_loss():
    agent = _pixel_agent("drqv2", utd_ratio=1.0)
    agent.set(distribution={"name": "truncated_normal_noise", "std": "linear(1.0, 0.1, 100)", "clip": 0.3})
    agent.train(64, progress=False)
    noise = agent._noise[0]
    assert noise.steps == 63 and noise.std == pytest.approx(1.0 - 0.9 * 0.63)
    assert float(agent.loss_module.std) == pytest.approx(1.0 - 0.9 * 0.63)


def test_drq_encoder_is_trained_by_the_critic_and_averaged_into_its_target():
    agent = _pixel_agent("drq", utd_ratio=1.0)
    agent.train(40, progress=False)  # 8 updates: targets averaged 4 times
    loss = agent.loss_module
    online = list(loss.encoder_params.values(True, True))
    target = list(loss.target_encoder_params.values(True, True))
    assert all(not torch.equal(o, t) for o, t in zip(online, target, strict=True))
    assert agent.engines["critic"].params[0] is online[0]


# -- checkpoints ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sac", "drqv2", "drqv2-seeded", "td3-ou"])
def test_a_loaded_agent_continues_exactly(tmp_path, name):
    if name == "sac":
        agent = _agent(name, utd_ratio=1.0)
    elif name == "td3-ou":  # the Ornstein-Uhlenbeck process's state and its seeded generator are checkpointed
        agent = _agent("td3", utd_ratio=1.0).set(distribution={"name": "ornstein_uhlenbeck_noise", "seed": 3})
    else:
        agent = _pixel_agent("drqv2", utd_ratio=1.0)
    if name == "drqv2-seeded":  # their own generators, beside torch's
        agent.set(augmentation={"name": "random_shift", "pad": 4, "seed": 1},
                  distribution={"name": "truncated_normal_noise", "seed": 2})  # fmt: skip
    agent.train(48, progress=False)
    path = agent.save(tmp_path / f"{name}.pt")
    agent.train(80, progress=False)
    loaded = rlte_plugins.load_agent(path)
    assert len(loaded.components["storage"]) == len(agent.components["storage"]) - 32
    loaded.train(80, progress=False)
    assert loaded.updates == agent.updates
    for a, b in zip(agent.loss_module.state_dict().values(), loaded.loss_module.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_prioritized_replay_takes_priorities_from_the_critics():
    agent = _agent("sac", storage={"name": "prioritized_replay", "capacity": 1_000, "batch_size": 16, "seed": 0})
    agent.train(96, progress=False)
    storage = agent.components["storage"]
    assert storage.sampler.priorities(len(storage)).unique().numel() > 10


# -- pre-training -----------------------------------------------------------------------------------------------
class _Bonus(TensorDictModuleBase):
    """An intrinsic reward of 1 everywhere."""

    def __init__(self):
        super().__init__()
        self.in_keys, self.out_keys = ["observation"], ["intrinsic_reward"]

    def forward(self, td):
        return td.set("intrinsic_reward", torch.ones(*td.batch_size, 1))


def _pretraining_agent(name, **options):
    if name == "sac":
        return _agent(name, **options)
    return rlte_plugins.make("agent", name, env="torch_pendulum", num_envs=2, num_steps=8, **options)


@pytest.mark.parametrize("name", ["sac", "ppo"])
def test_pretraining_learns_from_the_intrinsic_reward_alone(name):
    options = {"pretraining": True, "intrinsic_coef": 0.5}
    agent = _pretraining_agent(name, **options).set(reward=_Bonus()).build()
    batch = agent.collect().reshape(-1).clone()
    agent._add_intrinsic_reward(batch, {})
    assert torch.equal(batch["next", "reward"], torch.full_like(batch["next", "reward"], 0.5))
    with pytest.raises(ComponentArgumentError, match="pretraining=True .* set\\(reward=...\\)"):
        _pretraining_agent(name, **options).build()


# -- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, env, needs", [("td3", "torch_cartpole", "continuous"), ("ddpg", "CartPole-v1",
                         "continuous"), ("sac", "torch_cartpole", "continuous"), ("dqn", "torch_pendulum", "discrete"),
                         ("sac_discrete", "torch_pendulum", "discrete")])  # fmt: skip
def test_agents_refuse_the_other_kind_of_actions(name, env, needs):
    with pytest.raises(SpecMismatchError, match=f"needs {needs} actions.*use "):
        rlte_plugins.make("agent", name, env=env)


@pytest.mark.parametrize("name", ["drqv2", "drq"])
def test_pixel_agents_refuse_vector_envs(name):
    with pytest.raises(SpecMismatchError, match="learns from pixels.*from_pixels=True"):
        rlte_plugins.make("agent", name, env="torch_pendulum").build()


def test_an_image_augmentation_on_a_vector_observation_is_refused():
    agent = _agent("sac").set(augmentation={"name": "random_shift", "in_keys": ["observation"]})
    with pytest.raises(SpecMismatchError, match="works on images.*'observation' has shape \\[3\\]"):
        agent.build()
    with pytest.raises(SpecMismatchError, match="reads 'pixels', which the env does not provide"):
        _agent("sac").set(augmentation="random_shift").build()


def test_a_batch_larger_than_the_buffer_when_learning_starts_is_refused():
    with pytest.raises(ComponentArgumentError, match="batches of 256 but learning starts with 100 transitions"):
        _agent("sac", learning_starts=100, storage={"name": "replay", "batch_size": 256}).build()


def test_a_prioritized_storage_needs_an_agent_with_td_errors():
    class NoTDError(DQN):
        name = "no_td_error"
        priority_key = None

    agent = NoTDError("torch_cartpole", learning_starts=64)
    agent.set(storage={"name": "prioritized_replay", "batch_size": 32})
    with pytest.raises(ComponentArgumentError, match="computes no TD error.*not 'prioritized_replay'"):
        agent.build()


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_an_encoder_shared_through_torchrl_losses_is_refused(name):
    agent = _agent(name).set(encoder={"name": "mlp", "num_cells": [16]},
                             policy={**dict(_agent(name).slots["policy"]), "shared_encoder": True})  # fmt: skip
    with pytest.raises(ComponentArgumentError, match="trained by the actor's loss alone.*shared_encoder=False"):
        agent.build()


def test_the_off_policy_options_are_checked():
    with pytest.raises(ComponentArgumentError, match="utd_ratio must be > 0.0"):
        rlte_plugins.make("agent", "sac", env="torch_pendulum", utd_ratio=0)
    with pytest.raises(ComponentArgumentError, match="target_entropy must be a number or 'auto'"):
        rlte_plugins.make("agent", "sac", env="torch_pendulum", target_entropy="high").build()


def test_the_drqv2_loss_keys_are_configurable():
    loss = _pixel_agent("drqv2").build().loss_module
    loss.set_keys(reward="bonus")
    assert loss.tensor_keys.reward == "bonus"
    with pytest.raises(ValueError, match="rewards"):
        loss.set_keys(rewards="x")
