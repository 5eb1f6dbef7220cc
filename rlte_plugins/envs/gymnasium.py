"""Any gymnasium id (or gymnasium vector env) as a batched TorchRL environment with exact per-env resets; the
classic-control ids that EnvPool implements identically can run on EnvPool instead (``backend=``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rlte_plugins.envs.backends import require
from rlte_plugins.envs.core import (  # noqa: F401  (re-exported: the keys' historical home)
    EPISODE_END_KEY,
    EPISODE_LENGTH_KEY,
    EPISODE_RETURN_KEY,
    BatchedEnv,
    check_choice,
    check_num_envs,
)
from rlte_plugins.envs.envpool import EnvPoolEnv
from rlte_plugins.errors import (
    ComponentArgumentError,
    EnvironmentNotFoundError,
    MissingDependencyError,
    SpecMismatchError,
    positive_int,
)

#: The gymnasium ids that EnvPool 1.2.5 implements as the same task, step for step: same observation and action
#: spaces (dtype, shape, bounds), the same equations in the same order, the same reward on every step including
#: the terminal one, the same termination test, the same default time limit and the same initial-state
#: distribution (:class:`GymnasiumEnvPool` corrects EnvPool's flags on a step that ends by the rule at the limit).
#: Only the arithmetic differs: EnvPool keeps float64 states where gymnasium's MountainCarContinuous rounds its
#: own to float32 each step (observations still agree to 1e-6 over an episode).
#: ``tests/envs/test_gymnasium_envpool_backend.py`` replays each on gymnasium from EnvPool's states.
#: The other classic-control tasks EnvPool ships are left out: ``phys2d/*`` (gymnasium's jax versions, not
#: checked), ``Pendulum-v0`` (no gymnasium id), ``AcrobotSwingup*``/``PendulumSwingup`` (DeepMind Control
#: tasks), the MuJoCo pendulums (not classic control), and the ids in :data:`ENVPOOL_MISMATCHES`.
ENVPOOL_IDS = ("CartPole-v1", "CartPole-v0", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0")

#: gymnasium ids EnvPool 1.2.5 also ships, as a different task, and how it differs.
ENVPOOL_MISMATCHES: dict[str, str] = {
    "Pendulum-v1": (
        "EnvPool advances the angle with the angular velocity before clipping it to +-8, gymnasium after, so "
        "trajectories and rewards part once the pendulum spins that fast (random torques get there)"
    ),
}


class VectorEnvAdapter(BatchedEnv):
    """A gymnasium ``VectorEnv`` built with ``autoreset_mode=DISABLED``, as a batched TorchRL env.

    The families that run on gymnasium (Atari's fallback, MiniGrid, PyBullet, DeepMind Control) build their
    sub-environments and hand the vector env here; :class:`GymnasiumEnv` does the same for a plain id.
    """

    fresh_arrays = True  # gymnasium vector envs copy their observations by default (``copy=True``)

    def __init__(self, vec: Any, *, family: str, seed: int | None, device: str | torch.device, **kwargs: Any):
        self._vec = vec
        super().__init__(
            family=family,
            num_envs=vec.num_envs,
            device=device,
            observation_space=vec.single_observation_space,
            action_space=vec.single_action_space,
            **kwargs,
        )
        self._pending_seed: int | None = seed
        self.seed = seed

    @staticmethod
    def vector(fns: Sequence[Callable[[], Any]], mode: str = "sync") -> Any:
        """A gymnasium vector env over ``fns`` with auto-reset off (TorchRL resets finished envs)."""
        from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

        cls = SyncVectorEnv if mode == "sync" else AsyncVectorEnv
        return cls(list(fns), autoreset_mode=AutoresetMode.DISABLED)

    def _backend_reset(self, mask: np.ndarray | None) -> Any:
        if mask is None:
            obs, _ = self._vec.reset(seed=self._pending_seed)
            self._pending_seed = None
        else:
            obs, _ = self._vec.reset(options={"reset_mask": mask})
        return obs

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        return self._vec.step(action)

    def _set_seed(self, seed: int | None) -> None:
        self._pending_seed = seed
        self.seed = seed
        if seed is not None:
            self._vec.action_space.seed(seed)

    def render_frames(self, size: int | None = None) -> torch.Tensor:
        """The current frame of every env, ``uint8`` RGB ``[num_envs, H, W, 3]``, drawn by the sub-environments'
        ``rgb_array`` render mode (switched on at the first call where they were made without a render mode), or
        else taken from the image observation (:meth:`BatchedEnv.render_frames`); ``size`` is not used: the
        frames come at the size the backend draws.

        Sub-environments of a ``vectorization_mode="async"`` env live in other processes and are not asked.
        """
        from gymnasium.vector import SyncVectorEnv

        vec = self._vec.unwrapped
        if isinstance(vec, SyncVectorEnv):
            frames = [_render_rgb(env.unwrapped, self.family) for env in vec.envs]
            frames = None if any(f is None for f in frames) else frames
        elif hasattr(vec, "envs"):  # another vector env of sub-environments (async): they are out of reach
            frames = None
        else:  # a vector env that is one object (gymnasium's CartPoleVectorEnv): one frame per env
            frames = _render_rgb(vec, self.family)
        if frames is None:
            return super().render_frames(size)
        return torch.from_numpy(np.stack([np.asarray(f, dtype=np.uint8) for f in frames])).to(self.device)

    def close(self, *, raise_if_closed: bool = True) -> None:
        if not self.is_closed:
            self._vec.close()
        super().close(raise_if_closed=raise_if_closed)


def _render_rgb(env: Any, family: str) -> Any:
    """``env.render()`` in gymnasium's ``rgb_array`` mode, which is switched on if ``env`` has no render mode yet;
    ``None`` where ``env`` does not offer that mode."""
    import gymnasium as gym

    if "rgb_array" not in (getattr(env, "metadata", None) or {}).get("render_modes", ()):
        return None
    mode = getattr(env, "render_mode", None)
    if mode is None:
        env.render_mode = "rgb_array"  # gymnasium's envs read it when they render, not when they are made
        # pygame draws these frames off-screen: without this its display probe prints an error on headless hosts
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    elif mode != "rgb_array":
        raise ComponentArgumentError(
            f"env {family!r} cannot render frames: its sub-environments were made with render_mode={mode!r}; "
            "make them without one (or with 'rgb_array')"
        )
    try:
        return env.render()
    except gym.error.DependencyNotInstalled as exc:
        raise MissingDependencyError(f"env {family!r} cannot render frames: {exc}") from exc


class _GymnasiumId:
    """What the ``"gymnasium"`` env shows on either backend: the id, the backend that runs it, its repr."""

    env_id: str
    backend: str
    num_envs: int
    device: torch.device

    @property
    def rlte_resolved_kwargs(self) -> dict[str, Any]:
        """Recorded by :func:`rlte_plugins.make` over the caller's ``backend`` (``"auto"`` included), so that an
        agent rebuilding its env from the record (evaluation, a checkpoint) runs it on the same backend."""
        return {"backend": self.backend}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(env_id={self.env_id!r}, backend={self.backend!r}, num_envs={self.num_envs}, "
            f"device={self.device})"
        )


class GymnasiumEnv(_GymnasiumId, VectorEnvAdapter):
    """Any gymnasium id as a batched TorchRL env (exact resets, distinct terminated/truncated).

    The sub-environments run in a gymnasium vector env with auto-reset disabled; TorchRL's collector resets
    the finished ones through ``"_reset"``, so every stored transition is real: the observation after a
    truncation is the true last observation (the value bootstrap needs it), not the first of the next
    episode.

    Observations: vectors as float32 ``"observation"``; ``uint8`` images as channels-first ``"pixels"``;
    ``Discrete`` observations one-hot encoded; ``Dict`` spaces key by key. Actions: ``Discrete`` (integer,
    ``start`` handled), ``Box`` (clipped into bounds when ``clip_actions``, so an unbounded Gaussian policy is
    safe while the log-probability keeps the sampled action), ``MultiDiscrete`` and ``MultiBinary``.
    ``"episode_reward"`` and ``"episode_length"`` hold the running return and length of each episode (at a
    done step: the finished episode's).

    Args:
        env_id: a registered gymnasium id, e.g. ``"CartPole-v1"``.
        num_envs: number of parallel sub-environments (the batch size).
        seed: seeds sub-environment ``i`` with ``seed + i`` at the first reset; ``None`` draws one.
        device: where the tensors live.
        vectorization_mode: ``"sync"`` (one process, best for cheap envs) or ``"async"`` (one process each).
        max_episode_steps: overrides the id's time limit (steps beyond it are truncated).
        clip_actions: clip continuous actions into the action space before stepping.
        env_kwargs: keyword arguments for ``gymnasium.make``.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "gymnasium", env_id="CartPole-v1", num_envs=4, seed=0)
        >>> rollout = env.rollout(3)
        >>> rollout["next", "observation"].shape, rollout["next", "terminated"].dtype
        (torch.Size([4, 3, 4]), torch.bool)
    """

    backend = "gymnasium"

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        vectorization_mode: str = "sync",
        max_episode_steps: int | None = None,
        clip_actions: bool = True,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        check_num_envs("gymnasium", num_envs)
        check_choice("gymnasium", "vectorization_mode", vectorization_mode, ("sync", "async"))
        try:
            gym.spec(env_id)
        except gym.error.Error as exc:
            raise EnvironmentNotFoundError(f"unknown gymnasium id {env_id!r}: {exc}") from exc
        kwargs = dict(env_kwargs or {})
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        vec = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode=vectorization_mode,
            vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
            **kwargs,
        )
        self.env_id = env_id
        super().__init__(vec, family="gymnasium", seed=seed, device=device, clip_actions=clip_actions)


#: gymnasium ids whose own vectorized implementation (``vectorization_mode="vector_entry_point"``) runs here with
#: exact partial resets (``backend="vector"``): gymnasium's ``CartPoleVectorEnv``, the same equations on numpy
#: arrays of every env at once
VECTOR_IDS = ("CartPole-v1", "CartPole-v0")


class GymnasiumVectorCartPole(_GymnasiumId, VectorEnvAdapter):
    """CartPole on gymnasium's own vectorized implementation (``CartPoleVectorEnv``): the task's equations on numpy
    arrays of all envs at once, instead of one Python env object per env (64 envs: one step for the batch where
    ``SyncVectorEnv`` steps 64 objects).

    gymnasium's vector CartPole resets a finished env at its *next* step (the action is ignored, the reward is 0):
    a transition that is not one. Here finished envs are reset at once, as gymnasium's own reset draws them (the
    same uniform ``[-0.05, 0.05]`` state from the vector env's generator), so every transition is real and the
    observation after a truncation is the true last one.

    Seeds: ``seed`` seeds the vector env's one generator (gymnasium's per-env ``seed + i`` applies to its
    ``SyncVectorEnv``); the initial states come from the same distribution.
    """

    backend = "vector"

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
    ) -> None:
        import gymnasium as gym
        from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

        if env_id not in VECTOR_IDS:
            raise EnvironmentNotFoundError(
                f"env 'gymnasium': backend='vector' runs {', '.join(VECTOR_IDS)} (gymnasium's vectorized "
                f"implementations with exact resets here), not {env_id!r}; use backend='gymnasium'"
            )
        limit = {} if max_episode_steps is None else {"max_episode_steps": positive_int(
            "env 'gymnasium'", "max_episode_steps", max_episode_steps)}  # fmt: skip
        vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **limit)
        if not isinstance(vec.unwrapped, CartPoleVectorEnv):
            raise EnvironmentNotFoundError(f"env 'gymnasium': {env_id!r} has no CartPoleVectorEnv in this gymnasium")
        self.env_id = env_id
        self.max_episode_steps = vec.unwrapped.max_episode_steps
        super().__init__(vec, family="gymnasium", seed=seed, device=device)

    def _backend_reset(self, mask: np.ndarray | None) -> Any:
        if mask is None:
            return np.ascontiguousarray(super()._backend_reset(None))
        env = self._vec.unwrapped
        # gymnasium's own reset draw for these envs, now rather than at their next step
        env.state[:, mask] = env.np_random.uniform(low=env.low, high=env.high, size=(4, int(mask.sum())))
        env.steps[mask] = 0
        env.prev_done[mask] = False
        return np.ascontiguousarray(env.state.T, dtype=np.float32)

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        if self._vec.unwrapped.prev_done.any():
            # gymnasium would reset them now, ignoring the action: a transition that is not one
            raise RuntimeError(
                "env 'gymnasium' (backend 'vector'): stepping envs whose episode ended without resetting them "
                f"(envs {np.flatnonzero(self._vec.unwrapped.prev_done).tolist()}); reset them (step_and_maybe_reset)"
            )
        obs, reward, terminated, truncated, info = self._vec.step(action)
        return np.ascontiguousarray(obs), reward, terminated, truncated, info


class GymnasiumEnvPool(_GymnasiumId, EnvPoolEnv):
    """A gymnasium id of :data:`ENVPOOL_IDS` run on EnvPool's C++ twin, with :class:`GymnasiumEnv`'s keys, specs
    and ``terminated``/``truncated`` semantics.

    EnvPool's own time limit calls a step that ends the episode by the task's rule *and* reaches the limit
    "truncated, not terminated"; gymnasium (and rlte) call it terminated, which decides whether the value is
    bootstrapped. So the pool is built with one step more than the limit, which its rule alone then ends, and the
    limit is applied here from EnvPool's ``elapsed_step``.

    Args:
        env_id: one of :data:`ENVPOOL_IDS`.
        num_envs, seed, device, clip_actions: as :class:`GymnasiumEnv`; EnvPool seeds env ``i``'s generator with
            ``seed + i`` when the pool is built.
        max_episode_steps: overrides the id's time limit (``None``: gymnasium's, which EnvPool shares).
        num_threads: EnvPool worker threads (0: one per core).
    """

    backend = "envpool"

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        clip_actions: bool = True,
        num_threads: int = 0,
    ) -> None:
        import gymnasium as gym

        if env_id not in ENVPOOL_IDS:
            why = f": {ENVPOOL_MISMATCHES[env_id]}" if env_id in ENVPOOL_MISMATCHES else ""
            raise EnvironmentNotFoundError(
                f"env 'gymnasium': backend='envpool' runs only the ids verified identical to gymnasium's "
                f"({', '.join(ENVPOOL_IDS)}), not {env_id!r}{why}; use backend='gymnasium'"
            )
        if max_episode_steps is None:
            max_episode_steps = int(gym.spec(env_id).max_episode_steps)
        self.max_episode_steps = positive_int("env 'gymnasium'", "max_episode_steps", max_episode_steps)
        self.env_id = env_id
        super().__init__(
            env_id, num_envs, seed, device, family="gymnasium", num_threads=num_threads,
            envpool_kwargs={"max_episode_steps": max_episode_steps + 1}, clip_actions=clip_actions,
        )  # fmt: skip

    def render_frames(self, size: int | None = None) -> torch.Tensor:
        """EnvPool's classic-control tasks draw no frames: raises, naming the backends that do."""
        raise SpecMismatchError(
            f"env 'gymnasium' cannot render frames of {self.env_id!r} on backend 'envpool' (EnvPool's classic-control "
            "tasks do not draw); make the env with backend='gymnasium'"
            + (" or 'vector'" if self.env_id in VECTOR_IDS else "")
        )

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        # within the limit EnvPool's own never fires, so its ``terminated`` is the task's rule alone
        obs, reward, terminated, _, info = super()._backend_step(action)
        return obs, reward, terminated, np.asarray(info["elapsed_step"]) >= self.max_episode_steps, info


def make_gymnasium(
    env_id: str,
    num_envs: int = 1,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    vectorization_mode: str = "sync",
    max_episode_steps: int | None = None,
    clip_actions: bool = True,
    env_kwargs: Mapping[str, Any] | None = None,
    backend: str = "gymnasium",
) -> GymnasiumEnv | GymnasiumEnvPool | GymnasiumVectorCartPole:
    """Any gymnasium id as a batched TorchRL env (exact resets, distinct terminated/truncated), or on EnvPool.

    The keys, specs, dtypes and ``terminated``/``truncated`` semantics are :class:`GymnasiumEnv`'s on both
    backends.

    Args:
        env_id: a registered gymnasium id, e.g. ``"CartPole-v1"``.
        num_envs: number of parallel sub-environments (the batch size).
        seed: seeds sub-environment ``i`` with ``seed + i`` (see below); ``None`` draws one.
        device: where the tensors live.
        vectorization_mode: gymnasium's ``"sync"`` (one process) or ``"async"`` (one process per env).
        max_episode_steps: overrides the id's time limit (steps beyond it are truncated); EnvPool honours it.
        clip_actions: clip continuous actions into the action space before stepping.
        env_kwargs: keyword arguments for ``gymnasium.make`` (gymnasium only).
        backend: ``"gymnasium"`` (:class:`GymnasiumEnv`, any id), ``"envpool"`` (:class:`GymnasiumEnvPool`: the
            ids of :data:`ENVPOOL_IDS`, faster with many envs: ~1.5x gymnasium's steps/s at 64 CartPoles on 2 cores,
            slower at 4; an error for any other id, without EnvPool installed, or with an option it cannot honour:
            ``env_kwargs``, ``vectorization_mode="async"``), ``"vector"`` (:class:`GymnasiumVectorCartPole`:
            gymnasium's own vectorized CartPole, :data:`VECTOR_IDS`, the fastest at 8 and 64 envs; the same refusals) or
            ``"auto"`` (``"vector"``, else EnvPool, where they can run the id with these options, else gymnasium).
            ``env.backend`` says which one runs, and it is what
            :func:`rlte_plugins.make` records, so a rebuilt env (an agent's evaluation env, a checkpoint) runs on
            the same one.

    Seeds: ``seed + i`` seeds sub-environment ``i`` on the gymnasium and EnvPool backends, but gymnasium draws its
    initial states from numpy's generator and EnvPool from C++'s ``std::mt19937``; the vector backend seeds its one
    generator with ``seed``. The same seed gives other initial states (from the same distribution) on each
    backend; each backend reproduces its own runs.

    The default stays ``"gymnasium"``: the ids of the table are the same task on EnvPool, checked step by step,
    but a seeded run would change (other initial states, float64 instead of float32 arithmetic where gymnasium
    rounds its state, e.g. MountainCarContinuous), and code reaching into gymnasium's sub-environments
    (``env._vec``) would break. Ask for ``"auto"`` or ``"envpool"`` for the speed.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "gymnasium", env_id="CartPole-v1", num_envs=4, seed=0)
        >>> env
        GymnasiumEnv(env_id='CartPole-v1', backend='gymnasium', num_envs=4, device=cpu)
        >>> env.rollout(3)["next", "observation"].shape
        torch.Size([4, 3, 4])
    """
    check_num_envs("gymnasium", num_envs)
    check_choice("gymnasium", "backend", backend, ("gymnasium", "envpool", "vector", "auto"))
    check_choice("gymnasium", "vectorization_mode", vectorization_mode, ("sync", "async"))
    unhonoured = "env_kwargs" if env_kwargs else "vectorization_mode='async'" if vectorization_mode == "async" else ""
    if backend == "auto":
        if env_id in VECTOR_IDS and not unhonoured:
            backend = "vector"
        elif env_id in ENVPOOL_IDS and not unhonoured and _envpool_importable():
            backend = "envpool"
        else:
            backend = "gymnasium"
    if backend == "gymnasium":
        return GymnasiumEnv(env_id, num_envs, seed, device, vectorization_mode, max_episode_steps, clip_actions,
                            env_kwargs)  # fmt: skip
    if backend == "envpool":
        require("envpool", "gymnasium")
    if unhonoured:
        raise ComponentArgumentError(
            f"env 'gymnasium': backend={backend!r} cannot honour {unhonoured} (a gymnasium option); "
            "use backend='gymnasium'"
        )
    if backend == "vector":
        return GymnasiumVectorCartPole(env_id, num_envs, seed, device, max_episode_steps)
    return GymnasiumEnvPool(env_id, num_envs, seed, device, max_episode_steps, clip_actions)


def _envpool_importable() -> bool:
    try:
        require("envpool", "gymnasium")
    except ImportError:
        return False
    return True
