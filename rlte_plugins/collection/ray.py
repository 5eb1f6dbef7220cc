"""Collection on a Ray cluster: remote workers step their own envs with a copy of the acting module, through TorchRL's
``RayCollector`` (one TorchRL ``Collector`` per Ray actor), on this machine or on the nodes of a cluster.

The workers get what :class:`~rlte_plugins.collection.asynchronous.WorkerCollection` gives any worker: an env factory
made from the agent's ``env_reference()`` (never an env instance) and a copy of the acting module (never the agent).
The learner's weights reach them through TorchRL's weight synchronisation (``update_policy_weights_`` over its Ray
weight-sync scheme), in one of two ways:

- synchronous (``lagged=False``; on- and off-policy agents): the learner's weights are pushed before every batch and
  the batch is the workers' next unrolls, gathered together; every frame was acted by the learner's current weights,
  as with in-process collection.
- asynchronous (``lagged=True``; IMPALA): the workers keep collecting while the learner trains; the learner pushes its
  weights after each update (:meth:`RayCollection.push`) and a batch is the first ``num_workers`` worker unrolls to
  arrive, every frame stamped with the version of the weights that acted (``policy_version``, as ``async``).

Ray starts at the first batch: connected to ``ray_address`` (``None``: the cluster in ``RAY_ADDRESS``, which ``ray job
submit`` sets, else a new local instance; ``"auto"``: the cluster this machine joined with ``ray start``; or any
address ``ray.init`` takes, such as ``ray://head:10001``), unless Ray is already initialised in this process. A Ray
runtime this collection started is shut down by :meth:`~WorkerCollection.close`; one already running is left
running. Workers act on the CPU, each a Ray actor asking for ``num_cpus`` CPUs (the cluster places them); batches
come back to the learner's device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import TensorDictReplayBuffer
from torchrl.envs import EnvBase

from rlte_plugins.collection.asynchronous import WorkerCollection
from rlte_plugins.errors import CheckpointError, ComponentArgumentError


def require_ray(owner: str, what: str = "collection='ray'") -> None:
    """Raises a clear error naming ``owner`` and ``what`` needs Ray when Ray is not installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ComponentArgumentError(f"{owner}: {what} needs Ray: pip install 'rlte-plugins[ray]'")


class RayWorker(Collector):
    """TorchRL's ``Collector`` as a Ray worker actor, with a one-line ``repr``: Ray prints an actor's ``repr`` as the
    prefix of its log lines, and the ``Collector``'s spans its whole env and policy."""

    def __repr__(self) -> str:
        return f"RayWorker({self.worker_idx})"


class RayCollection(WorkerCollection):
    """Batches of ``[num_envs, num_steps]`` from ``num_workers`` Ray actors running a copy of ``actor``.

    Args:
        env, actor, num_steps, device, reference, num_workers, seed, keys: as
            :class:`~rlte_plugins.collection.asynchronous.WorkerCollection`.
        lagged: collect asynchronously with weights pushed by the learner (:meth:`push`) and stamped on every frame;
            otherwise the weights of ``actor`` (the learner's module, updated in place) are pushed before every batch.
        ray_address: the Ray cluster to join (see the module docstring).
        num_cpus: CPUs each worker actor asks the cluster for.

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, collection="ray",
        ...                           num_workers=2).build()
        >>> collection = agent.collection  # Ray and the workers start at the first agent.collect()
        >>> type(collection).__name__, collection.frames_per_batch, collection.lagged
        ('RayCollection', 32, False)
    """

    strategy = "ray"

    def __init__(
        self,
        env: EnvBase,
        actor: Any,
        num_steps: int,
        device: torch.device,
        *,
        reference: Mapping[str, Any] | None,
        lagged: bool = False,
        ray_address: str | None = None,
        num_cpus: float = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(env, actor, num_steps, device, reference=reference, stamped=lagged, **options)
        self.lagged, self.ray_address, self.num_cpus = lagged, ray_address, num_cpus
        self.source = actor

    def _worker_device(self, device: torch.device) -> torch.device:
        return torch.device("cpu")  # the nodes of a cluster need not have the learner's accelerator

    def _start(self) -> Any:
        require_ray("agent", "collection='ray'")
        import ray
        from torchrl._comm.ray_runtime import _RayRuntimeLease  # private in torchrl 0.14.1: RayCollector's own count
        from torchrl.collectors.distributed import RayCollector

        # TorchRL's count of the Ray runtime's users (its collectors, its Ray replay buffers): Ray is shut down when
        # the last one that found it stopped ends. Held here to check the cluster before starting the workers.
        lease = _RayRuntimeLease.acquire({"address": self.ray_address})
        try:
            cpus, needed = ray.cluster_resources().get("CPU", 0), self.num_workers * self.num_cpus
            if cpus < needed:  # the workers would wait for CPUs forever
                raise ComponentArgumentError(
                    f"collection='ray': {self.num_workers} workers need {needed:g} CPUs but the Ray cluster has "
                    f"{cpus:g}: lower num_workers, or add nodes to the cluster (ray start --address=...)"
                )
            collector = RayCollector(
                self._factories,
                self.policy,
                # one worker's unroll a batch when lagged; every worker's, gathered, otherwise
                frames_per_batch=self._frames_per_worker * (1 if self.lagged else self.num_workers),
                total_frames=2**62,  # no end: the run loop decides when to stop
                device=self.worker_device,
                collector_class=RayWorker,
                sync=not self.lagged,
                ray_init_config={"address": self.ray_address},
                remote_configs={"num_cpus": self.num_cpus},
                collector_kwargs={"trust_policy": True, "auto_register_policy_transforms": False},
            )
        finally:
            lease.release()
        collector.update_policy_weights_(self.policy)  # the weights of the last push, before the first unroll
        return collector

    def collect(self) -> TensorDictBase:
        if self.lagged:
            return super().collect()
        # synchronous: the learner's weights now, then one unroll of every worker (stacked [workers, envs, steps])
        self.push(self.source, int(self.stamp.version) + 1)  # the version counts the batches
        return self._next().flatten(0, 1).to(self.device)


class ReplayActor(TensorDictReplayBuffer):
    """TorchRL's ``TensorDictReplayBuffer`` as a Ray actor, with a one-line ``repr`` (see :class:`RayWorker`) and a
    checkpoint state cut to the filled rows inside the actor (only they travel through Ray)."""

    def __repr__(self) -> str:
        return f"ReplayActor({len(self)})"

    def filled_state_dict(self) -> dict[str, Any]:
        """``state_dict`` carrying rows ``[0, len)`` of a buffer not yet full (the writer fills slots in order), as
        the ``replay`` storage's checkpoints do."""
        state = self.state_dict()
        storage, stored = self._storage, state["_storage"]
        if stored.get("initialized"):
            if len(storage) < storage.max_size:
                stored["_storage"] = storage._storage[: len(storage)].clone().state_dict()
            stored["capacity"] = storage.max_size
        return state

    def load_filled_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`filled_state_dict`'s state (or a state carrying the whole capacity)."""
        stored = state["_storage"]
        if stored.get("initialized"):
            data = TensorDict().load_state_dict(stored["_storage"], strict=False)
            capacity = stored.get("capacity", data.shape[0])
            if capacity != self._storage.max_size:
                raise CheckpointError(f"ray_replay: the checkpoint's buffer holds capacity={capacity}, this one "
                                      f"{self._storage.max_size}: build it with capacity={capacity}")  # fmt: skip
            self._storage._init(data[0])  # TorchRL allocates the capacity-sized storage from one transition
            self._storage._storage[: data.shape[0]].update_(data)
        # the rows are in place: TorchRL's load restores the fill level, the writer, the sampler and the generator
        rest = {"_storage": {}, "initialized": stored.get("initialized", False), "_len": stored.get("_len", 0)}
        self.load_state_dict({**state, "_storage": rest})


class RayReplay:
    """The transitions of an off-policy agent's ``replay`` storage kept in a Ray actor (TorchRL's
    ``TensorDictReplayBuffer(..., service_backend="ray")``, placed by Ray on any node): the learner
    adds each collected batch and samples from it through Ray. Same interface as the storage it replaces (``add``,
    ``sample``, ``len``, ``batch_size``, ``state_dict`` / ``load_state_dict``); the same capacity, batch size and
    sampler seed.

    Args:
        storage: a built ``replay`` storage in memory (its options; it then holds nothing).
        owner: names the agent in errors.
        ray_address: the Ray cluster to join (see the module docstring).
        device: where sampled batches go when the storage names no device (the agent's).

    The actor starts at the first :meth:`add` (or :meth:`load_state_dict`) and ends at :meth:`close`.
    """

    def __init__(self, storage: Any, owner: str, ray_address: str | None = None, device: Any = "cpu") -> None:
        from rlte_plugins.storages.replay import DictReplayStorage, ReplayStorage

        if type(storage) not in (ReplayStorage, DictReplayStorage) or storage.memmap:
            name = getattr(storage, "name", type(storage).__name__)
            raise ComponentArgumentError(f"{owner}: ray_replay keeps the transitions of a 'replay' or "
                                         f"'dict_replay' storage in memory (memmap=False) in a Ray actor, not of "
                                         f"{name!r}")  # fmt: skip
        self.owner = owner
        self.capacity, self.batch_size, self.seed = storage.capacity, storage.batch_size, storage.seed
        self.device = torch.device(storage.device or device)
        self.ray_address = ray_address
        self.buffer: Any = None
        self._pending: dict[str, Any] | None = None  # a loaded state, sent to the actor when it starts
        self._closed = False

    def _require(self) -> Any:
        if self._closed:
            raise RuntimeError(f"{self.owner}: the Ray replay buffer ended with close() and its transitions with it: "
                               "save the agent before closing it")  # fmt: skip
        if self.buffer is None:
            import functools

            from torchrl.data import LazyTensorStorage, RandomSampler

            require_ray(self.owner, "ray_replay")
            options = {"ray_init_config": {"address": self.ray_address}, "remote_config": {"num_cpus": 0}}
            self.buffer = ReplayActor(
                storage=functools.partial(LazyTensorStorage, self.capacity),
                sampler=RandomSampler,
                batch_size=self.batch_size,
                generator=None if self.seed is None else torch.Generator().manual_seed(int(self.seed)),
                service_backend="ray",
                service_backend_options=options,
            )
            if self._pending is not None:
                self.buffer.client().load_filled_state_dict(self._pending)
                self._pending = None
        return self.buffer

    def add(self, batch: TensorDictBase) -> None:
        """Store a batch of transitions (any batch shape; flattened; only the newest ``capacity`` if longer)."""
        self._require().extend(batch.reshape(-1)[-self.capacity :].cpu())

    def sample(self, batch_size: int | None = None) -> TensorDictBase:
        """A batch drawn uniformly (with replacement), on the agent's device."""
        if not len(self):
            raise RuntimeError("the Ray replay buffer is empty: add transitions before sampling")
        return self._require().sample(batch_size or self.batch_size).to(self.device)

    def __len__(self) -> int:
        if self.buffer is None:
            return 0 if self._pending is None else int(self._pending["_storage"].get("_len", 0))
        return len(self.buffer)

    def state_dict(self) -> dict[str, Any]:
        """The remote buffer's state (transitions, writer, sampler, generator), cut to the filled rows in its actor;
        a loaded state not yet sent to an actor as it was loaded (saving starts no Ray)."""
        if self.buffer is None and self._pending is not None and not self._closed:
            return self._pending
        return self._require().client().filled_state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Keep ``state`` for the actor, which gets it when it starts (at the first add or sample): loading a
        checkpoint to evaluate, export or play starts no Ray."""
        if self.buffer is not None:
            self.buffer.client().load_filled_state_dict(state)
        else:
            self._pending = state

    def close(self) -> None:
        """End the actor (and Ray, where this buffer started it); the transitions are gone."""
        if self.buffer is not None:
            self.buffer.shutdown()
            self.buffer = None
            self._closed = True
