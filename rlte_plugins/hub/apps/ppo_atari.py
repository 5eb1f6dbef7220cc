"""PPO on an Atari game with the settings of CleanRL's ``ppo_atari.py`` (Huang et al., 2022, "The 37
implementation details of proximal policy optimization", ICLR blog track; those of Schulman et al., 2017).

Run it:  python -m rlte_plugins.hub.apps.ppo_atari --env-id Breakout

8 envs x 128 steps, 4 epochs of 4 minibatches, Adam at 2.5e-4 annealed to 0 (epsilon 1e-5), gamma 0.99, GAE
lambda 0.95, clip 0.1 on the ratio and the value, entropy 0.01, value weight 0.5 on half the squared error (0.25
here: TorchRL's l2 is the full one), gradient norm 0.5, advantages normalised per minibatch, the Nature CNN (512
features) shared by actor and critic, 10M frames (agent steps, each 4 emulator frames). The preprocessing is
CleanRL's (and EnvPool's defaults): up to 30 no-ops, skip 4 with max-pool, episodic life, FIRE on reset, rewards
clipped to their sign, 84x84 gray, 4 stacked, no sticky actions (``NoFrameskip-v4``), 27,000-step episodes.
Game names are the Atari-57 ones: ``Breakout``, ``breakout``, ``ALE/Breakout-v5`` or ``space_invaders``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from rlte_plugins.errors import ConfigError
from rlte_plugins.hub.apps.common import App
from rlte_plugins.hub.apps.common import main as run_app


def config(game: str, total_frames: int) -> dict[str, Any]:
    """The ``rlte train`` config of PPO on ``game`` (one of the Atari-57 games).

    Examples:
        >>> c = config("space_invaders", 10_000_000)
        >>> c["env"]["game"], c["agent"]["clip_epsilon"], c["agent"]["lr"]
        ('SpaceInvaders', 0.1, 0.00025)
    """
    from rlte_plugins.envs.atari import game_name
    from rlte_plugins.evaluation.normalization import ATARI_RANDOM_HUMAN

    known = {key.replace("_", ""): game_name(key) for key in ATARI_RANDOM_HUMAN}  # "spaceinvaders": "SpaceInvaders"
    key = game_name(game).lower()
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=3)
        hint = f"; did you mean {', '.join(known[c] for c in close)}?" if close else ""
        raise ConfigError(f"ppo_atari: {game!r} is not one of the Atari-57 games{hint} (e.g. Breakout, Pong, "
                          "SpaceInvaders)")  # fmt: skip
    name = known[key]
    return {
        "description": f"PPO on Atari {name} (Nature CNN shared by actor and critic, CleanRL's ppo_atari settings)",
        "agent": {
            "name": "ppo",
            "num_steps": 128,
            "epochs": 4,
            "num_minibatches": 4,
            "lr": 2.5e-4,
            "anneal_lr": True,
            "adam_eps": 1.0e-5,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "clip_epsilon": 0.1,
            "clip_value": 0.1,
            "entropy_coef": 0.01,
            "value_coef": 0.25,
            "max_grad_norm": 0.5,
            "normalize_advantage": True,
        },
        "env": {
            "name": "atari",
            "game": name,
            "num_envs": 8,
            "noop_max": 30,
            "frame_skip": 4,
            "episodic_life": True,
            "fire_reset": True,
            "clip_rewards": True,
            "image_size": 84,
            "grayscale": True,
            "frame_stack": 4,
            "repeat_action_probability": 0.0,
            "max_episode_steps": 27_000,
        },
        "encoder": {"name": "mnih_cnn", "features": 512},
        "policy": {"name": "actor_critic", "shared_encoder": True},
        "distribution": {"name": "categorical", "init_gain": 0.01},
        "train": {"total_frames": total_frames, "eval_episodes": 10, "logger": "csv"},
    }


APP = App(
    name="ppo_atari",
    description="PPO on an Atari game with CleanRL's ppo_atari.py settings: 8 envs x 128 steps, 10M frames.",
    env_help="Atari-57 game, e.g. Breakout, Pong, SpaceInvaders",
    default_env="Breakout",
    total_frames=10_000_000,
    config=config,
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_app(APP, argv)


if __name__ == "__main__":
    raise SystemExit(main())
