"""The base of the torch-native envs: state tensors on the device, masked partial resets, no host syncs."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, TensorSpec, Unbounded
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
from rlte_plugins.errors import ComponentArgumentError


class TorchEnv(ExactOutputs, EnvBase):
    """A batch of ``num_envs`` copies of one task, stepped by tensor operations on ``device``.

    Subclasses set ``name``, ``obs_dim``, ``default_max_steps`` and implement :meth:`action_spec_for`,
    :meth:`initial_state` (``n`` fresh states) and :meth:`dynamics` (``state, action -> state, reward,
    terminated``); observations are :meth:`observe` of the state. Resets, time limits (``truncated``, never
    ``terminated``) and episode statistics are shared. Nothing in ``reset``/``step`` reads a value back to the
    host, so a step costs no synchronisation on a GPU.

    Args:
        num_envs: batch size.
        seed: seeds this env's own ``torch.Generator`` (``None`` draws one).
        device: where the state lives.
        max_episode_steps: episodes are truncated after this many steps (``None``: the task's default; 0: never).
        compile: TorchRL's option (``True`` or :func:`torch.compile` keyword arguments): :meth:`compile` is called.

    ``compile=True`` (TorchRL's env option, or :meth:`compile`) compiles TorchRL's ``step_and_maybe_reset`` and
    also the step of the plain-tensor path (dynamics, rewards, flags, episode counters) into fused kernels.
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
        compile: bool | dict = False,  # noqa: A002  (TorchRL's option: taken by EnvBase, which calls compile())
    ) -> None:
        check_num_envs(self.name, num_envs)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        if max_episode_steps is None:
            max_episode_steps = self.default_max_steps or 0
        if not isinstance(max_episode_steps, int) or max_episode_steps < 0:
            raise ComponentArgumentError(
                f"env {self.name!r}: max_episode_steps must be a non-negative int, got {max_episode_steps!r}"
            )
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        B, dev = num_envs, self.device
        self.observation_spec = Composite(
            observation=Unbounded(shape=(B, self.obs_dim), dtype=torch.float32, device=dev),
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

    # -- the task -------------------------------------------------------------------------------------------
    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        raise NotImplementedError

    def initial_state(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

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
            **self._observations(),
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

    def _observations(self) -> dict[str, torch.Tensor]:
        return {"observation": self.observe(self.state), **self.extra_observations(self.state)}

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        return exact_tensordict(self._step_outputs(tensordict.get("action")), self.batch_size, self.device)

    def _step_outputs(self, action: torch.Tensor) -> dict[str, torch.Tensor]:
        self.state, out = self._advance(self.state, action, self._returns, self._lengths)
        # in place: an ``nn.Module`` attribute write costs microseconds; the outputs are new tensors
        self._returns.copy_(out[EPISODE_RETURN_KEY])
        self._lengths.copy_(out[EPISODE_LENGTH_KEY])
        return out

    def compile(self, *, warmup: int | None = None, **kwargs: Any) -> TorchEnv:
        """TorchRL's :meth:`~torchrl.envs.EnvBase.compile` (``step_and_maybe_reset``), and the plain-tensor step:
        the task's dozens of small tensor operations per step become a few fused kernels. Fused arithmetic rounds
        differently (observations within ~1e-7 of the eager step's), so a seeded run changes with it. Each new
        combination of task class, ``num_envs`` and time limit compiles again (torch keeps 8 per function)."""
        super().compile(warmup=warmup, **kwargs)
        compiled = torch.compile(self._transition, **kwargs)
        if self.device.type == "cuda" and kwargs.get("mode") in ("reduce-overhead", "max-autotune"):
            # CUDA graphs overwrite their outputs at the next replay, and collection keeps every step's outputs
            def step(*args: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
                state, out = compiled(*args)
                return state.clone(), {k: v.clone() for k, v in out.items()}

            self.__dict__["_advance"] = step
        else:
            self.__dict__["_advance"] = compiled
        return self

    def eager(self) -> TorchEnv:
        super().eager()
        self.__dict__["_advance"] = self._transition
        return self

    def _transition(
        self, state: torch.Tensor, action: torch.Tensor, returns: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step of every env as a function of its inputs (what ``compile`` compiles): the next state and the
        step's outputs."""
        state, reward, terminated = self.dynamics(state, action)
        reward = reward.reshape(self.num_envs, 1).to(torch.float32)
        terminated = terminated.reshape(self.num_envs, 1)
        lengths = lengths + 1
        if self.max_episode_steps:
            truncated = (lengths >= self.max_episode_steps) & ~terminated
        else:
            truncated = torch.zeros_like(terminated)
        done = terminated | truncated
        return state, {
            "observation": self.observe(state),
            **self.extra_observations(state),
            "reward": reward,
            EPISODE_RETURN_KEY: returns + reward,
            EPISODE_LENGTH_KEY: lengths,
            EPISODE_END_KEY: done.clone(),
            "done": done,
            "terminated": terminated,
            "truncated": truncated,
        }

    # -- the plain-tensor path (direct collection; see ExactOutputs.tensor_steps) --------------------------
    def reset_tensors(self) -> dict[str, torch.Tensor]:
        """``reset()``'s outputs as plain tensors (a full reset)."""
        return self._reset_outputs(None)

    def step_tensors(self, action: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``step_and_maybe_reset`` on plain tensors: the step's outputs (``"next"``) and the root of the next
        step, with no host synchronisation: every env's partial reset is computed and applied where ``done``, on
        the device."""
        nxt = self._step_outputs(action)
        return nxt, self._reset_outputs(nxt["done"])

    def env_state(self) -> dict[str, Any]:
        """Everything that determines the next transitions (for exact resume): state, episode counters, RNG."""
        return {
            "state": self.state.clone(),
            "returns": self._returns.clone(),
            "lengths": self._lengths.clone(),
            "generator": self._gen.get_state(),
        }

    def load_env_state(self, saved: dict[str, Any]) -> None:
        if saved["state"].shape != self.state.shape:
            from rlte_plugins.errors import SpecMismatchError

            raise SpecMismatchError(
                f"env {self.name!r}: saved state has shape {list(saved['state'].shape)}, this env "
                f"{list(self.state.shape)} (a different num_envs?)"
            )
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
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device}, "
            f"max_episode_steps={self.max_episode_steps})"
        )
