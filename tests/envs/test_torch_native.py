"""Torch-native tasks match gymnasium's dynamics, reset per env, truncate on time; the rl8 adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import check_family, check_reproducible
from tensordict import TensorDict
from torchrl.data import Categorical, Unbounded

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

TASKS = ["dummy_discrete", "dummy_continuous", "torch_cartpole", "torch_pendulum", "torch_mountain_car"]


@pytest.mark.parametrize("name", TASKS)
def test_specs_rollout_and_seeding(name):
    check_family(name, steps=30, num_envs=3)
    check_reproducible(name, ("next", "observation"), steps=30)


@pytest.mark.parametrize(
    "name,gym_id,states",
    [
        ("torch_cartpole", "CartPole-v1", lambda e: e.unwrapped.state),
        ("torch_mountain_car", "MountainCar-v0", lambda e: e.unwrapped.state),
        ("torch_pendulum", "Pendulum-v1", lambda e: e.unwrapped.state),
    ],
)
def test_dynamics_match_gymnasium(name, gym_id, states):
    ref = gym.make(gym_id)
    ref.reset(seed=0)
    env = rlte_plugins.make("env", name, num_envs=1, seed=0)
    env.reset()
    env.state = torch.as_tensor(np.asarray(states(ref), dtype=np.float32)).reshape(1, -1)
    rng = np.random.default_rng(0)
    for _ in range(40):
        if name == "torch_pendulum":
            action = rng.uniform(-2, 2, (1,)).astype(np.float32)
        else:
            action = ref.action_space.sample()
        obs, reward, terminated, truncated, _ = ref.step(action)
        act = torch.as_tensor(np.asarray(action)).reshape(env.action_spec.shape)
        td = env.step(TensorDict(action=act, batch_size=[1]))["next"]
        np.testing.assert_allclose(td["observation"][0].numpy(), obs, rtol=1e-4, atol=1e-4)
        assert td["reward"].item() == pytest.approx(float(reward), rel=1e-4, abs=1e-4)
        assert bool(td["terminated"]) == terminated
        if terminated or truncated:
            break


def test_pendulum_torque_beyond_the_spec_bounds_acts_as_the_bound():
    env = rlte_plugins.make("env", "torch_pendulum", num_envs=4, seed=0)
    assert (env.action_spec.space.low == -2).all() and (env.action_spec.space.high == 2).all()
    env.reset()
    env.state = env.state[:1].expand(4, -1).clone()  # one start state, so only the torques differ
    td = env.step(TensorDict(action=torch.tensor([[100.0], [2.0], [-100.0], [-2.0]]), batch_size=[4]))["next"]
    obs, reward = td["observation"], td["reward"]
    assert torch.equal(obs[0], obs[1]) and torch.equal(obs[2], obs[3]) and not torch.equal(obs[0], obs[2])
    assert torch.equal(reward[0], reward[1]) and torch.equal(reward[2], reward[3])


def test_partial_reset_touches_only_the_masked_envs():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=4, seed=0)
    td = env.reset()
    td["action"] = torch.ones(4, dtype=torch.long)
    for _ in range(5):
        td = env.step(td)["next"].set("action", torch.ones(4, dtype=torch.long))
    before = env.state.clone()
    mask = torch.tensor([True, False, True, False]).unsqueeze(-1)
    env.reset(TensorDict(_reset=mask, batch_size=[4]))
    assert torch.equal(env.state[1], before[1]) and torch.equal(env.state[3], before[3])
    assert not torch.equal(env.state[0], before[0]) and (env.state[0].abs() <= 0.05).all()
    td = env.step(TensorDict(action=torch.zeros(4, dtype=torch.long), batch_size=[4]))["next"]
    assert td["episode_length"].squeeze(-1).tolist() == [1, 6, 1, 6]


def test_time_limit_truncates_never_terminates():
    env = rlte_plugins.make("env", "dummy_discrete", num_envs=2, seed=0, max_episode_steps=7)
    td = env.rollout(14, break_when_any_done=False)
    trunc = td["next", "truncated"].squeeze(-1)
    assert trunc[:, 6].all() and trunc[:, 13].all() and int(trunc.sum()) == 4
    assert not td["next", "terminated"].any()
    assert torch.allclose(td["next", "episode_reward"][:, 6], td["next", "reward"][:, :7].sum(1))


def test_truncated_step_holds_the_real_last_observation_and_the_next_step_a_reset_one():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, seed=0, max_episode_steps=5)
    torch.manual_seed(0)
    td = env.rollout(8, break_when_any_done=False)
    trunc, term, done = (td["next", k].squeeze(-1) for k in ("truncated", "terminated", "done"))
    assert trunc.tolist() == [[False] * 4 + [True] + [False] * 3] * 2  # 5 steps cannot tip the pole over
    assert not term.any() and torch.equal(done, trunc)
    # every next observation is the dynamics of its step, the truncated one's included (the bootstrap reads it)
    obs, nxt = td["observation"], td["next", "observation"]
    stepped, _, _ = env.dynamics(obs.reshape(-1, 4), td["action"].reshape(-1))
    assert torch.allclose(nxt, stepped.reshape(2, 8, 4), rtol=0, atol=1e-6)
    # the step after the truncation starts from a reset state, every other step from the last one
    assert torch.equal((nxt[:, :-1] == obs[:, 1:]).all(-1), ~done[:, :-1])
    assert (obs[:, 5].abs() <= 0.05).all() and (td["next", "episode_length"][:, 5] == 1).all()


def test_bad_max_episode_steps():
    with pytest.raises(ComponentArgumentError, match="max_episode_steps"):
        rlte_plugins.make("env", "torch_cartpole", max_episode_steps=-1)


# -- the rl8 adapter -----------------------------------------------------------------------------------------
class Rl8StyleDiscrete:
    """An environment written for rl8's protocol, as its users write them (no rlte import)."""

    def __init__(self, num_envs, /, horizon=None, *, device="cpu"):
        self.num_envs, self.horizon, self.device = num_envs, horizon, device
        self.observation_spec = Unbounded(1, device=device)
        self.action_spec = Categorical(2, shape=torch.Size([1]), device=device)

    def reset(self, *, config=None):
        bounds = (config or {}).get("bounds", 10.0)
        self.state = torch.empty(self.num_envs, 1, device=self.device).uniform_(-bounds, bounds)
        return self.state

    def step(self, action):
        assert action.shape == (self.num_envs, 1)  # given back with rl8's trailing dimension
        self.state = self.state + 2 * action - 1
        return TensorDict({"obs": self.state, "rewards": -self.state.abs()}, batch_size=self.num_envs)


def test_rl8_adapter_wraps_an_rl8_class_unchanged():
    env = rlte_plugins.make("env", "rl8", env_cls=Rl8StyleDiscrete, num_envs=4, horizon=5, seed=0,
                            config={"bounds": 3.0})  # fmt: skip
    from torchrl.envs.utils import check_env_specs

    check_env_specs(env)
    assert env.action_spec.shape == (4,)  # one integer per env, as the categorical heads expect
    td = env.rollout(10, break_when_any_done=False)
    assert (td["observation"][:, 0].abs() <= 3.0).all()
    trunc = td["next", "truncated"].squeeze(-1)
    assert trunc[:, 4].all() and trunc[:, 9].all() and int(trunc.sum()) == 8
    assert not td["next", "terminated"].any()
    expected = td["observation"] + 2 * td["action"].unsqueeze(-1) - 1
    assert torch.allclose(td["next", "observation"], expected)
    assert torch.allclose(td["next", "reward"], -td["next", "observation"].abs())


def test_rl8_adapter_by_import_string_and_errors():
    env = rlte_plugins.make("env", "rl8", env_cls=f"{__name__}:Rl8StyleDiscrete", num_envs=2, horizon=3)
    assert env.rollout(3)["next", "observation"].shape == (2, 3, 1)
    with pytest.raises(ComponentArgumentError, match="cannot import"):
        rlte_plugins.make("env", "rl8", env_cls="no_such_module:Env")
    with pytest.raises(SpecMismatchError, match="reset as a whole"):
        env.reset(TensorDict(_reset=torch.tensor([[True], [False]]), batch_size=[2]))

    class NotRl8:
        def __init__(self, num_envs, horizon=None, *, device="cpu"):
            pass

    with pytest.raises(SpecMismatchError, match="not an rl8-protocol env"):
        rlte_plugins.make("env", "rl8", env_cls=NotRl8)


@pytest.mark.parametrize("name", TASKS)
def test_a_compiled_env_steps_as_the_eager_one_on_both_paths(name):
    # TorchRL's compile=True compiles step_and_maybe_reset; the plain-tensor step (direct collection) too
    eager = rlte_plugins.make("env", name, num_envs=8, seed=3, max_episode_steps=5)
    compiled = rlte_plugins.make("env", name, num_envs=8, seed=3, max_episode_steps=5, compile=True)
    assert compiled._advance is not compiled._transition and "_compiled_step_and_maybe_reset" in compiled.__dict__
    torch.testing.assert_close(eager.reset_tensors()["observation"], compiled.reset_tensors()["observation"])
    truncations = 0
    for action in eager.action_spec.rand(torch.Size([12])):
        (a, ra), (b, rb) = eager.step_tensors(action), compiled.step_tensors(action)
        for key in a:
            torch.testing.assert_close(a[key], b[key], msg=key)
        for key in ra:
            torch.testing.assert_close(ra[key], rb[key], msg=key)
        truncations += int(b["truncated"].sum())
    assert truncations  # through time limits and their resets
    assert compiled.eager()._advance == compiled._transition
