"""DrQ-v2 from pixels on a DeepMind Control task with the authors' settings: Yarats et al. (2022), "Mastering
visual continuous control: improved data-augmented reinforcement learning" (ICLR; ``facebookresearch/drqv2``).

Run it:  python -m rlte_plugins.hub.apps.drqv2_dmc --env-id cartpole_swingup

The packaged ``rlte train drqv2_dmc`` run (``rlte_plugins/configs/drqv2_dmc.yaml``) on any of the easy and medium
tasks: 84x84 pixels, 3 frames stacked, action repeat 2; 4,000 frames of random actions, an update every 2 agent
steps, Adam at 1e-4, gamma 0.99, target averaging 0.01, the Tassa CNN and 1024-wide trunks (feature 50), random
shifts of 4 pixels, exploration noise clipped at 0.3. The per-task settings (the noise schedule, the n-step return,
the batch size, the buffer) are :func:`rlte_plugins.agents.drq.drqv2_settings`'s; the buffer holds at most the
run's agent steps (a full 1M buffer of 84x84x9 frame stacks takes 127 GB). Frames here count agent steps: the
default 50,000 are the authors' 100k frames at action repeat 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlte_plugins.hub.apps.common import App
from rlte_plugins.hub.apps.common import main as run_app


def config(task: str, total_frames: int) -> dict[str, Any]:
    """The ``rlte train`` config of DrQ-v2 on ``task`` (an easy or medium DeepMind Control task) for
    ``total_frames`` agent steps.

    Examples:
        >>> c = config("cheetah_run", 50_000)
        >>> c["distribution"]["std"], c["storage"]["capacity"]
        ('linear(1.0, 0.1, 500000)', 50000)
    """
    from rlte_plugins.agents.drq import drqv2_settings

    settings = drqv2_settings(task)  # refuses a task it has no settings for, naming those it has
    storage = settings["storage"]
    return {
        "description": f"drqv2 on dmc {task} pixels (84x84, 3 frames stacked, action repeat 2)",
        "agent": {
            "name": "drqv2",
            "learning_starts": 2000,  # 4000 frames of random actions before the first update
            "random_frames": 2000,
            "utd_ratio": 0.5,  # an update every 2 agent steps
            "lr": 1.0e-4,
            "gamma": 0.99,
            "tau": 0.01,
        },
        "env": {
            "name": "dmc",
            "task": task,
            "from_pixels": True,
            "action_repeat": 2,
            "frame_stack": 3,
            "image_size": 84,
        },
        "encoder": {"name": "tassa_cnn", "features": None},
        "policy": {"name": "pixel_actor_critic", "feature_dim": 50, "hidden": [1024, 1024]},
        "distribution": {
            "name": "truncated_normal_noise",
            "std": settings["distribution"]["std"],
            "clip": settings["distribution"]["clip"],
        },
        "storage": {
            "name": "nstep_replay",
            "n": storage["n"],
            "gamma": storage["gamma"],
            "capacity": min(storage["capacity"], total_frames),
            "batch_size": storage["batch_size"],
            "memmap": storage["memmap"],
        },
        "augmentation": {"name": "random_shift", "pad": 4},
        "train": {
            "total_frames": total_frames,
            "seed": 0,
            "device": "cpu",
            "eval_every": 5000,  # iterations of one agent step: every 10k frames, as the authors
            "eval_episodes": 10,
            "logger": "csv",
        },
    }


APP = App(
    name="drqv2_dmc",
    description="DrQ-v2 from pixels on a DeepMind Control task with the authors' settings (100k frames).",
    env_help="DeepMind Control task with DrQ-v2 settings (easy or medium), e.g. cartpole_swingup, walker_walk",
    default_env="cartpole_swingup",
    total_frames=50_000,
    config=config,
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_app(APP, argv)


if __name__ == "__main__":
    raise SystemExit(main())
