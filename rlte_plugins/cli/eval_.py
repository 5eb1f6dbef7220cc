"""``rlte eval RUN_DIR``: evaluate a run's checkpoint (or any agent checkpoint file) and print its returns;
``rlte eval plot RESULTS_DIR``: the aggregate metrics and figures of a benchmark suite's results (the module is
``eval_``: a submodule called ``eval`` would shadow the builtin inside the package)."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from rlte_plugins.cli.common import (
    EXIT_OK,
    CommandParser,
    Subparsers,
    add_acting_arguments,
    add_run_argument,
    add_threads_and_json,
    positive_int,
    print_json,
)
from rlte_plugins.files import checkpoint_of


class _EvalParser(CommandParser):
    """``rlte eval``'s parser: ``plot`` as its first argument hands the rest to the plot parser (a positional
    RUN_DIR and a subcommand cannot share one argparse parser)."""

    plot_parser: CommandParser

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        positional = [i for i, a in enumerate(args or []) if not a.startswith("-")]
        if positional and args[positional[0]] == "plot":  # `rlte eval --debug plot DIR` too
            return self.plot_parser.parse_known_args(args[: positional[0]] + args[positional[0] + 1 :], namespace)
        return super().parse_known_args(args, namespace)


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a run's checkpoint; `rlte eval plot RESULTS_DIR` draws a suite's results",
        description="Load a run's checkpoint (RUN_DIR/checkpoint.pt, or a checkpoint file) and print the mean, "
        "std, min and max return over fresh evaluation episodes. `rlte eval plot RESULTS_DIR` (see `rlte eval "
        "plot --help`) writes the aggregate metrics and figures of a benchmark suite's results.",
    )
    p.__class__ = _EvalParser
    p.plot_parser = _plot_parser(p.prog)
    add_run_argument(p)
    p.add_argument("--episodes", type=positive_int, default=10, help="evaluation episodes (default 10)")
    add_acting_arguments(p, "evaluate")
    add_threads_and_json(p)
    p.set_defaults(func=run)


def _plot_parser(prog: str) -> CommandParser:
    from rlte_plugins.evaluation.report import METRICS

    p = CommandParser(
        prog=f"{prog} plot",
        description="Write the figures of a results folder of `rlte bench suite` (PNG and SVG): aggregate metrics "
        "with 95% stratified-bootstrap intervals, performance profiles, probabilities of improvement and "
        "sample-efficiency curves (rliable's methods), and aggregates.json with the numbers; print the table.",
    )
    p.add_argument("results", metavar="RESULTS_DIR", help="a results folder of rlte bench suite")
    p.add_argument("--metrics", nargs="+", default=list(METRICS), choices=list(METRICS), metavar="METRIC",
                   help=f"aggregate metrics ({', '.join(METRICS)}; default all)")  # fmt: skip
    p.add_argument("--output", help="folder of the figures (default RESULTS_DIR/plots)")
    p.add_argument("--reps", type=positive_int, default=50_000, help="bootstrap samples of the aggregates")
    p.add_argument("--curve-reps", type=positive_int, default=2_000,
                   help="bootstrap samples of each point of the profiles and curves")  # fmt: skip
    p.add_argument("--raw", action="store_true", help="raw returns even where the tasks have score ranges")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--json", action="store_true", help="print the aggregates as JSON")
    p.set_defaults(func=run_plot, command="eval")
    return p


def run_plot(args: argparse.Namespace) -> int:
    import json

    from rlte_plugins.evaluation.report import METRICS, plot_results
    from rlte_plugins.evaluation.results import load_results

    results = load_results(args.results)
    written = plot_results(results, args.output, args.metrics, reps=args.reps, curve_reps=args.curve_reps,
                           normalize=False if args.raw else None, random_state=args.seed)  # fmt: skip
    table = json.loads(next(p for p in written if p.name == "aggregates.json").read_text(encoding="utf-8"))
    if args.json:
        print_json(table)
        return EXIT_OK
    kind = "normalised scores" if table["normalized"] else "raw returns"
    print(f"suite {results.name!r}: {', '.join(f'{a} ({n} runs)' for a, n in table['runs'].items())} on "
          f"{len(table['tasks'])} tasks; {kind}, 95% intervals from {args.reps:,} bootstrap samples")  # fmt: skip
    if table["tasks_left_out"]:
        print(f"  left out (not finished by every algorithm): {', '.join(table['tasks_left_out'])}")
    for metric, by_alg in table["metrics"].items():
        cells = [f"{a} {v['point']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]" for a, v in by_alg.items()]
        print(f"  {METRICS[metric][1]:15s} " + "   ".join(cells))
    for pair, v in table.get("probability_of_improvement", {}).items():
        x, y = pair.split(",")
        print(f"  P({x} > {y}) = {v['point']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]")
    print("figures:")
    for path in written:
        print(f"  {path}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    import torch

    from rlte_plugins.agents.base import load_agent
    from rlte_plugins.training.runner import quiet_torchrl

    checkpoint = checkpoint_of(args.run)
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
