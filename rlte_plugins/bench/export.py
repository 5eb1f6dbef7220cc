"""Latency of an exported policy: milliseconds per batch of the deterministic policy in PyTorch (the acting module on
TensorDicts, the same graph on plain tensors eager and under ``torch.compile``) and in onnxruntime, on CPU.

The policy is a run's checkpoint or a fresh agent (the weights' values do not change the cost); the ONNX model is
the one ``rlte export`` writes. Each figure is the median of repeated calls after a warm-up, on the same random
observations drawn from the env's specs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from rlte_plugins.bench.encoders import median_ms

VARIANTS = ("tensordict", "eager", "compiled", "onnxruntime")


def benchmark(
    agent: Any,
    batch_sizes: Sequence[int] = (1, 16, 256, 4096),
    repeats: int = 50,
    variants: Sequence[str] = VARIANTS,
) -> list[dict[str, Any]]:
    """One row per batch size: milliseconds per call of each variant and onnxruntime's speed-up over eager."""
    import onnxruntime as ort

    from rlte_plugins.export.onnx import export_onnx, graph_of, policy_signature, sample_inputs

    agent.build()
    signature = policy_signature(agent)
    graph = graph_of(agent, signature)
    compiled = torch.compile(graph) if "compiled" in variants else None
    actor = graph.actor  # the acting module in eval mode, as the graph runs it
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "policy.onnx")
        export_onnx(agent, path, check=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names, outs = signature.input_names, signature.output_names
    print(f"agent {agent.preset or agent.name!r} on {agent.env_reference()}; torch {torch.__version__}, onnxruntime "
          f"{ort.__version__}, {threads} threads; median of {repeats} calls, ms per batch")  # fmt: skip
    header = f"{'batch':>6}" + "".join(f"{v:>13}" for v in variants) + f"{'ort/eager':>11}"
    print(header)
    rows = []
    generator = torch.Generator().manual_seed(0)
    for size in batch_sizes:
        inputs = sample_inputs(signature, size, generator)
        td = TensorDict(dict(zip(signature.inputs, inputs, strict=True)), batch_size=[size])
        feed = {n: t.numpy() for n, t in zip(names, inputs, strict=True)}

        def tensordict(td: TensorDict = td) -> None:
            with torch.inference_mode(), set_exploration_type(ExplorationType.DETERMINISTIC):
                actor(td.clone(False))

        def eager(inputs: list[torch.Tensor] = inputs) -> None:
            with torch.inference_mode():
                graph(*inputs)

        def compiled_call(inputs: list[torch.Tensor] = inputs) -> None:
            with torch.inference_mode():
                compiled(*inputs)

        def onnxruntime(feed: dict[str, Any] = feed) -> None:
            session.run(outs, feed)

        calls = {"tensordict": tensordict, "eager": eager, "compiled": compiled_call, "onnxruntime": onnxruntime}
        row: dict[str, Any] = {"batch": size}
        for variant in variants:
            calls[variant]()  # compiles (per batch size) outside the timing
            row[variant] = median_ms(calls[variant], repeats)
        if "eager" in row and "onnxruntime" in row:
            row["ort_vs_eager"] = row["eager"] / row["onnxruntime"]
        print(f"{size:>6}" + "".join(f"{row[v]:>13.3f}" for v in variants)
              + (f"{row['ort_vs_eager']:>10.2f}x" if "ort_vs_eager" in row else ""))  # fmt: skip
        rows.append(row)
    return rows
