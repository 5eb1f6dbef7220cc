"""The robosuite env in its own environment (robosuite needs mujoco < 3.17, dm_control 1.0.50 needs >= 3.17)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("robosuite", reason="the rlte-robosuite plugin's environment is not installed here")

import rlte_plugins  # noqa: E402
from rlte_plugins.errors import EnvironmentNotFoundError  # noqa: E402


def test_lift_specs_rollout_truncation_and_seeding():
    from torchrl.envs.utils import check_env_specs

    check_env_specs(rlte_plugins.make("env", "robosuite", task="Lift", num_envs=2, seed=0, horizon=10))
    torch.manual_seed(0)
    env = rlte_plugins.make("env", "robosuite", task="Lift", num_envs=2, seed=0, horizon=10)
    td = env.rollout(10, break_when_any_done=False)
    assert td["next", "observation"].dtype == torch.float32 and td["next", "observation"].shape[:2] == (2, 10)
    assert td["next", "truncated"][:, -1].all() and not td["next", "terminated"].any()
    torch.manual_seed(0)
    again = rlte_plugins.make("env", "robosuite", task="Lift", num_envs=2, seed=0, horizon=10).rollout(
        10, break_when_any_done=False
    )
    assert torch.allclose(td["next", "observation"], again["next", "observation"])


def test_ppo_runs_on_lift():
    env = rlte_plugins.make("env", "robosuite", task="Lift", num_envs=2, seed=0, horizon=20)
    agent = rlte_plugins.make("agent", "ppo", env=env, num_steps=8, epochs=1, num_minibatches=1)
    agent.set(encoder="mlp", distribution="diagonal_gaussian")
    agent.train(total_frames=32, progress=False)
    assert agent.frames == 32


def test_unknown_task():
    with pytest.raises(EnvironmentNotFoundError, match="Lift"):
        rlte_plugins.make("env", "robosuite", task="Lfit")


def test_doctor_sees_robosuite_and_the_plugin():
    from rlte_plugins.envs.backends import check

    ok, detail = check("robosuite")
    assert ok, detail
    assert "plugin installed" in detail
