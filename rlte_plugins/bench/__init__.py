"""Benchmarks behind ``rlte bench``: each prints its figures; the measurements that must not share a process (thread
pools, compiled kernels, allocator settings) run through :func:`run_in_process`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def run_in_process(module: str, spec: dict[str, Any], what: str = "benchmark") -> tuple[Any, float]:
    """``python -m module '<spec as JSON>'`` in a fresh interpreter (whose ``__main__`` calls :func:`serve`): its
    result and the wall time from spawning it to its exit. ``what`` names it in the error if it fails."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(spec)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {what} process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1]), wall


def serve(measure: Callable[[dict[str, Any]], Any]) -> None:
    """The child's side of :func:`run_in_process`: ``measure`` of the JSON spec in ``argv``, as one JSON line."""
    import warnings

    warnings.filterwarnings("ignore")
    print(json.dumps(measure(json.loads(sys.argv[1]))), flush=True)
