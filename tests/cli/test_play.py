"""`rlte play`: videos of tiny trained agents on torch-native tasks (state and pixels), read back with Pillow; the
env families' frames; the errors at the boundary (format, missing writer, missing checkpoint, an env that cannot
render).

Agents train for 256 frames (a second each): what is checked is that the video holds every step of what they do.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rlte_plugins
from rlte_plugins.cli import play as play_command
from rlte_plugins.cli.common import CommandParser
from rlte_plugins.errors import CheckpointError, ComponentArgumentError, MissingDependencyError, SpecMismatchError
from rlte_plugins.training.play import play

PIXELS = {"name": "torch_point_mass", "from_pixels": True, "image_size": 16, "frame_stack": 3}
TINY = {"num_envs": 4, "num_steps": 16, "num_minibatches": 1, "epochs": 1, "seed": 0}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run directories of PPO trained for 256 frames on torch_cartpole (state) and torch_point_mass (pixels)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("runs")
        made = {}
        for kind, env in (("state", "torch_cartpole"), ("pixels", PIXELS)):
            agent = rlte_plugins.make("agent", "ppo", env=env, **TINY)
            if kind == "pixels":
                agent.set(encoder={"name": "tassa_cnn", "features": 32, "channels": 8})
            agent.train(256, progress=False)
            agent.save(root / kind / "checkpoint.pt")
            made[kind] = root / kind
        return made
    finally:
        torch.set_num_threads(threads)


def rlte_play(*argv: str) -> str:
    """``rlte play ARGV`` through this command's own parser; returns what it printed."""
    parser = argparse.ArgumentParser(prog="rlte")
    play_command.add_parser(parser.add_subparsers(dest="command", parser_class=CommandParser))
    args = parser.parse_args(["play", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return out.getvalue()


def gif_frames(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """The frames of a GIF as RGB arrays and their delays (ms)."""
    frames, delays = [], []
    with Image.open(path) as image:
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
            delays.append(image.info["duration"])
    return frames, delays


@pytest.mark.parametrize("kind", ["state", "pixels"])
def test_play_writes_every_step_of_every_episode_into_one_gif(runs, kind, tmp_path):
    video = tmp_path / "videos" / "out.gif"  # the folder is created
    printed = rlte_play(str(runs[kind]), "--episodes", "2", "--video", str(video), "--fps", "20", "--size", "48",
                        "--max-steps", "25", "--threads", "1", "--json")  # fmt: skip
    result = json.loads(printed)
    episodes = result["episodes"]
    assert len(episodes) == 2 and all(1 <= e["length"] <= 25 for e in episodes)
    assert all(e["ended"] == (e["length"] < 25) for e in episodes)
    # a reset frame per episode, then one per step
    assert result["video_frames"] == sum(e["length"] for e in episodes) + 2
    assert result["frame_size"] == [48, 48] and Path(result["video"]) == video
    frames, delays = gif_frames(video)
    # Pillow merges a frame identical to the one before into it (a longer delay): the total time is kept
    assert sum(delays) == 50 * result["video_frames"] and 1 < len(frames) <= result["video_frames"]
    assert frames[0].shape == (48, 48, 3)
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # the agent moves
    assert [p.name for p in video.parent.iterdir()] == ["out.gif"]  # no temporary file left


def test_play_prints_each_episode_and_writes_beside_the_run_by_default(runs, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((runs["state"] / "checkpoint.pt").read_bytes())
    printed = rlte_play(str(run), "--episodes", "2", "--max-steps", "5", "--size", "32")
    lines = printed.splitlines()
    assert lines[1:3] == [f"episode {i}: return 5.00, 5 steps (cut at --max-steps 5)" for i in (1, 2)]
    assert lines[3] == f"wrote {run / 'play.gif'}: 12 frames, 32x32, 25 fps (0.5 s)"
    with Image.open(run / "play.gif") as image:
        assert image.size == (32, 32)


def test_torch_native_frames_are_the_pixels_the_agent_sees_or_the_state_drawn(tmp_path):
    env = rlte_plugins.make("env", "torch_point_mass", num_envs=2, seed=0, from_pixels=True, image_size=24,
                            frame_stack=3)  # fmt: skip
    td = env.rollout(3, break_when_any_done=False)[:, -1]["next"]
    newest = td["pixels"][:, -3:].permute(0, 2, 3, 1)
    assert torch.equal(env.render_frames(), newest)
    assert torch.equal(env.render_frames(24), newest)  # drawn again from the state, on a canvas of its own
    assert env.render_frames(96).shape == (2, 96, 96, 3)
    state_env = rlte_plugins.make("env", "torch_point_mass", num_envs=2, seed=0)
    state_env.reset()
    assert "pixels" not in state_env.observation_spec.keys()
    state_env.state.copy_(env.state)
    assert torch.equal(state_env.render_frames(24), newest)
    with pytest.raises(SpecMismatchError, match="'dummy_discrete' cannot render frames: the task has no rendering"):
        rlte_plugins.make("env", "dummy_discrete", num_envs=1).render_frames()


def test_gymnasium_cartpole_plays_through_its_rgb_array_mode(tmp_path):
    pytest.importorskip("pygame", reason="gymnasium's classic-control drawing needs pygame")
    agent = rlte_plugins.make("agent", "ppo", env="CartPole-v1", **TINY)
    result = play(agent, 1, max_steps=4, video=tmp_path / "cartpole.gif", size=None)
    assert result.frames == 5 and result.frame_size == (400, 600)  # gymnasium's own 600x400 drawing
    frames, _ = gif_frames(tmp_path / "cartpole.gif")
    assert frames[0].shape == (400, 600, 3) and not np.array_equal(frames[0], frames[-1])


def test_gymnasium_without_pygame_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    env = rlte_plugins.make("env", "gymnasium", env_id="CartPole-v1", num_envs=1, seed=0)
    env.reset()
    with pytest.raises(MissingDependencyError, match=r"'gymnasium' cannot render frames: pygame .*pip install"):
        env.render_frames()


def test_mp4_without_imageio_ffmpeg_says_what_to_install_before_loading(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # its import now raises ImportError
    monkeypatch.setattr("rlte_plugins.agents.base.load_agent", pytest.fail)  # fails before the agent loads
    with pytest.raises(MissingDependencyError, match="pip install imageio-ffmpeg"):
        rlte_play(str(runs["state"]), "--video", str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_mp4_holds_every_frame(runs, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="MP4 videos need imageio-ffmpeg")
    video = tmp_path / "out.mp4"
    rlte_play(str(runs["pixels"]), "--episodes", "1", "--max-steps", "9", "--video", str(video), "--size", "64")
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    assert meta["size"] == (64, 64) and len(list(reader)) == 10


@pytest.mark.parametrize(
    ("video", "fps", "match"),
    [
        ("out.avi", "25", r"unknown format '.avi'; write .gif or .mp4"),
        ("out", "25", r"unknown format '\(no extension\)'"),
        ("out.gif", "60", "a GIF plays at most 50 frames/s"),
    ],
)
def test_bad_video_names_and_rates_fail_at_once(runs, tmp_path, video, fps, match):
    with pytest.raises(ComponentArgumentError, match=match):
        rlte_play(str(runs["state"]), "--video", str(tmp_path / video), "--fps", fps)


def test_a_run_directory_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="has no checkpoint.pt: not a run directory of rlte train"):
        rlte_play(str(tmp_path), "--video", str(tmp_path / "out.gif"))


def test_an_env_that_cannot_render_fails_before_any_episode(tmp_path):
    agent = rlte_plugins.make("agent", "ppo", env={"name": "dummy_discrete", "max_episode_steps": 5}, **TINY)
    with pytest.raises(SpecMismatchError, match="'dummy_discrete' cannot render frames"):
        play(agent, 1, video=tmp_path / "out.gif")
    assert list(tmp_path.iterdir()) == []
    assert [e.length for e in play(agent, 2).episodes] == [5, 5]  # without a video: returns and lengths only
