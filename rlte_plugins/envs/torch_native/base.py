"""The base of the torch-native envs: state tensors on the device, masked partial resets, no host syncs."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import Bounded, Composite, TensorSpec, Unbounded
from torchrl.envs import EnvBase

from rlte_plugins.envs.core import (
    EPISODE_END_KEY,
    EPISODE_LENGTH_KEY,
    EPISODE_RETURN_KEY,
    ExactOutputs,
    check_num_envs,
    episode_specs,
    exact_tensordict,
    set_reward_and_done_specs,
)
from rlte_plugins.envs.torch_native.render import Canvas
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError, positive_int


class TorchEnv(ExactOutputs, EnvBase):
    """A batch of ``num_envs`` copies of one task, stepped by tensor operations on ``device``.

    Subclasses set ``name``, ``obs_dim``, ``default_max_steps`` and implement :meth:`action_spec_for`,
    :meth:`initial_state` (``n`` fresh states) and :meth:`dynamics` (``state, action -> state, reward,
    terminated``); observations are :meth:`observe` of the state, and pixels :meth:`render` of it (on the
    :meth:`canvas` it returns). Resets, time limits (``truncated``, never ``terminated``), action repeats, frame
    stacks and episode statistics are shared. Nothing in ``reset``/``step`` reads a value back to the host, so a
    step costs no synchronisation on a GPU.

    Args:
        num_envs: batch size.
        seed: seeds this env's own ``torch.Generator`` (``None`` draws one).
        device: where the state lives.
        max_episode_steps: episodes are truncated after this many of the task's own steps (``None``: the task's
            default; 0: never). With ``action_repeat`` that is ``ceil(max_episode_steps / action_repeat)`` agent
            steps, the last of which applies only the task steps left, as DeepMind Control's time limit does.
        from_pixels: observations include ``"pixels"``: ``uint8``, CHW, ``[3 * frame_stack, image_size,
            image_size]``, drawn by the task's :meth:`render` with tensor operations on ``device``.
        pixels_only: with ``from_pixels``, drop ``"observation"`` (the state vector).
        image_size: rendered height and width.
        frame_stack: stack the last this many rendered frames on the channel axis, oldest first; a reset (of the
            whole batch or of some envs) fills an env's stack with copies of its first frame.
        action_repeat: each agent step applies the action this many times and sums the rewards; an env that
            terminates inside the repeat takes no further task steps (its state and reward stay those of its
            end). ``episode_length`` counts agent steps.
        compile: TorchRL's option (``True`` or :func:`torch.compile` keyword arguments): :meth:`compile` is called.

    ``compile=True`` (TorchRL's env option, or :meth:`compile`) compiles TorchRL's ``step_and_maybe_reset`` and
    also the step of the plain-tensor path (dynamics, repeats, rewards, flags, episode counters and rendering) and
    the refill of reset envs' frame stacks into fused kernels.
    """

    name = "torch"
    obs_dim = 1
    default_max_steps: int | None = None

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        from_pixels: bool = False,
        pixels_only: bool = True,
        image_size: int = 84,
        frame_stack: int = 1,
        action_repeat: int = 1,
        compile: bool | dict = False,  # noqa: A002  (TorchRL's option: taken by EnvBase, which calls compile())
    ) -> None:
        check_num_envs(self.name, num_envs)
        owner = f"env {self.name!r}"
        for arg, value in (("image_size", image_size), ("frame_stack", frame_stack), ("action_repeat", action_repeat)):
            positive_int(owner, arg, value)
        if from_pixels and type(self).render is TorchEnv.render:
            raise ComponentArgumentError(f"{owner}: from_pixels=True, but this task has no rendering")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        if max_episode_steps is None:
            max_episode_steps = self.default_max_steps or 0
        if not isinstance(max_episode_steps, int) or max_episode_steps < 0:
            raise ComponentArgumentError(
                f"{owner}: max_episode_steps must be a non-negative int, got {max_episode_steps!r}"
            )
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.action_repeat = action_repeat
        self.from_pixels, self.pixels_only = bool(from_pixels), bool(pixels_only)
        self.image_size, self.frame_stack = image_size, frame_stack
        # the time limit in agent steps (the task's steps are counted inside the repeat)
        self._agent_limit = math.ceil(max_episode_steps / action_repeat)
        B, dev = num_envs, self.device
        observations: dict[str, TensorSpec] = {}
        if not (self.from_pixels and self.pixels_only):
            observations["observation"] = Unbounded(shape=(B, self.obs_dim), dtype=torch.float32, device=dev)
        if self.from_pixels:
            shape = (B, 3 * frame_stack, image_size, image_size)
            observations["pixels"] = Bounded(0, 255, shape=shape, dtype=torch.uint8, device=dev)
        self.observation_spec = Composite(
            **observations,
            **self.extra_observation_specs(B, dev),
            **episode_specs(B, dev),
            shape=(B,),
        )
        self.action_spec = self.action_spec_for(B, dev)
        set_reward_and_done_specs(self, B)
        self._gen = torch.Generator(device=dev)
        self._set_seed(seed)
        self.state = self.initial_state(B)
        self._returns = torch.zeros(B, 1, device=dev)
        self._lengths = torch.zeros(B, 1, dtype=torch.int64, device=dev)
        self._advance = self._transition
        self._refill = self._refill_frames
        self._canvas = self.canvas(image_size, dev) if self.from_pixels else None
        self._frames = self.render(self.state).repeat(1, frame_stack, 1, 1) if self.from_pixels else None
        self._video_canvas: Canvas | None = None  # render_frames' own, at the size it was last asked for

    # -- the task -------------------------------------------------------------------------------------------
    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        raise NotImplementedError

    def initial_state(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def canvas(self, image_size: int, device: torch.device) -> Canvas:
        """The :class:`~rlte_plugins.envs.torch_native.render.Canvas` :meth:`render` draws on (built once)."""
        raise NotImplementedError

    def render(self, state: torch.Tensor) -> torch.Tensor:
        """One ``uint8`` RGB frame per env, ``[n, 3, image_size, image_size]``, drawn on ``self._canvas``;
        a task without one cannot be made with ``from_pixels=True``."""
        raise NotImplementedError

    def render_frames(self, size: int | None = None) -> torch.Tensor:
        """The current frame of every env, ``uint8`` RGB ``[num_envs, H, W, 3]`` (what ``rlte play`` records).

        With ``size``, :meth:`render` draws the state at ``size`` x ``size`` on a canvas of its own (sharper than
        enlarging a small frame); without it, the newest frame of the ``"pixels"`` stack (what the agent sees) or,
        without pixels, the state drawn at ``image_size``. After a step that ended an episode the state is still
        its last one, until the reset.

        Examples:
            >>> import rlte_plugins
            >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, seed=0)
            >>> _ = env.reset()
            >>> env.render_frames(64).shape, env.render_frames().shape
            (torch.Size([2, 64, 64, 3]), torch.Size([2, 84, 84, 3]))
        """
        if type(self).render is TorchEnv.render:
            raise SpecMismatchError(f"env {self.name!r} cannot render frames: the task has no rendering")
        if size is None and self._frames is not None:
            frames = self._frames[:, -3:]
        else:
            size = self.image_size if size is None else positive_int(f"env {self.name!r}", "size", size)
            if self._video_canvas is None or self._video_canvas.size != size:
                self._video_canvas = self.canvas(size, self.device)
            # ``render`` draws on ``self._canvas``: lend it the video canvas for this one call
            canvas, self._canvas = self._canvas, self._video_canvas
            try:
                frames = self.render(self.state)
            finally:
                self._canvas = canvas
        return frames.permute(0, 2, 3, 1).contiguous()

    def extra_observation_specs(self, num_envs: int, device: torch.device) -> dict[str, TensorSpec]:
        """Specs of observations besides ``"observation"`` (e.g. an ``"action_mask"``); none by default."""
        return {}

    def extra_observations(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """The values of :meth:`extra_observation_specs` for ``state``."""
        return {}

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """Uniform samples from this env's generator."""
        u = torch.rand(*shape, generator=self._gen, device=self.device)
        return u * (high - low) + low

    # -- TorchRL --------------------------------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        reset = None if tensordict is None else tensordict.get("_reset", None)
        return exact_tensordict(self._reset_outputs(reset), self.batch_size, self.device)

    def _reset_outputs(self, reset: torch.Tensor | None) -> dict[str, torch.Tensor]:
        self._reset_state(reset)
        false = torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device)
        return {
            **self._observations(self.state, self._frames),
            EPISODE_RETURN_KEY: self._returns.clone(),
            EPISODE_LENGTH_KEY: self._lengths.clone(),
            EPISODE_END_KEY: false,
            "done": false.clone(),
            "terminated": false.clone(),
            "truncated": false.clone(),
        }

    def _reset_state(self, reset: torch.Tensor | None) -> None:
        """New episodes everywhere (``reset is None``) or where ``reset``, on the device."""
        fresh = self.initial_state(self.num_envs)
        if reset is None:
            self.state = fresh
            self._returns.zero_()
            self._lengths.zero_()
        else:
            mask = reset.reshape(self.num_envs, 1)
            self.state = torch.where(mask, fresh, self.state)
            self._returns.masked_fill_(mask, 0.0)
            self._lengths.masked_fill_(mask, 0)
        if self._frames is not None:
            if reset is None:  # a mask all the same: one compiled refill serves both kinds of reset
                reset = torch.ones(self.num_envs, 1, dtype=torch.bool, device=self.device)
            self._frames = self._refill(self.state, self._frames, reset)

    def _refill_frames(self, state: torch.Tensor, frames: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        """The frame stacks after a reset: copies of the first frame where ``reset``."""
        first = self.render(state).repeat(1, self.frame_stack, 1, 1)
        # ``torch.where(reset, first, frames)``: uint8 arithmetic wraps modulo 256, so this is exact, and on a CPU
        # it runs several times faster than a ``where`` broadcasting its condition
        return frames + (first - frames) * reset.reshape(self.num_envs, 1, 1, 1).to(torch.uint8)

    def _observations(self, state: torch.Tensor, frames: torch.Tensor | None) -> dict[str, torch.Tensor]:
        out = {} if self.from_pixels and self.pixels_only else {"observation": self.observe(state)}
        if frames is not None:
            out["pixels"] = frames
        return {**out, **self.extra_observations(state)}

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        return exact_tensordict(self._step_outputs(tensordict.get("action")), self.batch_size, self.device)

    def _step_outputs(self, action: torch.Tensor) -> dict[str, torch.Tensor]:
        self.state, frame, out = self._advance(self.state, action, self._returns, self._lengths)
        if frame is not None:
            # newest last; outside what compile compiles, since inductor turns this uint8 concatenation into
            # strided copies slower than the whole eager step (torch 2.13, CPU)
            self._frames = out["pixels"] = torch.cat((self._frames[:, 3:], frame), 1)
        # in place: an ``nn.Module`` attribute write costs microseconds; the outputs are new tensors
        self._returns.copy_(out[EPISODE_RETURN_KEY])
        self._lengths.copy_(out[EPISODE_LENGTH_KEY])
        return out

    def compile(self, *, warmup: int | None = None, **kwargs: Any) -> TorchEnv:
        """TorchRL's :meth:`~torchrl.envs.EnvBase.compile` (``step_and_maybe_reset``), and the plain-tensor step:
        the task's dozens of small tensor operations per step become a few fused kernels. Fused arithmetic rounds
        differently (observations within ~1e-7 of the eager step's, a pixel at most one level off), so a seeded
        run changes with it. Each new combination of task class, ``num_envs``, time limit and pixel options
        compiles again (torch keeps 8 per function)."""
        super().compile(warmup=warmup, **kwargs)
        compiled = torch.compile(self._transition, **kwargs)
        refill = torch.compile(self._refill_frames, **kwargs)
        if self.device.type == "cuda" and kwargs.get("mode") in ("reduce-overhead", "max-autotune"):
            # CUDA graphs overwrite their outputs at the next replay, and collection keeps every step's outputs
            def step(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
                state, frame, out = compiled(*args)
                frame = None if frame is None else frame.clone()
                return state.clone(), frame, {k: v.clone() for k, v in out.items()}

            self.__dict__["_advance"] = step
            self.__dict__["_refill"] = lambda *args: refill(*args).clone()
        else:
            self.__dict__["_advance"] = compiled
            self.__dict__["_refill"] = refill
        return self

    def eager(self) -> TorchEnv:
        super().eager()
        self.__dict__["_advance"] = self._transition
        self.__dict__["_refill"] = self._refill_frames
        return self

    def _transition(
        self, state: torch.Tensor, action: torch.Tensor, returns: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """One agent step of every env as a function of its inputs (what ``compile`` compiles): the next state,
        its rendered frame (``None`` without pixels) and the step's outputs but ``"pixels"``."""
        n, repeat = self.num_envs, self.action_repeat
        state, reward, terminated = self.dynamics(state, action)
        reward = reward.reshape(n, 1).to(torch.float32)
        terminated = terminated.reshape(n, 1)
        for i in range(1, repeat):  # unrolled: ``repeat`` is fixed per env, so compile sees straight-line code
            live = ~terminated
            if self.max_episode_steps:  # the time limit counts task steps: its last agent step may be short
                live = live & (lengths * repeat + i < self.max_episode_steps)
            moved, more, ended = self.dynamics(state, action)
            state = torch.where(live, moved, state)
            reward = reward + torch.where(live, more.reshape(n, 1).to(torch.float32), 0.0)
            terminated = terminated | (live & ended.reshape(n, 1))
        lengths = lengths + 1
        if self._agent_limit:
            truncated = (lengths >= self._agent_limit) & ~terminated
        else:
            truncated = torch.zeros_like(terminated)
        done = terminated | truncated
        out = {
            **self._observations(state, None),
            "reward": reward,
            EPISODE_RETURN_KEY: returns + reward,
            EPISODE_LENGTH_KEY: lengths,
            EPISODE_END_KEY: done.clone(),
            "done": done,
            "terminated": terminated,
            "truncated": truncated,
        }
        return state, self.render(state) if self.from_pixels else None, out

    # -- the plain-tensor path (direct collection; see ExactOutputs.tensor_steps) --------------------------
    def reset_tensors(self) -> dict[str, torch.Tensor]:
        """``reset()``'s outputs as plain tensors (a full reset)."""
        return self._reset_outputs(None)

    def step_tensors(self, action: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``step_and_maybe_reset`` on plain tensors: the step's outputs (``"next"``) and the root of the next
        step, with no host synchronisation: every env's partial reset is computed and applied where ``done``, on
        the device. With pixels that renders every env twice (the step's frame, then the reset envs' first
        frames): choosing only the reset envs would read ``done`` back to the host."""
        nxt = self._step_outputs(action)
        return nxt, self._reset_outputs(nxt["done"])

    def env_state(self) -> dict[str, Any]:
        """Everything that determines the next transitions (for exact resume): state, episode counters, RNG and,
        with pixels, the frame stacks."""
        saved = {
            "state": self.state.clone(),
            "returns": self._returns.clone(),
            "lengths": self._lengths.clone(),
            "generator": self._gen.get_state(),
        }
        if self._frames is not None:
            saved["frames"] = self._frames.clone()
        return saved

    def load_env_state(self, saved: dict[str, Any]) -> None:
        if saved["state"].shape != self.state.shape:
            raise SpecMismatchError(
                f"env {self.name!r}: saved state has shape {list(saved['state'].shape)}, this env "
                f"{list(self.state.shape)} (a different num_envs?)"
            )
        if self._frames is not None:
            frames = saved.get("frames")
            if frames is None or frames.shape != self._frames.shape:
                got = "no frames" if frames is None else f"frames of shape {list(frames.shape)}"
                raise SpecMismatchError(
                    f"env {self.name!r}: saved state has {got}, this env stacks {list(self._frames.shape)} "
                    "(saved with other from_pixels, image_size or frame_stack?)"
                )
            self._frames = frames.to(self.device).clone()
        self.state = saved["state"].to(self.device)
        self._returns.copy_(saved["returns"])
        self._lengths.copy_(saved["lengths"])
        self._gen.set_state(saved["generator"])

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self._gen.manual_seed(int(seed))
        self.seed = seed

    def __repr__(self) -> str:
        options = f", action_repeat={self.action_repeat}" if self.action_repeat != 1 else ""
        if self.from_pixels:
            options += (
                f", from_pixels=True, pixels_only={self.pixels_only}, image_size={self.image_size}, "
                f"frame_stack={self.frame_stack}"
            )
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device}, "
            f"max_episode_steps={self.max_episode_steps}{options})"
        )
