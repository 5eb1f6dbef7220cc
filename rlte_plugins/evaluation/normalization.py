"""Score normalisation tables of the env families, and the min-max normalisation that rliable's aggregates expect.

A normalised score is ``(score - low) / (high - low)``: 0 at the table's low reference, 1 at its high one.

- **Atari** (57 games): ``(random, human)``. The random and human scores of Mnih et al. (2015), "Human-level control
  through deep reinforcement learning" (Nature), extended to the 57 games by Badia et al. (2020), "Agent57:
  Outperforming the Atari human benchmark" (the table every Atari-57 paper and rliable's Atari data use).
- **Procgen** (16 games): ``(R_min, R_max)`` per distribution mode, from Cobbe et al. (2020), "Leveraging procedural
  generation to benchmark reinforcement learning" (appendix; ``openai/train-procgen``'s ``constants.py``).
- **DeepMind Control**: every task's reward is in [0, 1] per step over 1000 steps (Tassa et al., 2018), so returns
  lie in [0, 1000].
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlte_plugins.errors import ConfigError

#: game -> (random, human) episode returns
ATARI_RANDOM_HUMAN: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7), "amidar": (5.8, 1719.5), "assault": (222.4, 742.0), "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7), "atlantis": (12850.0, 29028.1), "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5), "beam_rider": (363.9, 16926.5), "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7), "boxing": (0.1, 12.1), "breakout": (1.7, 30.5), "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8), "crazy_climber": (10780.5, 35829.4), "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0), "double_dunk": (-18.6, -16.4), "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7), "freeway": (0.0, 29.6), "frostbite": (65.2, 4334.7), "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4), "hero": (1027.0, 30826.4), "ice_hockey": (-11.2, 0.9), "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0), "krull": (1598.0, 2665.5), "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3), "ms_pacman": (307.3, 6951.6), "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6), "pitfall": (-229.4, 6463.7), "pong": (-20.7, 14.6), "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0), "riverraid": (1338.5, 17118.0), "road_runner": (11.5, 7845.0), "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7), "skiing": (-17098.1, -4336.9), "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7), "star_gunner": (664.0, 10250.0), "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3), "time_pilot": (3568.0, 5229.2), "tutankham": (11.4, 167.6), "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5), "video_pinball": (16256.9, 17667.9), "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9), "zaxxon": (32.5, 9173.3),
}  # fmt: skip

#: game -> (R_min, R_max), easy distribution mode
PROCGEN_EASY: dict[str, tuple[float, float]] = {
    "bigfish": (1.0, 40.0), "bossfight": (0.5, 13.0), "caveflyer": (3.5, 12.0), "chaser": (0.5, 13.0),
    "climber": (2.0, 12.6), "coinrun": (5.0, 10.0), "dodgeball": (1.5, 19.0), "fruitbot": (-1.5, 32.4),
    "heist": (3.5, 10.0), "jumper": (1.0, 10.0), "leaper": (1.5, 10.0), "maze": (5.0, 10.0), "miner": (1.5, 13.0),
    "ninja": (3.5, 10.0), "plunder": (4.5, 30.0), "starpilot": (2.5, 64.0),
}  # fmt: skip

#: game -> (R_min, R_max), hard distribution mode
PROCGEN_HARD: dict[str, tuple[float, float]] = {
    "bigfish": (0.0, 40.0), "bossfight": (0.5, 13.0), "caveflyer": (2.0, 13.4), "chaser": (0.5, 14.2),
    "climber": (1.0, 12.6), "coinrun": (5.0, 10.0), "dodgeball": (1.5, 19.0), "fruitbot": (-0.5, 27.2),
    "heist": (2.0, 10.0), "jumper": (1.0, 10.0), "leaper": (1.5, 10.0), "maze": (4.0, 10.0), "miner": (1.5, 20.0),
    "ninja": (2.0, 10.0), "plunder": (3.0, 30.0), "starpilot": (1.5, 35.0),
}  # fmt: skip

#: the return range of every DeepMind Control task
DMC_RANGE: tuple[float, float] = (0.0, 1000.0)

#: the tables :func:`score_range` knows, by name
TABLES = ("atari", "procgen_easy", "procgen_hard", "procgen", "dmc")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _game(task: str) -> str:
    """The game in a task id: ``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ``Pong-v5`` and ``pong`` all give ``pong``;
    ``CoinrunHard-v0``, ``procgen:coinrun`` and ``procgen-coinrun-v0`` give ``coinrunhard``, ``coinrun`` and
    ``coinrun``."""
    name = task.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = re.sub(r"-v\d+$", "", name)
    name = re.sub(r"^procgen-", "", name)  # procgen's own gym ids: procgen-coinrun-v0
    name = re.sub(r"(NoFrameskip|Deterministic)$", "", name)
    return _key(name)


def _lookup(table: Mapping[str, tuple[float, float]], game: str, task: str, table_name: str) -> tuple[float, float]:
    by_key = {_key(k): v for k, v in table.items()}
    if game in by_key:
        return by_key[game]
    close = difflib.get_close_matches(game, list(by_key), n=1, cutoff=0.6)
    hint = f"; did you mean {next(k for k in table if _key(k) == close[0])!r}?" if close else ""
    raise ConfigError(f"task {task!r} is not in the {table_name} normalisation table{hint} (give the task a "
                     "score_range [low, high] instead)")  # fmt: skip


def score_range(table: str, task: str) -> tuple[float, float]:
    """The ``(low, high)`` reference returns of ``task`` in a normalisation table: ``atari`` (random, human),
    ``procgen_easy`` / ``procgen_hard`` (R_min, R_max; ``procgen`` reads the mode from an ``...Easy`` / ``...Hard``
    task id and defaults to easy) or ``dmc`` (0, 1000).

    Examples:
        >>> score_range("atari", "ALE/Pong-v5")
        (-20.7, 14.6)
        >>> score_range("procgen", "StarpilotHard-v0")
        (1.5, 35.0)
        >>> score_range("dmc", "walker_walk")
        (0.0, 1000.0)
    """
    if table not in TABLES:
        raise ConfigError(f"unknown normalisation table {table!r} (accepted: {', '.join(TABLES)})")
    if table == "dmc":
        return DMC_RANGE
    game = _game(task)
    if table == "atari":
        return _lookup(ATARI_RANDOM_HUMAN, game, task, "Atari")
    mode = table.partition("_")[2]
    if not mode:
        mode = "hard" if game.endswith("hard") else "easy"
    game = re.sub(r"(easy|hard)$", "", game)
    return _lookup(PROCGEN_HARD if mode == "hard" else PROCGEN_EASY, game, task, f"Procgen {mode}")


def normalize_score_matrix(scores: Any, ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    """Normalise a ``[num_runs, num_tasks(, num_frames)]`` matrix with one ``(low, high)`` per task.

    Examples:
        >>> normalize_score_matrix([[500.0, -150.0]], [(0.0, 500.0), (-1500.0, 0.0)]).round(2).tolist()
        [[1.0, 0.9]]
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim < 2 or matrix.shape[1] != len(ranges):
        raise ConfigError(f"scores of shape {matrix.shape} need one score range per task (axis 1), got {len(ranges)}")
    lows = np.array([r[0] for r in ranges], dtype=np.float64)
    highs = np.array([r[1] for r in ranges], dtype=np.float64)
    if not np.all(highs > lows):
        raise ConfigError(f"every score range needs high > low, got {list(ranges)}")
    shape = (1, len(ranges)) + (1,) * (matrix.ndim - 2)
    return (matrix - lows.reshape(shape)) / (highs - lows).reshape(shape)
