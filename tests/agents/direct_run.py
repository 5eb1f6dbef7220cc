"""A small ``fast_ppo`` run for the resume test: ``python direct_run.py DIR ITERATIONS [--resume]``.

Trains on ``torch_cartpole`` with direct collection, saving ``DIR/ckpt.pt`` after every iteration and then
printing ``iteration N``; ``--resume`` continues from that checkpoint. At the end it saves the trained parameters,
the normalisation statistics and the frame count to ``DIR/final.pt``. ``ITERATIONS`` 0 runs until the process is
killed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import rlte_plugins
from rlte_plugins.agents.base import Agent, load_agent


def make() -> Agent:
    agent = rlte_plugins.make(
        "agent", "fast_ppo", env="torch_cartpole", num_envs=16, num_steps=32, seed=3, num_minibatches=4, epochs=2,
        lr="linear(1e-3, 1e-4, 20000)", entropy_coef=0.01, normalize_observation=True, scale_rewards=True,
    )  # fmt: skip
    return agent.set(encoder={"name": "mlp", "num_cells": [32, 32]})


def report(state: Mapping[str, Any]) -> bool:
    """A stop condition that never holds: the loop calls it once per iteration, after the iteration's checkpoint."""
    print(f"iteration {state['iteration']}", flush=True)
    return False


def main() -> None:
    out, iterations = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    ckpt = out / "ckpt.pt"
    agent = load_agent(ckpt) if "--resume" in sys.argv else make()
    total = iterations * 16 * 32 if iterations > 0 else 2**62
    agent.train(total, stop_conditions=[report], checkpoint=ckpt, checkpoint_every=1, progress=False)
    state = agent.state_dict()["state"]
    final = {f"{part}.{k}": v for part in ("policy", "obs_norm", "ret_rms") for k, v in state[part].items()}
    torch.save({**final, "frames": torch.tensor(agent.frames)}, out / "final.pt")


if __name__ == "__main__":
    main()
