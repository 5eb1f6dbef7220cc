"""Asynchronous collection: worker processes step their own envs with a copy of the acting module while the learner
trains, through TorchRL's ``MultiAsyncCollector`` (IMPALA's actors on one machine).

The workers' weights lag the learner's: they change only when the learner pushes its own (:meth:`AsyncCollection.push`,
TorchRL's ``update_policy_weights_``), and a worker may be halfway through a batch when they arrive (unlike the
paper's actors, which take new weights between unrolls only: V-trace stays exact, as each step stores the
log-probability of the weights that acted). So every frame carries the version of the weights that chose its action
(``"policy_version"``: the learner's update count when they were pushed), stamped by a buffer that travels with the
weights, just before the action is chosen and again just after (``"policy_version_end"``): the workers act on shared
memory the learner writes new weights into, so where the two stamps differ, the action came from one of the two
versions, or from a mix of them (the learner logs the share of such frames; :class:`StampedActor` says why stamps
that agree are exact). The learner measures its policy lag from the first stamp.

A batch is ``[num_envs, num_steps]``: the first ``num_workers`` worker batches to arrive (``num_envs / num_workers``
envs each), as IMPALA's learner dequeues the first unrolls its actors finish. A Ray-backed strategy plugs in beside
this one (:mod:`rlte_plugins.collection.ray`), with the same ``collect`` / ``push`` / ``close`` interface.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.envs import Compose, EnvBase, RewardSum, StepCounter, TransformedEnv

from rlte_plugins.errors import ComponentArgumentError

#: the key each collected frame carries: the learner's update count when the acting weights were pushed (read just
#: before the action is chosen; ``VERSION_END_KEY`` just after)
VERSION_KEY = "policy_version"
VERSION_END_KEY = "policy_version_end"


class VersionStamp(nn.Module):
    """Writes its ``version`` buffer for every row it is shown (an observation with ``event_dims`` dims per row):
    the buffer goes to the workers with the weights, so what it writes is the version of the weights that act.

    Examples:
        >>> import torch
        >>> stamp = VersionStamp(event_dims=3)
        >>> _ = stamp.version.fill_(3)
        >>> stamp(torch.zeros(2, 3, 8, 8)).tolist()
        [3, 3]
    """

    def __init__(self, event_dims: int = 1) -> None:
        super().__init__()
        self.event_dims = event_dims
        self.register_buffer("version", torch.zeros((), dtype=torch.long))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.version.expand(observation.shape[: observation.dim() - self.event_dims]).clone()


def _move_specs(module: nn.Module, device: torch.device) -> None:
    """Move the specs ``module`` holds (random seed actions, exploration bounds) to ``device``: ``.to()`` moves
    parameters and buffers only."""
    from torchrl.data import TensorSpec

    for part in module.modules():
        for name in ("action_spec", "spec", "_spec"):
            spec = part.__dict__.get(name)
            if isinstance(spec, TensorSpec):
                part.__dict__[name] = spec.to(device)


class StampedActor(TensorDictModuleBase):
    """``acting`` between two version stamps: ``policy_version`` read just before the action is chosen and
    ``policy_version_end`` just after (with ``stamped``; the batch keeps ``keys`` of the acting module's outputs).

    ``async`` workers (TorchRL's ``MultiAsyncCollector``) act on the shared-memory tensors of the learner's copy of
    this module, which :meth:`WorkerCollection.push` writes while a worker may be acting: the end stamp first, then
    the weights, then the start stamp, so a frame whose two stamps agree acted with the weights they name. Ray workers
    take new weights in an actor call between unrolls, so their stamps always agree.
    """

    def __init__(self, acting: Any, obs_key: Any, event_dims: int, keys: Sequence[str], stamped: bool = True) -> None:
        super().__init__()
        self.end = VersionStamp(event_dims)
        self.acting = acting
        self.start = VersionStamp(event_dims)
        self.obs_key, self.keys, self.stamped = obs_key, list(keys), stamped
        self.in_keys = list(acting.in_keys)
        self.out_keys = [*self.keys, *([VERSION_KEY, VERSION_END_KEY] if stamped else [])]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        observation = tensordict.get(self.obs_key)
        start = self.start(observation)
        acted = self.acting(tensordict.copy())
        end = self.end(observation)
        tensordict.update(acted.select(*self.keys))
        if self.stamped:
            tensordict.set(VERSION_KEY, start)
            tensordict.set(VERSION_END_KEY, end)
        return tensordict


def worker_env(reference: Mapping[str, Any], num_envs: int, seed: int, device: str) -> EnvBase:
    """The env of one worker, made in its process from the training env's reference (``{"name": ..., **kwargs}`` or
    ``{"factory": "module:name"}``); envs this package does not make get its episode statistics."""
    from rlte_plugins.agents.base import _import_factory, make_env
    from rlte_plugins.collection import is_rlte_env

    where = torch.device(device)
    if "factory" in reference:
        env = _import_factory(reference["factory"], "collection 'async'")(num_envs=num_envs, seed=seed, device=where)
    else:
        env = make_env({**reference, "num_envs": num_envs, "seed": seed, "device": device}, num_envs, seed, where)
    if is_rlte_env(env):
        return env
    statistics = Compose(RewardSum(in_keys=["reward"], out_keys=["episode_reward"]),
                         StepCounter(step_count_key="episode_length"))  # fmt: skip
    return TransformedEnv(env, statistics)


class WorkerCollection:
    """What the worker strategies share (``async``, ``ray``): batches of ``[num_envs, num_steps]`` from
    ``num_workers`` workers that make their own envs and act with a copy of ``actor``, updated by :meth:`push`.

    Args:
        env: the training env (its batch size is the batch's ``num_envs``; the workers make their own).
        actor: the acting module; a copy of it acts in the workers.
        num_steps, device: the unroll length and where the batches live.
        reference: how to make the env again (the agent's ``env_reference()``).
        num_workers: workers; each steps ``num_envs / num_workers`` envs, seeded ``seed + 1 + i``.
        seed: the run's seed.
        keys: the acting module's outputs kept in the batch.
        stamped: keep each frame's version stamps (``policy_version``, ``policy_version_end``) in the batch.

    A subclass names its :attr:`strategy` and its workers' device (:meth:`_worker_device`: the learner's, unless
    overridden) and starts its collector in :meth:`_start`. The workers start at the first :meth:`collect` and stop
    at :meth:`close`. The envs' mid-episode state is not checkpointed: a resumed run starts from fresh workers.
    """

    strategy = ""

    def __init__(
        self,
        env: EnvBase,
        actor: Any,
        num_steps: int,
        device: torch.device,
        *,
        reference: Mapping[str, Any] | None,
        num_workers: int = 1,
        seed: int = 0,
        keys: Sequence[str] = ("action", "action_log_prob"),
        stamped: bool = True,
    ) -> None:
        num_envs = int(env.batch_size.numel())
        if reference is None:
            raise ComponentArgumentError(
                f"collection={self.strategy!r} makes the env again in each worker process: pass the env by name, "
                "mapping or factory, not as an instance"
            )
        if num_workers < 1 or num_envs % num_workers:
            raise ComponentArgumentError(f"collection={self.strategy!r}: num_workers ({num_workers}) must divide the "
                                         f"env's {num_envs} envs")  # fmt: skip
        self.device, self.num_workers = device, num_workers
        self.worker_device = self._worker_device(device)
        self.frames_per_batch = num_envs * num_steps
        per_worker = num_envs // num_workers
        where = str(self.worker_device)
        self._factories = [functools.partial(worker_env, dict(reference), per_worker, seed + 1 + i, where)
                           for i in range(num_workers)]  # fmt: skip
        self._frames_per_worker = per_worker * num_steps
        # the workers act with a copy: the learner's optimiser steps its own weights in place, which workers sharing
        # them would see halfway through a rollout, with no version to tell
        self.acting = copy.deepcopy(actor).to(self.worker_device)
        if self.worker_device != torch.device(device):
            _move_specs(self.acting, self.worker_device)
        obs_key = next(k for k in actor.in_keys if k != "is_init")
        event_dims = len(env.observation_spec[obs_key].shape) - len(env.batch_size)
        self.policy = StampedActor(self.acting, obs_key, event_dims, keys, stamped).to(self.worker_device)
        self._collector: Any = None
        self._iter: Any = None
        self._threads = torch.get_num_threads()

    @property
    def stamp(self) -> VersionStamp:
        """The stamp read before each action (its ``version``: the last version pushed)."""
        return self.policy.start

    def _worker_device(self, device: torch.device) -> torch.device:
        return device

    def _start(self) -> Any:
        """The collector over :attr:`_factories` running :attr:`policy`, each batch one worker's."""
        raise NotImplementedError

    def push(self, actor: nn.Module, version: int) -> None:
        """Send ``actor``'s weights (the learner's, after ``version`` updates) to the workers."""
        # async workers act on these very tensors (TorchRL moves this copy to shared memory; its update only signals
        # the workers), maybe while this writes them: the end stamp first, the weights, the start stamp last
        self.policy.end.version.fill_(version)
        self.acting.load_state_dict(actor.state_dict())
        self.policy.start.version.fill_(version)
        if self._collector is not None:
            self._collector.update_policy_weights_(self.policy)

    def _next(self) -> TensorDictBase:
        """The collector's next batch (started at the first)."""
        if self._collector is None:
            self._threads = torch.get_num_threads()
            self._collector = self._start()
            self._iter = iter(self._collector)
        return next(self._iter).exclude("collector")

    def collect(self) -> TensorDictBase:
        parts = [self._next() for _ in range(self.num_workers)]
        batch = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        return batch.to(self.device)

    def close(self) -> None:
        if self._collector is not None:
            self._collector.shutdown()
            self._collector, self._iter = None, None
            torch.set_num_threads(self._threads)  # TorchRL's shutdown resets the process's thread count

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.close()  # the next batch comes from fresh workers


class AsyncCollection(WorkerCollection):
    """Batches of ``[num_envs, num_steps]`` from ``num_workers`` processes of TorchRL's ``MultiAsyncCollector``
    running a lagging copy of ``actor`` on ``device``, stamped with the version of its weights (the arguments are
    :class:`WorkerCollection`'s)."""

    strategy = "async"

    def _start(self) -> Any:
        from torchrl.collectors import MultiAsyncCollector

        return MultiAsyncCollector(
            self._factories,
            self.policy,
            frames_per_batch=self._frames_per_worker,
            total_frames=-1,
            device=self.device,
            num_threads=self._threads,  # the learner keeps its threads (TorchRL's default takes them away)
            auto_register_policy_transforms=False,
        )
