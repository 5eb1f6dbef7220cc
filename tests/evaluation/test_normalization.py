import numpy as np
import pytest

from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation.normalization import (
    ATARI_RANDOM_HUMAN,
    PROCGEN_EASY,
    PROCGEN_HARD,
    normalize_score_matrix,
    score_range,
)


def test_tables_cover_the_benchmarks():
    assert len(ATARI_RANDOM_HUMAN) == 57
    assert set(PROCGEN_EASY) == set(PROCGEN_HARD) and len(PROCGEN_EASY) == 16
    assert all(high > low for low, high in [*ATARI_RANDOM_HUMAN.values(), *PROCGEN_EASY.values(),
                                            *PROCGEN_HARD.values()])  # fmt: skip
    # spot values of the published tables (Mnih et al. 2015 / Badia et al. 2020; Cobbe et al. 2020)
    assert ATARI_RANDOM_HUMAN["breakout"] == (1.7, 30.5)
    assert ATARI_RANDOM_HUMAN["montezuma_revenge"] == (0.0, 4753.3)
    assert PROCGEN_EASY["starpilot"] == (2.5, 64.0) and PROCGEN_HARD["starpilot"] == (1.5, 35.0)


@pytest.mark.parametrize("task", ["ALE/MsPacman-v5", "MsPacmanNoFrameskip-v4", "MsPacman-v5", "ms_pacman", "mspacman"])
def test_atari_task_ids_of_every_backend_find_their_game(task):
    assert score_range("atari", task) == (307.3, 6951.6)


def test_procgen_mode_comes_from_the_table_or_the_task_id():
    assert score_range("procgen_hard", "bigfish") == (0.0, 40.0)
    assert score_range("procgen", "BigfishHard-v0") == (0.0, 40.0)
    assert score_range("procgen", "BigfishEasy-v0") == score_range("procgen", "procgen:bigfish") == (1.0, 40.0)
    assert score_range("procgen", "procgen-bigfish-v0") == score_range("procgen", "procgen:procgen-bigfish-v0")
    assert score_range("dmc", "anything") == (0.0, 1000.0)


def test_unknown_names_are_one_clear_error():
    with pytest.raises(ConfigError, match="did you mean 'breakout'"):
        score_range("atari", "Breakot-v5")
    with pytest.raises(ConfigError, match="unknown normalisation table 'mujoco'.*atari"):
        score_range("mujoco", "Hopper-v4")


def test_matrix_normalisation_per_task_and_over_frames():
    scores = np.array([[500.0, -615.35], [22.2, 0.0]])
    out = normalize_score_matrix(scores, [(22.2, 500.0), (-1230.7, 0.0)])
    np.testing.assert_allclose(out, [[1.0, 0.5], [0.0, 1.0]])
    cube = np.stack([scores, scores], axis=-1)
    np.testing.assert_allclose(normalize_score_matrix(cube, [(22.2, 500.0), (-1230.7, 0.0)])[..., 1], out)
    with pytest.raises(ConfigError, match="one score range per task"):
        normalize_score_matrix(scores, [(0.0, 1.0)])
    with pytest.raises(ConfigError, match="high > low"):
        normalize_score_matrix(scores, [(0.0, 1.0), (1.0, 1.0)])
