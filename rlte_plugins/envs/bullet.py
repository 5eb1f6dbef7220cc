"""PyBullet locomotion tasks (Ant, HalfCheetah, Hopper, Walker2D, Humanoid, ...) through gymnasium."""

from __future__ import annotations

import re
from typing import Any

import torch

from rlte_plugins.envs.backends import require
from rlte_plugins.envs.core import BatchedEnv, check_choice, check_num_envs
from rlte_plugins.errors import EnvironmentNotFoundError

FAMILY = "bullet"


def bullet_id(task: str) -> str:
    """``"half_cheetah"``, ``"HalfCheetah"``, ``"HalfCheetahBulletEnv-v0"`` -> ``"HalfCheetahBulletEnv-v0"``."""
    name = re.sub(r"(BulletEnv)?-v\d+$", "", task.strip())
    if "_" in name or name.islower():
        name = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    return f"{name}BulletEnv-v0"


def make_bullet(
    task: str,
    num_envs: int = 8,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    max_episode_steps: int | None = None,
    vectorization_mode: str = "sync",
) -> BatchedEnv:
    """A PyBullet locomotion task: float ``"observation"``, actions in [-1, 1], 1000-step episodes (truncated).

    Args:
        task: ``"Ant"``, ``"HalfCheetah"``, ``"Hopper"``, ``"Walker2D"``, ``"Humanoid"``, ``"InvertedPendulum"``,
            ... (or the full id, ``"HopperBulletEnv-v0"``).
        num_envs, seed, device: as every rlte env.
        max_episode_steps: overrides the 1000-step limit.
        vectorization_mode: ``"sync"`` (one process) or ``"async"`` (a process per env).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "bullet", task="Hopper", num_envs=2, seed=0)
        >>> env.rollout(2)["next", "observation"].shape
        torch.Size([2, 2, 15])
    """
    import gymnasium as gym

    from rlte_plugins.envs.gymnasium import VectorEnvAdapter

    check_num_envs(FAMILY, num_envs)
    check_choice(FAMILY, "vectorization_mode", vectorization_mode, ("sync", "async"))
    require("pybullet", FAMILY)
    env_id = bullet_id(task)
    if env_id not in gym.registry:
        ids = sorted(i.removesuffix("BulletEnv-v0") for i in gym.registry if i.endswith("BulletEnv-v0"))
        raise EnvironmentNotFoundError(f"env 'bullet': unknown task {task!r} (tasks: {', '.join(ids)})")
    kwargs: dict[str, Any] = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    fns = [lambda: gym.make(env_id, **kwargs)] * num_envs
    return VectorEnvAdapter(VectorEnvAdapter.vector(fns, vectorization_mode), family=FAMILY, seed=seed, device=device)
