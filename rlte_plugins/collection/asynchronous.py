"""Asynchronous collection: worker processes step their own envs with a copy of the acting module while the learner
trains, through TorchRL's ``MultiAsyncCollector`` (IMPALA's actors on one machine).

The workers' weights lag the learner's: they change only when the learner pushes its own (:meth:`AsyncCollection.push`,
TorchRL's ``update_policy_weights_``), and a worker may be halfway through a batch when they arrive (unlike the
paper's actors, which take new weights between unrolls only: V-trace stays exact, as each step stores the
log-probability of the weights that acted). So every frame carries the version of the weights that chose its action
(``"policy_version"``: the learner's update count when they were pushed), stamped by a buffer that travels with the
weights, just before the action is chosen and again just after (``"policy_version_end"``): TorchRL's workers apply
new weights from a thread of their own, so where the two stamps differ, the action came from one of the two versions
(the learner logs the share of such frames). The learner measures its policy lag from the first stamp.

A batch is ``[num_envs, num_steps]``: the first ``num_workers`` worker batches to arrive (``num_envs / num_workers``
envs each), as IMPALA's learner dequeues the first unrolls its actors finish. A Ray-backed strategy plugs in beside
this one, with the same ``collect`` / ``push`` / ``close`` interface.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
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


class AsyncCollection:
    """Batches of ``[num_envs, num_steps]`` from ``num_workers`` processes running a lagging copy of ``actor``.

    Args:
        env: the training env (its batch size is the batch's ``num_envs``; the workers make their own).
        actor: the acting module; a copy of it acts in the workers, updated by :meth:`push`.
        num_steps, device: the unroll length and where the batches (and the workers' policies) live.
        reference: how to make the env again (the agent's ``env_reference()``).
        num_workers: worker processes; each steps ``num_envs / num_workers`` envs, seeded ``seed + 1 + i``.
        seed: the run's seed.
        keys: the acting module's outputs kept in the batch.

    The processes start at the first :meth:`collect` and stop at :meth:`close`. The envs' mid-episode state is not
    checkpointed: a resumed run starts from fresh workers.
    """

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
    ) -> None:
        num_envs = int(env.batch_size.numel())
        if reference is None:
            raise ComponentArgumentError(
                "collection='async' makes the env again in each worker process: pass the env by name, mapping or "
                "factory, not as an instance"
            )
        if num_workers < 1 or num_envs % num_workers:
            raise ComponentArgumentError(f"collection='async': num_workers ({num_workers}) must divide the env's "
                                         f"{num_envs} envs")  # fmt: skip
        self.device, self.num_workers = device, num_workers
        self.frames_per_batch = num_envs * num_steps
        per_worker = num_envs // num_workers
        self._factories = [functools.partial(worker_env, dict(reference), per_worker, seed + 1 + i, str(device))
                           for i in range(num_workers)]  # fmt: skip
        self._frames_per_worker = per_worker * num_steps
        # the workers act with a copy: the learner's optimiser steps its own weights in place, which workers sharing
        # them would see halfway through a rollout, with no version to tell
        self.acting = copy.deepcopy(actor)
        obs_key = next(k for k in actor.in_keys if k != "is_init")
        self.stamp = VersionStamp(len(env.observation_spec[obs_key].shape) - len(env.batch_size)).to(device)
        self.policy = TensorDictSequential(
            TensorDictModule(self.stamp, [obs_key], [VERSION_KEY]),
            self.acting,
            TensorDictModule(self.stamp, [obs_key], [VERSION_END_KEY]),
            selected_out_keys=[*keys, VERSION_KEY, VERSION_END_KEY],
        )
        self._collector: Any = None
        self._iter: Any = None
        self._threads = torch.get_num_threads()

    def push(self, actor: nn.Module, version: int) -> None:
        """Send ``actor``'s weights (the learner's, after ``version`` updates) to the workers."""
        self.acting.load_state_dict(actor.state_dict())  # copied in place: the workers get it through TorchRL
        self.stamp.version.fill_(version)
        if self._collector is not None:
            self._collector.update_policy_weights_(self.policy)

    def collect(self) -> TensorDictBase:
        if self._collector is None:
            from torchrl.collectors import MultiAsyncCollector

            self._threads = torch.get_num_threads()
            self._collector = MultiAsyncCollector(
                self._factories,
                self.policy,
                frames_per_batch=self._frames_per_worker,
                total_frames=-1,
                device=self.device,
                num_threads=self._threads,  # the learner keeps its threads (TorchRL's default takes them away)
                auto_register_policy_transforms=False,
            )
            self._iter = iter(self._collector)
        parts = [next(self._iter).exclude("collector") for _ in range(self.num_workers)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 0)

    def close(self) -> None:
        if self._collector is not None:
            self._collector.shutdown()
            self._collector, self._iter = None, None
            torch.set_num_threads(self._threads)  # TorchRL's shutdown resets the process's thread count

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.close()  # the next batch comes from fresh workers
