"""The plain-tensor path (direct collection without a TensorDict per step, the PPO loss without TensorDict plumbing)
is the same algorithm as the TensorDict path: the same transitions for one seed, the same loss values and the same
gradients; policies or envs without such a path fall back to the TensorDict one."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import StepCounter, TransformedEnv

import rlte_plugins
from rlte_plugins.agents.ppo import PPO, PPOLoss
from rlte_plugins.distributions.categorical import CategoricalHead

# short time limits, so that the compared batches hold resets of every kind (terminations and truncations)
ENVS = {
    "torch_cartpole": {"max_episode_steps": 20},
    "gymnasium": {"env_id": "CartPole-v1", "max_episode_steps": 20},
    "torch_pendulum": {"max_episode_steps": 20},
}


def two_batches(env: str, plain: bool, **options) -> tuple[TensorDict, TensorDict, bool]:
    made = rlte_plugins.make("env", env, num_envs=4, seed=3, **ENVS[env])
    agent = rlte_plugins.make("agent", "ppo", env=made, num_steps=32, seed=3, **options)
    agent.build()
    if not plain:
        agent.collection.tensor_actor = None
    first = agent.collect().clone()  # the TensorDict path refills one buffer: copy before the next batch
    return first, agent.collect().clone(), agent.collection.plain_tensors


@pytest.mark.parametrize("env", ENVS)
def test_plain_tensor_collection_gives_the_tensordict_paths_transitions(env):
    fast_1, fast_2, used = two_batches(env, plain=True)
    slow_1, slow_2, unused = two_batches(env, plain=False)
    assert used and not unused
    keys = list(fast_1.keys(True, True))
    # everything the update, the statistics and intrinsic rewards read; the TensorDict path also keeps the flags
    # of the reset at the root, which nothing reads
    for key in ("observation", "action", "action_log_prob", ("next", "observation"), ("next", "reward"),
                ("next", "done"), ("next", "terminated"), ("next", "truncated"), ("next", "episode_reward"),
                ("next", "episode_length"), ("next", "episode_end")):  # fmt: skip
        assert key in keys
    for fast, slow in ((fast_1, slow_1), (fast_2, slow_2)):
        for key in keys:
            assert fast.get(key).dtype == slow.get(key).dtype, key
            torch.testing.assert_close(fast.get(key), slow.get(key), rtol=1e-5, atol=1e-6, msg=str(key))
    assert fast_1.get(("next", "truncated")).any()  # resets happened inside the compared batches


def test_observation_normalisation_stores_what_the_policy_acted_on_on_both_paths():
    fast, _, _ = two_batches("gymnasium", plain=True, normalize_observation=True)
    slow, _, _ = two_batches("gymnasium", plain=False, normalize_observation=True)
    torch.testing.assert_close(fast.get("observation"), slow.get("observation"))
    assert fast.get("observation").abs().max() <= 10.0
    assert not torch.equal(fast.get("observation"), fast.get(("next", "observation")))


def loss_inputs(agent: PPO) -> TensorDict:
    """A minibatch as the update sees it, with advantages away from zero and a policy moved off the collector's."""
    batch = agent.collect()
    with torch.no_grad():
        rollout = agent._advantages(batch).reshape(-1)
        for p in agent.policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return rollout


def loss_and_gradients(agent: PPO, data: TensorDict, plain: bool) -> tuple[dict, list[torch.Tensor]]:
    loss = agent.loss_module
    loss.tensor_policy = agent.tensor_policy if plain else None
    for p in agent.policy.parameters():
        p.grad = None
    out = loss(data.clone())
    sum(out.get(k) for k in out.keys() if k.startswith("loss_")).backward()
    keys = ["loss_objective", "loss_critic", "loss_entropy", "entropy", "kl_approx", "approx_kl", "clip_fraction"]
    return {k: out.get(k).detach() for k in keys}, [p.grad.clone() for p in agent.policy.parameters()]


@pytest.mark.parametrize(
    "env, options",
    [
        ("torch_cartpole", {}),
        ("torch_cartpole", {"clip_value": None, "critic_loss": "smooth_l1"}),
        ("torch_pendulum", {"clip_epsilon": 0.05}),
    ],
)
@pytest.mark.parametrize("shared", [False, True])
def test_the_plain_tensor_loss_is_clip_ppo_loss(env, options, shared):
    torch.manual_seed(0)
    agent = rlte_plugins.make("agent", "ppo", env=env, num_envs=4, num_steps=32, seed=0, **options)
    agent.set(policy={"name": "actor_critic", "shared_encoder": shared}).build()
    assert agent.tensor_policy is not None
    agent.loss_module.entropy_coeff.fill_(0.01)
    data = loss_inputs(agent)
    fast, fast_grads = loss_and_gradients(agent, data, plain=True)
    slow, slow_grads = loss_and_gradients(agent, data, plain=False)
    for key in fast:
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-5, atol=1e-7, msg=key)
    assert fast["clip_fraction"] > 0  # the clipped branch is exercised
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


class PluginHead(CategoricalHead):
    """A third party's distribution head that implements only the TensorDict interface."""

    tensor_ops = False


def test_policies_without_a_plain_tensor_path_use_the_tensordict_one():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, seed=0)
    agent.set(distribution=PluginHead()).build()
    assert agent.tensor_policy is None and not agent.collection.plain_tensors
    assert agent.loss_module.tensor_policy is None
    agent.step(agent.collect())  # and it trains


def test_an_env_wrapped_in_transforms_is_stepped_through_them():
    env = TransformedEnv(rlte_plugins.make("env", "torch_cartpole", num_envs=4, seed=0), StepCounter())
    agent = rlte_plugins.make("agent", "ppo", env=env, num_steps=8, seed=0).build()
    assert agent.tensor_policy is not None and not agent.collection.plain_tensors
    assert "step_count" in agent.collect().keys()


class ScaledCritic(PPOLoss):
    """A subclass using one of TorchRL's hooks (value normalisation would)."""

    def _critic_loss_inputs(self, target, value, old):
        return target / 10, value / 10, None if old is None else old / 10


@pytest.mark.parametrize(
    "make", [
        lambda a, c: PPOLoss(a, c, entropy_bonus=False, functional=False),
        lambda a, c: PPOLoss(a, c, reduction="sum", functional=False),
        lambda a, c: PPOLoss(a, c, normalize_advantage=True, functional=False),
        lambda a, c: PPOLoss(a, c, entropy_coeff={"action": 0.01}, functional=False),
        lambda a, c: ScaledCritic(a, c, functional=False),
    ],
)  # fmt: skip
def test_a_loss_the_plain_path_does_not_reproduce_keeps_the_tensordict_path(make):
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, seed=0).build()
    loss = make(agent.policy.actor, agent.policy.critic)
    assert not loss.use_tensor_path(agent.tensor_policy) and loss.tensor_policy is None
    plain = PPOLoss(agent.policy.actor, agent.policy.critic, normalize_advantage=False, functional=False)
    assert plain.use_tensor_path(agent.tensor_policy)


class TemperedHead(CategoricalHead):
    """A plugin's head that changes the distribution (a categorical at temperature 0.1) but not the class flag."""

    class Tempered(torch.distributions.Categorical):
        def __init__(self, logits):
            super().__init__(logits=logits / 0.1)

    distribution_class = Tempered


def test_a_subclass_of_a_head_does_not_inherit_the_plain_path():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, seed=0)
    agent.set(distribution=TemperedHead()).build()
    assert agent.tensor_policy is None and not agent.collection.plain_tensors
    batch = agent.collect()
    rescored = agent.policy.actor.get_dist(batch.clone()).log_prob(batch["action"])
    torch.testing.assert_close(rescored, batch["action_log_prob"])


def test_normalising_a_key_the_policy_does_not_read_keeps_the_tensordict_path():
    from rlte_plugins.envs.torch_native.tasks import TorchCartPole

    class Renamed(TorchCartPole):
        """CartPole with a second observation, ``state`` (what the policy reads), beside ``observation``."""

        def extra_observation_specs(self, num_envs, device):
            return {"state": self.observation_spec_state(num_envs, device)}

        def observation_spec_state(self, num_envs, device):
            from torchrl.data import Unbounded

            return Unbounded(shape=(num_envs, 4), device=device)

        def extra_observations(self, state):
            return {"state": 100 * state}

    agent = rlte_plugins.make("agent", "ppo", env=Renamed(num_envs=4, seed=0), num_steps=8, seed=0,
                              normalize_observation=True)  # fmt: skip
    agent.set(encoder={"name": "mlp", "in_keys": ["state"]}).build()
    assert agent.tensor_policy is not None and not agent.collection.plain_tensors
    batch = agent.collect()
    assert batch["observation"].abs().max() <= 10 and batch["state"].abs().max() > 1  # only "observation" normalised
    # an extra observation named like the env's internal state is an observation, and the dynamics are CartPole's
    renamed, plain = Renamed(num_envs=4, seed=1), rlte_plugins.make("env", "torch_cartpole", num_envs=4, seed=1)
    renamed.reset_tensors(), plain.reset_tensors()
    for _ in range(3):
        action = torch.ones(4, dtype=torch.int64)
        (a, _), (b, _) = renamed.step_tensors(action), plain.step_tensors(action)
        torch.testing.assert_close(a["observation"], b["observation"])
        torch.testing.assert_close(a["state"], 100 * b["observation"])


@pytest.mark.parametrize("env", ["gymnasium", "torch_pendulum"])
def test_the_plain_path_trains_the_same_weights_as_the_tensordict_path(env):
    """Bit for bit: the same transitions, the same loss arithmetic, so the same weights after a few updates (the
    code before the plain path trained the ppo_cartpole recipe to the same weights as this one does, with the
    per-tensor Adam; fused Adam rounds differently, not the path)."""
    weights = {}
    for plain in (True, False):
        made = rlte_plugins.make("env", env, num_envs=4, seed=3, **ENVS[env])
        agent = rlte_plugins.make("agent", "ppo", env=made, num_steps=32, seed=3, num_minibatches=2).build()
        if not plain:
            agent.collection.tensor_actor = None
            agent.loss_module.tensor_policy = None
        agent.train(3 * 128, progress=False)
        weights[plain] = torch.cat([p.detach().flatten() for p in agent.parameters()])
    assert torch.equal(weights[True], weights[False])


def test_module_apply_reaches_observation_normalisation_in_the_actor():
    # torch's Module.apply(fn) (weight initialisation, ...) visits every submodule of the acting module
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=2, normalize_observation=True).build()
    seen = []
    agent.actor.apply(seen.append)
    assert agent.obs_norm in seen


def test_an_env_subclass_that_changes_its_step_is_stepped_through_tensordicts():
    from rlte_plugins.envs.torch_native.tasks import TorchCartPole

    class Doubled(TorchCartPole):
        def _step(self, tensordict):
            out = super()._step(tensordict)
            return out.set("reward", 2 * out.get("reward"))

    assert TorchCartPole(num_envs=2).tensor_steps and not Doubled(num_envs=2).tensor_steps
    agent = rlte_plugins.make("agent", "ppo", env=Doubled(num_envs=4, seed=0), num_steps=8, seed=0).build()
    assert not agent.collection.plain_tensors and (agent.collect()["next", "reward"] == 2).all()
