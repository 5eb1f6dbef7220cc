"""``rlte eval RUN_DIR``: evaluate a run's checkpoint (or any agent checkpoint file) and print its returns (the
module is ``eval_``: a submodule called ``eval`` would shadow the builtin inside the package)."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from rlte_plugins.cli.common import EXIT_OK, Subparsers, positive_int, print_json
from rlte_plugins.errors import CheckpointError


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a run's checkpoint",
        description="Load a run's checkpoint (RUN_DIR/checkpoint.pt, or a checkpoint file) and print the mean, "
        "std, min and max return over fresh evaluation episodes.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run directory of rlte train, or a checkpoint file (.pt)")
    p.add_argument("--episodes", type=positive_int, default=10, help="evaluation episodes (default 10)")
    p.add_argument("--device", help="device to evaluate on (default: the one the agent was trained on)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    p.add_argument("--threads", type=positive_int, help="torch's CPU thread count")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rlte_plugins.agents.base import load_agent
    from rlte_plugins.training.runner import CHECKPOINT_FILE, quiet_torchrl

    path = Path(args.run)
    checkpoint = path / CHECKPOINT_FILE if path.is_dir() else path
    if path.is_dir() and not checkpoint.is_file():
        raise CheckpointError(f"{str(path)!r} has no {CHECKPOINT_FILE}: not a run directory of rlte train, or one "
                              "that has not saved yet")  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_torchrl()
    agent = load_agent(checkpoint, **({"device": args.device} if args.device else {}))
    try:
        returns = agent.evaluate(args.episodes, deterministic=not args.stochastic)
    finally:
        agent.close()
    result = {
        "checkpoint": str(checkpoint),
        "agent": agent.name,
        "preset": agent.preset,
        "frames": agent.frames,
        "device": str(agent.device),
        "deterministic": not args.stochastic,
        "episodes": len(returns),
        "mean": statistics.fmean(returns),
        "std": statistics.pstdev(returns),
        "min": min(returns),
        "max": max(returns),
        "returns": returns,
    }
    if args.json:
        print_json(result)
        return EXIT_OK
    agent_name = agent.preset or agent.name
    print(f"{checkpoint}: agent {agent_name!r} after {agent.frames:,} frames, on {agent.device}")
    mode = "deterministic" if not args.stochastic else "stochastic"
    print(
        f"{len(returns)} {mode} episodes: mean {result['mean']:.2f}  std {result['std']:.2f}  "
        f"min {result['min']:.2f}  max {result['max']:.2f}"
    )
    return EXIT_OK
