"""MiniGrid and BabyAI tasks: EnvPool's C++ MiniGrid where it covers the task, the ``minigrid`` package otherwise."""

from __future__ import annotations

from typing import Any

import torch

from rlte_plugins.envs.backends import require
from rlte_plugins.envs.core import BatchedEnv, check_choice, check_num_envs
from rlte_plugins.errors import EnvironmentNotFoundError

FAMILY = "minigrid"
ENCODINGS = ("image", "full", "one_hot")


def task_id(task: str) -> str:
    """``"Empty-5x5"`` -> ``"MiniGrid-Empty-5x5-v0"``; full ids (``MiniGrid-*``, ``BabyAI-*``) pass as they are."""
    if task.startswith(("MiniGrid-", "BabyAI-")):
        return task if task.rsplit("-", 1)[-1].startswith("v") else f"{task}-v0"
    return f"MiniGrid-{task}-v0"


def make_minigrid(
    task: str,
    num_envs: int = 16,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    observation: str = "image",
    backend: str = "auto",
    max_episode_steps: int | None = None,
    num_threads: int = 0,
) -> BatchedEnv:
    """A MiniGrid/BabyAI task with a flat float ``"observation"`` of the grid encoding, 7 discrete actions.

    Args:
        task: ``"Empty-5x5"``, ``"MiniGrid-DoorKey-8x8-v0"``, ``"BabyAI-GoToRedBall-v0"``, ...
        num_envs, seed, device: as every rlte env.
        observation: ``"image"`` (the agent's 7x7 view, 3 codes per cell: object, colour, state),
            ``"full"`` (the whole grid, same codes) or ``"one_hot"`` (the 7x7 view, each code one-hot).
        backend: ``"envpool"`` (C++, ``"image"`` only, the tasks it ships), ``"gymnasium"`` (the ``minigrid``
            package, every task and encoding) or ``"auto"``.
        max_episode_steps: overrides the task's step limit (steps beyond it are truncated).
        num_threads: EnvPool worker threads (0: one per core).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "minigrid", task="Empty-5x5", num_envs=2, seed=0)
        >>> env.rollout(2)["next", "observation"].shape
        torch.Size([2, 2, 147])
    """
    check_num_envs(FAMILY, num_envs)
    check_choice(FAMILY, "observation", observation, ENCODINGS)
    check_choice(FAMILY, "backend", backend, ("auto", "envpool", "gymnasium"))
    env_id = task_id(task)
    if backend in ("auto", "envpool") and observation == "image":
        try:
            envpool = require("envpool", FAMILY)
        except ImportError:
            if backend == "envpool":
                raise
        else:
            if env_id in envpool.list_all_envs():
                backend = "envpool"
            elif backend == "envpool":
                raise EnvironmentNotFoundError(
                    f"env 'minigrid': EnvPool has no {env_id!r}; use backend='gymnasium' (the minigrid package)"
                )
    elif backend == "envpool":
        raise EnvironmentNotFoundError(
            f"env 'minigrid': EnvPool provides the 'image' observation only, not {observation!r}; "
            "use backend='gymnasium'"
        )
    if backend == "envpool":
        from rlte_plugins.envs.envpool import EnvPoolEnv

        kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        return EnvPoolEnv(
            env_id, num_envs, seed, device, family=FAMILY, num_threads=num_threads, envpool_kwargs=kwargs,
            vector_keys=("image",),
        )  # fmt: skip
    return _gymnasium_minigrid(env_id, num_envs, seed, device, observation, max_episode_steps)


def _gymnasium_minigrid(
    env_id: str, num_envs: int, seed: int | None, device: Any, observation: str, max_steps: int | None
) -> BatchedEnv:
    import gymnasium as gym

    from rlte_plugins.envs.gymnasium import VectorEnvAdapter

    minigrid = require("minigrid", FAMILY)
    gym.register_envs(minigrid)
    if env_id not in gym.registry:
        import difflib

        ids = [i for i in gym.registry if i.startswith(("MiniGrid-", "BabyAI-"))]
        close = difflib.get_close_matches(env_id, ids, n=3)
        raise EnvironmentNotFoundError(f"env 'minigrid': unknown task {env_id!r}; did you mean {close}?")
    from minigrid.wrappers import FullyObsWrapper, ImgObsWrapper, OneHotPartialObsWrapper

    def make_one() -> Any:
        env = gym.make(env_id, **({} if max_steps is None else {"max_steps": max_steps}))
        if observation == "full":
            env = FullyObsWrapper(env)
        elif observation == "one_hot":
            env = OneHotPartialObsWrapper(env)
        return gym.wrappers.FlattenObservation(ImgObsWrapper(env))

    return VectorEnvAdapter(VectorEnvAdapter.vector([make_one] * num_envs), family=FAMILY, seed=seed, device=device)
