"""``rlte bench procgen`` end to end at a toy budget: the suite, the train and test scores, the tables, resuming."""

from __future__ import annotations

import json

import pytest

from rlte_plugins.bench import procgen
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.evaluation.normalization import score_range

pytest.importorskip("envpool")


def test_benchmark_scores_every_run_on_training_and_test_levels_and_resumes(tmp_path, capsys):
    options = dict(agents=["ppo", "daac"], games=["bigfish"], frames=32, num_levels=3, seeds=1, eval_episodes=2,
                   output=tmp_path / "procgen", threads=1, num_envs=2, num_steps=16)  # fmt: skip
    table = procgen.benchmark(**options)
    low, high = score_range("procgen_easy", "bigfish")
    assert set(table["agents"]) == {"ppo", "daac"} and table["games"] == ["bigfish"]
    scored = json.loads((tmp_path / "procgen" / "generalisation.json").read_text())
    assert len(scored) == 2
    for agent, row in table["agents"].items():
        point, lower, upper = row["IQM_test"]
        assert lower <= point <= upper
        run = next(v for k, v in scored.items() if k.startswith(f"{agent}__bigfish__0@"))
        assert row["mean_train"][0] == pytest.approx((run["train"] - low) / (high - low))
        assert row["mean_test"][0] == pytest.approx((run["test"] - low) / (high - low))
        assert row["frames_per_second"] > 0
    out = capsys.readouterr().out
    assert "IQM" in out and "test/ppo" in out
    # a second call trains nothing and scores nothing again
    again = procgen.benchmark(**options)
    assert "0 to run" in capsys.readouterr().out
    assert again["agents"]["daac"]["mean_test"] == table["agents"]["daac"]["mean_test"]


def test_suite_names_each_game_and_refuses_unknown_agents():
    spec = procgen.suite(["ppo", "drac"], ["bigfish", "coinrun"], 1000, 200, 2)
    assert spec["tasks"]["coinrun"] == {"frames": 1000, "normalize": "procgen_easy"}
    ppo = spec["algorithms"]["ppo"]
    assert ppo["config"]["policy"] == {"name": "actor_critic", "shared_encoder": True}
    assert ppo["config"]["agent"]["lr"] == 5e-4 and ppo["config"]["agent"]["epochs"] == 3
    assert ppo["tasks"]["coinrun"] == {"set": {"env.game": "coinrun"}}
    # the papers' per-game settings: DrAC's best augmentation, DAAC's value phase
    assert spec["algorithms"]["drac"]["tasks"]["coinrun"]["set"]["augmentation"] == {"name": "random_convolution"}
    assert spec["algorithms"]["drac"]["tasks"]["bigfish"]["set"]["augmentation"] == {"name": "random_shift", "pad": 12}
    daac = procgen.suite(["daac"], ["bigfish"], 1000, 200, 1)["algorithms"]["daac"]["tasks"]["bigfish"]["set"]
    assert (daac["agent.value_freq"], daac["agent.adv_coef"]) == (32, 0.05)
    with pytest.raises(ComponentArgumentError, match="no Procgen settings for agent 'sac'"):
        procgen.suite(["sac"], ["bigfish"], 1000, 200, 1)


def test_speed_times_whole_ppg_cycles(capsys, monkeypatch):
    from rlte_plugins.agents.ppg import PPG

    phases = []
    original = PPG._auxiliary_phase
    monkeypatch.setattr(PPG, "_auxiliary_phase", lambda self: phases.append(self.frames) or original(self))
    figures = procgen.speed(["ppo", "ppg"], num_envs=2, num_steps=8, iterations=2, threads=1)
    assert set(figures) == {"ppo", "ppg"} and all(v > 0 for v in figures.values())
    assert phases == [32, 64]  # one auxiliary phase in the untimed cycle, one in the timed one
    assert "vs ppo" in capsys.readouterr().out
