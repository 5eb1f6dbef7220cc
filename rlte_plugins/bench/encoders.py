"""Encoder forward time: milliseconds per batch for each registered encoder on a typical input.

Each encoder runs on ``uint8`` pixels (or float vectors) of the shape it is used with, in inference mode and
in training mode with a backward pass, median over repeated timings after a warm-up.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from tensordict import TensorDict

CASES: tuple[tuple[str, dict[str, Any], tuple[int, ...], str], ...] = (
    ("identity", {}, (64,), "observation"),
    ("mlp", {}, (64,), "observation"),
    ("mnih_cnn", {}, (4, 84, 84), "pixels"),
    ("tassa_cnn", {}, (9, 84, 84), "pixels"),
    ("pathak_cnn", {}, (4, 84, 84), "pixels"),
    ("espeholt_resnet", {}, (3, 64, 64), "pixels"),
)


def median_ms(fn: Any, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn`` after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def benchmark(batch_size: int = 256, repeats: int = 10, device: str = "cpu") -> list[dict[str, Any]]:
    import rlte_plugins

    print(f"device {device}, batch {batch_size}, median of {repeats}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'encoder':<18}{'input':<16}{'features':>9}{'forward ms':>12}{'fwd+bwd ms':>12}")
    rows = []
    for name, kwargs, shape, key in CASES:
        in_shape = {"in_features": shape[0]} if len(shape) == 1 else {"in_shape": list(shape)}
        enc = rlte_plugins.make("encoder", name, in_keys=[key], **in_shape, **kwargs).to(device)
        if len(shape) == 1:
            x = torch.randn(batch_size, *shape, device=device)
        else:
            x = torch.randint(0, 256, (batch_size, *shape), dtype=torch.uint8, device=device)
        td = TensorDict({key: x}, batch_size=[batch_size], device=device)

        def forward(enc: Any = enc, td: TensorDict = td) -> None:
            with torch.inference_mode():
                enc(td.clone())
            if device != "cpu":
                torch.cuda.synchronize()

        def train(enc: Any = enc, td: TensorDict = td) -> None:
            out = enc(td.clone())["features"].float().sum()
            if out.requires_grad:  # the identity has no parameters
                out.backward()
            if device != "cpu":
                torch.cuda.synchronize()

        fwd, both = median_ms(forward, repeats), median_ms(train, repeats)
        shape_s = "x".join(map(str, shape))
        print(f"{name:<18}{shape_s:<16}{enc.out_features:>9}{fwd:>12.2f}{both:>12.2f}", flush=True)
        rows.append({"encoder": name, "input": shape_s, "forward_ms": fwd, "train_ms": both})
    return rows
