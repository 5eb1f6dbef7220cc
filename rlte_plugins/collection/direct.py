"""Direct collection: a rollout buffer allocated once, filled by stepping an rlte env in-process.

Nothing on this path goes through TorchRL's per-step machinery (collector bookkeeping, trajectory ids, spec
checks): the acting module runs over cache-sized chunks of the envs, only the keys the update reads are kept, and
each step is written into the preallocated ``[num_envs, num_steps]`` buffer. A torch-native env is stepped
without any host synchronisation (its partial resets are computed and applied on the device where ``done``);
the CPU families (gymnasium, EnvPool, Atari, Procgen, DMC, MiniGrid) go through ``step_and_maybe_reset``, whose
exact resets they implement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type


def run_chunked(module: Any, td: TensorDictBase, chunk_size: int, keys: Sequence[Any]) -> TensorDictBase:
    """``module(td)`` over chunks of at most ``chunk_size`` of its flattened rows, keeping only ``keys`` (so
    intermediate features are neither kept nor copied); shaped like ``td``. Large activations are memory-bound:
    one pass over 65,536 rows ran several times slower per row than eight passes over 8,192 on a 2-core CPU."""
    flat = td.reshape(-1)
    if flat.shape[0] <= chunk_size:
        return module(td.clone(False)).select(*keys)
    parts = [module(flat[i : i + chunk_size].clone(False)).select(*keys) for i in range(0, flat.shape[0], chunk_size)]
    return torch.cat(parts).reshape(td.shape)


class DirectCollection:
    """``num_steps`` steps of every env of ``env`` with ``actor`` (sampling), into one reused buffer.

    Args:
        env: an rlte env (batched, one batch dimension).
        actor: the acting module; ``keys`` are the outputs kept (intermediate features are dropped).
        num_steps, device: the rollout length and where it lives.
        chunk_size: rows per actor call (:func:`run_chunked`).
    """

    def __init__(
        self,
        env: EnvBase,
        actor: Any,
        num_steps: int,
        device: torch.device,
        keys: Sequence[str] = ("action", "action_log_prob"),
        chunk_size: int = 8192,
    ) -> None:
        from rlte_plugins.envs.torch_native.base import TorchEnv

        self.env, self.actor, self.device = env, actor, device
        self.num_steps, self.keys, self.chunk_size = num_steps, list(keys), chunk_size
        self.frames_per_batch = int(env.batch_size.numel()) * num_steps
        self.native = isinstance(env, TorchEnv)
        # an env that can save its state (torch-native ones) resumes exactly where it was
        self.exact_resume = hasattr(env, "env_state")
        self._td: TensorDictBase | None = None
        self._rollout: TensorDictBase | None = None

    @torch.no_grad()
    def collect(self) -> TensorDictBase:
        """The next ``[num_envs, num_steps]`` batch (the same buffer every call: read it before the next)."""
        td = self.env.reset() if self._td is None else self._td
        with set_exploration_type(ExplorationType.RANDOM):
            for t in range(self.num_steps):
                td = self._act(td.exclude("next"))
                step, td = self._step(td)
                self._store(t, step)
        self._td = td
        assert self._rollout is not None
        return self._rollout

    def _act(self, td: TensorDictBase) -> TensorDictBase:
        return td.update(run_chunked(self.actor, td, self.chunk_size, self.keys))

    def _step(self, td: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
        """``env.step_and_maybe_reset``; for a torch-native env, the same transition without TorchRL's generic
        per-step work and without its host synchronisation (``any_done`` reads a bool off the device every
        step): every env's partial reset is computed and applied where ``done``, on the device."""
        if not self.native:
            return self.env.step_and_maybe_reset(td)
        env = self.env
        nxt = env._step(td)
        step = td.set("next", nxt)
        after = env._reset(TensorDict(_reset=nxt.get("done"), batch_size=env.batch_size, device=self.device))
        return step, after

    def _store(self, t: int, step: TensorDictBase) -> None:
        if self._rollout is None or self._rollout.get("next").keys() != step.get("next").keys():
            self._rollout = step.unsqueeze(1).expand(*step.shape, self.num_steps).clone()
        self._rollout[:, t] = step

    def close(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """The env's state and the observation the next step acts on, where the env can save its state."""
        if not self.exact_resume or self._td is None:
            return {}
        return {"env": self.env.env_state(), "td": self._td.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "env" in state and self.exact_resume:
            self.env.load_env_state(state["env"])
            self._td = TensorDict(state["td"], batch_size=self.env.batch_size, device=self.device)
        else:
            self._td = None  # a fresh reset
        self._rollout = None
