"""Checks every env family passes: specs, keys/dtypes/shapes on a random rollout, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

import rlte_plugins
from rlte_plugins.envs.backends import check


def needs(backend: str) -> pytest.MarkDecorator:
    """Skip with the exact reason when ``backend`` does not work here (what ``rlte doctor`` reports)."""
    ok, detail = check(backend)
    return pytest.mark.skipif(not ok, reason=f"backend {backend} not working here: {detail}")


COMMON = ("reward", "done", "terminated", "truncated", "episode_reward", "episode_length", "episode_end")


def check_family(name: str, steps: int = 12, num_envs: int = 2, **kwargs) -> torch.Tensor:
    """Make, check specs, roll out randomly; check the common keys; return the rollout."""
    env = rlte_plugins.make("env", name, num_envs=num_envs, seed=0, **kwargs)
    check_env_specs(env)
    td = env.rollout(steps, break_when_any_done=False)
    assert td.batch_size == (num_envs, steps)
    for key in COMMON:
        assert td["next", key].shape == (num_envs, steps, 1), key
    for key in ("done", "terminated", "truncated", "episode_end"):
        assert td["next", key].dtype == torch.bool
    done, term, trunc = (td["next", k] for k in ("done", "terminated", "truncated"))
    assert torch.equal(done, term | trunc) and not (term & trunc).any()
    if "pixels" in env.observation_spec.keys():
        pixels = td["next", "pixels"]
        assert pixels.dtype == torch.uint8 and pixels.dim() == 5  # [B, T, C, H, W]
    if "observation" in env.observation_spec.keys():
        assert td["next", "observation"].dtype == torch.float32
    env.close()
    return td


def check_reproducible(name: str, key: str, steps: int = 10, **kwargs) -> None:
    """Same seed and actions -> same trajectory; another seed -> another start."""

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(123)  # the random actions
        env = rlte_plugins.make("env", name, num_envs=2, seed=seed, **kwargs)
        out = env.rollout(steps, break_when_any_done=False)[key].float()
        env.close()
        return out

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def simulator_actions(env) -> list[np.ndarray]:
    """Record every action the simulator of a one-env ``env`` receives, below all of the maker's clipping and
    rescaling (EnvPool's pool, the gymnasium env's innermost step, or the dm_control task behind it)."""
    from rlte_plugins.envs.dmc import DMControlEnv

    assert env.num_envs == 1
    target = env._pool if hasattr(env, "_pool") else env._vec.envs[0].unwrapped
    if isinstance(target, DMControlEnv):
        target = target._env
    seen, step = [], target.step

    def spy(action, *args):
        seen.append(np.array(action, dtype=np.float64).reshape(-1))
        return step(action, *args)

    target.step = spy
    return seen
