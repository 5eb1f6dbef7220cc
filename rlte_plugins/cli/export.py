"""``rlte export RUN_DIR``: the deterministic policy of a run's checkpoint as an ONNX model (checked against PyTorch
with onnxruntime) or a TensorRT engine (checked against onnxruntime)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlte_plugins.cli.common import (
    EXIT_OK,
    Subparsers,
    add_run_argument,
    add_threads_and_json,
    positive_int,
    print_json,
)
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.files import checkpoint_of

SUFFIXES = {"onnx": ".onnx", "tensorrt": ".engine"}


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a run's deterministic policy to ONNX or TensorRT, checked against PyTorch",
        description="Export the deterministic policy of a run's checkpoint (encoder, actor head and observation "
        "normalisation; uint8 pixels in as the env gives them; a recurrent policy's state in and out) with a dynamic "
        "batch axis, the env's key names and metadata (agent, env, frame stack, action bounds, versions, sha256 of "
        "the checkpoint). The model is run on random observations from the env's specs and on a real rollout and "
        "compared with PyTorch (discrete actions equal, continuous ones and states within 1e-4); a disagreement "
        "is an error. --format tensorrt also builds a TensorRT engine (needs the tensorrt wheel and a CUDA GPU) "
        "and compares it with onnxruntime.",
    )
    add_run_argument(p)
    p.add_argument("--format", choices=sorted(SUFFIXES), default="onnx", help="onnx (default) or tensorrt")
    p.add_argument("--output", help="file to write (default: RUN_DIR/policy.onnx or policy.engine, or the "
                   "checkpoint's name with that suffix)")  # fmt: skip
    p.add_argument("--opset", type=positive_int, help="ONNX opset (default 18)")
    p.add_argument("--check", action="store_true", help="print the parity figures (the check always runs)")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance of continuous outputs (default 1e-4)")
    p.add_argument("--fp16", action="store_true", help="tensorrt: allow half-precision kernels")
    p.add_argument("--batch", type=positive_int, nargs=3, metavar=("MIN", "OPT", "MAX"), default=[1, 64, 1024],
                   help="tensorrt: batch sizes the engine accepts and is tuned for (default 1 64 1024)")  # fmt: skip
    add_threads_and_json(p)
    p.set_defaults(func=run)


def default_output(run: str, checkpoint: Path, fmt: str) -> Path:
    """``RUN_DIR/policy.onnx`` for a run directory, the checkpoint's own name with the format's suffix for a file."""
    suffix = SUFFIXES[fmt]
    return Path(run) / f"policy{suffix}" if Path(run).is_dir() else checkpoint.with_suffix(suffix)


def run(args: argparse.Namespace) -> int:
    import torch

    from rlte_plugins.agents.base import load_agent
    from rlte_plugins.export.onnx import DEFAULT_OPSET, describe, export_onnx
    from rlte_plugins.training.runner import quiet_torchrl

    checkpoint = checkpoint_of(args.run)
    output = Path(args.output) if args.output else default_output(args.run, checkpoint, args.format)
    if output.is_dir():
        raise ComponentArgumentError(f"--output {str(output)!r} is a folder: name a file in it")
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_torchrl()
    opset = args.opset or DEFAULT_OPSET
    if args.format == "tensorrt":
        from rlte_plugins.export.tensorrt import BatchProfile, export_tensorrt, require_tensorrt

        require_tensorrt()  # the one clear error, before loading anything
        profile = BatchProfile(*args.batch)
    agent = load_agent(checkpoint, device="cpu")
    try:
        if args.format == "tensorrt":
            result = export_tensorrt(agent, output, checkpoint=checkpoint, opset=opset, fp16=args.fp16, batch=profile,
                                     atol=args.atol)  # fmt: skip
        else:
            result = export_onnx(agent, output, checkpoint=checkpoint, opset=opset, atol=args.atol)
    finally:
        agent.close()
    reports = [r for r in (result.parity, result.engine_parity) if r is not None]
    written = [p for p in (result.path, result.engine) if p is not None]
    if args.json:
        print_json({
            "files": [str(p) for p in written],
            "metadata": result.metadata,
            "parity": [{"runtime": r.runtime, "ok": r.ok, "rows": [vars(row) for row in r.rows]} for r in reports],
        })  # fmt: skip
        return EXIT_OK
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    meta = result.metadata
    print(f"agent {meta['preset'] or meta['agent']!r} after {meta['frames']:,} frames; env {json.dumps(meta['env'])}")
    print(describe(meta))
    for report in reports:
        if args.check:
            print(report.format())
        else:
            rows = sum(r.rows for r in report.rows if r.output == "action")
            worst = max(r.max_abs_diff for r in report.rows)
            print(f"parity with {report.runtime}: ok on {rows} observations (max |diff| {worst:.2g}; --check "
                  "for the figures)")  # fmt: skip
    return EXIT_OK
