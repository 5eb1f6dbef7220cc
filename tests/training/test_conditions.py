"""Stop conditions: each on its own, combined, from config mappings, and in the run loop over logged keys."""

from __future__ import annotations

import pytest

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.training.conditions import (
    And,
    FrameBudget,
    HitsLowerBound,
    HitsUpperBound,
    Or,
    Plateaus,
    StopsDecreasing,
    StopsIncreasing,
    TimeBudget,
    from_config,
)  # fmt: skip


def test_stop_conditions():
    up, low = HitsUpperBound("r", 1.0), HitsLowerBound("loss", 0.1)
    assert not up({"r": 0.5}) and up({"r": 1.0}) and not up({"x": 3})
    assert low({"loss": 0.05}) and not low({"loss": float("nan")})
    plateau = Plateaus("r", patience=2, rtol=0.01)
    assert [plateau({"r": v}) for v in (1.0, 1.005, 0.998, 1.5)] == [False, False, True, False]
    inc = StopsIncreasing("r", patience=2)
    assert [inc({"r": v}) for v in (1, 2, 3, 2.5, 2.9)] == [False, False, False, False, True]
    dec = StopsDecreasing("l", patience=1)
    assert [dec({"l": v}) for v in (3, 2, 2.5)] == [False, False, True]
    both = And([FrameBudget(10), TimeBudget(1.0)])
    assert not both({"frames": 20, "time_s": 0.5}) and both({"frames": 20, "time_s": 2.0})
    assert Or([FrameBudget(10), TimeBudget(1.0)])({"frames": 20, "time_s": 0.5})
    spec = {"and": [{"frame_budget": 5}, {"hits_upper_bound": {"key": "eval/episodic_return", "bound": 3}}]}
    cond = from_config(spec)
    assert not cond({"frames": 6, "eval/episodic_return": 2}) and cond({"frames": 6, "eval/episodic_return": 4})
    with pytest.raises(ComponentArgumentError, match="unknown stop condition 'hits_upperbound'"):
        from_config({"hits_upperbound": {"key": "r", "bound": 1}})
    with pytest.raises(ComponentArgumentError, match="patience"):
        Plateaus("r", patience=0)


@pytest.mark.parametrize(
    "condition,eval_every,iterations",
    [
        (HitsLowerBound("losses/approx_kl", 10.0), 0, 1),  # CleanRL's k3 estimate: never above 10 here
        ({"hits_upper_bound": {"key": "iteration", "bound": 3}}, 0, 3),
        # evaluated on every second iteration only: the key is missing before, which never stops a run
        (HitsUpperBound("eval/episodic_return", 0.0), 2, 2),
        ({"frame_budget": 3 * 8 * 16}, 0, 3),
    ],
)
def test_the_run_loop_stops_on_the_logged_keys(condition, eval_every, iterations):
    agent = rlte_plugins.make("agent", "fast_ppo", env="torch_cartpole", num_envs=8, num_steps=16)
    agent.set(encoder={"name": "mlp", "num_cells": [8]})
    stats = agent.train(100 * 8 * 16, stop_conditions=[condition], eval_every=eval_every, eval_episodes=2,
                        progress=False)  # fmt: skip
    assert stats["frames"] == agent.frames == iterations * 8 * 16
    assert len(agent.history) == iterations and "charts/episodic_return" in agent.history[-1]
