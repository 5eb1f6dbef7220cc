"""The ``"gymnasium"`` env on EnvPool (``backend="envpool"``) and on gymnasium's vectorized CartPole
(``backend="vector"``) is gymnasium's task step for step, for every id of the verified tables: each transition is
replayed on gymnasium's single env from the backend's own state, with the same actions."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import check_reproducible, needs
from torchrl.envs.utils import check_env_specs

import rlte_plugins
from rlte_plugins.agents.base import component_ref
from rlte_plugins.envs.backends import check
from rlte_plugins.envs.gymnasium import ENVPOOL_IDS, ENVPOOL_MISMATCHES, VECTOR_IDS
from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError, MissingDependencyError

envpool_works = needs("envpool")
NUM_ENVS = 4
#: The float32 rounding of the observation a reference starts from grows under the same actions: ~8% a step on
#: CartPole's unstable upright pole, up to ~30% a step on the chaotic, pumped-up Acrobot (one step from a shared
#: state agrees to 2e-6). Every this many steps of an episode the reference is set again to EnvPool's state.
RESYNC_EVERY = {"CartPole-v1": 50, "CartPole-v0": 50, "Acrobot-v1": 10}


def make(env_id: str, **kwargs):
    return rlte_plugins.make("env", "gymnasium", env_id=env_id, **kwargs)


def to_state(env_id: str, obs: np.ndarray) -> np.ndarray:
    """gymnasium's ``unwrapped.state`` behind one observation."""
    o = obs.astype(np.float64)
    if env_id == "Acrobot-v1":  # (cos t1, sin t1, cos t2, sin t2, dt1, dt2) -> (t1, t2, dt1, dt2)
        return np.array([np.arctan2(o[1], o[0]), np.arctan2(o[3], o[2]), o[4], o[5]])
    return o  # CartPole: (x, x_dot, theta, theta_dot); MountainCar: (position, velocity)


def actions(env_id: str, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Envs of the first half run a policy that reaches the task's own end (CartPole: balance to the time limit;
    the others: pump energy to the goal); the second half acts at random (CartPole falls, the others time out)."""
    n = len(obs)
    if env_id.startswith("CartPole"):
        goal = (3 * obs[:, 2] + obs[:, 3] + 0.1 * obs[:, 0] + 0.3 * obs[:, 1] > 0).astype(np.int64)
        random = rng.integers(0, 2, n)
    elif env_id == "Acrobot-v1":
        goal, random = np.where(obs[:, 4] > 0, 0, 2), rng.integers(0, 3, n)  # torque against the first joint
    elif env_id == "MountainCar-v0":
        goal, random = np.where(obs[:, 1] >= 0, 2, 0), rng.integers(0, 3, n)
    else:
        goal = np.where(obs[:, 1:] >= 0, 1.0, -1.0).astype(np.float32)
        random = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    return np.where((np.arange(n) < n // 2).reshape(-1, *[1] * (goal.ndim - 1)), goal, random)


def replay(
    env_id: str, steps: int, seed: int = 0, max_episode_steps: int | None = None, backend: str = "envpool"
) -> dict[str, np.ndarray]:
    """Step ``backend`` ``steps`` times and gymnasium beside it; return both sides' outputs, ``[T, B]``."""
    limit = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = make(env_id, num_envs=NUM_ENVS, seed=seed, backend=backend, **limit)
    refs = [gym.make(env_id, **limit) for _ in range(NUM_ENVS)]
    td = env.reset()
    for i, ref in enumerate(refs):
        ref.reset(seed=i)
        ref.unwrapped.state = to_state(env_id, td["observation"][i].numpy())
    rng = np.random.default_rng(seed)
    lengths = np.zeros(NUM_ENVS, dtype=np.int64)
    out = {f"{side}_{k}": [] for side in ("ours", "ref") for k in ("obs", "reward", "terminated", "truncated")}
    for _ in range(steps):
        action = actions(env_id, td["observation"].numpy(), rng)
        step, td = env.step_and_maybe_reset(td.set("action", torch.as_tensor(action)))
        nxt = step["next"]
        out["ours_obs"].append(nxt["observation"].numpy())
        for key in ("reward", "terminated", "truncated"):
            out[f"ours_{key}"].append(nxt[key].reshape(NUM_ENVS).numpy())
        ref_out = []
        for i, ref in enumerate(refs):
            obs, reward, terminated, truncated, _ = ref.step(int(action[i]) if action.ndim == 1 else action[i])
            ref_out.append((obs, reward, terminated, truncated and not terminated))  # rlte: terminated wins
            lengths[i] += 1
            if terminated or truncated:  # EnvPool has reset this env: start the reference from its new state
                ref.reset()
                ref.unwrapped.state = to_state(env_id, td["observation"][i].numpy())
                lengths[i] = 0
            elif env_id in RESYNC_EVERY and lengths[i] % RESYNC_EVERY[env_id] == 0:
                ref.unwrapped.state = to_state(env_id, nxt["observation"][i].numpy())
        for k, values in zip(("obs", "reward", "terminated", "truncated"), zip(*ref_out, strict=True), strict=True):
            out[f"ref_{k}"].append(np.asarray(values))
    env.close()
    return {k: np.stack(v) for k, v in out.items()}


def assert_same(run: dict[str, np.ndarray]) -> None:
    """Every step's observation (float32 against gymnasium's float64 state), reward and flags agree."""
    checks = {
        "obs": np.isclose(run["ours_obs"], run["ref_obs"], rtol=1e-5, atol=1e-5).all(-1),
        "reward": np.isclose(run["ours_reward"], run["ref_reward"], rtol=1e-6, atol=1e-5),
        "terminated": run["ours_terminated"] == run["ref_terminated"],
        "truncated": run["ours_truncated"] == run["ref_truncated"],
    }
    for key, ok in checks.items():
        if not ok.all():
            t, i = np.argwhere(~ok)[0]
            raise AssertionError(
                f"{key} differs at step {t} of env {i}: ours {run[f'ours_{key}'][t, i]}, "
                f"gymnasium {run[f'ref_{key}'][t, i]}"
            )


@envpool_works
@pytest.mark.parametrize("env_id", ENVPOOL_IDS)
def test_spaces_time_limit_and_specs_are_gymnasiums(env_id):
    import envpool

    pool = envpool.make(env_id, env_type="gymnasium", num_envs=1)
    ref = gym.make(env_id)
    # Box equality covers dtype, shape and bounds
    assert pool.observation_space == ref.observation_space and pool.action_space == ref.action_space
    assert pool.spec.config.max_episode_steps == gym.spec(env_id).max_episode_steps
    ours, theirs = make(env_id, num_envs=3, backend="envpool"), make(env_id, num_envs=3, backend="gymnasium")
    check_env_specs(ours)
    for spec in ("observation_spec", "action_spec", "reward_spec", "full_done_spec"):
        assert getattr(ours, spec) == getattr(theirs, spec), spec


@envpool_works
@pytest.mark.parametrize("env_id", ENVPOOL_IDS)
def test_initial_states_have_gymnasiums_distribution(env_id):
    # other seeds, so other draws: the same distribution shows in the same range and quantiles
    ours = make(env_id, num_envs=1000, seed=0, backend="envpool").reset()["observation"].numpy()
    ref = gym.make(env_id)
    theirs = np.stack([ref.reset(seed=0 if i == 0 else None)[0] for i in range(1000)])
    spread = theirs.max(0) - theirs.min(0)
    for q in (0.0, 0.1, 0.5, 0.9, 1.0):
        assert np.allclose(np.quantile(ours, q, 0), np.quantile(theirs, q, 0), rtol=0, atol=0.06 * spread + 1e-7), q


CASES = [pytest.param(i, "envpool", marks=envpool_works) for i in ENVPOOL_IDS] + [(i, "vector") for i in VECTOR_IDS]


@pytest.mark.parametrize("env_id, backend", CASES)
def test_every_step_is_gymnasiums(env_id, backend):
    limit = gym.spec(env_id).max_episode_steps
    run = replay(env_id, steps=limit + 20, backend=backend)
    assert_same(run)
    terminated, truncated = run["ours_terminated"], run["ours_truncated"]
    assert terminated.any() and truncated.any()  # both ends were compared
    # the first episode of an env that timed out ended at gymnasium's limit (and every env finished one)
    first_end = np.argmax(terminated | truncated, axis=0)
    assert ((terminated | truncated).any(0)).all()
    timed_out = truncated[first_end, np.arange(NUM_ENVS)]
    assert timed_out.any() and (first_end[timed_out] == limit - 1).all()


@pytest.mark.parametrize(
    "env_id, backend",
    [pytest.param(i, "envpool", marks=envpool_works) for i in ("CartPole-v1", "MountainCar-v0", "Acrobot-v1")]
    + [("CartPole-v1", "vector")],
)
def test_an_end_by_the_rule_on_the_limit_step_is_termination(env_id, backend):
    # EnvPool alone calls it "truncated, not terminated"; gymnasium terminated (and truncated, which rlte drops)
    run = replay(env_id, steps=300, backend=backend)
    ended = run["ours_terminated"] | run["ours_truncated"]
    first_end = np.argmax(ended, axis=0)
    i = int(np.flatnonzero(run["ours_terminated"][first_end, np.arange(NUM_ENVS)])[0])
    k = int(first_end[i]) + 1  # env i's first episode ends by the task's rule at step k: make k the limit
    run = replay(env_id, steps=k, max_episode_steps=k, backend=backend)  # same seed and actions: same episodes
    assert_same(run)
    assert run["ours_terminated"][k - 1, i] and not run["ours_truncated"][k - 1, i]


def test_vector_backend_specs_are_gymnasiums_and_it_refuses_what_it_cannot_run():
    ours, theirs = make("CartPole-v1", num_envs=3, backend="vector"), make("CartPole-v1", num_envs=3)
    check_env_specs(ours)
    for spec in ("observation_spec", "action_spec", "reward_spec", "full_done_spec"):
        assert getattr(ours, spec) == getattr(theirs, spec), spec
    assert make("CartPole-v1", backend="vector", max_episode_steps=50).max_episode_steps == 50
    with pytest.raises(EnvironmentNotFoundError, match="not 'Acrobot-v1'"):
        make("Acrobot-v1", backend="vector")
    with pytest.raises(ComponentArgumentError, match="backend='vector' cannot honour env_kwargs"):
        make("CartPole-v1", backend="vector", env_kwargs={"sutton_barto_reward": True})
    check_reproducible("gymnasium", "observation", env_id="CartPole-v1", backend="vector")
    env = make("CartPole-v1", num_envs=3, seed=0, backend="vector", max_episode_steps=2)
    td = env.reset()
    assert td["observation"].is_contiguous()
    td = env.step(td.set("action", torch.zeros(3, dtype=torch.int64)))["next"]
    td = env.step(td.set("action", torch.zeros(3, dtype=torch.int64)))["next"]
    assert td["truncated"].all() and td["observation"].is_contiguous()
    with pytest.raises(RuntimeError, match="without resetting them"):  # gymnasium would reset them, reward 0
        env.step(td.set("action", torch.zeros(3, dtype=torch.int64)))


def test_auto_picks_envpool_only_where_it_is_gymnasiums_task(monkeypatch):
    pendulum = make("Pendulum-v1", backend="auto")
    assert pendulum.backend == "gymnasium" and "backend='gymnasium'" in repr(pendulum)
    for options in ({"env_kwargs": {"sutton_barto_reward": True}}, {"vectorization_mode": "async", "num_envs": 1}):
        env = make("CartPole-v1", backend="auto", **options)
        assert env.backend == "gymnasium"
        env.close()
    assert make("CartPole-v1", backend="auto").backend == "vector"  # gymnasium's own vector CartPole comes first
    if check("envpool")[0]:
        env = make("Acrobot-v1", backend="auto", max_episode_steps=50)
        assert env.backend == "envpool" and env.max_episode_steps == 50
        assert repr(env) == "GymnasiumEnvPool(env_id='Acrobot-v1', backend='envpool', num_envs=1, device=cpu)"
    monkeypatch.setitem(sys.modules, "envpool", None)  # as if not installed
    assert make("Acrobot-v1", backend="auto").backend == "gymnasium"
    with pytest.raises(MissingDependencyError, match="pip install"):
        make("CartPole-v1", backend="envpool")


@envpool_works
def test_envpool_refuses_what_it_cannot_run():
    with pytest.raises(EnvironmentNotFoundError, match="not 'Pendulum-v1': EnvPool advances the angle"):
        make("Pendulum-v1", backend="envpool")
    assert set(ENVPOOL_MISMATCHES).isdisjoint(ENVPOOL_IDS)
    with pytest.raises(EnvironmentNotFoundError, match="verified identical.*use backend='gymnasium'"):
        make("LunarLander-v3", backend="envpool")
    with pytest.raises(ComponentArgumentError, match="cannot honour env_kwargs"):
        make("CartPole-v1", backend="envpool", env_kwargs={"sutton_barto_reward": True})
    with pytest.raises(ComponentArgumentError, match="cannot honour vectorization_mode='async'"):
        make("CartPole-v1", backend="envpool", vectorization_mode="async")
    with pytest.raises(ComponentArgumentError, match="backend must be one of"):
        make("CartPole-v1", backend="cpp")


@pytest.mark.parametrize("backend", ["auto", "gymnasium", "vector"])
def test_a_rebuilt_env_runs_on_the_same_backend(backend):
    # what an agent records of its env, and how make_env_like rebuilds it (other num_envs and seed)
    env = make("CartPole-v1", num_envs=2, seed=0, backend=backend)
    ref = component_ref(env)
    assert ref["kwargs"]["backend"] == env.backend
    again = rlte_plugins.make("env", ref["name"], **{**ref["kwargs"], "num_envs": 3, "seed": 1})
    assert type(again) is type(env) and again.backend == env.backend


@envpool_works
def test_each_backend_reproduces_its_own_seeded_runs():
    check_reproducible("gymnasium", "observation", env_id="CartPole-v1", backend="envpool")
    env = make("CartPole-v1", num_envs=2, seed=3, backend="envpool")
    first = env.reset()["observation"]
    env.set_seed(3)  # a new pool from the same seed
    assert torch.equal(env.reset()["observation"], first)
