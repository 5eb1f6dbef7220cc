"""An adapter for environments written for rl8's protocol, so their users bring them unchanged."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, TensorSpec
from torchrl.envs import EnvBase

from rlte_plugins.envs.core import (
    EPISODE_END_KEY,
    EPISODE_LENGTH_KEY,
    EPISODE_RETURN_KEY,
    check_num_envs,
    episode_specs,
    set_reward_and_done_specs,
)
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

OBS_KEY, REWARDS_KEY = "obs", "rewards"  # rl8's DataKeys


def resolve_class(env_cls: Any) -> type:
    """A class as is, or ``"package.module:Class"`` imported."""
    if isinstance(env_cls, type):
        return env_cls
    if isinstance(env_cls, str) and ":" in env_cls:
        module, _, attr = env_cls.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ComponentArgumentError(f"env 'rl8': cannot import env_cls {env_cls!r}: {exc}") from exc
    raise ComponentArgumentError(f"env 'rl8': env_cls must be a class or 'module:Class', got {env_cls!r}")


class Rl8Env(EnvBase):
    """An rl8-protocol env class as a TorchRL env.

    The class is built as ``env_cls(num_envs, horizon, device=device)``; ``reset(config=...)`` returns the
    batched observation (a tensor, or a TensorDict of them) and ``step(action)`` a TensorDict with ``"obs"``
    and ``"rewards"``. rl8 resets every env every ``horizon`` steps, so here every env is ``truncated``
    together at the horizon (``terminated`` is never set) and reset as a whole.

    Observations: a tensor becomes ``"observation"``; a TensorDict keeps its keys. Actions: a discrete spec with
    a trailing dimension of 1 (rl8's ``Categorical(n, shape=[1])``) is exposed as one integer per env, as the
    categorical heads expect, and given back to the class with its trailing dimension.

    Args:
        env_cls: the class, or ``"module:Class"`` (a string keeps checkpoints rebuildable).
        num_envs, seed, device: as every rlte env; ``seed`` seeds torch's global generator at the first reset,
            since rl8 envs draw from it.
        horizon: steps between resets (``None``: the class's own ``max_horizon`` or never).
        config: passed to ``reset(config=...)``.
    """

    def __init__(
        self,
        env_cls: Any,
        num_envs: int = 1,
        horizon: int | None = 32,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        check_num_envs("rl8", num_envs)
        cls = resolve_class(env_cls)
        if horizon is not None and (not isinstance(horizon, int) or horizon < 1):
            raise ComponentArgumentError(f"env 'rl8': horizon must be a positive int or None, got {horizon!r}")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        try:
            self.inner = cls(num_envs, horizon, device=self.device)
        except (TypeError, ValueError) as exc:
            raise ComponentArgumentError(
                f"env 'rl8': {cls.__name__}(num_envs, horizon, device=...) failed: {exc}"
            ) from exc
        for attr in ("observation_spec", "action_spec", "reset", "step"):
            if not hasattr(self.inner, attr):
                raise SpecMismatchError(f"env 'rl8': {cls.__name__} has no {attr!r}: not an rl8-protocol env")
        self.num_envs, self.horizon, self.config = num_envs, horizon, dict(config or {})
        B, dev = num_envs, self.device
        obs_spec: TensorSpec = self.inner.observation_spec
        if isinstance(obs_spec, Composite):
            self._obs_keys = list(obs_spec.keys())
            obs = {k: obs_spec[k].clone().to(dev).expand(B, *obs_spec[k].shape) for k in self._obs_keys}
        else:
            self._obs_keys = None
            obs = {"observation": obs_spec.clone().to(dev).expand(B, *obs_spec.shape)}
        self.observation_spec = Composite({**obs, **episode_specs(B, dev)}, shape=(B,))
        act: TensorSpec = self.inner.action_spec
        self._squeeze_action = isinstance(act, Categorical) and tuple(act.shape) == (1,)
        if self._squeeze_action:
            self.action_spec = Categorical(act.space.n, shape=(B,), dtype=torch.int64, device=dev)
        else:
            self.action_spec = act.clone().to(dev).expand(B, *act.shape)
        set_reward_and_done_specs(self, B)
        self._pending_seed = seed
        self.seed = seed
        self._t = 0
        self._returns = torch.zeros(B, 1, device=dev)

    def _observations(self, obs: Any) -> dict[str, torch.Tensor]:
        if self._obs_keys is None:
            return {"observation": torch.as_tensor(obs, device=self.device).reshape(self.num_envs, -1)}
        return {k: obs[k] for k in self._obs_keys}

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        reset = None if tensordict is None else tensordict.get("_reset", None)
        if reset is not None and not bool(reset.all()):
            raise SpecMismatchError(
                "env 'rl8': rl8-protocol envs reset as a whole; a partial reset was asked "
                "(they end together at the horizon, so this means a caller reset some envs early)"
            )
        if self._pending_seed is not None:
            torch.manual_seed(self._pending_seed)
            self._pending_seed = None
        obs = self.inner.reset(config=self.config or None)
        self._t = 0
        self._returns.zero_()
        false = torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device)
        return TensorDict(
            {
                **self._observations(obs),
                EPISODE_RETURN_KEY: self._returns.clone(),
                EPISODE_LENGTH_KEY: torch.zeros(self.num_envs, 1, dtype=torch.int64, device=self.device),
                EPISODE_END_KEY: false,
                "done": false,
                "terminated": false,
                "truncated": false,
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action")
        if self._squeeze_action:
            action = action.reshape(self.num_envs, 1)
        out = self.inner.step(action)
        reward = out[REWARDS_KEY].reshape(self.num_envs, 1).to(torch.float32)
        self._t += 1
        self._returns += reward
        ended = self.horizon is not None and self._t >= self.horizon
        trunc = torch.full((self.num_envs, 1), ended, dtype=torch.bool, device=self.device)
        return TensorDict(
            {
                **self._observations(out[OBS_KEY]),
                "reward": reward,
                EPISODE_RETURN_KEY: self._returns.clone(),
                EPISODE_LENGTH_KEY: torch.full((self.num_envs, 1), self._t, dtype=torch.int64, device=self.device),
                EPISODE_END_KEY: trunc,
                "done": trunc,
                "terminated": torch.zeros_like(trunc),
                "truncated": trunc,
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def _set_seed(self, seed: int | None) -> None:
        self._pending_seed = seed
        self.seed = seed
