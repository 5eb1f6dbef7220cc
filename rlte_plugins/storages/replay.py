"""Off-policy replay on TorchRL replay buffers: uniform, n-step and prioritized.

Data is added as the collectors produce it, ``[num_envs, T]`` (or ``[T]`` / ``[num_envs]`` for one step), with
the usual ``("next", ...)`` entries; sampling returns flat batches. TensorDicts hold nested and dict
observations natively, so the ``dict_*`` names are the same storages (kept for users coming from frameworks
where dict observations needed their own buffer).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import LazyMemmapStorage, LazyTensorStorage, RandomSampler, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import Sampler

from rlte_plugins.errors import CheckpointError, ComponentArgumentError, positive_int
from rlte_plugins.files import atomic_write
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

    Checkpoints: :meth:`state_dict` holds tensors and plain values only (``torch.load(weights_only=True)`` reads
    it), and :meth:`load_state_dict` on a storage built alike resumes exactly: the same transitions in the same
    slots, the writer's cursor, the sampler's and generator's state, so the same future samples.

    - In memory: the checkpoint carries the transitions, dtypes kept (uint8 frames stay uint8): only the filled
      slots while the buffer is not yet full (slots fill in order), all of them once it is. They load onto the
      loading storage's ``device``, into a buffer of the same ``capacity`` (another raises
      :class:`CheckpointError`); checkpoints carrying every slot of a buffer not yet full load as well.
    - ``memmap`` with a ``scratch_dir``: the checkpoint *references* the folder instead of copying it (a 1M-frame
      pixel buffer is tens of GB): its path, the layout of its files, the fill level and the folder's
      *generation*, kept in ``rlte-replay-generation.json`` there. Saving flushes the files to disk; loading
      re-opens them in place, on a storage built with the same ``scratch_dir`` and ``capacity``. The reference
      is to the folder as it is *now*: the first write after a save (or a load) moves the folder to a new
      generation, so only the checkpoint saved last still loads; an older one raises :class:`CheckpointError`,
      as do a missing folder, files of another layout or capacity, and another ``scratch_dir``. To keep every
      checkpoint resumable, use ``memmap=False`` or no ``scratch_dir``.
    - ``memmap`` without a ``scratch_dir``: the temporary directory is deleted with the storage, so nothing
      could be referenced: the checkpoint carries the transitions, as in memory, and loading writes them into
      the new storage's files.

    Prioritized replay's sum tree is saved as its leaves up to the last slot written, the inner nodes rebuilt on
    load.

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
        self._folder: _FolderGeneration | None = None

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
        self._folder = None
        if self.memmap and self.scratch_dir is not None:
            self._folder = _FolderGeneration(Path(self.scratch_dir), self._owner())
        return self

    def _require(self) -> TensorDictReplayBuffer:
        if self.buffer is None:
            raise RuntimeError(f"{self._owner()} is not built: call .build() first")
        return self.buffer

    def _extend(self, flat: TensorDictBase) -> None:
        buffer = self._require()
        if self._folder is not None:
            self._folder.before_write(new_files=not buffer.storage.initialized)
        # TorchRL writes a batch longer than the capacity to repeated slots, and torch leaves the winner of repeated
        # index writes undefined: stored transitions mixed fields of different steps. Only the newest ones stay.
        buffer.extend(flat[-self.capacity :])

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
        """The buffer's state for a checkpoint: the transitions, or a reference to a ``scratch_dir``'s files (see
        the class docstring), with the writer's, sampler's and generator's state.

        Examples:
            >>> import os, tempfile, torch, rlte_plugins
            >>> from tensordict import TensorDict
            >>> frames = TensorDict(pixels=torch.zeros(10, 3, 84, 84, dtype=torch.uint8), batch_size=[10])
            >>> in_memory = rlte_plugins.make("storage", "replay", capacity=100).build()
            >>> in_memory.add(frames)
            >>> in_memory.state_dict()["_storage"]["_storage"]["pixels"].shape  # the 10 filled slots of 100
            torch.Size([10, 3, 84, 84])
            >>> scratch = tempfile.TemporaryDirectory()
            >>> folder = scratch.name
            >>> rb = rlte_plugins.make("storage", "replay", capacity=100, memmap=True, scratch_dir=folder).build()
            >>> rb.add(frames)
            >>> reference = rb.state_dict()["_storage"]["memmap"]
            >>> reference["scratch_dir"] == os.path.realpath(folder), reference["generation"]
            (True, 0)
            >>> resumed = rlte_plugins.make("storage", "replay", capacity=100, memmap=True, scratch_dir=folder).build()
            >>> resumed.load_state_dict(rb.state_dict())
            >>> len(resumed), resumed.sample(2)["pixels"].dtype
            (10, torch.uint8)
        """
        buffer = self._require()
        state = buffer.state_dict()
        storage = buffer.storage
        if self._folder is not None and storage.initialized:
            reference = self._folder.save(_layout(storage._storage), self.capacity)
            state["_storage"] = {"memmap": reference, "initialized": True, "_len": storage._len}
        elif storage.initialized:
            # the writer fills slots 0, 1, ... in order until the buffer is full: rows [0, len) are all a buffer not
            # yet full holds, and the rest of the capacity-sized arrays stays out of the file. Copied: torch.save of
            # a slice would write the whole array it views.
            if storage._len < self.capacity:
                state["_storage"]["_storage"] = storage._storage[: storage._len].clone().state_dict()
            state["_storage"]["capacity"] = self.capacity
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s state (see the class docstring); a reference to memmap files that do
        not match raises :class:`CheckpointError`."""
        buffer = self._require()
        storage = buffer.storage
        stored = state["_storage"]
        if "memmap" in stored:
            _place(storage, self._open_reference(stored["memmap"]))
        elif stored["initialized"]:
            self._load_rows(storage, stored)
        # the data is in place (or there is none): TorchRL's load then restores only the fill level, the writer, the
        # sampler and the generator
        stored = {"_storage": {}, "initialized": stored["initialized"], "_len": stored["_len"]}
        buffer.load_state_dict({**state, "_storage": stored})

    def _load_rows(self, storage: Any, stored: dict[str, Any]) -> None:
        """Write a checkpoint's transitions into the first slots of ``storage``: rows ``[0, len)`` of a buffer not
        yet full, or every slot (a full buffer, or a checkpoint that carried the whole capacity)."""
        data = TensorDict().load_state_dict(stored["_storage"], strict=False)
        rows = data.shape[0]
        capacity = stored.get("capacity", rows)  # a checkpoint without it carried the whole capacity
        if capacity != self.capacity:
            raise CheckpointError(
                f"{self._owner()}: the checkpoint's buffer was built with capacity={capacity}, this storage with "
                f"capacity={self.capacity}: build it with capacity={capacity}"
            )
        if not self.memmap or not storage.initialized:
            if self._folder is not None:
                if (self._folder.path / "meta.json").exists():
                    raise CheckpointError(
                        f"{self._owner()}: the checkpoint carries its transitions, and scratch_dir "
                        f"{str(self._folder.path)!r} already holds another buffer's files: build the storage with an "
                        "empty or new scratch_dir"
                    )
                self._folder.before_write(new_files=True)
            # TorchRL allocates the capacity-sized storage from one transition: in memory on the storage's device
            # (replacing what it held), memmap as files in its directory
            storage._init(data[0])
            _forget_cached_content(storage)
        else:
            found = _row_layout(storage._storage)
            if found != _row_layout(data):
                raise CheckpointError(
                    f"{self._owner()}: the checkpoint's transitions do not match the ones this memmap storage "
                    f"holds ({_layout_diff(_row_layout(data), found)}): load it into a new storage"
                )
            if self._folder is not None:
                self._folder.before_write(new_files=False)
        storage._storage[:rows].update_(data)  # in place, across devices (a checkpoint is read onto the CPU)

    def _open_reference(self, reference: dict[str, Any]) -> TensorDictBase:
        saved = reference["scratch_dir"]
        if self._folder is None:
            where = "in a temporary directory" if self.memmap else "in memory"
            raise CheckpointError(
                f"{self._owner()}: the checkpoint references replay files in {saved!r}, but this storage keeps its "
                f"transitions {where}: build it with memmap=True, scratch_dir={saved!r}"
            )
        if str(self._folder.path.resolve()) != saved:
            raise CheckpointError(
                f"{self._owner()}: the checkpoint references replay files in {saved!r}, but this storage was built "
                f"with scratch_dir={self.scratch_dir!r}: build it with scratch_dir={saved!r}"
            )
        if reference["capacity"] != self.capacity:
            raise CheckpointError(
                f"{self._owner()}: the checkpoint's buffer in {saved!r} holds {reference['capacity']} transitions, "
                f"this storage was built with capacity={self.capacity}: build it with "
                f"capacity={reference['capacity']}"
            )
        marker = self._folder.check(reference)
        try:
            data = TensorDict.load_memmap(saved)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{self._owner()}: the replay files in {saved!r} cannot be opened ({type(exc).__name__}: {exc}): "
                "the folder is damaged; resume from a checkpoint that carries its transitions, or start a new run"
            ) from exc
        layout = _layout(data)
        if layout != reference["layout"]:
            raise CheckpointError(
                f"{self._owner()}: the replay files in {saved!r} do not match the checkpoint "
                f"({_layout_diff(reference['layout'], layout)}): they were rewritten after it was saved; resume from a "
                "checkpoint saved with these files"
            )
        self._folder.loaded(marker)
        return data.lock_()


GENERATION_FILE = "rlte-replay-generation.json"


class _FolderGeneration:
    """The generation of a memmap ``scratch_dir``: which state of its files a checkpoint may reference.

    ``rlte-replay-generation.json`` in the folder holds a ``token`` (drawn when a storage creates the files: a
    folder deleted and refilled is another buffer) and a ``generation`` count. A checkpoint records both; the
    first write after a save or a load increments the count *before* touching the files, so a checkpoint whose
    generation is not the folder's is refused even after a crash mid-write.
    """

    def __init__(self, path: Path, owner: str) -> None:
        self.path, self.owner = path, owner
        self.current: dict[str, Any] | None = None  # what this storage last wrote or read
        self.referenced = False  # a checkpoint references the files as they are

    def before_write(self, new_files: bool) -> None:
        if new_files:
            if (self.path / "meta.json").exists():
                # TorchRL would refuse to create the files; refused here, the folder's checkpoints stay valid
                raise ComponentArgumentError(
                    f"{self.owner}: scratch_dir {str(self.path)!r} already holds a replay buffer's files: resume it "
                    "with load_state_dict from the checkpoint that references it, or build the storage with an "
                    "empty scratch_dir"
                )
            self.path.mkdir(parents=True, exist_ok=True)
            self._write({"token": uuid.uuid4().hex, "generation": 0})
        elif self.referenced and self.current is not None:
            self._write({**self.current, "generation": self.current["generation"] + 1})
        self.referenced = False

    def save(self, layout: list[Any], capacity: int) -> dict[str, Any]:
        # written through a shared mapping, the data sits in the page cache; fsync writes it to the disk, so the
        # folder survives a crash as the checkpoint references it
        for root, _, files in os.walk(self.path):
            for name in files:
                _fsync(Path(root) / name)
            _fsync(Path(root))
        # no marker yet: files written by an older version of this storage
        current = self.current or self._write({"token": uuid.uuid4().hex, "generation": 0})
        self.referenced = True
        return {"scratch_dir": str(self.path.resolve()), "capacity": capacity, "layout": layout, **current}

    def check(self, reference: dict[str, Any]) -> dict[str, Any]:
        """The folder's marker; refuses a reference to another state of the folder than the one on disk."""
        where, owner = str(self.path), self.owner
        if not self.path.is_dir():
            raise CheckpointError(
                f"{owner}: the checkpoint references replay files in {where!r}, which does not exist: a checkpoint of "
                "a memmap buffer keeps only the folder's path, so put the folder back there (or start a new run)"
            )
        try:
            found = json.loads((self.path / GENERATION_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"{owner}: the replay folder {where!r} has no readable {GENERATION_FILE} ({type(exc).__name__}), so "
                "it does not hold the files this checkpoint references: resume from a checkpoint saved with it"
            ) from exc
        if found.get("token") != reference["token"]:
            raise CheckpointError(
                f"{owner}: the replay folder {where!r} holds another buffer than this checkpoint references (its "
                "files were deleted and written anew after the save): resume from a checkpoint saved since"
            )
        if found.get("generation") != reference["generation"]:
            raise CheckpointError(
                f"{owner}: the replay folder {where!r} is at generation {found.get('generation')}, this checkpoint "
                f"references generation {reference['generation']}: training went on writing the folder after this "
                "checkpoint was saved, so it no longer holds the checkpoint's transitions. Resume from the latest "
                "checkpoint saved with this folder; to keep every checkpoint resumable, build the storage with "
                "memmap=False or without scratch_dir (checkpoints then carry the transitions)"
            )
        return found

    def loaded(self, marker: dict[str, Any]) -> None:
        # the checkpoint just loaded references the files as they are: the next write moves to a new generation
        self.current, self.referenced = marker, True

    def _write(self, marker: dict[str, Any]) -> dict[str, Any]:
        # atomic: a crash leaves the old marker or the new one, never a torn file
        with atomic_write(self.path / GENERATION_FILE) as out:
            json.dump(marker, out)
        _fsync(self.path)
        self.current = marker
        return marker


def _place(storage: Any, data: TensorDictBase) -> None:
    """Make ``data`` a TorchRL tensor storage's content (TorchRL's own load would copy it once more)."""
    storage._storage = data
    _forget_cached_content(storage)


def _forget_cached_content(storage: Any) -> None:
    """Drop what a TorchRL tensor storage cached of a content since replaced: filled again on first use."""
    storage._storage_keys = None
    storage.__dict__.pop("_total_shape_value", None)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _layout(data: TensorDictBase) -> list[Any]:
    """``[key path, shape, dtype]`` of every stored entry: what a checkpoint expects of the files it references."""
    return sorted(
        [[key] if isinstance(key, str) else list(key), list(value.shape), str(value.dtype)]
        for key, value in data.items(include_nested=True, leaves_only=True)
    )


def _row_layout(data: TensorDictBase) -> list[Any]:
    """:func:`_layout` without the number of rows: what the transitions of two buffers must share."""
    return [[key, shape[1:], dtype] for key, shape, dtype in _layout(data)]


def _layout_diff(expected: list[Any], found: list[Any]) -> str:
    """The entries where two layouts differ, e.g. ``next/pixels: expected shape [10, 3] torch.uint8, found ...``."""
    expected_entries = {tuple(key): entry for key, *entry in expected}
    found_entries = {tuple(key): entry for key, *entry in found}
    return "; ".join(
        f"{'/'.join(key)}: expected {_describe(expected_entries.get(key))}, found {_describe(found_entries.get(key))}"
        for key in sorted(expected_entries.keys() | found_entries.keys())
        if expected_entries.get(key) != found_entries.get(key)
    )


def _describe(entry: list[Any] | None) -> str:
    return "no such entry" if entry is None else f"shape {entry[0]} {entry[1]}"


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
        # the leaves up to the last one written (slots fill in order, the rest are 0): the inner nodes follow from
        # them, and a buffer not yet full saves only its filled part
        leaves = self.tree[self._leaves :]
        written = leaves.nonzero()
        count = int(written[-1]) + 1 if written.numel() else 0
        return {"leaves": leaves[:count].clone(), "max_priority": self.max_priority, "beta": self.beta}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "tree" in state_dict:  # the whole tree, as checkpoints held it before they carried only leaves
            self.tree.copy_(state_dict["tree"])
        else:
            leaves = state_dict["leaves"]
            self.tree.zero_()
            self.tree[self._leaves : self._leaves + leaves.shape[0]] = leaves
            # each inner node is the float64 sum of its two children, as updates compute it: the same tree, bit for bit
            level = self._leaves
            while level > 1:
                self.tree[level // 2 : level] = self.tree[level : 2 * level : 2] + self.tree[level + 1 : 2 * level : 2]
                level //= 2
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
