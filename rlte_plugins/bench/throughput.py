"""PPO throughput of the ``fast_ppo`` agent against rl8, side by side in one run, with the machine's matmul floor
beside it.

Both train rl8's discrete dummy task with rl8's defaults (8192 envs x 32 steps, separate 256x256 ReLU MLP actor
and critic, 4 epochs, one full-batch minibatch, gamma and lambda 0.95): ours is the ``fast_ppo`` preset on
``dummy_discrete`` with direct collection. For each side: end-to-end transitions/s of one iteration (collect +
update), collect-only and update-only times, medians over ``iterations`` after ``warmup``. The split differs
between the sides: both compute the advantages in the update, but our collect runs only the actor and the update
evaluates the critic over the batch in one pass, while rl8 evaluates it at every collected step; compare the
end-to-end column. Our update also includes the run loop's one host transfer. The floor is the update's
matrix-multiply FLOPs (forward, and twice that backward, for every linear layer, sample and epoch) divided by this
machine's float32 matmul rate measured in the same run at the update's shapes.

Every measurement runs in its own Python process, one after the other: process-wide settings of one side (the
agent's :func:`~rlte_plugins.training.allocator.retain_freed_memory`, compiled kernels, thread pools) cannot help
or hurt the other. rl8 is measured as shipped and, to show what the allocator setting alone is worth, once more
with it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

import torch

from rlte_plugins.bench import run_in_process, serve


def matmul_rate(device: str = "cpu", rows: int = 8192, width: int = 256, repeats: int = 20) -> float:
    """float32 GFLOP/s of ``[rows, width] @ [width, width]`` (the update's dominant product)."""
    a = torch.randn(rows, width, device=device)
    b = torch.randn(width, width, device=device)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * rows * width * width / statistics.median(times) / 1e9


def update_flops(policy: torch.nn.Module, samples: int, epochs: int) -> float:
    """Matrix-multiply FLOPs of ``epochs`` passes over ``samples``: forward 2*in*out per linear layer and sample,
    backward twice that (input and weight gradients)."""
    per_sample = sum(2 * m.in_features * m.out_features for m in policy.modules() if isinstance(m, torch.nn.Linear))
    return 3.0 * per_sample * samples * epochs


def ours(num_envs: int, num_steps: int, iterations: int, warmup: int, device: str, **options: Any) -> dict[str, Any]:
    """The ``fast_ppo`` agent (rl8's defaults) plus ``options`` (e.g. ``compile="max-autotune"``): one iteration is
    :meth:`collect`, :meth:`step` and the fetch of its statistics, as the run loop does it."""
    import rlte_plugins
    from rlte_plugins.training.loop import fetch

    agent = rlte_plugins.make("agent", "fast_ppo", env="dummy_discrete", num_envs=num_envs, num_steps=num_steps,
                              device=device, seed=0, **options).build()  # fmt: skip
    cuda = device != "cpu"
    collect, update, total = [], [], []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        batch = agent.collect()
        if cuda:  # the split only: the run loop never waits between the two
            torch.cuda.synchronize()
        collected = time.perf_counter()
        fetch(agent.step(batch))
        end = time.perf_counter()
        if i >= warmup:
            total.append(end - start)
            collect.append(collected - start)
            update.append(end - collected)
    return {
        "collect_s": statistics.median(collect),
        "update_s": statistics.median(update),
        "total_s": statistics.median(total),
        "flops": update_flops(agent.policy, agent.frames_per_batch, agent.config.epochs),
        "batch": agent.frames_per_batch,
    }


def rl8(
    num_envs: int, num_steps: int, iterations: int, warmup: int, device: str, retain_memory: bool = False
) -> dict[str, Any] | None:
    """rl8's own ``Trainer`` on its ``DiscreteDummyEnv``; ``None`` where ``rl8`` is not installed.
    ``retain_memory``: with the allocator setting our agent makes on CPU."""
    if retain_memory:
        from rlte_plugins.training.allocator import retain_freed_memory

        retain_freed_memory()
    try:
        from rl8 import Algorithm, AlgorithmConfig, Trainer
        from rl8.env import DiscreteDummyEnv
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tracking:
        # rl8 logs every step to MLflow: into a fresh store (a missing directory, which MLflow then creates)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"file://{tracking}/mlruns")
        trainer = Trainer(
            Algorithm(DiscreteDummyEnv, AlgorithmConfig(device=device, num_envs=num_envs, horizon=num_steps))
        )
        collect, update, total = [], [], []
        for i in range(warmup + iterations):
            start = time.perf_counter()
            stats = trainer.step()
            if i >= warmup:
                total.append(time.perf_counter() - start)
                collect.append(stats["profiling/collect_ms"] / 1e3)
                update.append(stats["profiling/step_ms"] / 1e3)
    return {
        "collect_s": statistics.median(collect),
        "update_s": statistics.median(update),
        "total_s": statistics.median(total),
        "batch": num_envs * num_steps,
    }


def isolated(side: str, **spec: Any) -> dict[str, Any] | None:
    """Run ``ours(**spec)`` or ``rl8(**spec)`` in a fresh Python process and return its result."""
    return run_in_process("rlte_plugins.bench.throughput", {"side": side, **spec}, f"{side} benchmark")[0]


def _row(name: str, envs: int, num_steps: int, r: dict[str, Any], extra: str = "") -> str:
    rate = r["batch"] / r["total_s"]
    return (
        f"{name:<22}{envs:>7}{num_steps:>10}{rate:>14,.0f}{r['collect_s']:>11.2f}{r['update_s']:>10.2f}"
        f"{r['total_s']:>9.2f}  {extra}"
    )


#: what ``--variants`` names: the agent options of each of our rows
VARIANTS = {
    "eager": {},
    "compile": {"compile": True},
    "max-autotune": {"compile": "max-autotune"},
    "cudagraphs": {"cudagraphs": True},  # CUDA only
    "compile+cudagraphs": {"compile": True, "cudagraphs": True},  # CUDA only
}


def benchmark(
    num_envs: list[int],
    num_steps: list[int],
    iterations: int = 3,
    warmup: int = 1,
    device: str = "cpu",
    compare: bool = True,
    max_samples: int = 2_100_000,
    variants: list[str] = ("eager",),
) -> list[dict[str, Any]]:
    """Print the table; the first (num_envs, num_steps) pair is also run with rl8 when ``compare``."""
    from rlte_plugins.errors import ConfigError

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant {unknown[0]!r} (variants: {', '.join(VARIANTS)})")
    cuda = str(device).startswith("cuda")
    if not cuda and any("cudagraphs" in v for v in variants):
        raise ConfigError(f"the cudagraphs variants need a CUDA device, got --device {device}")
    if cuda and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this torch build or machine has no CUDA ({torch.__version__})")
    # the floor uses the best of a few measurements: a shared machine only ever makes a measurement slower
    rate = max(matmul_rate(device) for _ in range(3))
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"median of {iterations} iterations after {warmup} warm-up, each row in its own process; "
        f"float32 matmul [8192,256]x[256,256]: {rate:.0f} GFLOP/s"
    )
    header = f"{'impl':<22}{'envs':>7}{'num_steps':>10}{'transitions/s':>14}"
    print(f"{header}{'collect s':>11}{'update s':>10}{'total s':>9}")
    rows: list[dict[str, Any]] = []
    first = True
    for envs in num_envs:
        for steps in num_steps:
            if envs * steps > max_samples:
                print(f"{'ours':<22}{envs:>7}{steps:>10}  skipped: {envs * steps:,} samples > --max-samples")
                continue
            shape = dict(num_envs=envs, num_steps=steps, iterations=iterations, warmup=warmup, device=device)
            best = None
            for variant in variants:
                r = isolated("ours", **shape, **VARIANTS[variant])
                rate = max(rate, matmul_rate(device))
                floor = r["flops"] / (rate * 1e9)
                note = f"update floor {floor:.2f} s at {rate:.0f} GFLOP/s ({r['update_s'] / floor:.2f}x floor)"
                print(_row(f"ours ({variant})", envs, steps, r, note), flush=True)
                rows.append({"impl": "ours", "variant": variant, "num_envs": envs, "num_steps": steps, **r,
                             "floor_s": floor})  # fmt: skip
                best = r if best is None or r["total_s"] < best["total_s"] else best
            if first and compare:
                runs = [(False, "rl8")] + ([(True, "rl8 (retain_memory)")] if device == "cpu" else [])
                for retain, label in runs:
                    theirs = isolated("rl8", **shape, retain_memory=retain)
                    if theirs is None:
                        print("rl8 not installed (pip install 'rlte-plugins[bench]'): no side-by-side figure")
                        break
                    ratio = theirs["total_s"] / best["total_s"]
                    print(_row(label, envs, steps, theirs, f"best ours / {label} end to end: {ratio:.2f}x"),
                          flush=True)  # fmt: skip
                    rows.append({"impl": label, "num_envs": envs, "num_steps": steps, **theirs, "ratio": ratio})
            first = False
    return rows


if __name__ == "__main__":  # one isolated measurement (see ``isolated``)
    serve(lambda spec: {"ours": ours, "rl8": rl8}[spec.pop("side")](**spec))
