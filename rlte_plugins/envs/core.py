"""What every host-side (numpy-stepped) rlte environment shares: specs from gymnasium spaces, exact resets,
episode statistics, reward clipping and the output TensorDict.

Subclasses supply two methods over the whole batch, :meth:`BatchedEnv._backend_reset` and
:meth:`BatchedEnv._backend_step`; everything the consumers see (keys, dtypes, shapes, ``[B, 1]`` flags,
``episode_reward``/``episode_length``/``episode_end``) is built here once for every family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, TensorSpec, Unbounded
from torchrl.envs import EnvBase

from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError, positive_int

#: Keys every rlte environment writes besides its observations.
EPISODE_RETURN_KEY = "episode_reward"
EPISODE_LENGTH_KEY = "episode_length"
#: True where the *real* episode ended: a game over under episodic life, otherwise the same as ``done``.
EPISODE_END_KEY = "episode_end"

Converter = Callable[[np.ndarray], torch.Tensor]
_CPU = torch.device("cpu")


def check_num_envs(family: str, num_envs: Any) -> int:
    return positive_int(f"env {family!r}", "num_envs", num_envs)


def check_choice(family: str, arg: str, value: Any, choices: tuple[Any, ...]) -> Any:
    if value not in choices:
        raise ComponentArgumentError(
            f"env {family!r}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
    return value


def episode_specs(num_envs: int, device: torch.device) -> dict[str, TensorSpec]:
    """The episode-statistics observation specs every rlte env declares."""
    return {
        EPISODE_RETURN_KEY: Unbounded(shape=(num_envs, 1), dtype=torch.float32, device=device),
        EPISODE_LENGTH_KEY: Unbounded(shape=(num_envs, 1), dtype=torch.int64, device=device),
        EPISODE_END_KEY: Categorical(2, shape=(num_envs, 1), dtype=torch.bool, device=device),
    }


def set_reward_and_done_specs(env: EnvBase, num_envs: int) -> None:
    """``[num_envs, 1]`` float reward and boolean ``done``/``terminated``/``truncated`` on ``env``."""
    env.reward_spec = Unbounded(shape=(num_envs, 1), dtype=torch.float32, device=env.device)
    flag = Categorical(2, shape=(num_envs, 1), dtype=torch.bool, device=env.device)
    env.done_spec = Composite(
        done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=(num_envs,), device=env.device
    )


def unit_to_bounds(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """An action in [-1, 1] (clipped into it, never asserted) mapped linearly onto ``[low, high]``."""
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    return low + (action + 1.0) * 0.5 * (high - low)


def exact_tensordict(out: dict[str, torch.Tensor], batch_size: torch.Size, device: torch.device) -> TensorDictBase:
    """A TensorDict of values already made with the batch shape on ``device``, built without validation.

    Only for an env's own outputs, whose shapes the specs fix and ``check_env_specs`` tests: the validating
    constructor and a same-device ``.to`` were most of the per-step cost of a cheap env.
    """
    return TensorDict._new_unsafe(out, batch_size=batch_size, device=device)


class ExactOutputs:
    """Mixin for an ``EnvBase`` whose ``_step`` writes the reward and every done key with their spec shapes.

    TorchRL's post-step pass (reshape rewards, fill in missing done keys) then has nothing to do and is
    skipped, except when type checks are asked for (``env.run_type_checks = True``).
    """

    run_type_checks: bool

    def _step_proc_data(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        if self.run_type_checks:
            return super()._step_proc_data(next_tensordict)  # type: ignore[misc]
        return next_tensordict

    @property
    def tensor_steps(self) -> bool:
        """Whether ``step_tensors`` gives this env's transitions (direct collection's plain-tensor path): false
        where a subclass changed ``_step`` or ``_reset`` below the class that defines ``step_tensors`` (direct
        collection then steps it through TensorDicts)."""
        cls = type(self)
        owner = next((c for c in cls.__mro__ if "step_tensors" in vars(c)), None)
        return owner is not None and cls._step is owner._step and cls._reset is owner._reset  # type: ignore[attr-defined]


def _pixels_converter(layout: str, owned: bool) -> Converter:
    if layout == "hwc":  # the transpose copies
        return lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    if owned:
        return lambda x: torch.from_numpy(np.ascontiguousarray(x))
    return lambda x: torch.from_numpy(np.array(x, order="C"))


class BatchedEnv(ExactOutputs, EnvBase):
    """Base of the numpy-backed batched envs (gymnasium vector envs, EnvPool, dm_control, ...).

    Args:
        family: registry name, used in every error message.
        num_envs: batch size.
        device: where the output tensors live.
        observation_space / action_space: the *single* sub-environment's gymnasium spaces.
        pixel_layout: ``"hwc"`` or ``"chw"``: how 3-D ``uint8`` observations arrive (outputs are always CHW).
        clip_actions: clip ``Box`` actions into bounds before stepping (the log-probability keeps the sample).
        clip_rewards: write ``sign(reward)`` into ``"reward"`` (training only); the episode statistics keep
            the raw rewards, so logged returns are the game's score.
        vector_keys: ``Dict`` sub-spaces of floats to concatenate, in this order, into one ``"observation"``
            vector (DeepMind Control's position/velocity/...), instead of one key each; ``"all"``: every one.
        rename: output key for a ``Dict`` sub-space (or for the default ``"pixels"``/``"observation"``).
        episodic_life: a step where the backend's ``info["life_lost"]`` is set (and the game is not over) is
            written ``terminated``, but the env is not reset: the game continues, and the episode statistics
            and ``"episode_end"`` follow the whole game.
    """

    #: Channels of one frame in an image observation that stacks frames on its channel axis (1: grayscale, 3: RGB;
    #: ``None``: 3 where the channel count divides by 3, else 1); what :meth:`render_frames` takes as the newest.
    frame_channels: int | None = None

    #: The backend returns new observation arrays every call (EnvPool, gymnasium vector envs with ``copy=True``),
    #: so tensors may share their memory; otherwise observations are copied, since a backend may reuse its
    #: buffers and a stored transition must not change.
    fresh_arrays: bool = False

    def __init__(
        self,
        *,
        family: str,
        num_envs: int,
        device: str | torch.device,
        observation_space: Any,
        action_space: Any,
        pixel_layout: str = "hwc",
        clip_actions: bool = True,
        clip_rewards: bool = False,
        vector_keys: tuple[str, ...] | str | None = None,
        rename: dict[str, str] | None = None,
        episodic_life: bool = False,
    ) -> None:
        self.family = family
        self.num_envs = check_num_envs(family, num_envs)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.clip_actions = clip_actions
        self.clip_rewards = clip_rewards
        self._pixel_layout = pixel_layout
        self._vector_keys = vector_keys
        self._rename = dict(rename or {})
        self.episodic_life = episodic_life
        self._obs_converters = self._build_observation_spec(observation_space)
        self._build_action_spec(action_space)
        set_reward_and_done_specs(self, num_envs)
        self._ep = _Episodes(num_envs)

    @property
    def _last_obs(self) -> Any:
        """The whole batch's latest observation as the backend returned it (``None`` before the first reset)."""
        return self._ep.last_obs

    # -- specs ------------------------------------------------------------------------------------------
    def _build_observation_spec(self, space: Any) -> list[tuple[str, str | None, Converter]]:
        from gymnasium import spaces

        B, dev = self.num_envs, self.device
        owned = self.fresh_arrays
        specs: dict[str, TensorSpec] = {}
        converters: list[tuple[str, str | None, Converter]] = []
        if isinstance(space, spaces.Dict) and self._vector_keys == "all":
            self._vector_keys = tuple(space.spaces)
        if isinstance(space, spaces.Dict) and self._vector_keys is not None:
            missing = [k for k in self._vector_keys if k not in space.spaces]
            if missing:
                raise SpecMismatchError(f"env {self.family!r}: observation keys {missing} not in {space}")
            sizes = [int(np.prod(space.spaces[k].shape)) for k in self._vector_keys]
            specs["observation"] = Unbounded(shape=(B, sum(sizes)), dtype=torch.float32, device=dev)
            keys = self._vector_keys
            converters.append(
                (
                    "observation",
                    "*",
                    lambda obs: torch.from_numpy(
                        np.concatenate([np.asarray(obs[k], np.float32).reshape(B, -1) for k in keys], axis=1)
                    ),
                )
            )
            # other sub-spaces are dropped unless asked for by name (through ``rename``)
            items = [(k, s) for k, s in space.spaces.items() if k not in keys and k in self._rename]
        elif isinstance(space, spaces.Dict):
            items = list(space.spaces.items())
        else:
            items = [(None, space)]
        for key, sub in items:
            if isinstance(sub, spaces.Box) and sub.dtype == np.uint8 and len(sub.shape) in (2, 3):
                name = self._rename.get(key, key or "pixels")
                shape = sub.shape
                if len(shape) == 2:
                    specs[name] = Bounded(0, 255, shape=(B, 1, *shape), dtype=torch.uint8, device=dev)
                    convert: Converter = _pixels_converter("chw", owned)
                    convert = lambda x, c=convert: c(x).unsqueeze(1)  # noqa: E731
                else:
                    c, h, w = (shape[2], shape[0], shape[1]) if self._pixel_layout == "hwc" else shape
                    specs[name] = Bounded(0, 255, shape=(B, c, h, w), dtype=torch.uint8, device=dev)
                    convert = _pixels_converter(self._pixel_layout, owned)
            elif isinstance(sub, spaces.Box):
                name = self._rename.get(key, key or "observation")
                specs[name] = Unbounded(shape=(B, *sub.shape), dtype=torch.float32, device=dev)
                convert = torch.as_tensor if owned else torch.tensor
                convert = lambda x, c=convert: c(x, dtype=torch.float32)  # noqa: E731
            elif isinstance(sub, spaces.Discrete):
                name = self._rename.get(key, key or "observation")
                n, start = int(sub.n), int(sub.start)
                specs[name] = Unbounded(shape=(B, n), dtype=torch.float32, device=dev)
                convert = lambda x, n=n, s=start: torch.nn.functional.one_hot(  # noqa: E731
                    torch.as_tensor(np.asarray(x, np.int64) - s), n
                ).float()
            else:
                raise SpecMismatchError(
                    f"env {self.family!r}: observation space {sub} is not supported (Box, Discrete or a Dict of them)"
                )
            converters.append((name, key, convert))
        specs.update(episode_specs(B, dev))
        self.observation_spec = Composite(specs, shape=(B,), device=dev)
        return converters

    def _build_action_spec(self, space: Any) -> None:
        from gymnasium import spaces

        B, dev = self.num_envs, self.device
        self._action_offset = 0
        self._action_bounds: tuple[np.ndarray, np.ndarray] | None = None
        self._action_dtype: Any = None
        if isinstance(space, spaces.Discrete):
            self._action_offset = int(space.start)
            spec: TensorSpec = Categorical(int(space.n), shape=(B,), dtype=torch.int64, device=dev)
            self._action_dtype = space.dtype
        elif isinstance(space, spaces.Box):
            low, high = space.low.astype(np.float32), space.high.astype(np.float32)
            self._action_dtype = space.dtype
            if np.isfinite(low).all() and np.isfinite(high).all():
                spec = Bounded(
                    torch.as_tensor(low).expand(B, *space.shape),
                    torch.as_tensor(high).expand(B, *space.shape),
                    shape=(B, *space.shape),
                    dtype=torch.float32,
                    device=dev,
                )
                self._action_bounds = (low, high)
            else:
                spec = Unbounded(shape=(B, *space.shape), dtype=torch.float32, device=dev)
        elif isinstance(space, spaces.MultiDiscrete):
            spec = MultiCategorical(
                torch.as_tensor(space.nvec).tolist(), shape=(B, len(space.nvec)), dtype=torch.int64, device=dev
            )
        elif isinstance(space, spaces.MultiBinary):
            spec = Binary(n=int(np.prod(space.shape)), shape=(B, *space.shape), dtype=torch.int64, device=dev)
        else:
            raise SpecMismatchError(
                f"env {self.family!r}: action space {space} is not supported "
                "(Discrete, Box, MultiDiscrete or MultiBinary)"
            )
        self.action_spec = spec

    # -- what subclasses implement -----------------------------------------------------------------------
    def _backend_reset(self, mask: np.ndarray | None) -> Any:
        """Start new episodes in every env (``mask is None``, seeding a pending seed) or where ``mask``;
        return the whole batch's observation."""
        raise NotImplementedError

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        """Step every env; return ``(obs, reward, terminated, truncated, info)`` for the whole batch."""
        raise NotImplementedError

    # -- TorchRL ------------------------------------------------------------------------------------------
    def _observations(self, obs: Any) -> dict[str, torch.Tensor]:
        out = {}
        for name, key, convert in self._obs_converters:
            out[name] = convert(obs if key is None or key == "*" else obs[key])
        return out

    def _outputs(self, obs: Any, ended: np.ndarray, flags: tuple[np.ndarray, ...]) -> dict[str, torch.Tensor]:
        """Observations, episode statistics and ``flags`` (name-ordered ``terminated``/``truncated`` and
        optionally ``reward``, 1-D arrays) as ``[B, 1]`` tensors. Shapes are made on the numpy side (views
        are nearly free there) and every array handed to torch is a fresh copy: the running statistics are
        updated in place on the next step."""
        out = self._observations(obs)
        out[EPISODE_RETURN_KEY] = torch.from_numpy(self._ep.returns.astype(np.float32)[:, None])
        out[EPISODE_LENGTH_KEY] = torch.from_numpy(self._ep.lengths.copy()[:, None])
        out[EPISODE_END_KEY] = torch.from_numpy(ended[:, None])
        terminated, truncated = flags[0], flags[1]
        out["done"] = torch.from_numpy((terminated | truncated)[:, None])
        out["terminated"] = torch.from_numpy(terminated[:, None])
        out["truncated"] = torch.from_numpy(truncated[:, None])
        if len(flags) > 2:
            out["reward"] = torch.from_numpy(flags[2].astype(np.float32)[:, None])
        return out

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        reset = None if tensordict is None else tensordict.get("_reset", None)
        mask = None if reset is None else reset.reshape(self.num_envs).cpu().numpy()
        return self._tensordict(self._reset_outputs(mask))

    def _reset_outputs(self, mask: np.ndarray | None) -> dict[str, torch.Tensor]:
        """A reset of every env (``mask is None``: new episodes everywhere) or of those where ``mask``."""
        if mask is None:  # a full reset always starts new episodes
            fresh = np.ones(self.num_envs, dtype=bool)
            obs = self._backend_reset(None)
        else:
            # an env whose last step lost a life (done, but the game goes on) continues from where it is
            fresh = mask & ~self._ep.continuing
            obs = self._backend_reset(fresh) if fresh.any() else self._last_obs
        ep = self._ep
        ep.last_obs = obs
        ep.continuing[:] = False
        ep.returns[fresh] = 0.0
        ep.lengths[fresh] = 0
        no = np.zeros(self.num_envs, dtype=bool)
        return self._outputs(obs, no, (no, no.copy()))

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self._tensordict(self._step_outputs(tensordict.get("action")))

    def _step_outputs(self, action_tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        action = action_tensor.detach().cpu().numpy()
        if self._action_offset:
            action = action + self._action_offset
        if self.clip_actions and self._action_bounds is not None:
            action = np.clip(action, *self._action_bounds)
        if self._action_dtype is not None and action.dtype != self._action_dtype:
            action = action.astype(self._action_dtype)
        obs, reward, terminated, truncated, info = self._backend_step(action)
        reward = np.asarray(reward, dtype=np.float64).reshape(self.num_envs)
        terminated = np.array(terminated, dtype=bool).reshape(self.num_envs)  # a copy: handed to torch
        truncated = np.asarray(truncated, dtype=bool).reshape(self.num_envs) & ~terminated
        ep = self._ep
        ep.returns += reward
        ep.lengths += 1
        ended = terminated | truncated
        if self.episodic_life:
            ep.continuing = np.asarray(info["life_lost"], dtype=bool).reshape(self.num_envs) & ~ended
            terminated = terminated | ep.continuing
        ep.last_obs = obs
        written = np.sign(reward) if self.clip_rewards else reward
        return self._outputs(obs, ended, (terminated, truncated, written))

    def _tensordict(self, out: dict[str, torch.Tensor]) -> TensorDictBase:
        td = exact_tensordict(out, self.batch_size, _CPU)
        return td if self.device == _CPU else td.to(self.device, non_blocking=True)

    # -- frames ------------------------------------------------------------------------------------------
    def render_frames(self, size: int | None = None) -> torch.Tensor:
        """The latest frame of every env, ``uint8`` RGB ``[num_envs, H, W, 3]`` (what ``rlte play`` records), taken
        from the image observation: the newest frame of a stack (:attr:`frame_channels`), grayscale as gray RGB.

        ``size`` is a hint for envs that draw their frames at any size; these frames come at the observation's size
        (:class:`~rlte_plugins.envs.gymnasium.VectorEnvAdapter` renders through its sub-environments where they
        can). After a step that ended an episode the observation is its last one, until the reset.
        """
        images = [
            (name, key, convert)
            for name, key, convert in self._obs_converters
            if self.observation_spec[name].dtype == torch.uint8 and len(self.observation_spec[name].shape) == 4
        ]
        if not images:
            raise SpecMismatchError(
                f"env {self.family!r} cannot render frames: its observations hold no image and its backend does "
                f"not draw them ({type(self).__name__}); make it with a backend that draws (its backend= argument: "
                "'dm_control' for DMC, 'gymnasium' for Gymnasium ids and MiniGrid) or with pixels"
            )
        if self._last_obs is None:
            raise RuntimeError(f"env {self.family!r}: render_frames before the first reset")
        name, key, convert = next((image for image in images if image[0] == "pixels"), images[0])
        pixels = convert(self._last_obs if key is None or key == "*" else self._last_obs[key])
        channels = self.frame_channels or (3 if pixels.shape[1] % 3 == 0 else 1)
        frames = pixels[:, -channels:].expand(-1, 3, -1, -1)  # a gray frame: its one channel three times
        return frames.permute(0, 2, 3, 1).contiguous().to(self.device)

    # -- the plain-tensor path (direct collection; see ExactOutputs.tensor_steps) --------------------------
    def reset_tensors(self) -> dict[str, torch.Tensor]:
        """``reset()``'s outputs as plain tensors (a full reset)."""
        return self._to_device(self._reset_outputs(None))

    def step_tensors(self, action: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``step_and_maybe_reset`` on plain tensors: the step's outputs (what ``"next"`` holds) and the root the
        next action is chosen from (where an env finished, its reset). The same transitions as the TensorDict
        path, without building a TensorDict per step."""
        nxt = self._step_outputs(action)
        done = nxt["done"].numpy().reshape(self.num_envs)
        if done.any():
            root = self._reset_outputs(done)
        else:  # what step_mdp carries over: all but the reward
            root = {k: v for k, v in nxt.items() if k != "reward"}
        return self._to_device(nxt), self._to_device(root)

    def _to_device(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.device == _CPU:
            return out
        return {k: v.to(self.device, non_blocking=True) for k, v in out.items()}


class _Episodes:
    """Per-env running state, kept off the ``nn.Module`` (whose attribute writes cost microseconds each)."""

    __slots__ = ("returns", "lengths", "continuing", "last_obs")

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.continuing = np.zeros(num_envs, dtype=bool)  # lost a life last step: done, but the game goes on
        self.last_obs: Any = None


def merge_rows(full: Any, part: Any, rows: np.ndarray) -> Any:
    """Write ``part`` (observations of the envs at ``rows``) into a copy of the batch observation ``full``."""
    if isinstance(full, dict):
        return {k: merge_rows(full[k], part[k], rows) for k in full}
    out = np.array(full, copy=True)
    out[rows] = part
    return out
