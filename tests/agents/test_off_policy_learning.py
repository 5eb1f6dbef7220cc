"""The off-policy agents learn: each reaches, within a CPU budget of about a minute, an evaluation return that a
random policy cannot (Pendulum: about -1200 at random; CartPole: about 22) and that the published curve named in
each case reaches at that budget. Seeded; the run stops as soon as an evaluation passes the threshold.

DQN's learning test is in ``test_dqn.py``; DrQ and DrQ-v2 learn from pixels in ``test_pixel_learning.py``.
"""

from __future__ import annotations

import pytest

import rlte_plugins
from rlte_plugins.training.conditions import HitsUpperBound

CASES = [
    # SAC on gymnasium's Pendulum-v1: rl-baselines3-zoo's SAC curve (benchmark.md, 20k steps: -176 +- 64) passes
    # -300 within 5-6k steps; seed 0 here: -203 after 4k frames (1k of them random)
    pytest.param("sac", "Pendulum-v1", 6_000, -300, {}, id="sac-gymnasium-Pendulum-v1"),
    # and on torch_pendulum, the same dynamics simulated in torch
    pytest.param("sac", "torch_pendulum", 6_000, -300, {}, id="sac-torch_pendulum"),
    # DDPG on torch_pendulum (Pendulum-v1's dynamics): the zoo's DDPG curve (20k steps: -152 +- 94) is past -300
    # by 6k steps
    pytest.param("ddpg", "torch_pendulum", 6_000, -300, {}, id="ddpg-torch_pendulum"),
    # TD3 on torch_pendulum: its delayed actor learns later; the zoo's TD3 curve (20k steps: -151 +- 90) is past -400
    # by ~8k steps
    pytest.param("td3", "torch_pendulum", 8_000, -400, {}, id="td3-torch_pendulum"),
    # discrete SAC on CartPole-v1: no published curve on CartPole that we know of (Christodoulou, 2019, reports
    # Atari); 150 is far above random (~22) and below what CleanRL's DQN curve reaches by 10k steps; seed 0 here:
    # 194 after 2k frames, 274 after 4k
    pytest.param("sac_discrete", "CartPole-v1", 5_000, 150, {"random_frames": 0}, id="sac_discrete-CartPole-v1"),
]


@pytest.mark.parametrize("name, env, frames, threshold, options", CASES)
def test_off_policy_agent_learns(name, env, frames, threshold, options):
    options = {"learning_starts": 1_000, "random_frames": 1_000, **options}
    agent = rlte_plugins.make("agent", name, env=env, seed=0, **options)
    stats = agent.train(frames, stop_conditions=[HitsUpperBound("eval/episodic_return", threshold)], eval_every=1_000,
                        eval_episodes=5, progress=False)  # fmt: skip
    assert stats["eval/episodic_return"] >= threshold, agent.history
