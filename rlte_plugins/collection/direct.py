"""Direct collection: a batch filled by stepping an rlte env in-process.

Nothing on this path goes through TorchRL's per-step machinery (collector bookkeeping, trajectory ids, spec
checks). Where the agent hands a plain-tensor actor (a policy whose parts all have a tensor path) and the env
steps on plain tensors (every rlte family: ``step_tensors``), no TensorDict is built per step at all: each step's
tensors are kept and stacked into the ``[num_envs, num_steps]`` batch once, at the end (for that moment a batch's
memory is held twice: the steps, then the batch). Otherwise the acting module runs over cache-sized chunks of
the envs on TensorDicts and each step is written into a preallocated buffer. A torch-native env is stepped without
any host synchronisation (its partial resets are computed and applied on the device where ``done``); the CPU
families implement exact resets of the envs that finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase, TransformedEnv
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


#: ``observations -> outputs``: a plain-tensor actor; its outputs (``"action"``, ``"action_log_prob"``, and any
#: observation it rewrites, e.g. normalised) are stored beside the observations it read
TensorActor = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def tensor_chunks(fn: TensorActor, obs: dict[str, torch.Tensor], chunk_size: int) -> dict[str, torch.Tensor]:
    """``fn(obs)`` over row chunks of at most ``chunk_size`` (see :func:`run_chunked`)."""
    rows = next(iter(obs.values())).shape[0]
    if rows <= chunk_size:
        return fn(obs)
    parts = [fn({k: v[i : i + chunk_size] for k, v in obs.items()}) for i in range(0, rows, chunk_size)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class DirectCollection:
    """``num_steps`` steps of every env of ``env`` with ``actor`` (sampling).

    Args:
        env: an rlte env (batched, one batch dimension).
        actor: the acting module; ``keys`` are the outputs kept (intermediate features are dropped).
        num_steps, device: the rollout length and where it lives.
        chunk_size: rows per actor call (:func:`run_chunked`).
        tensor_actor: the same policy on plain tensors (:data:`TensorActor`); used where the env steps on plain
            tensors too (``env.tensor_steps``), otherwise ``actor`` is.
    """

    def __init__(
        self,
        env: EnvBase,
        actor: Any,
        num_steps: int,
        device: torch.device,
        keys: Sequence[str] = ("action", "action_log_prob"),
        chunk_size: int = 8192,
        tensor_actor: TensorActor | None = None,
    ) -> None:
        from rlte_plugins.envs.torch_native.base import TorchEnv

        self.env, self.actor, self.device = env, actor, device
        self.num_steps, self.keys, self.chunk_size = num_steps, list(keys), chunk_size
        self.frames_per_batch = int(env.batch_size.numel()) * num_steps
        self.native = isinstance(env, TorchEnv)
        # an env that can save its state (torch-native ones) resumes exactly where it was
        self.exact_resume = hasattr(env, "env_state")
        # a TransformedEnv forwards attribute reads to its base env, whose tensor steps would skip the transforms
        # (and type checks, when asked for, run on the TensorDict path)
        plain_env = (
            not isinstance(env, TransformedEnv)
            and getattr(env, "tensor_steps", False)
            and not getattr(env, "run_type_checks", False)
        )
        self.tensor_actor = tensor_actor if plain_env else None
        self._td: TensorDictBase | None = None
        self._obs: dict[str, torch.Tensor] | None = None  # what the next step acts on (plain-tensor path)
        self._rollout: TensorDictBase | None = None
        self._layout: tuple[list[str], list[str]] | None = None

    @property
    def plain_tensors(self) -> bool:
        """Whether batches are collected on plain tensors (no TensorDict per step)."""
        return self.tensor_actor is not None

    @torch.no_grad()
    def collect(self) -> TensorDictBase:
        """The next ``[num_envs, num_steps]`` batch (valid until the next call: read it before collecting again)."""
        if self.tensor_actor is not None:
            return self._collect_tensors(self.tensor_actor)
        td = self.env.reset() if self._td is None else self._td
        with set_exploration_type(ExplorationType.RANDOM):
            for t in range(self.num_steps):
                td = self._act(td.exclude("next"))
                step, td = self._step(td)
                self._store(t, step)
        self._td = td
        assert self._rollout is not None
        return self._rollout

    def _collect_tensors(self, actor: TensorActor) -> TensorDictBase:
        env, chunk = self.env, self.chunk_size
        obs = env.reset_tensors() if self._obs is None else self._obs
        roots: list[dict[str, torch.Tensor]] = []
        nexts: list[dict[str, torch.Tensor]] = []
        with set_exploration_type(ExplorationType.RANDOM):
            for _ in range(self.num_steps):
                out = tensor_chunks(actor, obs, chunk)
                nxt, after = env.step_tensors(out["action"])
                roots.append({**obs, **out})
                nexts.append(nxt)
                obs = after
        self._obs = obs
        layout = (list(roots[0]), list(nexts[0]))
        if self._rollout is not None and layout == self._layout:  # into the last batch's buffers: allocated once
            _stacked(roots, self._rollout)
            _stacked(nexts, self._rollout.get("next"))
            return self._rollout
        self._layout = layout
        batch = torch.Size([*env.batch_size, self.num_steps])
        nxt = TensorDict._new_unsafe(_stacked(nexts), batch_size=batch, device=self.device)
        self._rollout = TensorDict._new_unsafe({**_stacked(roots), "next": nxt}, batch_size=batch, device=self.device)
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
        if not self.exact_resume or (self._td is None and self._obs is None):
            return {}
        return {"env": self.env.env_state(), "td": dict(self._obs) if self._td is None else self._td.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._td = self._obs = None  # a fresh reset, unless the env's state was saved
        if "env" in state and self.exact_resume:
            self.env.load_env_state(state["env"])
            if self.tensor_actor is not None:
                self._obs = {k: v.to(self.device) for k, v in state["td"].items() if isinstance(v, torch.Tensor)}
            else:
                self._td = TensorDict(state["td"], batch_size=self.env.batch_size, device=self.device)
        self._rollout = None


def _stacked(steps: list[dict[str, Any]], into: TensorDictBase | None = None) -> dict[str, Any]:
    """Per-step ``[num_envs, ...]`` tensors stacked into ``[num_envs, num_steps, ...]``, written into ``into``'s
    tensors where given (one copy per batch either way)."""
    if into is None:
        return {k: torch.stack([s[k] for s in steps], 1) for k in steps[0]}
    return {k: torch.stack([s[k] for s in steps], 1, out=into.get(k)) for k in steps[0]}
