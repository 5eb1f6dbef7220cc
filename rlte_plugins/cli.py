"""The ``rlte`` command line: list, info, plugins, train, bench, doctor.

Errors are one line on stderr (``error: ...``); ``--debug`` adds the traceback. Exit statuses are in
:data:`EXIT_STATUS` (``rlte --help`` prints them).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlte_plugins.errors import ComponentError, ConfigError, RlteError
from rlte_plugins.registry import KINDS, component_failure, get_registry, get_spec, normalize_kind, plugin_problems

EXIT_OK = 0
EXIT_NO_MATCH = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `set -o pipefail` sees from any tool cut off by `| head`

EXIT_STATUS = """exit status:
  0    success
  1    `rlte list` matched nothing (an unexpected internal error also exits 1, with its traceback)
  2    bad input, one line on stderr: usage, unknown names, arguments or config keys, a component that fails
       while it is made or built, an output directory that cannot be created
  130  interrupted (Ctrl-C)
  141  standard output closed early (`rlte list | head`)
"""

TRAIN_EPILOG = """\
config keys (YAML sections; --set section.key=value overrides any of them):
  description            free text shown on the learning curve
  agent                  name (ppo, or fast_ppo for envs on the training device) and the agent's
                         hyperparameters (`rlte info agent ppo` lists them)
  agent (fast_ppo)       num_envs, horizon, eval_every, eval_episodes=16, stop_conditions, recurrent, and
                         FastPPO's options
                         (`python -c "help('rlte_plugins.training.fast.FastPPO')"` explains each):
                         epochs=4, minibatch_size=null (whole rollout), grad_accumulation=1, lr=3e-4,
                         entropy_coef=0.0 (lr and entropy_coef also take "linear(start, end, frames)"),
                         gamma=0.95, gae_lambda=0.95, clip_epsilon=0.2, clip_value=null, value_coef=1.0,
                         max_grad_norm=5.0, normalize_advantage=true, normalize_observation=false,
                         scale_rewards=true, target_kl=null, amp=null|bf16|fp16, compile=false|true|
                         max-autotune, cudagraphs=false, chunk_size=8192, retain_memory=true, env_kwargs.
                         recurrent: {cell: lstm|gru, hidden_size, sequence_length, burn_in}, an LSTM/GRU
                         policy. stop_conditions: a list such as [{hits_upper_bound: {key:
                         eval/returns/mean, bound: 475}}, {time_budget: 600}]; conditions:
                         hits_upper_bound, hits_lower_bound, plateaus, stops_increasing, stops_decreasing,
                         frame_budget, time_budget, and, or
  env                    name (e.g. gymnasium) and the env maker's arguments (env_id, num_envs, ...)
  encoder, policy, distribution, storage
                         name and arguments of each component (`rlte info KIND NAME`); omit for defaults
  train.total_frames     frames to train for
  train.seed             seed of torch, numpy, Python and the env
  train.device           cpu, cuda, cuda:1 ...
  train.eval_episodes    episodes of the final deterministic evaluation (0 skips it)
  train.logger           csv (default), tensorboard, wandb, mlflow or none
  train.output           run directory (logs, checkpoint.pt, learning_curve.png, summary.json)
  train.checkpoint_every frames between checkpoints (default: only at the end)
  train.progress         show progress (true/false)

examples:
  rlte train ppo_cartpole
  rlte train fast_ppo_cartpole --set agent.horizon=64
  rlte train my_config.yaml --set agent.lr=3e-4 --set encoder.num_cells=[128,128] --seed 3
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_OK
    try:
        status = args.func(args)
        sys.stdout.flush()  # output still buffered meets a closed pipe here, inside the handler below
        return status
    except BrokenPipeError:
        # The reader is gone: stop quietly. Point stdout at devnull so that the interpreter's last flush at exit
        # does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        error = exc if isinstance(exc, RlteError) else component_failure(exc)
        if error is None:
            raise  # a bug of rlte-plugins itself: the traceback is the report
        if args.debug:
            traceback.print_exception(exc)
        hint = " (rerun with --debug for the traceback)" if isinstance(error, ComponentError) and not args.debug else ""
        print(f"error: {error}{hint}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    from rlte_plugins import __version__

    parser = argparse.ArgumentParser(
        prog="rlte",
        description="rlte-plugins: composable RL components.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlte-plugins {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of errors")
    # `--debug` is accepted after the command too; SUPPRESS keeps a subcommand from resetting it to False
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_subparser_with(common))

    p = sub.add_parser("list", help="list registered components", description="List registered components.")
    p.add_argument("kind", nargs="?", help=f"one of: {', '.join(KINDS)} (or a pattern)")
    p.add_argument("pattern", nargs="?", help="fnmatch wildcard over names, e.g. 'mlp*'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="describe one component", description="Describe one component.")
    p.add_argument("kind", help=f"one of: {', '.join(KINDS)}")
    p.add_argument("name", help="component name (or plugin:name)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="list installed plugins and load errors", description="List plugins.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser(
        "train",
        help="train a recipe or a YAML config",
        description="Train a packaged recipe (by name) or a YAML config file.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", nargs="?", help="recipe name (e.g. ppo_cartpole) or path to a YAML config")
    p.add_argument("-f", "--config", help="path to a YAML config (instead of TARGET)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. agent.lr=3e-4 (repeatable)",
    )
    p.add_argument("--device", help="training device (overrides train.device)")
    p.add_argument("--seed", type=int, help="seed (overrides train.seed)")
    p.add_argument("--total-frames", type=int, help="frames to train for (overrides train.total_frames)")
    p.add_argument("--logger", help="csv, tensorboard, wandb, mlflow or none (overrides train.logger)")
    p.add_argument("--output", help="run directory (overrides train.output)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument("--list-recipes", action="store_true", help="list packaged recipes and exit")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="run a benchmark", description="Run a benchmark and print its figures.")
    bench = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True, parser_class=_subparser_with(common))
    b = bench.add_parser("cartpole", help="the default recipe over several seeds (final returns, wall time)")
    b.add_argument("--recipe", default="ppo_cartpole", help="recipe name or YAML config")
    b.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    b.add_argument("--frames", type=int, default=100_000, help="frames per seed")
    b.add_argument("--eval-episodes", type=int, default=20, help="deterministic evaluation episodes per seed")
    b.add_argument("--workers", type=int, help="parallel worker processes (default: min(seeds, CPUs))")
    b.set_defaults(func=cmd_bench_cartpole)
    b = bench.add_parser("envs", help="steps/s of each env family, beside raw EnvPool in the same run")
    b.add_argument("families", nargs="*", help="families to run (default: all whose backend is installed)")
    b.add_argument("--num-envs", type=int, nargs="+", default=[8, 64, 256], help="batch sizes")
    b.add_argument("--seconds", type=float, default=3.0, help="timed seconds per figure (after a warm-up)")
    b.add_argument("--device", default="cpu", help="device of the output tensors")
    b.set_defaults(func=cmd_bench_envs)
    b = bench.add_parser("throughput", help="fast-path PPO transitions/s against rl8 in the same run")
    b.add_argument("--num-envs", type=int, nargs="+", default=[8192], help="env counts (the first is compared)")
    b.add_argument("--horizon", type=int, nargs="+", default=[32], help="horizons")
    b.add_argument("--iterations", type=int, default=3, help="timed iterations (median shown)")
    b.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    b.add_argument("--device", default="cpu")
    b.add_argument("--no-rl8", action="store_true", help="do not run rl8 even where it is installed")
    b.add_argument("--max-samples", type=int, default=2_100_000, help="skip larger num_envs x horizon")
    variants_help = (
        "our rows: eager, compile (torch.compile), max-autotune (torch.compile's slowest-to-build, "
        "fastest mode), cudagraphs and compile+cudagraphs (CUDA); default eager max-autotune"
    )
    b.add_argument("--variants", nargs="+", default=["eager", "max-autotune"], help=variants_help)
    b.set_defaults(func=cmd_bench_throughput)
    b = bench.add_parser("encoders", help="forward (and forward+backward) time per batch of each encoder")
    b.add_argument("--batch-size", type=int, default=256, help="samples per batch (default 256)")
    b.add_argument("--repeats", type=int, default=10, help="timings per figure; the median is shown")
    b.add_argument("--device", default="cpu")
    b.set_defaults(func=cmd_bench_encoders)

    p = sub.add_parser(
        "doctor",
        help="check every environment backend and system library",
        description="Check every optional backend (really running it where that is cheap) and print the fix.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)
    return parser


def _subparser_with(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """A parser class whose instances inherit ``common``'s options (``add_subparsers(parser_class=...)``)."""

    class Subparser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, parents=[*kwargs.pop("parents", []), common], **kwargs)

    return Subparser


# -- list / info / plugins ------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    kind, pattern = args.kind, args.pattern
    if kind is not None and pattern is None:
        try:
            normalize_kind(kind)
        except RlteError:
            kind, pattern = None, kind  # `rlte list 'mlp*'`: a pattern over every kind
    registry = get_registry()
    specs = registry.specs(kind, pattern)
    if not specs:
        if args.json:
            _print_json([])
        print(_nothing_matched(registry, kind, pattern), file=sys.stderr)
        _warn_failed(registry)
        return EXIT_NO_MATCH
    clashing = _clashing(registry)
    if args.json:
        _print_json([s.describe() for s in specs])
        return 0
    rows = [
        (
            s.qualified_name if (s.kind, s.name) in clashing else s.name,
            s.kind,
            s.summary,
            f"{s.provider} {s.provider_version}",
        )
        for s in specs
    ]
    _print_table(("NAME", "KIND", "SUMMARY", "PROVIDER"), rows, shrink=2)
    _warn_failed(registry)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    spec = get_spec(args.kind, args.name)
    info = spec.describe(full=True)
    if args.json:
        _print_json(info)
        return 0
    print(f"{info['kind']} {info['name']}  ({info['qualified_name']})")
    print(f"  {info['summary']}")
    print(f"\nprovider: {info['provider']} {info['version']}   factory: {info['target']}")
    if info["tags"]:
        print(f"tags: {', '.join(info['tags'])}")
    print(f"\nsignature:\n  {info['signature']}")
    helped = [p for p in info["parameters"] if p.get("help")]
    if helped:
        width = max(len(p["name"]) for p in helped)
        print("\narguments:")
        for p in helped:
            default = "" if p["required"] else f" (default {p['default']})"
            print(f"  {p['name']:<{width}}  {p['help']}{default}")
    if info["defaults"]:
        print("registered defaults: " + ", ".join(f"{k}={v}" for k, v in info["defaults"].items()))
    if info["docstring"]:
        print("\n" + info["docstring"])
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = get_registry()
    plugins = [p.describe() for p in registry.plugins]
    if args.json:
        _print_json(plugins)
        for problem in plugin_problems(registry):
            print(f"warning: {problem.problem} (fix: {problem.fix})", file=sys.stderr)
        return 0
    rows = [
        (p["name"], p["distribution"], p["version"], p["status"], str(p["components"]), ", ".join(p["hooks"]) or "-")
        for p in plugins
    ]
    _print_table(("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS", "HOOKS"), rows, shrink=5)
    for problem in plugin_problems(registry):
        print(f"\n{problem.problem}\n  fix: {problem.fix}")
    return 0


# -- train ----------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from rlte_plugins.training.config import apply_overrides, load_config, normalize_config, recipe_names

    if args.list_recipes:
        print("\n".join(recipe_names()))
        return 0
    target = args.config or args.target
    if not target:
        raise ConfigError(
            "rlte train needs a recipe name or a YAML config (recipes: " + ", ".join(recipe_names()) + ")"
        )
    raw, source = load_config(target)
    overrides = list(args.overrides)
    for flag, key in (
        ("device", "device"),
        ("seed", "seed"),
        ("total_frames", "total_frames"),
        ("logger", "logger"),
        ("output", "output"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"train.{key}={value}")
    if args.no_progress:
        overrides.append("train.progress=false")
    config = normalize_config(apply_overrides(raw, overrides), source)

    from rlte_plugins.training.runner import run

    name = Path(target).stem if args.config or Path(target).suffix in (".yaml", ".yml") else target
    summary = run(config, name=name)
    ret = summary["eval_return_mean"]
    print(f"trained {summary['frames']:,} frames in {summary['wall_time']:.1f} s")
    if ret is not None:
        print(f"final mean return over {len(summary['eval_returns'])} evaluation episodes: {ret:.2f}")
    print(f"run directory: {summary['output']} (checkpoint.pt, learning_curve.png, summary.json)")
    return 0


def cmd_bench_cartpole(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.cartpole import benchmark

    benchmark(args.recipe, args.seeds, args.frames, args.eval_episodes, args.workers)
    return 0


def cmd_bench_throughput(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.throughput import benchmark

    benchmark(args.num_envs, args.horizon, args.iterations, args.warmup, args.device, not args.no_rl8,
              args.max_samples, args.variants)  # fmt: skip
    return 0


def cmd_bench_encoders(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.encoders import benchmark

    benchmark(args.batch_size, args.repeats, args.device)
    return 0


def cmd_bench_envs(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.envs import benchmark

    benchmark(args.families or None, args.num_envs, args.seconds, args.device)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from rlte_plugins.envs.backends import BACKENDS, check

    rows = []
    for name, backend in BACKENDS.items():
        ok, detail = check(name)
        rows.append({"backend": name, "ok": ok, "purpose": backend.purpose, "detail": detail,
                     "fix": None if ok else backend.fix()})  # fmt: skip
    # plugin rows share the backend rows' keys, so that the JSON stays one list of checks
    problems = [
        {
            "backend": f"plugin:{p.distribution}",
            "ok": False,
            "purpose": "an installed rlte-plugins plugin",
            "detail": p.problem,
            "fix": p.fix,
        }
        for p in plugin_problems()
    ]
    if args.json:
        _print_json(rows + problems)
        return 0
    for row, failed in [*((r, "MISSING") for r in rows), *((r, "PROBLEM") for r in problems)]:
        mark = "ok     " if row["ok"] else failed
        print(f"{mark} {row['backend']:<12} {row['purpose']}")
        print(f"        {row['detail']}")
        if not row["ok"]:
            print(f"        fix: {row['fix']}")
    missing = sum(not r["ok"] for r in rows)
    print(
        f"{len(rows) - missing} of {len(rows)} backends work"
        + (f"; {missing} missing" if missing else "")
        + (f"; {len(problems)} plugin problem{'s' if len(problems) > 1 else ''}" if problems else "")
    )
    return 0


# -- helpers --------------------------------------------------------------------------------------------
def _clashing(registry: Any) -> set[tuple[str, str]]:
    seen: dict[tuple[str, str], int] = {}
    for spec in registry.specs():
        seen[(spec.kind, spec.name)] = seen.get((spec.kind, spec.name), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def _nothing_matched(registry: Any, kind: str | None, pattern: str | None) -> str:
    """What was searched, and the likeliest thing that was meant."""
    if kind is not None:
        kind = normalize_kind(kind)
    if pattern is None:
        return f"no {kind} is registered by the installed plugins (`rlte plugins` lists them)"
    message = f"no {kind or 'component of any kind'} matches {pattern!r}"
    term = re.sub(r"[*?\[\]]", "", pattern).lower()
    if kind is None and term:
        kinds = {**{k: k for k in KINDS}, **{f"{k}s": k for k in KINDS}, "policies": "policy"}
        close = difflib.get_close_matches(term, list(kinds), n=1, cutoff=0.6)
        if close:
            return f"{message}; did you mean the kind {kinds[close[0]]!r}? (`rlte list {kinds[close[0]]}`)"
    elsewhere = registry.specs(None, pattern) if kind is not None else []
    if elsewhere:
        found = elsewhere[0]
        return f"{message}; {found.kind} {found.name!r} does (`rlte list {found.kind} '{pattern}'`)"
    listing = f"rlte list {kind}" if kind else "rlte list"
    by_name = {s.name: s for s in reversed(registry.specs(kind))}  # reversed: a name's first kind wins
    close = difflib.get_close_matches(term, sorted(by_name), n=1, cutoff=0.6)
    if close:
        spec = by_name[close[0]]
        return f"{message}; did you mean {spec.kind} {spec.name!r}? (`rlte list {spec.kind} {spec.name}`)"
    if pattern == term and registry.specs(kind, f"*{term}*"):
        return f"{message}; some names contain it: `{listing} '*{term}*'`"
    return f"{message} (`{listing}` shows what there is)"


def _warn_failed(registry: Any) -> None:
    for plugin in registry.plugins:
        if plugin.status == "failed":
            print(
                f"warning: plugin {plugin.name} {plugin.version} failed to load and was skipped "
                f"(`rlte plugins` shows why)",
                file=sys.stderr,
            )


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]], shrink: int) -> None:
    """Print aligned columns; column ``shrink`` is cut to fit the terminal width."""
    if not rows:
        print("(none)")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    width = shutil.get_terminal_size((120, 20)).columns
    spare = width - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:
        widths[shrink] = max(12, widths[shrink] + spare)
    for row in [header, *rows]:
        cells = [
            (str(c) if len(str(c)) <= widths[i] else str(c)[: widths[i] - 1] + "…").ljust(widths[i])
            for i, c in enumerate(row)
        ]
        print("  ".join(cells).rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
