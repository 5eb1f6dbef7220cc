"""``rlte bench BENCHMARK``: suite (a suite file's runs into a results folder, optionally published to W&B), rewards
(the cost of each intrinsic reward), exploration (success rates of bonuses on DoorKey), procgen (generalisation
scores and frames/s of the on-policy agents), cartpole (returns over seeds), envs (steps/s), throughput (against
rl8), ppo (CleanRL's settings), encoders, drqv2 (returns and frames/s beside the authors'), ray (frames/s with Ray
workers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlte_plugins.cli.common import EXIT_OK, CommandParser, Subparsers, positive_int


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark", description="Run a benchmark and print its figures.")
    bench = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True, parser_class=CommandParser)
    b = bench.add_parser(
        "suite",
        help="train every (algorithm, task, seed) of a suite file into a results folder; publish to W&B",
        description="Train every (algorithm, task, seed) of a suite file, one after another, into a results "
        "folder (manifest.json, scores/*.npz, runs/*): a failed run is recorded and the suite goes on; running it "
        "again skips finished runs. With --wandb-project, every run is published to W&B in openrlbenchmark's "
        "shape (WANDB_MODE=offline writes ./wandb/offline-run-*, uploaded later with `wandb sync`). The suite "
        "format is in rlte_plugins/bench/suite.py; `rlte eval plot RESULTS_DIR` draws the results.",
    )
    b.add_argument("suite", metavar="SUITE.yaml", help="the suite file")
    b.add_argument("--seeds", type=positive_int, help="number of seeds 0..N-1 (overrides the file's)")
    b.add_argument("--output", help="results folder (default: the file's output, else results/NAME)")
    b.add_argument("--wandb-project", help="publish every run to this W&B project (pip install 'rlte-plugins[wandb]')")
    b.add_argument("--wandb-entity", help="W&B entity (user or team) of the project")
    b.add_argument("--threads", type=positive_int, help="torch's CPU thread count in every run")
    b.add_argument("--progress", action="store_true", help="show each run's progress bar")
    b.add_argument("--dry-run", action="store_true", help="list the runs and whether each has finished, then exit")
    b.set_defaults(func=run_suite)
    b = bench.add_parser("cartpole", help="the default recipe over several seeds (final returns, wall time)")
    b.add_argument("--recipe", default="ppo_cartpole", help="recipe name or YAML config")
    b.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    b.add_argument("--frames", type=int, default=100_000, help="frames per seed")
    b.add_argument("--eval-episodes", type=int, default=20, help="deterministic evaluation episodes per seed")
    b.add_argument("--workers", type=int, help="parallel worker processes (default: min(seeds, CPUs))")
    b.set_defaults(func=run_cartpole)
    b = bench.add_parser("envs", help="steps/s of each env family, beside raw EnvPool in the same run")
    b.add_argument("families", nargs="*", help="families to run (default: all whose backend is installed)")
    b.add_argument("--num-envs", type=int, nargs="+", default=[8, 64, 256], help="batch sizes")
    b.add_argument("--seconds", type=float, default=3.0, help="timed seconds per figure (after a warm-up)")
    b.add_argument("--device", default="cpu", help="device of the output tensors")
    b.set_defaults(func=run_envs)
    b = bench.add_parser("throughput", help="fast-path PPO transitions/s against rl8 in the same run")
    b.add_argument("--num-envs", type=int, nargs="+", default=[8192], help="env counts (the first is compared)")
    b.add_argument("--num-steps", type=int, nargs="+", default=[32], help="steps per env per iteration")
    b.add_argument("--iterations", type=int, default=3, help="timed iterations (median shown)")
    b.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    b.add_argument("--device", default="cpu")
    b.add_argument("--no-rl8", action="store_true", help="do not run rl8 even where it is installed")
    b.add_argument("--max-samples", type=int, default=2_100_000, help="skip larger num_envs x num_steps")
    variants_help = (
        "our rows: eager, compile (torch.compile), max-autotune (torch.compile's slowest-to-build, "
        "fastest mode), cudagraphs and compile+cudagraphs (CUDA); default eager max-autotune"
    )
    b.add_argument("--variants", nargs="+", default=["eager", "max-autotune"], help=variants_help)
    b.set_defaults(func=run_throughput)
    b = bench.add_parser("ppo", help="PPO at CleanRL ppo.py's CartPole settings: steps/s from start and steady")
    b.add_argument("--num-envs", type=int, nargs="+", default=[4, 64], help="env counts (default 4 64)")
    default_envs = ["CartPole-v1:gymnasium", "CartPole-v1:vector", "CartPole-v1:envpool", "torch_cartpole"]
    envs_help = ("envs: a gymnasium id (ID:BACKEND picks the backend: gymnasium, vector, envpool, auto) or an rlte env "
                 f"name (default {' '.join(default_envs)})")  # fmt: skip
    b.add_argument("--envs", nargs="+", default=default_envs, help=envs_help)
    b.add_argument("--frames", type=int, default=100_000, help="frames per run")
    b.add_argument("--variants", nargs="+", default=["eager"], help="eager and/or compile (torch.compile)")
    b.add_argument("--threads", type=int, default=2, help="torch threads in every run")
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--repeats", type=int, default=1, help="rounds of all rows, interleaved")
    peer_help = ("a command to compare with, run the same way ({num_envs}, {frames}, {threads}, {seed} filled in), "
                 "e.g. a local copy of CleanRL's ppo.py")  # fmt: skip
    b.add_argument("--peer", help=peer_help)
    b.set_defaults(func=run_ppo)
    b = bench.add_parser("encoders", help="forward (and forward+backward) time per batch of each encoder")
    b.add_argument("--batch-size", type=int, default=256, help="samples per batch (default 256)")
    b.add_argument("--repeats", type=int, default=10, help="timings per figure; the median is shown")
    b.add_argument("--device", default="cpu")
    b.set_defaults(func=run_encoders)
    b = bench.add_parser("export", help="ms per batch of a policy: PyTorch eager, torch.compile and onnxruntime",
                         description="Latency of the deterministic policy of a run (or a fresh agent) on CPU: the "
                         "acting module on TensorDicts, the exported graph on plain tensors eager and under "
                         "torch.compile, and the ONNX model in onnxruntime, per batch size.")  # fmt: skip
    b.add_argument("run", nargs="?", metavar="RUN_DIR", help="a run directory or checkpoint (default: a fresh agent)")
    b.add_argument("--agent", default="ppo", help="agent of the fresh policy (default ppo)")
    b.add_argument("--env", default="torch_cartpole", help="env of the fresh policy (default torch_cartpole)")
    b.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 16, 256, 4096], help="batch sizes")
    b.add_argument("--repeats", type=positive_int, default=50, help="timed calls per figure (median shown)")
    variants = ["tensordict", "eager", "compiled", "onnxruntime"]
    b.add_argument("--variants", nargs="+", default=variants, choices=variants, help="what to time (default all)")
    b.add_argument("--threads", type=positive_int, help="torch's and onnxruntime's CPU thread count")
    b.set_defaults(func=run_export)
    b = bench.add_parser("rewards", help="ms of each intrinsic reward's compute and update per 1,000 transitions")
    b.add_argument("names", nargs="*", help="rewards to time (default: every registered one but mixture)")
    b.add_argument("--inputs", nargs="+", default=["vectors", "pixels"], help="vectors (64 floats) and/or pixels "
                   "(84x84x4 uint8)")  # fmt: skip
    b.add_argument("--num-envs", type=positive_int, default=8)
    b.add_argument("--num-steps", type=positive_int, default=128)
    b.add_argument("--repeats", type=positive_int, default=3, help="timed calls (median shown)")
    b.add_argument("--device", default="cpu")
    b.set_defaults(func=run_rewards)
    b = bench.add_parser("exploration", help="PPO and PPO with exploration bonuses on MiniGrid DoorKey: success "
                         "rates with intervals beside the published ones")  # fmt: skip
    b.add_argument("bonuses", nargs="*", default=["ppo", "re3", "icm", "rnd"],
                   help="ppo (no bonus) and reward names (default ppo re3 icm rnd)")  # fmt: skip
    b.add_argument("--task", default="MiniGrid-DoorKey-8x8-v0", help="MiniGrid task")
    b.add_argument("--frames", type=positive_int, default=1_000_000, help="frames per run")
    b.add_argument("--seeds", type=positive_int, default=5, help="seeds per algorithm")
    b.add_argument("--eval-episodes", type=positive_int, default=32, help="final deterministic episodes per run")
    b.add_argument("--output", help="results folder (default results/exploration; rerunning resumes)")
    b.add_argument("--threads", type=positive_int, help="torch's CPU thread count in every run")
    b.set_defaults(func=run_exploration)
    b = bench.add_parser("procgen", help="on-policy agents on Procgen: normalised train and test scores (IQM, "
                         "intervals) beside the published ones, or frames/s with --speed")  # fmt: skip
    b.add_argument("--agents", nargs="+", default=["ppo", "drac", "daac", "ppg"], help="agents (default ppo drac "
                   "daac ppg)")  # fmt: skip
    b.add_argument("--games", nargs="+", default=["bigfish", "coinrun", "starpilot"], help="Procgen games")
    b.add_argument("--frames", type=positive_int, default=25_000_000, help="frames per run (the papers: 25M)")
    b.add_argument("--num-levels", type=positive_int, default=200, help="training levels (the papers: 200)")
    b.add_argument("--num-envs", type=positive_int, default=64, help="parallel envs (the papers: 64)")
    b.add_argument("--num-steps", type=positive_int, default=256, help="steps per env per batch (the papers: 256)")
    b.add_argument("--seeds", type=positive_int, default=3, help="seeds per agent and game")
    b.add_argument("--eval-episodes", type=positive_int, default=100, help="sampled-action episodes per score")
    b.add_argument("--output", help="results folder (default results/procgen; rerunning resumes)")
    b.add_argument("--threads", type=positive_int, help="torch's CPU thread count in every run")
    b.add_argument("--speed", action="store_true", help="time each agent's collect-and-update loop on the first "
                   "game instead (frames/s beside PPO's)")  # fmt: skip
    b.add_argument("--iterations", type=positive_int, default=2, help="--speed: timed batches")
    b.set_defaults(func=run_procgen)
    b = bench.add_parser("drqv2", help="DrQ-v2 on DMC pixels beside the authors' returns and frames/s")
    b.add_argument("--updates", action="store_true", help="time the update and end-to-end frames/s instead of returns")
    b.add_argument("--tasks", nargs="+", default=["cartpole_swingup", "walker_walk", "cheetah_run"], help="DMC tasks")
    b.add_argument("--envs", nargs="+", help="dmc, torch-native pixel envs (default: dmc; --updates: + torch_pendulum)")
    b.add_argument("--frames", type=int, default=100_000, help="frames per run (agent steps x action repeat 2)")
    b.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    b.add_argument("--eval-every", type=int, default=10_000, help="frames between evaluations")
    b.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation")
    b.add_argument("--seed-frames", type=int, default=4000, help="frames of random actions before learning starts")
    b.add_argument("--batch-size", type=int, help="replay batch (default: the authors' per task; --updates: 256)")
    b.add_argument("--image-size", type=int, default=84, help="rendered height and width")
    b.add_argument("--variants", nargs="+", default=["eager", "compile"], help="--updates: eager and/or compile")
    b.add_argument("--fill", type=int, default=300, help="--updates: transitions collected before timing")
    b.add_argument("--warmup-updates", type=int, default=3, help="--updates: untimed updates first (compilation)")
    b.add_argument("--timed-updates", type=int, default=10, help="--updates: timed updates")
    b.add_argument("--device", default="cpu")
    b.add_argument("--threads", type=int, default=2, help="torch threads in every run")
    b.set_defaults(func=run_drqv2)
    b = bench.add_parser(
        "ray",
        help="frames/s of PPO collected in-process and by 1, 2... Ray workers, with ratios",
        description="Train the same PPO recipe with in-process collection and with collection='ray' (TorchRL's "
        "RayCollector on a local Ray instance), one row per strategy and worker count, and print frames/s with "
        "ratios to the first row. Needs Ray: pip install 'rlte-plugins[ray]'.",
    )
    b.add_argument("--workers", type=positive_int, nargs="+", default=[1, 2], help="Ray worker counts (default 1 2)")
    b.add_argument("--env", default="torch_cartpole", help="env name (default torch_cartpole)")
    b.add_argument("--num-envs", type=positive_int, default=8, help="parallel envs (divisible by each worker count)")
    b.add_argument("--num-steps", type=positive_int, default=128, help="steps per env per batch")
    b.add_argument("--frames", type=positive_int, default=20_480, help="frames per row")
    b.add_argument("--in-process", nargs="*", default=["auto", "torchrl"], help="in-process strategies to compare "
                   "(default auto torchrl)")  # fmt: skip
    b.add_argument("--threads", type=positive_int, help="torch's thread count in the learner")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=run_ray)


def run_suite(args: argparse.Namespace) -> int:
    from rlte_plugins.bench import suite
    from rlte_plugins.evaluation.results import MANIFEST, Results

    spec = suite.load_suite(args.suite, seeds=args.seeds)
    if args.dry_run:
        results_dir = Path(args.output or spec.output or Path("results") / spec.name)
        runs = Results(results_dir).manifest["runs"] if (results_dir / MANIFEST).is_file() else {}
        for job in spec.jobs(results_dir):
            record = runs.get(job.id) or {}
            finished = record.get("status") == "finished" and record.get("config_hash") == job.config_hash
            state = "finished" if finished else record.get("status", "pending")
            frames = job.config["train"]["total_frames"]
            print(f"{job.id:40s} {state:9s} {frames:>10,} frames  config {job.config_hash}")
        return EXIT_OK
    suite.run_suite(spec, args.output, wandb_project=args.wandb_project, wandb_entity=args.wandb_entity,
                    threads=args.threads, progress=args.progress)  # fmt: skip
    return EXIT_OK


def run_rewards(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.rewards import benchmark

    benchmark(args.names or None, args.inputs, args.num_envs, args.num_steps, args.repeats, args.device)
    return EXIT_OK


def run_procgen(args: argparse.Namespace) -> int:
    from rlte_plugins.bench import procgen

    if args.speed:
        procgen.speed(args.agents, args.games[0], args.num_envs, args.num_steps, args.iterations, args.threads)
    else:
        procgen.benchmark(args.agents, args.games, args.frames, args.num_levels, args.seeds, args.eval_episodes,
                          args.output, args.threads, args.num_envs, args.num_steps)  # fmt: skip
    return EXIT_OK


def run_exploration(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.exploration import benchmark

    benchmark(args.bonuses, args.task, args.frames, args.seeds, args.eval_episodes, args.output, args.threads)
    return EXIT_OK


def run_cartpole(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.cartpole import benchmark

    benchmark(args.recipe, args.seeds, args.frames, args.eval_episodes, args.workers)
    return EXIT_OK


def run_throughput(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.throughput import benchmark

    benchmark(args.num_envs, args.num_steps, args.iterations, args.warmup, args.device, not args.no_rl8,
              args.max_samples, args.variants)  # fmt: skip
    return EXIT_OK


def run_ppo(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.ppo import benchmark

    benchmark(args.num_envs, args.envs, args.frames, args.variants, args.threads, args.seed, args.peer, args.repeats)
    return EXIT_OK


def run_encoders(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.encoders import benchmark

    benchmark(args.batch_size, args.repeats, args.device)
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    import torch

    import rlte_plugins
    from rlte_plugins.bench.export import benchmark
    from rlte_plugins.files import checkpoint_of
    from rlte_plugins.training.runner import quiet_torchrl

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_torchrl()
    if args.run:
        agent = rlte_plugins.load_agent(checkpoint_of(args.run), device="cpu")
    else:
        agent = rlte_plugins.make("agent", args.agent, env=args.env, num_envs=1)
    benchmark(agent, args.batch_sizes, args.repeats, args.variants)
    return EXIT_OK


def run_envs(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.envs import benchmark

    benchmark(args.families or None, args.num_envs, args.seconds, args.device)
    return EXIT_OK


def run_drqv2(args: argparse.Namespace) -> int:
    from rlte_plugins.bench import drqv2

    if args.updates:
        drqv2.benchmark_updates(args.variants, args.batch_size or 256, args.image_size, args.threads, args.device,
                                args.fill, args.warmup_updates, args.timed_updates,
                                args.envs or ["dmc", "torch_pendulum"])  # fmt: skip
    else:
        drqv2.benchmark_returns(args.tasks, args.frames, args.seeds, args.eval_every, args.eval_episodes, args.threads,
                                args.device, args.envs or ["dmc"], image_size=args.image_size,
                                batch_size=args.batch_size, seed_frames=args.seed_frames)  # fmt: skip
    return EXIT_OK


def run_ray(args: argparse.Namespace) -> int:
    from rlte_plugins.bench.scaling import benchmark, print_rows

    rows = benchmark(args.workers, args.env, args.num_envs, args.num_steps, args.frames, args.seed, args.in_process,
                     args.threads)  # fmt: skip
    print_rows(rows, args.env, args.num_envs, args.num_steps, args.frames)
    return EXIT_OK
