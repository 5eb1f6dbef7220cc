"""Atari on both backends: preprocessing, skip counted once, episodic life, clipped rewards, reproducibility."""

from __future__ import annotations

import pytest
import torch
from helpers import check_family, check_reproducible, needs

import rlte_plugins
from rlte_plugins.envs.atari import game_name
from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError

BACKENDS = [pytest.param("envpool", marks=needs("envpool")), pytest.param("gymnasium", marks=needs("ale-py"))]


def test_game_names():
    assert {game_name(g) for g in ("pong", "Pong", "Pong-v5", "ALE/Pong-v5", "PongNoFrameskip-v4")} == {"Pong"}
    assert game_name("space_invaders") == "SpaceInvaders"


@pytest.mark.parametrize("backend", BACKENDS)
def test_specs_and_rollout(backend):
    td = check_family("atari", game="Breakout", backend=backend, steps=20)
    assert td["next", "pixels"].shape[2:] == (4, 84, 84)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeded_rollouts_reproduce(backend):
    check_reproducible("atari", ("next", "pixels"), steps=40, game="Breakout", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_episodic_life_terminates_per_life_but_scores_the_game(backend):
    env = rlte_plugins.make(
        "env", "atari", game="Breakout", backend=backend, num_envs=2, seed=0, repeat_action_probability=0.0
    )
    torch.manual_seed(0)
    td = env.rollout(600, break_when_any_done=False)
    term = td["next", "terminated"].squeeze(-1)
    end = td["next", "episode_end"].squeeze(-1)
    length = td["next", "episode_length"].squeeze(-1)
    assert end.any() and int(term.sum()) >= 4 * int(end.sum())  # 5 lives per game
    # the game's length runs on through lost lives and restarts only after a game over
    for i in range(2):
        lost = torch.nonzero(term[i] & ~end[i]).flatten()
        lost = lost[lost + 1 < length.shape[1]]
        assert lost.numel() and (length[i, lost + 1] == length[i, lost] + 1).all()
        over = torch.nonzero(end[i]).flatten()
        over = over[over + 1 < length.shape[1]]
        assert (length[i, over + 1] == 1).all()
    # episode_reward is the game's score: at least the clipped rewards' sum (Breakout bricks are worth 1 to 7)
    i, j = torch.nonzero(end).tolist()[0]
    first = int(j - length[i, j] + 1)
    clipped = td["next", "reward"][i, first : j + 1].sum()
    assert td["next", "episode_reward"][i, j] >= clipped


@pytest.mark.parametrize("backend", BACKENDS)
def test_clipped_reward_is_the_sign_of_the_score_and_episode_reward_keeps_the_score(backend):
    def run(clip_rewards):
        env = rlte_plugins.make("env", "atari", game="Asterix", backend=backend, num_envs=1, seed=0,
                                clip_rewards=clip_rewards, repeat_action_probability=0.0)  # fmt: skip
        up = torch.ones(1, dtype=torch.long)
        td = env.rollout(40, break_when_any_done=False, policy=lambda td: td.set("action", up))
        env.close()
        return td

    raw, clipped = run(False), run(True)
    assert torch.equal(raw["next", "pixels"], clipped["next", "pixels"])  # the same game, step for step
    assert not raw["next", "done"].any()  # one episode: episode_reward is a running sum throughout
    score = raw["next", "reward"]
    assert score.max() >= 50  # an Asterix item is worth 50: unclipped, and something for clipping to clip
    assert torch.equal(clipped["next", "reward"], torch.sign(score))
    assert torch.equal(raw["next", "episode_reward"], score.cumsum(1))
    assert torch.equal(clipped["next", "episode_reward"], raw["next", "episode_reward"])


def test_frame_skip_advances_exactly_four_frames_per_step():
    pytest.importorskip("ale_py")
    env = rlte_plugins.make(
        "env", "atari", game="Pong", backend="gymnasium", num_envs=1, seed=0, repeat_action_probability=0.0
    )
    ale = env._vec.envs[0].unwrapped.ale
    td = env.reset()
    start = ale.getEpisodeFrameNumber()
    for _ in range(10):
        td["action"] = env.action_spec.rand()
        td = env.step(td)["next"]
    assert ale.getEpisodeFrameNumber() - start == 40  # 4 per step, never 16 (a v5 id skipping twice)


def test_rgb_frames():
    pytest.importorskip("envpool")
    env = rlte_plugins.make("env", "atari", game="Pong", num_envs=1, seed=0, grayscale=False, frame_stack=2,
                            image_size=64)  # fmt: skip
    assert env.observation_spec["pixels"].shape == (1, 6, 64, 64)


def test_bad_arguments():
    with pytest.raises(ComponentArgumentError, match="backend"):
        rlte_plugins.make("env", "atari", game="Pong", backend="nope")
    with pytest.raises(ComponentArgumentError, match="frame_skip"):
        rlte_plugins.make("env", "atari", game="Pong", frame_skip=0)
    with pytest.raises(EnvironmentNotFoundError, match="NoSuchGame"):
        rlte_plugins.make("env", "atari", game="NoSuchGame", backend="gymnasium")
    with pytest.raises(EnvironmentNotFoundError, match="did you mean"):
        rlte_plugins.make("env", "atari", game="Pongg", backend="envpool")


def test_time_limit_truncates_and_restarts():
    pytest.importorskip("envpool")
    env = rlte_plugins.make("env", "atari", game="Breakout", num_envs=1, seed=0, episodic_life=False,
                            repeat_action_probability=0.0, max_episode_steps=30)  # fmt: skip
    td = env.rollout(31, break_when_any_done=False)
    trunc = td["next", "truncated"].squeeze()
    assert torch.equal(torch.nonzero(trunc).flatten(), torch.tensor([29]))
    assert not td["next", "terminated"].any()
    assert td["next", "episode_length"][0, 29].item() == 30 and td["next", "episode_length"][0, 30].item() == 1
