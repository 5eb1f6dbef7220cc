"""Torch-native envs from pixels: rendered frames follow the state, stack per env, survive resets and resumes;
action repeats sum rewards, stop at a termination and count the time limit in task steps."""

from __future__ import annotations

import io
import math

import pytest
import torch
from helpers import check_family
from tensordict import TensorDict

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

RENDERED = ["torch_cartpole", "torch_pendulum", "torch_mountain_car"]


def make(name: str, **kwargs):
    return rlte_plugins.make("env", name, **{"num_envs": 4, "seed": 0, **kwargs})


def tensor_path_steps(env, actions: torch.Tensor) -> list[tuple[dict, dict]]:
    return [env.step_tensors(action) for action in actions]


@pytest.mark.parametrize("name", RENDERED)
def test_pixels_specs_shapes_and_dtypes(name):
    td = check_family(name, steps=6, num_envs=3, from_pixels=True, image_size=20, frame_stack=2)
    assert td["next", "pixels"].shape == (3, 6, 6, 20, 20) and "observation" not in td.keys()
    env = make(name, num_envs=3, from_pixels=True, pixels_only=False, image_size=20)
    spec = env.observation_spec
    assert spec["pixels"].dtype == torch.uint8 and spec["pixels"].shape == (3, 3, 20, 20)
    assert (spec["pixels"].space.low == 0).all() and (spec["pixels"].space.high == 255).all()
    root = env.reset()
    nxt = env.rand_step(root.clone())["next"]
    for out in (root, nxt):
        assert spec.is_in(out.select(*spec.keys()))
        assert out["observation"].dtype == torch.float32 and out["pixels"].is_contiguous()


def test_make_takes_the_pixel_options():
    env = rlte_plugins.make("env", "torch_pendulum", num_envs=4, from_pixels=True, image_size=32, frame_stack=3,
                            action_repeat=2)  # fmt: skip
    assert env.reset()["pixels"].shape == (4, 9, 32, 32)
    assert "from_pixels=True" in repr(env) and "action_repeat=2" in repr(env)


@pytest.mark.parametrize(
    "option,value",
    [("image_size", 0), ("frame_stack", 0), ("action_repeat", 0), ("action_repeat", 1.5), ("frame_stack", True)],
)
def test_bad_options_name_the_env_and_the_option(option, value):
    with pytest.raises(ComponentArgumentError, match=rf"env 'torch_pendulum': {option} must be a positive int"):
        make("torch_pendulum", from_pixels=True, **{option: value})


def test_a_task_without_a_rendering_refuses_pixels():
    with pytest.raises(ComponentArgumentError, match="'dummy_discrete': from_pixels=True, but this task has no"):
        make("dummy_discrete", from_pixels=True)
    assert make("dummy_discrete", action_repeat=2).reset()["observation"].shape == (4, 1)


def pendulum_angle(frames: torch.Tensor) -> torch.Tensor:
    """The angle the red rod shows, read off the picture (gymnasium's convention: 0 upright)."""
    red = (frames[:, 0].float() - frames[:, 1].float()).clamp_min(0)  # [n, H, W]: the rod, not black or white
    size = frames.shape[-1]
    centre = (torch.arange(size) + 0.5) - size / 2
    x, y = (red * centre).sum((1, 2)), (red * -centre[:, None]).sum((1, 2))
    return torch.atan2(-x, y)


def test_pixels_follow_the_state_and_one_frame_gives_the_pendulum_angle():
    env = make("torch_pendulum", num_envs=8, from_pixels=True, image_size=64)
    angles = torch.linspace(-math.pi, math.pi, 9)[:-1] + 0.1
    state = torch.stack((angles, torch.zeros(8)), -1)
    frames = env.render(state)
    assert frames.shape == (8, 3, 64, 64) and frames.dtype == torch.uint8
    error = torch.remainder(pendulum_angle(frames) - angles + math.pi, 2 * math.pi) - math.pi
    assert error.abs().max() < 0.05  # every angle, none mistaken for its opposite
    assert torch.equal(env.render(state), frames)  # a function of the state alone
    assert not torch.equal(env.render(state + torch.tensor([0.02, 0.0])), frames)  # a small turn shows


@pytest.mark.parametrize("name", RENDERED)
def test_pixels_change_with_the_state_and_tell_states_apart(name):
    env = make(name, num_envs=2, from_pixels=True, image_size=48)
    td = env.reset()
    env.state = env.state[:1].expand(2, -1).clone()
    same = env.render(env.state)
    assert torch.equal(same[0], same[1])
    # one visible coordinate moved in the second env: the cart's, the rod's angle, the car's position
    moved = env.state.clone()
    moved[1, 2 if name == "torch_cartpole" else 0] += 0.3
    frames = env.render(moved)
    assert torch.equal(frames[0], same[0]) and not torch.equal(frames[1], same[1])
    colours = {tuple(c) for c in frames[1].reshape(3, -1).T.tolist()}
    assert len(colours) > 4  # the parts' colours and soft edges between them, not a two-tone mask
    for _ in range(3):
        td = env.rand_step(td)["next"]
    assert not torch.equal(td["pixels"], same)


def test_frame_stack_puts_the_new_frame_last_and_refills_only_reset_envs():
    env = make("torch_pendulum", from_pixels=True, image_size=16, frame_stack=3, pixels_only=False)
    stack = env.reset()["pixels"]
    first = env.render(env.state)
    assert all(torch.equal(stack[:, 3 * i : 3 * i + 3], first) for i in range(3))  # copies of the first frame
    for _ in range(4):
        nxt = env.rand_step(TensorDict(batch_size=[4]))["next"]
        pixels = nxt["pixels"]
        assert torch.equal(pixels[:, 6:], env.render(env.state))  # newest last
        assert torch.equal(pixels[:, :6], stack[:, 3:])  # the older ones shifted towards the front
        stack = pixels
    mask = torch.tensor([True, False, True, False])
    # TorchRL's partial reset: the envs not reset keep the input's values (here the last step's)
    after = env.reset(nxt.set("_reset", mask.unsqueeze(-1)))["pixels"]
    fresh = env.render(env.state)
    for i in (0, 2):
        assert all(torch.equal(after[i, 3 * j : 3 * j + 3], fresh[i]) for j in range(3))
    assert torch.equal(after[~mask], stack[~mask])
    # and the env's own stacks: the next step continues the old stacks, and starts from the refilled ones
    pixels = env.rand_step(TensorDict(batch_size=[4]))["next"]["pixels"]
    assert torch.equal(pixels[~mask, :6], stack[~mask, 3:])
    assert torch.equal(pixels[mask, :3], fresh[mask]) and torch.equal(pixels[mask, 3:6], fresh[mask])


def substep_reference(name: str, state: torch.Tensor, action: torch.Tensor, repeat: int) -> dict:
    """What ``repeat`` steps of the base env (no repeat) give, summed up to each env's first termination."""
    base = make(name, num_envs=state.shape[0], max_episode_steps=0)
    base.reset()
    base.state = state.clone()
    reward, ended, observation = torch.zeros(state.shape[0], 1), torch.zeros(state.shape[0], 1, dtype=torch.bool), []
    for _ in range(repeat):
        nxt = base.step(TensorDict(action=action, batch_size=base.batch_size))["next"]
        reward += torch.where(ended, 0.0, nxt["reward"])
        observation.append(torch.where(ended, observation[-1] if observation else 0.0, nxt["observation"]))
        ended |= nxt["terminated"]
    return {"reward": reward, "terminated": ended, "observation": observation[-1]}


@pytest.mark.parametrize("name", ["torch_pendulum", "torch_cartpole"])
def test_action_repeat_sums_rewards_and_stops_at_a_termination(name):
    env = make(name, action_repeat=4, max_episode_steps=0)
    env.reset()
    if name == "torch_cartpole":  # env 0 leaves the track on the first sub-step, env 1 on the second
        env.state = torch.tensor([[2.39, 2.0, 0.0, 0.0], [2.3, 3.0, 0, 0], [0.0, 0.0, 0.01, 0.0], [0.1, 0, 0, 0]])
    start = env.state.clone()
    action = env.action_spec.rand()
    nxt = env.step(TensorDict(action=action, batch_size=[4]))["next"]
    expected = substep_reference(name, start, action, 4)
    torch.testing.assert_close(nxt["reward"], expected["reward"])
    torch.testing.assert_close(nxt["observation"], expected["observation"])
    assert torch.equal(nxt["terminated"], expected["terminated"]) and int(nxt["episode_length"].max()) == 1
    if name == "torch_cartpole":
        assert nxt["reward"].squeeze(-1).tolist() == [1.0, 2.0, 4.0, 4.0]
        assert nxt["terminated"].squeeze(-1).tolist() == [True, True, False, False]


def test_the_time_limit_counts_task_steps_and_its_last_repeat_is_short():
    # 7 task steps with a repeat of 3: agent steps of 3, 3 and 1 task steps, truncated at the third
    policy = lambda td: td.set("action", torch.ones(2, dtype=torch.long))  # noqa: E731
    base = make("dummy_discrete", num_envs=2, max_episode_steps=7).rollout(7, policy, break_when_any_done=False)
    env = make("dummy_discrete", num_envs=2, max_episode_steps=7, action_repeat=3)
    td = env.rollout(6, policy, break_when_any_done=False)
    assert td["next", "truncated"].squeeze(-1).tolist() == [[False, False, True] * 2] * 2
    assert td["next", "episode_length"].squeeze(-1).tolist() == [[1, 2, 3] * 2] * 2
    torch.testing.assert_close(td["next", "episode_reward"][:, 2], base["next", "episode_reward"][:, 6])
    torch.testing.assert_close(td["next", "reward"][:, 2], base["next", "reward"][:, 6])  # one sub-step only
    torch.testing.assert_close(td["next", "observation"][:, 2], base["next", "observation"][:, 6])


def test_the_plain_tensor_path_gives_the_torchrl_paths_outputs():
    options = dict(from_pixels=True, pixels_only=False, image_size=16, frame_stack=2, action_repeat=2,
                   max_episode_steps=5)  # fmt: skip
    plain, rl = make("torch_pendulum", **options), make("torch_pendulum", **options)
    actions = plain.action_spec.rand(torch.Size([6]))  # episodes of 3 agent steps (5 task steps, 2 a step)
    root, td = plain.reset_tensors(), rl.reset()
    for key in root:
        assert torch.equal(root[key], td[key]), key
    for action, (nxt, after) in zip(actions, tensor_path_steps(plain, actions), strict=True):
        # what TorchRL's step_and_maybe_reset does, with the reset called every step as the plain path does
        # (step_and_maybe_reset skips it when no env is done, and so draws fewer fresh states)
        step = rl.step(td.set("action", action))["next"]
        td = rl.reset(step.clone().set("_reset", step["done"]))
        for key in nxt:
            assert torch.equal(nxt[key], step[key]), key
        for key in after:
            assert torch.equal(after[key], td[key]), key
    assert step["truncated"].all()  # the last step ended the episodes: refilled stacks were compared


def test_a_compiled_pixel_env_steps_as_the_eager_one():
    # the costliest test here (compiling the step and the refill): one task, tiny frames, few steps
    options = dict(num_envs=3, seed=1, from_pixels=True, image_size=12, frame_stack=2, action_repeat=2,
                   max_episode_steps=5)  # fmt: skip
    eager, compiled = make("torch_pendulum", **options), make("torch_pendulum", compile=True, **options)
    assert compiled._refill is not compiled._refill_frames
    assert torch.equal(eager.reset_tensors()["pixels"], compiled.reset_tensors()["pixels"])
    actions = eager.action_spec.rand(torch.Size([3]))  # the third ends the episodes (5 task steps, 2 a step)
    for (a, ra), (b, rb) in zip(tensor_path_steps(eager, actions), tensor_path_steps(compiled, actions), strict=True):
        for key in a:  # fused arithmetic rounds differently: a pixel may land one level off
            torch.testing.assert_close(a[key], b[key], msg=key, **({"rtol": 0, "atol": 1} if key == "pixels" else {}))
        torch.testing.assert_close(ra["pixels"], rb["pixels"], rtol=0, atol=1)
    assert b["truncated"].all()


def test_env_state_resumes_exactly_frame_stacks_included():
    options = dict(from_pixels=True, image_size=16, frame_stack=3, max_episode_steps=4, action_repeat=2)
    env = make("torch_cartpole", **options)
    actions = env.action_spec.rand(torch.Size([10]))
    env.reset_tensors()
    tensor_path_steps(env, actions[:5])
    buffer = io.BytesIO()
    torch.save(env.env_state(), buffer)
    expected = tensor_path_steps(env, actions[5:])
    resumed = make("torch_cartpole", seed=99, **options)
    buffer.seek(0)
    resumed.load_env_state(torch.load(buffer))
    for (a, ra), (b, rb) in zip(expected, tensor_path_steps(resumed, actions[5:]), strict=True):
        for mine, theirs in ((a, b), (ra, rb)):
            for key in mine:
                assert torch.equal(mine[key], theirs[key]), key
    with pytest.raises(SpecMismatchError, match="frame_stack"):
        make("torch_cartpole", **{**options, "frame_stack": 2}).load_env_state(env.env_state())
    with pytest.raises(SpecMismatchError, match="no frames"):
        resumed.load_env_state(make("torch_cartpole").env_state())
