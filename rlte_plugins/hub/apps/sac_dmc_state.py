"""SAC from states on a DeepMind Control task with the settings of Haarnoja et al. (2018), "Soft actor-critic
algorithms and applications" (arXiv:1812.05905, Appendix D, Table 1).

Run it:  python -m rlte_plugins.hub.apps.sac_dmc_state --env-id cheetah_run

Adam at 3e-4 for the actor, the twin critics and the temperature, batches of 256 from a 1M buffer, gamma 0.99,
target averaging 0.005 after every update, one update per environment step, 256-256 ReLU MLPs (separate for the
actor and the critics), a temperature learned from 1.0 towards the target entropy ``-dim(action)``; 5,000 frames of
random actions before the first update and 1M frames, as CleanRL's ``sac_continuous_action.py`` (which also uses
1e-3 for the critics; the paper's single rate is kept here). One env, state observations (EnvPool when installed,
else dm_control); the suite's 1000-step time limit truncates episodes (bootstrapped).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rlte_plugins.hub.apps.common import App
from rlte_plugins.hub.apps.common import main as run_app


def config(task: str, total_frames: int) -> dict[str, Any]:
    """The ``rlte train`` config of SAC on ``task`` (a DeepMind Control task, ``<domain>_<task>``).

    Examples:
        >>> c = config("walker_walk", 1_000_000)
        >>> c["agent"]["lr"], c["storage"]["batch_size"], c["policy"]["hidden"]
        (0.0003, 256, [256, 256])
    """
    from rlte_plugins.envs.dmc import split_task

    os.environ.setdefault("MUJOCO_GL", "egl")  # as make_dmc sets it before dm_control imports mujoco: headless
    split_task(task)  # refuses an unknown task with a "did you mean"
    return {
        "description": f"SAC on dmc {task} states (256x256 MLP actor and twin critics, learned temperature)",
        "agent": {
            "name": "sac",
            "learning_starts": 5000,
            "random_frames": 5000,
            "utd_ratio": 1.0,
            "lr": 3.0e-4,
            "gamma": 0.99,
            "tau": 0.005,
            "target_update_every": 1,
            "alpha_init": 1.0,
            "target_entropy": "auto",
        },
        "env": {"name": "dmc", "task": task, "num_envs": 1},
        "encoder": {"name": "identity"},
        "policy": {"name": "stochastic_double_critic", "hidden": [256, 256], "shared_encoder": False},
        "distribution": {"name": "squashed_normal"},
        "storage": {"name": "replay", "capacity": 1_000_000, "batch_size": 256},
        "train": {"total_frames": total_frames, "eval_episodes": 10, "logger": "csv"},
    }


APP = App(
    name="sac_dmc_state",
    description="SAC from states on a DeepMind Control task with the settings of Haarnoja et al. (2018), 1M frames.",
    env_help="DeepMind Control task, <domain>_<task>, e.g. cheetah_run, walker_walk, cartpole_swingup",
    default_env="cheetah_run",
    total_frames=1_000_000,
    config=config,
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_app(APP, argv)


if __name__ == "__main__":
    raise SystemExit(main())
