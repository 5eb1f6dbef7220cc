"""The 16 Procgen games: the ``procgen`` package where it imports, EnvPool's Procgen otherwise."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from rlte_plugins.envs.backends import require
from rlte_plugins.envs.core import BatchedEnv, check_choice, check_num_envs
from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError

FAMILY = "procgen"
GAMES = (
    "bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot",
    "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot",
)  # fmt: skip


def make_procgen(
    game: str,
    num_envs: int = 64,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    num_levels: int = 0,
    start_level: int = 0,
    distribution_mode: str = "easy",
    backend: str = "auto",
    num_threads: int = 0,
) -> BatchedEnv:
    """A Procgen game: ``"pixels"`` ``uint8`` ``[3, 64, 64]``, 15 discrete actions, batched.

    Args:
        game: one of the 16 games, e.g. ``"coinrun"`` (``"CoinrunEasy-v0"`` is read too).
        num_envs, seed, device: as every rlte env.
        num_levels: number of distinct levels to train on (0: unlimited).
        start_level: the first level's seed.
        distribution_mode: ``"easy"`` or ``"hard"``.
        backend: ``"procgen"`` (the ``procgen`` package; no build for Python >= 3.11), ``"envpool"`` (needs
            Debian's ``libqt5gui5``) or ``"auto"`` (``procgen`` where it imports, EnvPool otherwise).
        num_threads: EnvPool worker threads (0: one per core).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "procgen", game="coinrun", num_envs=2, seed=0, num_levels=200)
        >>> env.rollout(2)["next", "pixels"].shape
        torch.Size([2, 2, 3, 64, 64])
    """
    check_num_envs(FAMILY, num_envs)
    check_choice(FAMILY, "backend", backend, ("auto", "procgen", "envpool"))
    check_choice(FAMILY, "distribution_mode", distribution_mode, ("easy", "hard"))
    for arg, value in (("num_levels", num_levels), ("start_level", start_level)):
        if not isinstance(value, int) or value < 0:
            raise ComponentArgumentError(f"env 'procgen': {arg} must be a non-negative int, got {value!r}")
    name = game.lower().removesuffix("-v0").removesuffix("easy").removesuffix("hard")
    if name not in GAMES:
        import difflib

        close = difflib.get_close_matches(name, GAMES, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f" (games: {', '.join(GAMES)})"
        raise EnvironmentNotFoundError(f"env 'procgen': unknown game {game!r}{hint}")
    if backend == "auto":
        backend = "procgen" if importlib.util.find_spec("procgen") is not None else "envpool"
    if backend == "procgen":
        return ProcgenGym3Env(name, num_envs, seed, device, num_levels, start_level, distribution_mode)
    from rlte_plugins.envs.envpool import EnvPoolEnv

    return EnvPoolEnv(
        f"{name.capitalize()}{distribution_mode.capitalize()}-v0",
        num_envs,
        seed,
        device,
        family=FAMILY,
        num_threads=num_threads,
        envpool_kwargs=dict(num_levels=num_levels, start_level=start_level),
    )


class ProcgenGym3Env(BatchedEnv):
    """The ``procgen`` package's gym3 env, stepped as one batch.

    gym3 resets a finished env on its own: the observation returned with ``first`` is the new episode's, and
    the step that ended the previous one is the one before. Procgen ends an episode by the game's rules or by
    its own step cap, and gym3 does not tell them apart, so every end is ``terminated``.
    """

    def __init__(
        self,
        game: str,
        num_envs: int,
        seed: int | None,
        device: str | torch.device,
        num_levels: int,
        start_level: int,
        distribution_mode: str,
    ) -> None:
        import gymnasium as gym

        procgen = require("procgen", FAMILY)
        kwargs = dict(
            num=num_envs,
            env_name=game,
            num_levels=num_levels,
            start_level=start_level,
            distribution_mode=distribution_mode,
        )
        if seed is not None:
            kwargs["rand_seed"] = int(seed)
        self._gym3 = procgen.ProcgenGym3Env(**kwargs)
        super().__init__(
            family=FAMILY,
            num_envs=num_envs,
            device=device,
            observation_space=gym.spaces.Box(0, 255, (64, 64, 3), np.uint8),
            action_space=gym.spaces.Discrete(15),
        )
        self.seed = seed

    def _backend_reset(self, mask: np.ndarray | None) -> Any:
        # gym3 already started the next episode when it reported the end of the last one
        _, obs, _ = self._gym3.observe()
        return obs["rgb"]

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        self._gym3.act(action.astype(np.int32))
        reward, obs, first = self._gym3.observe()
        return obs["rgb"], reward, first, np.zeros_like(first), {}
