"""EnvPool's C++ batched envs as a TorchRL env with exact transitions.

TorchRL's own EnvPool wrapper cannot be used as is (see the project notes): it relies on EnvPool's next-step
auto-reset, which produces one bogus transition per episode (the terminal observation, the action ignored,
reward 0, done False). Here finished envs are reset explicitly by id, so every transition is real and the
observation after a truncation is the true last one, which the value bootstrap needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rlte_plugins.envs.backends import require
from rlte_plugins.envs.core import BatchedEnv, check_num_envs, merge_rows
from rlte_plugins.errors import EnvironmentNotFoundError


class EnvPoolEnv(BatchedEnv):
    """One EnvPool task, ``num_envs`` copies stepped together in C++ threads.

    Args:
        task_id: an EnvPool id (``envpool.list_all_envs()``), e.g. ``"Pong-v5"``.
        num_envs, seed, device: as every rlte env; EnvPool seeds env ``i`` from ``seed`` itself.
        family: registry name used in errors.
        num_threads: EnvPool worker threads (0: one per core).
        envpool_kwargs: the task's options (``frame_skip``, ``stack_num``, ``num_levels``, ...).
        **batched: forwarded to :class:`~rlte_plugins.envs.core.BatchedEnv` (layout, reward clipping, ...).
    """

    fresh_arrays = True  # EnvPool hands out new arrays every call (tests/envs/test_envpool.py checks it)

    def __init__(
        self,
        task_id: str,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        *,
        family: str = "envpool",
        num_threads: int = 0,
        envpool_kwargs: Mapping[str, Any] | None = None,
        **batched: Any,
    ) -> None:
        envpool = require("envpool", family)
        check_num_envs(family, num_envs)
        if task_id not in envpool.list_all_envs():
            import difflib

            close = difflib.get_close_matches(task_id, envpool.list_all_envs(), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise EnvironmentNotFoundError(f"env {family!r}: EnvPool has no task {task_id!r}{hint}")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] & 0x7FFFFFFF)
        self.task_id = task_id
        self._envpool_kwargs = dict(envpool_kwargs or {})
        self._threads = num_threads
        self._pool = self._make_pool(envpool, num_envs, seed)
        super().__init__(
            family=family,
            num_envs=num_envs,
            device=device,
            observation_space=self._pool.observation_space,
            action_space=self._pool.action_space,
            pixel_layout="chw",
            **batched,
        )
        self._all_ids = np.arange(num_envs, dtype=np.int32)
        self._reseed: int | None = None
        self._pool_used = False  # reset since it was built: its generators no longer start from its seed
        self.seed = seed

    def _make_pool(self, envpool: Any, num_envs: int, seed: int) -> Any:
        return envpool.make(
            self.task_id,
            env_type="gymnasium",
            num_envs=num_envs,
            batch_size=num_envs,
            seed=int(seed),
            num_threads=self._threads,
            **self._envpool_kwargs,
        )

    def _backend_reset(self, mask: np.ndarray | None) -> Any:
        if self._reseed is not None:
            # EnvPool seeds only at construction: a new seed means a new pool
            self._pool.close()
            self._pool = self._make_pool(require("envpool", self.family), self.num_envs, self._reseed)
            self._reseed = None
        self._pool_used = True
        if mask is None or self._last_obs is None:
            obs, info = self._pool.reset(self._all_ids)
            self._on_reset(self._all_ids, info)
            return obs
        rows = np.flatnonzero(mask).astype(np.int32)
        part, info = self._pool.reset(rows)
        ids = np.asarray(info["env_id"])
        self._on_reset(ids, info)
        return merge_rows(self._last_obs, part, ids)

    def _on_reset(self, ids: np.ndarray, info: Any) -> None:
        """Called with the env ids EnvPool just reset and its info (Atari reads the lives here)."""

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        return self._pool.step(action, self._all_ids)

    def _set_seed(self, seed: int | None) -> None:
        # the same seed again starts the generators over too (as gymnasium's ``reset(seed=...)``), unless the
        # pool has not been reset since it was built from that seed
        if seed is not None and (seed != self.seed or self._pool_used):
            self._reseed = seed
        self.seed = seed

    def close(self, *, raise_if_closed: bool = True) -> None:
        if not self.is_closed:
            self._pool.close()
        super().close(raise_if_closed=raise_if_closed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_id={self.task_id!r}, num_envs={self.num_envs}, device={self.device})"
