"""``rlte play RUN_DIR``: watch a run's agent (or any agent checkpoint file) act, written to a GIF or an MP4."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

from rlte_plugins.cli.common import (
    EXIT_OK,
    Subparsers,
    add_acting_arguments,
    add_run_argument,
    add_threads_and_json,
    positive_int,
    print_json,
)
from rlte_plugins.files import checkpoint_of

#: the video's name in a run directory, or beside a checkpoint file (its name with this extension)
DEFAULT_VIDEO = "play.gif"


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "play",
        help="render a run's agent acting, to a GIF or an MP4",
        description="Load a run's checkpoint (RUN_DIR/checkpoint.pt, or a checkpoint file), play episodes on one "
        "env made like its training env and write every frame of them to one video: a GIF (through Pillow) or an "
        "MP4 (through imageio-ffmpeg: pip install imageio-ffmpeg). Prints each episode's return and length. Envs "
        "that render: the torch-native tasks, gymnasium ids with an rgb_array render mode (classic control needs "
        "pygame), DeepMind Control on dm_control, Atari, Procgen, MiniGrid on the minigrid package.",
    )
    add_run_argument(p)
    p.add_argument("--episodes", type=positive_int, default=3, help="episodes to play (default 3)")
    p.add_argument("--video", metavar="PATH",
                   help=f"the video, .gif or .mp4 (default RUN_DIR/{DEFAULT_VIDEO}; beside a checkpoint file, its "
                   "name with .gif)")  # fmt: skip
    p.add_argument("--fps", type=positive_int, default=25, help="frames per second (default 25; a GIF at most 50)")
    p.add_argument("--size", type=positive_int, default=256,
                   help="pixels on the long side of the frames, drawn or scaled (default 256)")  # fmt: skip
    p.add_argument("--max-steps", type=positive_int, default=1_000,
                   help="agent steps after which an episode is cut (default 1000)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the env (and of sampled actions; default 0)")
    add_acting_arguments(p, "play")
    add_threads_and_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rlte_plugins.agents.base import load_agent
    from rlte_plugins.training.play import check_video_path, play
    from rlte_plugins.training.runner import quiet_torchrl

    path = Path(args.run)
    checkpoint = checkpoint_of(args.run)
    video = Path(args.video) if args.video else path / DEFAULT_VIDEO if path.is_dir() else path.with_suffix(".gif")
    check_video_path(video, args.fps)  # before the agent loads: a bad name or a missing writer fails at once
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_torchrl()
    agent = load_agent(checkpoint, **({"device": args.device} if args.device else {}))
    try:
        result = play(agent, args.episodes, deterministic=not args.stochastic, max_steps=args.max_steps,
                      video=video, fps=args.fps, size=args.size, seed=args.seed)  # fmt: skip
    finally:
        agent.close()
    returns = [e.episode_return for e in result.episodes]
    if args.json:
        print_json({
            "checkpoint": str(checkpoint),
            "agent": agent.name,
            "preset": agent.preset,
            "frames_trained": agent.frames,
            "device": str(agent.device),
            "deterministic": not args.stochastic,
            "episodes": [dataclasses.asdict(e) for e in result.episodes],
            "mean": statistics.fmean(returns),
            "video": str(result.video),
            "video_frames": result.frames,
            "frame_size": list(result.frame_size or ()),
            "fps": result.fps,
        })  # fmt: skip
        return EXIT_OK
    print(f"{checkpoint}: agent {agent.preset or agent.name!r} after {agent.frames:,} frames, on {agent.device}")
    for i, episode in enumerate(result.episodes, 1):
        cut = "" if episode.ended else f" (cut at --max-steps {args.max_steps})"
        print(f"episode {i}: return {episode.episode_return:.2f}, {episode.length} steps{cut}")
    height, width = result.frame_size or (0, 0)
    seconds = result.frames / result.fps
    print(f"wrote {result.video}: {result.frames} frames, {width}x{height}, {result.fps} fps ({seconds:.1f} s)")
    return EXIT_OK
