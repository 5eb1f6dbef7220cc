"""A small FastPPO run for the resume tests: ``python fast_run.py DIR ITERATIONS [--resume]``.

Checkpoints after every iteration to ``DIR/ckpt.pt``, prints each finished iteration, and at the end saves the
policy parameters to ``DIR/final.pt``. ``ITERATIONS`` 0 runs until the process is killed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from rlte_plugins.training.conditions import HitsUpperBound
from rlte_plugins.training.fast import FastPPO, FastTrainer


def make() -> FastTrainer:
    algo = FastPPO(
        "torch_cartpole", num_envs=16, horizon=32, seed=3, minibatch_size=128, epochs=2,
        encoder={"name": "mlp", "num_cells": [32, 32]}, lr="linear(1e-3, 1e-4, 20000)", entropy_coef=0.01,
        normalize_observation=True, scale_rewards=True,
    )  # fmt: skip
    return FastTrainer(algo)


def main() -> None:
    out, iterations = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    trainer = make()
    ckpt = out / "ckpt.pt"
    if "--resume" in sys.argv:
        trainer.resume(str(ckpt))
    trainer.run(
        [HitsUpperBound("iteration", iterations if iterations > 0 else math.inf)],
        checkpoint_every=1,
        checkpoint_path=str(ckpt),
        log=lambda s: print(f"iteration {s['iteration']}", flush=True),
    )
    torch.save(trainer.algorithm.policy.state_dict(), out / "final.pt")


if __name__ == "__main__":
    main()
