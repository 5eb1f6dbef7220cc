"""PPO on a Procgen game with the settings of Cobbe et al. (2020), "Leveraging procedural generation to benchmark
reinforcement learning" (ICML; ``openai/train-procgen``, the same as CleanRL's ``ppo_procgen.py``).

Run it:  python -m rlte_plugins.hub.apps.ppo_procgen --env-id bigfish

The easy generalisation protocol: 200 training levels, 25M frames. 64 envs x 256 steps, 3 epochs of 8
minibatches, Adam at a constant 5e-4, gamma 0.999, GAE lambda 0.95, clip 0.2 on the ratio and the value, entropy
0.01, value weight 0.5 on half the squared error (0.25 here: TorchRL's l2 is the full one), gradient norm 0.5, the
IMPALA CNN (16-32-32 channels, 256 features) shared by actor and critic. These are
:data:`rlte_plugins.agents.drac.PROCGEN_DEFAULTS`, the settings ``rlte bench procgen`` gives PPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlte_plugins.errors import ConfigError
from rlte_plugins.hub.apps.common import App
from rlte_plugins.hub.apps.common import main as run_app


def config(game: str, total_frames: int) -> dict[str, Any]:
    """The ``rlte train`` config of PPO on ``game`` (one of the 16 Procgen games).

    Examples:
        >>> c = config("coinrun", 25_000_000)
        >>> c["agent"]["lr"], c["agent"]["gamma"], c["env"]["num_levels"]
        (0.0005, 0.999, 200)
    """
    from rlte_plugins.envs.procgen import GAMES

    if game not in GAMES:
        raise ConfigError(f"ppo_procgen: unknown Procgen game {game!r} (games: {', '.join(GAMES)})")
    return {
        "description": f"PPO on Procgen {game}, easy, 200 levels (IMPALA CNN shared by actor and critic)",
        "agent": {
            "name": "ppo",
            "num_steps": 256,
            "epochs": 3,
            "num_minibatches": 8,
            "lr": 5.0e-4,
            "anneal_lr": False,
            "gamma": 0.999,
            "gae_lambda": 0.95,
            "clip_epsilon": 0.2,
            "clip_value": 0.2,
            "entropy_coef": 0.01,
            "value_coef": 0.25,
            "max_grad_norm": 0.5,
            "chunk_size": 256,  # cache-sized passes on a CPU (the gradient is the same); on a GPU raise it
        },
        "env": {"name": "procgen", "game": game, "num_envs": 64, "num_levels": 200, "distribution_mode": "easy"},
        "encoder": {"name": "espeholt_resnet", "channels": [16, 32, 32], "features": 256},
        "policy": {"name": "actor_critic", "shared_encoder": True},
        "distribution": {"name": "categorical"},
        "train": {"total_frames": total_frames, "eval_episodes": 64, "logger": "csv"},
    }


APP = App(
    name="ppo_procgen",
    description="PPO on a Procgen game with the settings of Cobbe et al. (2020): 200 levels, easy, 25M frames.",
    env_help="Procgen game, e.g. bigfish, coinrun, starpilot",
    default_env="bigfish",
    total_frames=25_000_000,
    config=config,
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_app(APP, argv)


if __name__ == "__main__":
    raise SystemExit(main())
