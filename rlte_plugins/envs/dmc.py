"""DeepMind Control Suite tasks: state vectors and/or 84x84 pixels rendered headless through EGL."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlte_plugins.envs.backends import BACKENDS, require
from rlte_plugins.envs.core import BatchedEnv, check_choice, check_num_envs, unit_to_bounds
from rlte_plugins.envs.envpool import EnvPoolEnv
from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError, MissingDependencyError, positive_int

FAMILY = "dmc"


def split_task(task: str) -> tuple[str, str]:
    """``"walker_walk"`` -> ``("walker", "walk")``; ``"ball_in_cup_catch"`` -> ``("ball_in_cup", "catch")``."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control imports mujoco: headless rendering
    from dm_control import suite

    for domain, name in suite.ALL_TASKS:
        if f"{domain}_{name}" == task:
            return domain, name
    import difflib

    known = [f"{d}_{t}" for d, t in suite.ALL_TASKS]
    close = difflib.get_close_matches(task, known, n=3)
    named = " (tasks are DOMAIN_TASK, e.g. 'walker_walk': dm_control.suite.ALL_TASKS)"
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else named
    raise EnvironmentNotFoundError(f"env 'dmc': unknown task {task!r}{hint}")


def make_dmc(
    task: str,
    num_envs: int = 1,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    from_pixels: bool = False,
    pixels_only: bool = True,
    image_size: int = 84,
    camera_id: int | None = None,
    action_repeat: int = 1,
    frame_stack: int = 1,
    backend: str = "auto",
    num_threads: int = 0,
) -> BatchedEnv:
    """A DeepMind Control task: ``"observation"`` (state) and/or ``"pixels"`` (``uint8`` CHW), actions in [-1, 1].

    Actions are clipped to [-1, 1] and rescaled to the task's bounds, never asserted. The suite's time limit
    (1000 physics-control steps) ends an episode as ``truncated``; ``terminated`` is only set where the task
    itself ends (a zero discount).

    Args:
        task: ``"<domain>_<task>"``, e.g. ``"cartpole_balance"``, ``"walker_walk"``, ``"ball_in_cup_catch"``.
        num_envs, seed, device: as every rlte env.
        from_pixels: render ``"pixels"`` (``[3 * frame_stack, image_size, image_size]``) with MuJoCo's EGL
            backend (``MUJOCO_GL=egl``, no display needed).
        pixels_only: with ``from_pixels``, drop the state vector.
        image_size: rendered height and width.
        camera_id: the camera to render (default: 2 for quadruped, 0 otherwise, as DrQ-v2 does).
        action_repeat: each agent step repeats the action this many times and sums the rewards.
        frame_stack: stack the last this many rendered frames on the channel axis.
        backend: ``"dm_control"``, ``"envpool"`` (C++, state only) or ``"auto"`` (EnvPool for state when
            installed, dm_control for pixels).
        num_threads: EnvPool worker threads (0: one per core).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "dmc", task="cartpole_balance", num_envs=2, seed=0)
        >>> env.rollout(2)["next", "observation"].shape
        torch.Size([2, 2, 5])
    """
    check_num_envs(FAMILY, num_envs)
    check_choice(FAMILY, "backend", backend, ("auto", "dm_control", "envpool"))
    for arg, value in (("action_repeat", action_repeat), ("frame_stack", frame_stack), ("image_size", image_size)):
        positive_int("env 'dmc'", arg, value)
    os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control imports mujoco: headless rendering
    require("dm_control", FAMILY)
    domain, name = split_task(task)
    if from_pixels and backend == "envpool":
        raise ComponentArgumentError("env 'dmc': EnvPool's DMC has state observations only; use backend='dm_control'")
    pool_id = "".join(part.capitalize() for part in f"{domain}_{name}".split("_")) + "-v1"
    auto_chose = backend == "auto"
    if backend == "auto" and not from_pixels:
        try:
            backend = "envpool" if pool_id in require("envpool", FAMILY).list_all_envs() else "dm_control"
        except ImportError:
            backend = "dm_control"
    if backend == "envpool":
        env = _envpool_dmc(pool_id, num_envs, seed, device, action_repeat, num_threads, explicit=auto_chose is False)
        if env is not None:
            return env
    if camera_id is None:
        camera_id = 2 if domain == "quadruped" else 0
    base = 0 if seed is None else int(seed)
    fns = [
        (lambda i=i: DMControlEnv(domain, name, base + i, from_pixels, pixels_only, image_size, camera_id,
                                  action_repeat, frame_stack))
        for i in range(num_envs)
    ]  # fmt: skip
    from rlte_plugins.envs.gymnasium import VectorEnvAdapter

    env = VectorEnvAdapter(VectorEnvAdapter.vector(fns), family=FAMILY, seed=seed, device=device, pixel_layout="chw")
    env.frame_channels = 3  # the pixels stack RGB frames (what export's metadata and rlte play read)
    return env


def _envpool_dmc(
    pool_id: str, num_envs: int, seed: int | None, device: Any, action_repeat: int, threads: int, explicit: bool
) -> BatchedEnv | None:
    pool = require("envpool", FAMILY)
    if pool_id not in pool.list_all_envs():
        raise EnvironmentNotFoundError(f"env 'dmc': EnvPool has no {pool_id!r}; use backend='dm_control'")
    try:
        return UnitActionEnvPool(
            pool_id, num_envs, seed, device, family=FAMILY, num_threads=threads, vector_keys="all",
            envpool_kwargs=dict(frame_skip=action_repeat, max_episode_steps=1000 // action_repeat),
        )  # fmt: skip
    except TypeError as exc:
        # EnvPool 1.2.5 cannot build the observation space of tasks with infinite bounds under some numpy
        # versions (walker, humanoid, ...); dm_control runs them
        if explicit:
            raise EnvironmentNotFoundError(
                f"env 'dmc': EnvPool could not build {pool_id!r} ({exc}); use backend='dm_control'"
            ) from exc
        return None


class UnitActionEnvPool(EnvPoolEnv):
    """EnvPool's DMC with actions in [-1, 1] rescaled to the task's bounds, as the dm_control backend takes them.

    EnvPool exposes each task's own bounds (quadruped's are not all [-1, 1]), so without this the same policy
    would act differently on the two backends.
    """

    def _build_action_spec(self, space: Any) -> None:
        self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
        super()._build_action_spec(gym.spaces.Box(-1.0, 1.0, space.shape, np.float32))

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        return super()._backend_step(unit_to_bounds(action, self._low, self._high))


class DMControlEnv(gym.Env):
    """One dm_control task as a gymnasium env (the batched env runs ``num_envs`` of them); :meth:`render` draws its
    camera at :attr:`render_size` for videos."""

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"
    #: height and width of :meth:`render`'s frames (within MuJoCo's default 640x480 offscreen buffer)
    render_size = 240

    def __init__(
        self,
        domain: str,
        task: str,
        seed: int,
        from_pixels: bool,
        pixels_only: bool,
        image_size: int,
        camera_id: int,
        action_repeat: int,
        frame_stack: int,
    ) -> None:
        from dm_control import suite

        self._suite = suite
        self._domain, self._task = domain, task
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        self._from_pixels, self._size, self._camera = from_pixels, image_size, camera_id
        self._repeat, self._stack = action_repeat, frame_stack
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        # sorted, as EnvPool's DMC and gymnasium's Dict order them: both backends give the same vector layout
        self._keys = sorted(self._env.observation_spec())
        size = sum(int(np.prod(self._env.observation_spec()[k].shape)) for k in self._keys)
        spaces: dict[str, gym.Space] = {}
        if not (from_pixels and pixels_only):
            spaces["observation"] = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        if from_pixels:
            self._frames = np.zeros((3 * frame_stack, image_size, image_size), np.uint8)
            spaces["pixels"] = gym.spaces.Box(0, 255, self._frames.shape, np.uint8)
        self.observation_space = gym.spaces.Dict(spaces) if len(spaces) > 1 else next(iter(spaces.values()))

    def render(self) -> np.ndarray:
        """The camera's view of the current state, ``uint8`` HWC at :attr:`render_size`."""
        return self._render(self.render_size).transpose(1, 2, 0)

    def _render(self, size: int | None = None) -> np.ndarray:
        size = size or self._size
        try:
            frame = self._env.physics.render(height=size, width=size, camera_id=self._camera)
        except Exception as exc:  # a missing EGL/GL library surfaces here, from deep inside MuJoCo
            raise MissingDependencyError(
                f"env 'dmc': rendering pixels with MUJOCO_GL={os.environ.get('MUJOCO_GL')} failed ({exc}); "
                f"install the EGL/Mesa runtime: {BACKENDS['dmc-egl'].fix()}"
            ) from exc
        return frame.transpose(2, 0, 1)

    def _obs(self, time_step: Any, new_episode: bool) -> Any:
        out = {}
        if "observation" in self.observation_space.spaces if isinstance(self.observation_space, gym.spaces.Dict) \
                else not self._from_pixels:  # fmt: skip
            out["observation"] = np.concatenate(
                [np.asarray(time_step.observation[k], np.float32).reshape(-1) for k in self._keys]
            )
        if self._from_pixels:
            frame = self._render()
            if new_episode:
                self._frames[:] = np.tile(frame, (self._stack, 1, 1))
            else:
                self._frames[:-3] = self._frames[3:]
                self._frames[-3:] = frame
            out["pixels"] = self._frames.copy()
        return out if len(out) > 1 else next(iter(out.values()))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._env.task.random.seed(seed)
        return self._obs(self._env.reset(), True), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        action = unit_to_bounds(action, self._low, self._high)
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self._repeat):
            time_step = self._env.step(action)
            reward += time_step.reward or 0.0
            if time_step.last():
                # dm_control ends by time limit with discount 1 (truncation) and by task failure with discount 0
                terminated = time_step.discount == 0.0
                truncated = not terminated
                break
        return self._obs(time_step, False), reward, terminated, truncated, {}

    def close(self) -> None:
        self._env.close()
