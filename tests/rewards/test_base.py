"""The intrinsic-reward contract: weighting, normalisation, sub-sampled updates, exact resume, and how agents use
it (added before advantages on-policy, stored at collection off-policy when episodic, pre-training then
fine-tuning)."""

import math

import pytest
import torch
from tensordict import TensorDict

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError
from rlte_plugins.rewards.base import IntrinsicReward


class Step(IntrinsicReward):
    """A bonus equal to the first feature of the next observation (so the tests know it exactly)."""

    registry_name = "step"

    def compute(self, batch):
        return self.observations(batch)[..., 0].float()


class Episodic(Step):
    registry_name = "episodic_step"
    episodic = True


def _env(num_envs=4):
    return rlte_plugins.make("env", "torch_cartpole", num_envs=num_envs, seed=0)


def _batch(values):
    """A [num_envs, T] batch whose next observations' first feature is ``values``."""
    values = torch.as_tensor(values, dtype=torch.float32)
    obs = torch.zeros(*values.shape, 4)
    obs[..., 0] = values
    done = torch.zeros(*values.shape, 1, dtype=torch.bool)
    return TensorDict({"observation": obs, "next": {"observation": obs.clone(), "done": done}}, batch_size=values.shape)


def test_the_weight_decays_in_frames():
    env = _env()
    reward = Step(beta=2.0, kappa=0.01, reward_norm="none").build(env.observation_spec, env.action_spec)
    out = reward(_batch([[1.0, 1.0]] * 4))["intrinsic_reward"]
    assert torch.allclose(out, torch.full((4, 2), 2.0))  # weight read before the batch's frames are counted
    assert reward.frames == 8 and reward.weight() == pytest.approx(2.0 * 0.99**8)
    assert reward(_batch([[1.0]]), frames=100)["intrinsic_reward"].item() == pytest.approx(2.0 * 0.99**100)
    assert reward.frames == 100  # an agent's frame count is taken as is


def test_std_normalisation_divides_by_the_running_std_of_the_bonuses():
    env = _env()
    reward = Step(reward_norm="std").build(env.observation_spec, env.action_spec)
    values = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    out = reward(_batch(values))["intrinsic_reward"]
    count = 1e-4 + 4  # RunningMeanStd starts from var 1 with a tiny count
    var = (1.0 * 1e-4 + values.var(unbiased=False) * 4 + values.mean() ** 2 * 1e-4 * 4 / count) / count
    assert torch.allclose(out, values / var.sqrt(), rtol=1e-5)


def test_return_normalisation_uses_the_forward_discounted_return_per_env_across_batches():
    env = _env()
    reward = Step(reward_norm="return", gamma=0.5).build(env.observation_spec, env.action_spec)
    reward(_batch([[1.0, 1.0], [2.0, 0.0]]))
    assert torch.allclose(reward._return_acc, torch.tensor([[1.5], [1.0]]))  # 0.5 * 1 + 1 and 0.5 * 2 + 0
    reward(_batch([[1.0, 0.0], [0.0, 0.0]]))  # carried on, never reset: RND's non-episodic return
    assert torch.allclose(reward._return_acc, torch.tensor([[0.875], [0.25]]))


def test_observation_normalisation_is_seeded_from_the_first_batch_and_clipped():
    env = _env()
    reward = Step(reward_norm="none", obs_norm=True).build(env.observation_spec, env.action_spec)
    first = reward(_batch([[1.0, 3.0], [1.0, 3.0]]))["intrinsic_reward"]
    assert torch.allclose(first.abs(), torch.ones(2, 2), atol=1e-3)  # mean 2, std 1 from this very batch
    far = reward(_batch([[1e6, 1e6]]))["intrinsic_reward"]
    assert torch.all(far == 5.0)


def test_updates_train_on_a_sub_sample_with_the_rewards_own_optimiser():
    env = _env(8)
    rnd = rlte_plugins.make("reward", "rnd", update_proportion=0.25).build(env.observation_spec, env.action_spec)
    batch = env.rollout(16, break_when_any_done=False)
    assert rnd.subsample(batch).shape == (32,)
    before = [p.clone() for p in rnd.target.parameters()]
    losses = rnd.update(batch)
    assert set(losses) == {"losses/rnd_loss"} and losses["losses/rnd_loss"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, rnd.target.parameters(), strict=True))  # fixed target


def test_state_dict_resumes_exactly():
    env = _env()
    rnd = rlte_plugins.make("reward", "rnd").build(env.observation_spec, env.action_spec)
    batch = env.rollout(16, break_when_any_done=False)
    rnd(batch)
    rnd.update(batch)
    copy = rlte_plugins.make("reward", "rnd").build(env.observation_spec, env.action_spec)
    copy.load_state_dict(rnd.state_dict())
    following = env.rollout(16, break_when_any_done=False)
    assert torch.equal(rnd(following.clone())["intrinsic_reward"], copy(following.clone())["intrinsic_reward"])
    assert torch.equal(rnd.update(following)["losses/rnd_loss"], copy.update(following)["losses/rnd_loss"])


def test_bad_arguments_and_specs_are_one_clear_error():
    with pytest.raises(ComponentArgumentError, match="reward 'rnd': reward_norm must be one of none, std, return"):
        rlte_plugins.make("reward", "rnd", reward_norm="max")
    with pytest.raises(ComponentArgumentError, match="reward 'rnd': beta must be a number"):
        rlte_plugins.make("reward", "rnd", beta="high")
    with pytest.raises(ComponentArgumentError, match="update_proportion must be in"):
        rlte_plugins.make("reward", "rnd", update_proportion=0)

    class Pixels(Step):
        registry_name = "pixel_step"
        in_keys = (("next", "pixels"),)
        obs_key = ("next", "pixels")

    env = _env()
    with pytest.raises(SpecMismatchError, match="reward 'pixel_step' reads 'pixels'"):
        Pixels().build(env.observation_spec, env.action_spec)
    with pytest.raises(ComponentArgumentError, match="the weight of .* must be a number"):
        rlte_plugins.make("reward", "mixture", rewards=[{"name": "rnd", "weight": "half"}])


def test_on_policy_agents_add_the_bonus_before_advantages():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, seed=0,
                              intrinsic_coef=0.5, num_minibatches=1)  # fmt: skip
    agent.set(reward=Step(reward_norm="none"))
    batch = agent.collect()
    extrinsic = batch["next", "reward"].clone()
    bonus = batch["next", "observation"][..., :1]
    stats = agent.step(batch)
    assert torch.allclose(batch["next", "reward"], extrinsic + 0.5 * bonus)  # what GAE read
    assert float(stats["charts/intrinsic_reward"]) == pytest.approx(float(bonus.mean()), rel=1e-5)


def test_off_policy_agents_store_episodic_bonuses_at_collection_and_recompute_lifelong_ones():
    def agent(reward):
        storage = {"name": "replay", "capacity": 256, "batch_size": 8}
        return rlte_plugins.make("agent", "sac", env="torch_pendulum", num_envs=2, seed=0, learning_starts=16,
                                 random_frames=16).set(reward=reward, storage=storage)  # fmt: skip

    episodic = agent(Episodic(reward_norm="none"))
    batch = episodic.collect()
    assert torch.allclose(batch["next", "intrinsic_reward"], batch["next", "observation"][..., :1])
    assert "intrinsic_reward" in episodic.components["storage"].sample()["next"].keys()
    lifelong = agent(Step(reward_norm="none"))
    assert ("next", "intrinsic_reward") not in lifelong.collect().keys(True)
    lifelong.collect()
    assert "charts/intrinsic_reward" in lifelong.train(64, progress=False)


def test_pretraining_then_fine_tuning_starts_from_the_pretrained_weights(tmp_path):
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=16, seed=0,
                              pretraining=True).set(reward="rnd")  # fmt: skip
    agent.train(256, progress=False)
    assert all("charts/episodic_return" not in h or math.isfinite(h["charts/episodic_return"]) for h in agent.history)
    path = agent.save(tmp_path / "pretrained.pt")
    pretrained = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    tuned = rlte_plugins.load_agent(path, pretraining=False, intrinsic_coef=0.0)
    assert not tuned.config.pretraining and tuned.frames == 256
    assert all(torch.equal(tuned.actor.state_dict()[k], v) for k, v in pretrained.items())
    batch = tuned.collect()
    extrinsic = batch["next", "reward"].clone()
    tuned.step(batch)
    assert torch.equal(batch["next", "reward"], extrinsic)  # the task reward alone


def test_a_two_stream_critic_adds_a_non_episodic_intrinsic_advantage_with_its_own_discount():
    agent = rlte_plugins.make("agent", "ppo", env={"name": "torch_cartpole", "max_episode_steps": 5}, num_envs=3,
                              num_steps=8, num_minibatches=1, seed=0, intrinsic_critic=True, extrinsic_coef=2.0,
                              intrinsic_coef=0.5, intrinsic_gamma=0.9).set(reward=Step(reward_norm="none"))  # fmt: skip
    batch = agent.collect()
    extrinsic = batch["next", "reward"].clone()
    agent._add_intrinsic_reward(batch, {}, separate=True)
    assert torch.equal(batch["next", "reward"], extrinsic)  # the bonus stays apart
    bonus = batch["next", "intrinsic_reward"].squeeze(-1)
    assert torch.allclose(bonus, batch["next", "observation"][..., 0])
    assert batch["next", "done"].any()  # episodes end inside the batch: the intrinsic return runs across them
    with torch.no_grad():
        rollout = agent._advantages(batch.clone())
        plain = rlte_plugins.make("agent", "ppo", env={"name": "torch_cartpole", "max_episode_steps": 5}, num_envs=3,
                                  num_steps=8, num_minibatches=1, seed=0).build()  # fmt: skip
        plain.policy.load_state_dict(agent.policy.state_dict())
        ext = plain._advantages(batch.clone())["advantage"].squeeze(-1)
        values, next_values = (v.squeeze(-1) for v in agent._values(batch, agent.int_critic))
    lam, gamma = agent.config.gae_lambda, 0.9
    expected = torch.zeros_like(bonus)
    running = torch.zeros(3)
    for t in reversed(range(8)):  # GAE with no episode boundary
        delta = bonus[:, t] + gamma * next_values[:, t] - values[:, t]
        running = delta + gamma * lam * running
        expected[:, t] = running
    assert torch.allclose(rollout["advantage"].squeeze(-1), 2.0 * ext + 0.5 * expected, atol=1e-5)
    assert torch.allclose(rollout["value_target_int"].squeeze(-1), expected + values, atol=1e-5)
    stats = agent.step(batch)
    assert float(stats["losses/intrinsic_value_loss"]) > 0


def test_a_two_stream_critic_needs_a_reward():
    with pytest.raises(ComponentArgumentError, match="intrinsic_critic=True needs an intrinsic reward"):
        rlte_plugins.make("agent", "ppo", env="torch_cartpole", intrinsic_critic=True).build()


def test_an_on_policy_bonus_is_computed_for_every_batch_even_when_kept_apart():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, num_minibatches=1,
                              seed=0, intrinsic_critic=True).set(reward=Step(reward_norm="none"))  # fmt: skip
    for _ in range(3):
        batch = agent.collect()
        agent.step(batch)
        assert torch.allclose(batch["next", "intrinsic_reward"], batch["next", "observation"][..., :1])


def test_combinations_that_would_miscount_a_bonus_are_refused():
    with pytest.raises(ComponentArgumentError, match="does not combine with n-step storage 'nstep_replay'"):
        rlte_plugins.make("agent", "sac", env="torch_pendulum").set(
            reward="rnd", storage={"name": "nstep_replay", "n": 3, "gamma": 0.99}).build()  # fmt: skip
    with pytest.raises(ComponentArgumentError, match="normalize_observation normalises the observations"):
        rlte_plugins.make("agent", "ppo", env="torch_cartpole", normalize_observation=True).set(reward="rnd").build()


def test_a_mixture_reads_pixels_on_a_pixel_only_env_and_actions_are_one_hot_by_their_spec():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    mix = rlte_plugins.make("reward", "mixture", rewards=["rnd", "icm"]).build(env.observation_spec, env.action_spec)
    assert ("next", "pixels") in mix.in_keys
    assert mix(env.rollout(2, break_when_any_done=False))["intrinsic_reward"].shape == (2, 2)
    sea = rlte_plugins.make("env", "torch_deep_sea", size=4, num_envs=2)
    icm = rlte_plugins.make("reward", "icm").build(sea.observation_spec, sea.action_spec)
    batch = sea.rollout(2, break_when_any_done=False)  # T == number of actions: indices, not one-hot rows
    assert icm.action_input(batch["action"]).shape == (2, 2, 2)
    assert icm(batch)["intrinsic_reward"].shape == (2, 2)


@pytest.mark.parametrize("name", ["icm", "disagreement"])
@pytest.mark.parametrize("env_name", ["torch_cartpole", "torch_pendulum"])
def test_forward_model_bonus_shape_on_rollouts(name: str, env_name: str) -> None:
    env = rlte_plugins.make("env", env_name, num_envs=4)
    reward = rlte_plugins.make("reward", name).build(env.observation_spec, env.action_spec)
    batch = env.rollout(8, break_when_any_done=False)
    assert reward(batch)["intrinsic_reward"].shape == (4, 8)
    assert torch.isfinite(reward.update(batch)[f"losses/{name}_loss"])


@pytest.mark.parametrize("name", ["icm", "disagreement"])
def test_forward_model_bonus_shape_on_pixels(name: str) -> None:
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    reward = rlte_plugins.make("reward", name).build(env.observation_spec, env.action_spec)
    batch = env.rollout(3, break_when_any_done=False)
    assert reward(batch)["intrinsic_reward"].shape == (2, 3)
    assert torch.isfinite(reward.update(batch)[f"losses/{name}_loss"])
