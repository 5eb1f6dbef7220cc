"""Off-policy replay on TorchRL replay buffers: uniform, n-step and prioritized.

Data is added as the collectors produce it, ``[num_envs, T]`` (or ``[T]`` / ``[num_envs]`` for one step), with
the usual ``("next", ...)`` entries; sampling returns flat batches. TensorDicts hold nested and dict
observations natively, so the ``dict_*`` names are the same storages (kept for users coming from frameworks
where dict observations needed their own buffer).
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import LazyMemmapStorage, LazyTensorStorage, RandomSampler, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import Sampler

from rlte_plugins.errors import CheckpointError, ComponentArgumentError, positive_int
from rlte_plugins.optim.schedules import Schedule


class ReplayStorage:
    """Uniform experience replay: a TorchRL ``TensorDictReplayBuffer`` over ``LazyTensorStorage`` (in memory,
    on ``device``) or ``LazyMemmapStorage`` (memory-mapped files: for large pixel buffers).

    Args:
        capacity: transitions kept (oldest overwritten first).
        batch_size: default size of :meth:`sample`.
        device: where :meth:`sample` delivers batches and, without ``memmap``, where the buffer lives (default:
            the agent's device, else CPU).
        memmap: keep the transitions in one file per entry under ``scratch_dir``, read through host memory
            (TorchRL maps files on the CPU only); sampled batches are then moved to ``device``.
        scratch_dir: directory of the memmap files, kept after the run; ``None``: a new temporary directory,
            deleted with the storage.
        seed: seeds the sampler's generator (sampling is then reproducible).

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> rb = rlte_plugins.make("storage", "replay", capacity=100, batch_size=4, seed=0).build()
        >>> rb.add(TensorDict(observation=torch.randn(2, 10, 3), batch_size=[2, 10]))  # [num_envs, T]
        >>> len(rb), rb.sample()["observation"].shape
        (20, torch.Size([4, 3]))
    """

    name = "replay"

    def __init__(
        self,
        capacity: int = 1_000_000,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        memmap: bool = False,
        scratch_dir: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.capacity = positive_int(self._owner(), "capacity", capacity)
        self.batch_size = positive_int(self._owner(), "batch_size", batch_size)
        self.device, self.memmap, self.scratch_dir, self.seed = device, memmap, scratch_dir, seed
        self.buffer: TensorDictReplayBuffer | None = None

    def _owner(self) -> str:
        return f"storage {self.name!r}"

    def _storage(self, device: Any) -> Any:
        if self.memmap:
            # without a directory TorchRL maps anonymous memory: the buffer would sit in RAM, not on disk
            temporary = self.scratch_dir is None
            scratch_dir = tempfile.mkdtemp(prefix="rlte-replay-") if temporary else self.scratch_dir
            return LazyMemmapStorage(self.capacity, scratch_dir=scratch_dir, device=device, auto_cleanup=temporary)
        return LazyTensorStorage(self.capacity, device=device)

    def _generator(self) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator().manual_seed(int(self.seed))

    def _make_buffer(self, device: Any) -> TensorDictReplayBuffer:
        return TensorDictReplayBuffer(
            storage=self._storage(device),
            sampler=RandomSampler(),
            batch_size=self.batch_size,
            generator=self._generator(),
        )

    def build(self, device: str | torch.device | None = None) -> ReplayStorage:
        self._device = torch.device(self.device or device or "cpu")
        # TorchRL refuses memory maps off the CPU: the files are read on the host, batches moved in sample()
        self.buffer = self._make_buffer(torch.device("cpu") if self.memmap else self._device)
        return self

    def _require(self) -> TensorDictReplayBuffer:
        if self.buffer is None:
            raise RuntimeError(f"{self._owner()} is not built: call .build() first")
        return self.buffer

    def _extend(self, flat: TensorDictBase) -> None:
        # TorchRL writes a batch longer than the capacity to repeated slots, and torch leaves the winner of repeated
        # index writes undefined: stored transitions mixed fields of different steps. Only the newest ones stay.
        self._require().extend(flat[-self.capacity :])

    def add(self, batch: TensorDictBase) -> None:
        """Store a batch of transitions (any batch shape; flattened)."""
        self._extend(batch.reshape(-1))

    def sample(self, batch_size: int | None = None) -> TensorDictBase:
        """A batch drawn uniformly (with replacement) from what is stored."""
        buffer = self._require()
        if len(buffer) == 0:
            raise RuntimeError(f"{self._owner()} is empty: add transitions before sampling")
        batch = buffer.sample(batch_size or self.batch_size)
        return batch.to(self._device) if self.memmap else batch

    def __len__(self) -> int:
        return 0 if self.buffer is None else len(self.buffer)

    def state_dict(self) -> dict[str, Any]:
        return self._require().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        buffer = self._require()
        stored = state["_storage"]
        if self.memmap and not buffer.storage.initialized and stored["initialized"]:
            # TorchRL loads into an empty memmap storage as anonymous memory (nothing in scratch_dir): writing one
            # transition first creates the files, which the load then fills
            buffer.storage.set(0, TensorDict().load_state_dict(stored["_storage"], strict=False)[0])
        buffer.load_state_dict(state)


class DictReplayStorage(ReplayStorage):
    """Uniform replay for dict observations (identical to ``replay``: TensorDicts nest natively)."""

    name = "dict_replay"


class NStepReplayStorage(ReplayStorage):
    """Replay of n-step transitions: ``("next", "reward")`` becomes ``sum_k gamma^k r_{t+k}`` over up to ``n``
    steps of the *same* env, stopping at the end of an episode; ``("next", obs)`` is the observation reached,
    ``("next", "done" / "terminated" / "truncated")`` the end flags of the window's last step,
    ``steps_to_next_obs`` how many steps that took and ``gamma`` the matching discount ``gamma**steps``
    (TorchRL's value estimators read these: no bootstrap after a termination, ``gamma**steps`` times the value of
    the truncated observation after a truncation). The original reward is kept as ``("next", "original_reward")``.

    Built on TorchRL's ``MultiStepTransform``: add data as ``[num_envs, T]`` (the collector's layout; time
    last); the last ``n`` steps of each env are held back until the following add completes them.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> rb = rlte_plugins.make("storage", "nstep_replay", n=2, gamma=0.5, capacity=10).build()
        >>> flag = torch.zeros(1, 4, 1, dtype=torch.bool)
        >>> nxt = TensorDict(observation=torch.ones(1, 4, 1), reward=torch.ones(1, 4, 1), done=flag,
        ...                  terminated=flag, truncated=flag, batch_size=[1, 4])
        >>> rb.add(TensorDict(observation=torch.zeros(1, 4, 1), next=nxt, batch_size=[1, 4]))
        >>> len(rb), rb.buffer[:]["next", "reward"].flatten().tolist()  # 1 + 0.5 * 1; two held back
        (2, [1.5, 1.5])
    """

    name = "nstep_replay"

    def __init__(
        self,
        n: int = 3,
        gamma: float = 0.99,
        capacity: int = 1_000_000,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        memmap: bool = False,
        scratch_dir: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(capacity, batch_size, device, memmap, scratch_dir, seed)
        self.n = positive_int(self._owner(), "n", n)
        if not 0.0 <= gamma <= 1.0:
            raise ComponentArgumentError(f"{self._owner()}: gamma must be in [0, 1], got {gamma!r}")
        self.gamma = float(gamma)

    def _make_buffer(self, device: Any) -> TensorDictReplayBuffer:
        from torchrl.envs.transforms import MultiStepTransform

        # applied here, before the buffer, so that what is stored is flat transitions. With its default done_keys
        # the transform leaves the end flags at step t while moving ("next", obs) to the window's end, so the n-1
        # steps before a termination would bootstrap from the terminal observation; with none listed, the flags
        # move with the observation (the windows are still cut at "done", read before the move).
        self._multistep = MultiStepTransform(n_steps=self.n, gamma=self.gamma, done_keys=[])
        return super()._make_buffer(device)

    def add(self, batch: TensorDictBase) -> None:
        """Store ``[num_envs, T]`` (or ``[T]``) transitions; every env's steps must be consecutive in time."""
        if batch.ndim == 0 or batch.ndim > 2:
            raise ComponentArgumentError(
                f"{self._owner()} needs data shaped [num_envs, T] or [T] (time last), got batch size "
                f"{list(batch.batch_size)}"
            )
        self._require()
        pending = self._multistep._buffer
        if pending is not None and batch.device is not None and pending.device != batch.device:
            self._multistep._buffer = pending.to(batch.device)  # restored from a checkpoint onto another device
        done = self._multistep.inv(batch)
        if self._multistep._buffer is not None:
            # the held-back steps are views of `batch`: a collector that refills one preallocated rollout in place
            # would otherwise rewrite them before the next add completes their windows
            self._multistep._buffer = self._multistep._buffer.clone()
        if done is not None and done.numel():
            self._extend(done.reshape(-1))

    def state_dict(self) -> dict[str, Any]:
        # the transform holds back the last n steps of each env until the next add completes their windows: without
        # them a resumed run would never store those steps nor any window crossing the checkpoint. That buffer is
        # all it keeps between calls (n and gamma come from the constructor; they are saved to refuse a mismatch).
        pending = self._multistep._buffer if self.buffer is not None else None
        return {**super().state_dict(), "nstep_pending": None if pending is None else pending.state_dict(),
                "nstep": {"n": self.n, "gamma": self.gamma}}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        pending = state.pop("nstep_pending", None)
        saved = state.pop("nstep", None)
        if saved is not None and (saved["n"], saved["gamma"]) != (self.n, self.gamma):
            # stored transitions carry rewards summed over n steps with gamma: other values would mix two returns
            raise CheckpointError(
                f"{self._owner()}: the checkpoint's buffer holds {saved['n']}-step returns with "
                f"gamma={saved['gamma']}, this storage makes {self.n}-step returns with gamma={self.gamma}"
            )
        super().load_state_dict(state)
        self._multistep._buffer = None if pending is None else TensorDict().load_state_dict(pending, strict=False)


class SumTreeSampler(Sampler):
    """Proportional prioritized sampling in torch ops, behind TorchRL's ``Sampler`` interface.

    TorchRL's own ``PrioritizedSampler`` needs its C++ extension, which does not load with this torch; this one
    keeps a float64 sum tree in a flat tensor on ``device`` (CPU or GPU): an update rewrites the touched leaves
    and their ancestors level by level, a batch of draws descends the tree together (``log2(capacity)`` steps).
    New transitions get the largest priority seen so far. Samples carry ``"priority_weight"``, the importance
    weight ``(p_i / p_min) ** -beta`` (= ``(N P(i)) ** -beta`` normalised by its largest value).
    """

    def __init__(
        self, capacity: int, alpha: float, beta: float, eps: float = 1e-6, device: str | torch.device = "cpu"
    ) -> None:
        self.capacity, self.alpha, self.beta, self.eps = int(capacity), float(alpha), float(beta), float(eps)
        self.device = torch.device(device)
        self._leaves = 1 << max(0, (self.capacity - 1).bit_length())
        self._depth = self._leaves.bit_length() - 1
        self._empty()

    def _empty(self) -> None:
        self.tree = torch.zeros(2 * self._leaves, dtype=torch.float64, device=self.device)
        self.max_priority = 1.0

    def _set(self, index: torch.Tensor, value: torch.Tensor) -> None:
        nodes = index.to(self.device, torch.long).reshape(-1) + self._leaves
        self.tree[nodes] = value.to(self.device, torch.float64).reshape(-1).expand_as(nodes)
        for _ in range(self._depth):
            nodes = torch.unique(nodes // 2)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def priorities(self, count: int) -> torch.Tensor:
        """``p_i ** alpha`` of the first ``count`` slots."""
        return self.tree[self._leaves : self._leaves + count]

    def extend(self, index: torch.Tensor) -> None:
        index = torch.as_tensor(index, device=self.device).reshape(-1)
        self._set(index, torch.full(index.shape, self.max_priority**self.alpha, dtype=torch.float64))

    def add(self, index: int) -> None:
        self.extend(torch.as_tensor([index]))

    def update_priority(self, index: Any, priority: Any, *, storage: Any = None) -> None:
        index = torch.as_tensor(index, device=self.device).reshape(-1)
        priority = torch.as_tensor(priority, device=self.device, dtype=torch.float64).abs().reshape(-1) + self.eps
        priority = priority.expand_as(index) if priority.numel() == 1 else priority
        self.max_priority = max(self.max_priority, float(priority.max()))
        self._set(index, priority**self.alpha)

    def sample(self, storage: Any, batch_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        count = len(storage)
        if count == 0:
            raise RuntimeError("cannot sample from an empty prioritized replay")
        total = self.tree[1]
        rng = self._rng
        # drawn where the buffer's generator lives (the CPU) and moved: a seeded buffer samples reproducibly on any
        # device (the global CUDA generator is in no checkpoint of the buffer), and resumes with its saved state
        device = self.device if rng is None else rng.device
        u = torch.rand(batch_size, dtype=torch.float64, device=device, generator=rng).to(self.device)
        mass = u * total * (1 - 1e-12)
        node = torch.ones(batch_size, dtype=torch.long, device=self.device)
        for _ in range(self._depth):
            left = self.tree[2 * node]
            right = mass >= left
            mass = torch.where(right, mass - left, mass)
            node = 2 * node + right.long()
        index = (node - self._leaves).clamp_max(count - 1)
        p = self.tree[index + self._leaves]
        p_min = self.priorities(count).min()
        weight = (p / p_min).pow(-self.beta).float()
        return index, {"priority_weight": weight}

    def state_dict(self) -> dict[str, Any]:
        return {"tree": self.tree.clone(), "max_priority": self.max_priority, "beta": self.beta}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tree.copy_(state_dict["tree"])
        self.max_priority, self.beta = float(state_dict["max_priority"]), float(state_dict["beta"])

    def dumps(self, path: Any) -> None:
        import pathlib

        torch.save(self.state_dict(), pathlib.Path(path) / "sampler.pt")

    def loads(self, path: Any) -> None:
        import pathlib

        self.load_state_dict(torch.load(pathlib.Path(path) / "sampler.pt", weights_only=True))


class PrioritizedReplayStorage(ReplayStorage):
    """Proportional prioritized replay (Schaul et al., 2016) on a TorchRL replay buffer with
    :class:`SumTreeSampler`.

    A transition is drawn with probability ``p_i^alpha / sum_j p_j^alpha``; new transitions get the highest
    priority seen so far. Samples carry ``"index"`` and the importance weight ``"priority_weight"``.
    ``beta`` may be a schedule (``"linear(0.4, 1.0, 1000000)"``), advanced with :meth:`step` as environment
    steps are collected. Agents call :meth:`update_priority` with the sampled batch and its TD errors.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> rb = rlte_plugins.make("storage", "prioritized_replay", capacity=8, batch_size=4, seed=0).build()
        >>> rb.add(TensorDict(x=torch.arange(8.0), batch_size=[8]))
        >>> batch = rb.sample()
        >>> rb.update_priority(batch, torch.ones(4))
        >>> sorted(batch.keys())
        ['index', 'priority_weight', 'x']
    """

    name = "prioritized_replay"

    def __init__(
        self,
        alpha: float = 0.6,
        beta: Any = "linear(0.4, 1.0, 1000000)",
        eps: float = 1e-6,
        capacity: int = 1_000_000,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        memmap: bool = False,
        scratch_dir: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(capacity, batch_size, device, memmap, scratch_dir, seed)
        if alpha < 0:
            raise ComponentArgumentError(f"{self._owner()}: alpha must be >= 0, got {alpha!r}")
        self.alpha, self.eps = float(alpha), float(eps)
        self.beta = Schedule.parse(beta, self._owner())
        self.steps = 0

    def _make_buffer(self, device: Any) -> TensorDictReplayBuffer:
        # on the storage's device: its indices address the storage
        self.sampler = SumTreeSampler(self.capacity, self.alpha, self.beta(0), self.eps, device=device)
        return TensorDictReplayBuffer(
            storage=self._storage(device),
            sampler=self.sampler,
            batch_size=self.batch_size,
            generator=self._generator(),
        )

    def step(self, frames: int) -> None:
        """Advance the ``beta`` schedule by ``frames`` environment steps."""
        self.steps += int(frames)
        self._require()
        self.sampler.beta = self.beta(self.steps)

    def state_dict(self) -> dict[str, Any]:
        # the sampler's state (sum tree, max priority, current beta) and generator come with the buffer's; the
        # schedule's position does not: without it a resumed run's beta would restart from the schedule's start
        return {**super().state_dict(), "beta_steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.steps = int(state.pop("beta_steps", 0))
        super().load_state_dict(state)

    def update_priority(self, batch: TensorDictBase, td_error: torch.Tensor) -> None:
        """Set the priorities of the transitions in ``batch`` (a sample) to ``|td_error| + eps``."""
        error = td_error.detach().reshape(batch.shape[0], -1).abs().amax(-1)
        self._require().update_priority(batch.get("index"), error)
