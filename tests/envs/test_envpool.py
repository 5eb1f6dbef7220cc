"""The EnvPool wrapper gets right the five things TorchRL's MultiThreadedEnv gets wrong with EnvPool 1.2.5."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from helpers import check_family, needs

import rlte_plugins
from rlte_plugins.errors import EnvironmentNotFoundError

pytestmark = needs("envpool")


def rollout(steps=40, num_envs=3, **kwargs):
    env = rlte_plugins.make("env", "envpool", task_id="CartPole-v1", num_envs=num_envs, seed=0, **kwargs)
    torch.manual_seed(0)
    return env.rollout(steps, break_when_any_done=False)


def test_gymnasium_api_and_no_treevalue():
    # 1-2: no forced `gym` backend, no `treevalue` import
    code = (
        "import sys, rlte_plugins; e = rlte_plugins.make('env', 'envpool', task_id='CartPole-v1', num_envs=2); "
        "e.rollout(3); assert 'treevalue' not in sys.modules and 'gym' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_done_step_keeps_its_true_last_observation():
    # 3: the partial reset does not overwrite ("next", obs) of the done step
    td = rollout()
    done = td["next", "done"].squeeze(-1)
    nxt, following = td["next", "observation"][:, :-1], td["observation"][:, 1:]
    same = (nxt == following).all(-1)
    assert done.any()
    assert torch.equal(same, ~done[:, :-1])
    # a terminal CartPole state is outside the bounds that ended it; a reset one is within +-0.05
    last = td["next", "observation"][done]
    assert ((last[:, 0].abs() > 2.4) | (last[:, 2].abs() > 0.2095)).all()


def test_no_bogus_transition_after_a_reset():
    # 4: every transition is real: CartPole pays 1 per step, so EnvPool's ignored-action step (reward 0) never shows
    td = rollout(steps=60)
    assert td["next", "done"].any()
    assert (td["next", "reward"] == 1).all()
    length = td["next", "episode_length"].squeeze(-1)
    done = td["next", "done"].squeeze(-1)
    after = torch.nonzero(done[:, :-1])
    assert (length[after[:, 0], after[:, 1] + 1] == 1).all()


def test_reward_and_flags_are_batch_by_one():
    # 5: [B, 1], as GAE expects
    td = check_family("envpool", task_id="CartPole-v1", num_envs=4)
    assert td["next", "reward"].shape == (4, 12, 1)


def test_truncation_is_not_termination():
    env = rlte_plugins.make("env", "envpool", task_id="CartPole-v1", num_envs=2, seed=0,
                            envpool_kwargs={"max_episode_steps": 5})  # fmt: skip
    td = env.rollout(10, break_when_any_done=False, policy=lambda td: td.set("action", torch.tensor([0, 1])))
    trunc, term = td["next", "truncated"].squeeze(-1), td["next", "terminated"].squeeze(-1)
    assert trunc.any() and not (trunc & term).any()
    assert torch.equal(trunc[:, 4] | term[:, :5].any(1), torch.ones(2, dtype=torch.bool))


def test_unknown_task_suggests():
    with pytest.raises(EnvironmentNotFoundError, match="CartPole-v1"):
        rlte_plugins.make("env", "envpool", task_id="CartPole-v2")


def test_stored_transitions_never_change():
    # observations share memory with EnvPool's arrays (``fresh_arrays``): that is only sound while EnvPool hands
    # out new arrays on every call, through steps and partial resets alike
    env = rlte_plugins.make("env", "envpool", task_id="CartPole-v1", num_envs=4, seed=0)
    td = env.reset()
    kept = []
    for _ in range(60):
        td.set("action", env.action_spec.rand())
        step, td = env.step_and_maybe_reset(td)
        kept.append((step, step.clone()))
    assert any(s["next", "done"].any() for s, _ in kept)
    for live, copy in kept:
        assert (live == copy).all()
