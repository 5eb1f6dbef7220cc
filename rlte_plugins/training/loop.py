"""The one run loop every agent trains in: stop conditions, periodic evaluation, checkpoints, progress, logging,
Ctrl-C and the non-finite guard.

An agent's :meth:`~rlte_plugins.agents.base.Agent.iteration` returns its statistics as device tensors; they are
fetched here in one transfer per iteration, checked (a non-finite reward, observation, loss or gradient stops the
run before anything is saved), logged under CleanRL's names against the global frame count, and handed to the stop
conditions. The loop imports nothing from :mod:`rlte_plugins.agents`: it drives anything with that interface.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rlte_plugins.errors import ComponentArgumentError, NonFiniteError, TrainingInterrupted
from rlte_plugins.training.conditions import from_config
from rlte_plugins.training.metrics import make_logger, record
from rlte_plugins.training.progress import Progress

#: what the ``_finite/<what>`` checks are called in errors, in the order they are reported
CHECKS = {"reward": "reward ('next', 'reward')", "observation": "observation", "gradient": "gradient"}


def fetch(stats: Mapping[str, Any]) -> dict[str, float]:
    """Device scalars -> floats in one transfer (plain numbers pass through)."""
    tensors = {k: v for k, v in stats.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in stats.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        device = next(iter(tensors.values())).device
        values = torch.stack([v.detach().float().reshape(()).to(device) for v in tensors.values()]).tolist()
        out.update(zip(tensors, values, strict=True))
    return out


def logged_keys(stats: Mapping[str, float]) -> dict[str, float]:
    """The statistics that are logged: no ``_`` checks, no episode means of a batch where none ended."""
    out = {k: v for k, v in stats.items() if not k.startswith("_")}
    if stats.get("_episodes", 1.0) == 0:
        out.pop("charts/episodic_return", None)
        out.pop("charts/episodic_length", None)
    return out


class _Interrupts:
    """Ctrl-C asks the loop to stop after the iteration in progress (and save it); a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this iteration, then saving (Ctrl-C again to stop at once)", file=sys.stderr)

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _check_finite(agent: Any, stats: Mapping[str, float], last_checkpoint: str) -> None:
    problem = next((label for what, label in CHECKS.items() if stats.get(f"_finite/{what}", 1.0) < 1.0
                    and what != "gradient"), None)  # fmt: skip
    if problem is None:
        bad = [k for k, v in stats.items() if k.startswith("losses/") and not math.isfinite(v)]
        problem = f"loss ({bad[0]})" if bad else None
    if problem is None and stats.get("_finite/gradient", 1.0) < 1.0:
        problem = CHECKS["gradient"]
    if problem is not None:
        raise NonFiniteError(
            f"{agent.owner}: non-finite {problem} in the batch ending at frame {agent.frames} (iteration "
            f"{agent.iterations}); training stopped, {last_checkpoint}"
        )


def _weights_finite(agent: Any) -> bool:
    flags = [p.detach().isfinite().all() for p in agent.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def run_loop(
    agent: Any,
    total_frames: int,
    *,
    stop_conditions: Sequence[Any] = (),
    eval_every: int = 0,
    eval_episodes: int = 10,
    logger: Any = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``agent`` until ``total_frames`` or a stop condition; see :meth:`Agent.train`."""
    agent.build()
    agent.set_total_frames(total_frames)
    conditions = [c if callable(c) else from_config(c) for c in stop_conditions]
    if eval_every and agent.env_reference() is None:
        raise ComponentArgumentError(
            f"{agent.owner}: eval_every needs envs made like the training env, which was given as an instance that "
            "cannot be made again: pass the env by name, mapping or factory"
        )
    if isinstance(logger, str):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        output = Path(checkpoint).parent if checkpoint else Path("runs") / f"{agent.name}-{stamp}"
        logger = make_logger(logger, output, agent.name)
    path = None if checkpoint is None else str(checkpoint)
    saved = "no checkpoint was written" if path is None else f"nothing was saved to {path}"
    last_saved = agent.frames
    start, start_frames = time.perf_counter(), agent.frames
    bar = Progress(total_frames, initial=agent.frames, enabled=progress)
    logged: dict[str, float] = {}

    def save() -> None:
        nonlocal saved, last_saved
        if path is None:
            return
        if not _weights_finite(agent):
            raise NonFiniteError(f"{agent.owner}: non-finite weights at frame {agent.frames}; training stopped, "
                                 f"{saved}")  # fmt: skip
        agent.save(path)
        saved, last_saved = f"the last good checkpoint is {path} (frame {agent.frames})", agent.frames

    try:
        with _Interrupts() as interrupts:
            while agent.frames < total_frames:
                began = time.perf_counter()
                stats = fetch(agent.iteration())  # the one host transfer of an iteration
                agent.elapsed += time.perf_counter() - began
                _check_finite(agent, stats, saved)
                logged = logged_keys(stats)
                logged["charts/SPS"] = (agent.frames - start_frames) / max(time.perf_counter() - start, 1e-9)
                if eval_every and agent.iterations % eval_every == 0:
                    logged["eval/episodic_return"] = statistics.fmean(agent.evaluate(eval_episodes))
                record(agent.history, logger, logged, agent.frames)
                bar.update(agent.frames, logged)
                if interrupts.requested:
                    save()
                    where = f"checkpoint {path} (frame {agent.frames})" if path else "no checkpoint (none was given)"
                    raise TrainingInterrupted(f"interrupted at frame {agent.frames}: wrote {where}", path, agent.frames)
                if checkpoint_every and agent.frames - last_saved >= checkpoint_every:
                    save()
                state = {**logged, "frames": agent.frames, "time_s": agent.elapsed, "iteration": agent.iterations}
                if any([c(state) for c in conditions]):
                    break
    except BaseException:
        agent.close()  # collector workers end with the run; a finished train() keeps them for the next call
        raise
    finally:
        bar.close()
    save()
    return {**logged, "frames": agent.frames, "wall_time": time.perf_counter() - start}
