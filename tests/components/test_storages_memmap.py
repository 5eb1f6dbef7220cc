"""Memory-mapped replay (``memmap=True``): the data is in files under ``scratch_dir`` (or a temporary directory
removed with the storage), values and dtypes round-trip through storage, sampling and checkpoints, every replay
kind behaves exactly as in memory, and batches come out on the agent's device.

Checkpoints of a memmap buffer with a ``scratch_dir`` reference the folder instead of copying it: they are small,
resume exactly from the files in place, and refuse another, missing or rewritten folder."""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from tensordict.memmap import MemoryMappedTensor

import rlte_plugins
from rlte_plugins.errors import CheckpointError, ComponentArgumentError
from rlte_plugins.storages.replay import GENERATION_FILE, SumTreeSampler

CAPACITY = 10
KINDS = ["replay", "nstep_replay", "prioritized_replay"]


def pixel_rollout(num_envs=2, steps=12, frame=(3, 8, 8), first=0):
    """[num_envs, T] transitions of every dtype a pixel agent stores; "x" is the flat index of the transition
    (from ``first``, which also seeds the values)."""
    g = torch.Generator().manual_seed(first)
    shape = [num_envs, steps]
    done = torch.rand(*shape, 1, generator=g) < 0.2
    nxt = TensorDict(pixels=torch.randint(0, 256, (*shape, *frame), dtype=torch.uint8, generator=g),
                     reward=torch.randn(*shape, 1, generator=g), done=done, terminated=done,
                     truncated=torch.zeros_like(done), batch_size=shape)  # fmt: skip
    return TensorDict(x=torch.arange(first, first + num_envs * steps, dtype=torch.float32).reshape(shape),
                      pixels=torch.randint(0, 256, (*shape, *frame), dtype=torch.uint8, generator=g),
                      action=torch.randint(0, 4, shape, generator=g), next=nxt, batch_size=shape)  # fmt: skip


def memmap_replay(scratch_dir, kind="replay", capacity=CAPACITY, **kwargs):
    rb = rlte_plugins.make("storage", kind, capacity=capacity, batch_size=8, seed=0, memmap=True,
                           scratch_dir=None if scratch_dir is None else str(scratch_dir), **kwargs)  # fmt: skip
    return rb.build()


def through_file(state, path):
    """``state`` as a resumed run reads it: written with ``torch.save``, read with ``weights_only=True``."""
    torch.save(state, path)
    return torch.load(path, weights_only=True)


def leaves(td):
    return dict(td.items(include_nested=True, leaves_only=True))


def assert_same(actual, expected):
    """Equal keys, dtypes and values (TensorDict ``==`` alone would compare across dtypes)."""
    actual, expected = leaves(actual), leaves(expected)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert torch.equal(actual[key], value), key


def test_memmap_replay_round_trips_values_and_dtypes(tmp_path):
    data = pixel_rollout()
    flat = data.reshape(-1)
    rb = memmap_replay(tmp_path)
    rb.add(data)  # 24 transitions into 10 slots: the oldest 14 are overwritten
    assert len(rb) == CAPACITY
    stored = rb.buffer[:].exclude("index")
    kept = stored["x"].long()
    assert sorted(kept.tolist()) == list(range(14, 24))
    assert_same(stored, flat[kept])
    batch = rb.sample()
    assert_same(batch.exclude("index"), flat[batch["x"].long()])


def test_memmap_files_on_disk_hold_the_stored_data(tmp_path):
    rb = memmap_replay(tmp_path)
    rb.add(pixel_rollout())
    storage = rb.buffer.storage
    for key, tensor in leaves(storage._storage).items():
        assert isinstance(tensor, MemoryMappedTensor), key
        path = Path(tensor.filename)
        assert path.parent.is_relative_to(tmp_path), key
        assert path.stat().st_size == tensor.numel() * tensor.element_size(), key  # the whole capacity is on disk
    assert (tmp_path / "pixels.memmap").stat().st_size == CAPACITY * 3 * 8 * 8  # uint8 frames stay one byte each
    assert (tmp_path / "next" / "pixels.memmap").is_file()
    stored = rb.buffer[:]
    del rb, storage
    gc.collect()
    # a user directory is kept after the storage is gone, and TensorDict reads the transitions back from it
    assert_same(TensorDict.load_memmap(tmp_path), stored)


def test_memmap_without_scratch_dir_writes_a_temporary_directory_removed_with_the_storage():
    rb = memmap_replay(None)
    rb.add(pixel_rollout())
    directory = Path(rb.buffer.storage.scratch_dir)
    assert directory.is_relative_to(tempfile.gettempdir()) and directory.is_dir()
    for key, tensor in leaves(rb.buffer.storage._storage).items():
        assert Path(tensor.filename).parent.is_relative_to(directory), key  # files, not anonymous memory
    del rb
    gc.collect()
    assert not directory.exists()


@pytest.mark.parametrize("kind", ["replay", "nstep_replay", "prioritized_replay"])
def test_memmap_storage_behaves_exactly_like_the_in_memory_one(tmp_path, kind):
    extra = {"n": 3, "gamma": 0.9} if kind == "nstep_replay" else {}
    on_disk = memmap_replay(tmp_path, kind, **extra)
    in_memory = rlte_plugins.make("storage", kind, capacity=CAPACITY, batch_size=8, seed=0, **extra).build()
    data = pixel_rollout()
    for rb in (on_disk, in_memory):
        rb.add(data[:, :7])
        rb.add(data[:, 7:])
    assert os.listdir(tmp_path)
    assert_same(on_disk.buffer[:], in_memory.buffer[:])
    for _ in range(3):
        batches = on_disk.sample(), in_memory.sample()
        assert_same(*batches)
        if kind == "prioritized_replay":
            for rb, batch in zip((on_disk, in_memory), batches, strict=True):
                rb.update_priority(batch, batch["x"] + 1.0)


def train_a_little(rb, batches=3):
    """Samples (and, prioritized, priority updates from them): what an agent does between adds."""
    out = []
    for _ in range(batches):
        batch = rb.sample()
        if "priority_weight" in batch.keys():
            rb.update_priority(batch, batch["x"] % 7 + 0.5)
            rb.step(100)
        out.append(batch)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_memmap_checkpoint_references_the_folder_and_resumes_exactly(tmp_path, kind):
    """A 600-transition buffer of uint8 [9, 16, 16] frames is saved as a reference to its folder: the .pt file is
    far smaller than the files, and a new storage on the same folder resumes exactly where an uninterrupted twin
    continues (same transitions, same next samples, same stores after the next add)."""
    frame, capacity = (9, 16, 16), 600
    twin = memmap_replay(tmp_path / "twin", kind, capacity=capacity)  # the original, never interrupted
    run = memmap_replay(tmp_path / "run", kind, capacity=capacity)
    for rb in (twin, run):
        rb.add(pixel_rollout(steps=400, frame=frame))  # 800 transitions into 600 slots: the writer has wrapped
        train_a_little(rb)
    checkpoint = tmp_path / "storage.pt"
    state = through_file(run.state_dict(), checkpoint)
    files = sum(f.stat().st_size for f in (tmp_path / "run").rglob("*.memmap"))
    assert files > capacity * 2 * 9 * 16 * 16  # the two frames of every transition are in the files, not in the .pt
    assert checkpoint.stat().st_size < files / 20
    assert state["_storage"]["memmap"]["scratch_dir"] == str((tmp_path / "run").resolve())
    del run  # the run stops; the files stay
    gc.collect()

    resumed = memmap_replay(tmp_path / "run", kind, capacity=capacity)
    resumed.load_state_dict(state)
    for key, tensor in leaves(resumed.buffer.storage._storage).items():
        assert isinstance(tensor, MemoryMappedTensor), key  # re-opened in place, not copied into memory
        assert Path(tensor.filename).parent.is_relative_to(tmp_path / "run"), key
    assert len(resumed) == len(twin) == capacity
    assert_same(resumed.buffer[:], twin.buffer[:])
    for expected, batch in zip(train_a_little(twin), train_a_little(resumed), strict=True):
        assert_same(batch, expected)
    more = pixel_rollout(steps=50, frame=frame, first=10_000)
    for rb in (twin, resumed):
        rb.add(more)  # the writer continues at the checkpoint's cursor; n-step: completes the held-back windows
    assert_same(resumed.buffer[:], twin.buffer[:])
    for expected, batch in zip(train_a_little(twin), train_a_little(resumed), strict=True):
        assert_same(batch, expected)


def generation(folder):
    return json.loads((folder / GENERATION_FILE).read_text())["generation"]


@pytest.mark.parametrize("kind", KINDS)
def test_memmap_checkpoint_of_a_folder_written_since_is_refused(tmp_path, kind):
    folder = tmp_path / "run"
    rb = memmap_replay(folder, kind)
    rb.add(pixel_rollout())
    older = through_file(rb.state_dict(), tmp_path / "older.pt")
    assert through_file(rb.state_dict(), tmp_path / "again.pt")["_storage"] == older["_storage"]  # no write between
    assert generation(folder) == 0
    rb.add(pixel_rollout(steps=2, first=100))  # overwrites slots the older checkpoint references
    assert generation(folder) == 1
    rb.add(pixel_rollout(steps=2, first=200))
    assert generation(folder) == 1  # one step per save, not per write
    latest = through_file(rb.state_dict(), tmp_path / "latest.pt")
    with pytest.raises(CheckpointError, match=r"is at generation 1, this checkpoint references generation 0"):
        memmap_replay(folder, kind).load_state_dict(older)
    resumed = memmap_replay(folder, kind)
    resumed.load_state_dict(latest)
    assert_same(resumed.buffer[:], rb.buffer[:])
    resumed.add(pixel_rollout(steps=2, first=300))  # the resumed run writes on: the latest one goes stale too
    with pytest.raises(CheckpointError, match=r"generation 2, this checkpoint references generation 1.*latest"):
        memmap_replay(folder, kind).load_state_dict(latest)


def test_memmap_checkpoint_is_refused_for_another_missing_or_rewritten_folder(tmp_path):
    folder = tmp_path / "run"
    rb = memmap_replay(folder)
    rb.add(pixel_rollout())
    state = through_file(rb.state_dict(), tmp_path / "storage.pt")
    where = str(folder.resolve())

    def refused(storage, match):
        with pytest.raises(CheckpointError, match=match) as info:
            storage.load_state_dict(state)
        assert where in str(info.value)  # every message names the folder

    refused(memmap_replay(tmp_path / "elsewhere"), r"built with scratch_dir=.*elsewhere.*build it with scratch_dir=")
    refused(memmap_replay(None), "keeps its transitions in a temporary directory: build it with memmap=True")
    in_memory = rlte_plugins.make("storage", "replay", capacity=CAPACITY).build()
    refused(in_memory, "keeps its transitions in memory")
    refused(memmap_replay(folder, capacity=CAPACITY + 1), f"holds {CAPACITY} transitions.*capacity={CAPACITY}")
    with pytest.raises(ComponentArgumentError, match="already holds a replay buffer's files"):
        memmap_replay(folder).add(pixel_rollout())  # a new run into the folder: refused, and the folder kept as is
    memmap_replay(folder).load_state_dict(state)
    marker = (folder / GENERATION_FILE).read_text()
    del rb
    gc.collect()
    shutil.rmtree(folder)
    refused(memmap_replay(folder), "which does not exist: .*put the folder back")
    # the folder filled anew by another buffer, with frames of another shape
    memmap_replay(folder).add(pixel_rollout(frame=(3, 4, 4)))
    refused(memmap_replay(folder), "holds another buffer than this checkpoint references")
    (folder / GENERATION_FILE).write_text(marker)  # even with the old marker put back, the files do not match
    refused(memmap_replay(folder), r"do not match the checkpoint \(next/pixels: expected shape \[10, 3, 8, 8\]")
    (folder / GENERATION_FILE).unlink()
    refused(memmap_replay(folder), f"no readable {GENERATION_FILE}")


def test_memmap_checkpoint_without_scratch_dir_carries_the_transitions(tmp_path):
    """A temporary directory is deleted with its storage: nothing to reference, the checkpoint holds the data."""
    rb = memmap_replay(None)
    rb.add(pixel_rollout())
    train_a_little(rb)
    state = through_file(rb.state_dict(), tmp_path / "storage.pt")
    stored = state["_storage"]["_storage"]
    assert type(stored["pixels"]) is torch.Tensor and stored["pixels"].dtype == torch.uint8
    assert (tmp_path / "storage.pt").stat().st_size > CAPACITY * 2 * 3 * 8 * 8
    resumed = memmap_replay(None)
    resumed.load_state_dict(state)
    directory = Path(resumed.buffer.storage.scratch_dir)
    for key, tensor in leaves(resumed.buffer.storage._storage).items():
        assert Path(tensor.filename).parent.is_relative_to(directory), key  # copied into the new storage's files
    assert_same(resumed.buffer[:], rb.buffer[:])
    for expected, batch in zip(train_a_little(rb), train_a_little(resumed), strict=True):
        assert_same(batch, expected)
    # into a fresh scratch_dir too (it then references it from its own checkpoints on)
    kept = memmap_replay(tmp_path / "kept")
    kept.load_state_dict(state)
    assert_same(kept.buffer[:], rb.buffer[:])
    reference = through_file(kept.state_dict(), tmp_path / "kept.pt")
    again = memmap_replay(tmp_path / "kept")
    again.load_state_dict(reference)
    assert_same(again.buffer[:], rb.buffer[:])
    kept.load_state_dict(state)  # copied over its files once more: the reference to them goes stale
    with pytest.raises(CheckpointError, match="is at generation 1, this checkpoint references generation 0"):
        memmap_replay(tmp_path / "kept").load_state_dict(reference)
    with pytest.raises(CheckpointError, match="already holds another buffer's files"):
        memmap_replay(tmp_path / "kept").load_state_dict(state)


ALLOWED = (dict, list, tuple, str, int, float, bool, type(None), torch.Size, torch.device)


def assert_plain(value, where="state"):
    """Tensors exactly of class ``torch.Tensor`` (no ``MemoryMappedTensor``) and plain containers and values."""
    if isinstance(value, torch.Tensor):
        assert type(value) is torch.Tensor, (where, type(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            assert_plain(item, f"{where}[{i}]")
    else:
        assert isinstance(value, ALLOWED), (where, type(value))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["in memory", "memmap folder", "memmap temporary"])
def test_every_storage_state_loads_with_weights_only(tmp_path, kind, mode):
    def make():
        if mode == "in memory":
            return rlte_plugins.make("storage", kind, capacity=CAPACITY, batch_size=8, seed=0).build()
        return memmap_replay(tmp_path / "run" if mode == "memmap folder" else None, kind)

    rb = make()
    state = rb.state_dict()  # before any data
    assert_plain(state)
    empty = make()
    empty.load_state_dict(through_file(state, tmp_path / "empty.pt"))
    assert len(empty) == 0
    rb.add(pixel_rollout())
    train_a_little(rb)
    state = rb.state_dict()
    assert_plain(state)
    resumed = make()
    resumed.load_state_dict(through_file(state, tmp_path / "storage.pt"))
    assert_same(resumed.buffer[:], rb.buffer[:])
    assert_same(resumed.sample(), rb.sample())


def test_memmap_samples_come_out_on_the_agent_device(tmp_path):
    # TorchRL maps files on the CPU only; "meta" stands in for an accelerator on CPU-only machines
    rb = memmap_replay(tmp_path, device="meta")
    rb.add(pixel_rollout())
    assert rb.buffer.storage.device == torch.device("cpu")
    assert (tmp_path / "pixels.memmap").is_file()
    batch = rb.sample()
    assert batch.device == torch.device("meta")
    assert all(value.device == torch.device("meta") for value in leaves(batch).values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_memmap_samples_on_cuda_keep_their_values(tmp_path):
    data = pixel_rollout()
    rb = memmap_replay(tmp_path, "prioritized_replay", device="cuda")
    rb.add(data.to("cuda"))
    batch = rb.sample()
    assert batch["pixels"].is_cuda
    assert_same(batch.exclude("index", "priority_weight").cpu(), data.reshape(-1)[batch["x"].long().cpu()])
    rb.update_priority(batch, torch.ones(8, device="cuda"))


def leaf_bytes(td):
    return sum(value.numel() * value.element_size() for value in leaves(td).values())


def make_kind(kind, mode, capacity):
    if mode == "in memory":
        return rlte_plugins.make("storage", kind, capacity=capacity, batch_size=8, seed=0).build()
    return memmap_replay(None, kind, capacity=capacity)


def filled(kind, mode, capacity, transitions, frame=(9, 24, 24)):
    """A storage holding exactly ``transitions`` pixel transitions (n-step: its held-back steps on top)."""
    rb = make_kind(kind, mode, capacity)
    steps = transitions // 2 + (rb.n if kind == "nstep_replay" else 0)
    rb.add(pixel_rollout(steps=steps, frame=frame))
    assert len(rb) == min(transitions, capacity)
    train_a_little(rb)
    return rb


def assert_resumes_exactly(resumed, twin, frame=(9, 24, 24)):
    """Same transitions in the same slots, same samples, and the same after one more add."""
    assert len(resumed) == len(twin)
    assert resumed.buffer.storage._storage.shape == twin.buffer.storage._storage.shape  # the whole capacity
    assert_same(resumed.buffer[:], twin.buffer[:])
    for expected, batch in zip(train_a_little(twin), train_a_little(resumed), strict=True):
        assert_same(batch, expected)
    more = pixel_rollout(steps=10, frame=frame, first=10_000)
    for rb in (twin, resumed):
        rb.add(more)
    assert_same(resumed.buffer[:], twin.buffer[:])
    for expected, batch in zip(train_a_little(twin), train_a_little(resumed), strict=True):
        assert_same(batch, expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["in memory", "memmap temporary"])
def test_checkpoint_of_a_partly_filled_buffer_carries_only_the_filled_slots(tmp_path, kind, mode):
    """50 transitions of [9, 24, 24] uint8 frames in a 10,000-transition buffer: the file holds those 50, not the
    capacity (DrQ-v2's default 1M-transition buffer wrote 10.5 GB after 320 frames), and resumes exactly."""
    capacity = 10_000
    rb = filled(kind, mode, capacity, 50)
    checkpoint = tmp_path / "storage.pt"
    state = through_file(rb.state_dict(), checkpoint)
    assert_plain(state)
    assert {value.shape[0] for value in state["_storage"]["_storage"].values()} == {50}
    assert checkpoint.stat().st_size < 3 * leaf_bytes(rb.buffer[:])
    resumed = make_kind(kind, mode, capacity)
    resumed.load_state_dict(state)
    assert_resumes_exactly(resumed, rb)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["in memory", "memmap temporary"])
def test_checkpoint_of_a_wrapped_buffer_carries_every_slot_and_resumes_exactly(tmp_path, kind, mode):
    rb = filled(kind, mode, 40, 50, frame=(3, 8, 8))  # the writer has wrapped: slots 0-9 hold the newest 10
    state = through_file(rb.state_dict(), tmp_path / "storage.pt")
    assert {value.shape[0] for value in state["_storage"]["_storage"].values()} == {40}
    resumed = make_kind(kind, mode, 40)
    resumed.load_state_dict(state)
    assert_resumes_exactly(resumed, rb, frame=(3, 8, 8))


def whole_capacity_state(rb):
    """The state as checkpoints held it when they carried every slot: TorchRL's own storage state (and the whole
    sum tree)."""
    state = rb.state_dict()
    state["_storage"] = rb.buffer.storage.state_dict()
    sampler = rb.buffer.sampler
    if isinstance(sampler, SumTreeSampler):
        state["_sampler"] = {"tree": sampler.tree.clone(), "max_priority": sampler.max_priority, "beta": sampler.beta}
    return state


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["in memory", "memmap temporary"])
def test_checkpoint_that_carried_every_slot_of_a_partly_filled_buffer_still_loads(tmp_path, kind, mode):
    rb = filled(kind, mode, 200, 30, frame=(3, 8, 8))
    state = through_file(whole_capacity_state(rb), tmp_path / "storage.pt")
    assert {value.shape[0] for value in state["_storage"]["_storage"].values()} == {200}
    resumed = make_kind(kind, mode, 200)
    resumed.load_state_dict(state)
    assert_resumes_exactly(resumed, rb, frame=(3, 8, 8))


@pytest.mark.parametrize("mode", ["in memory", "memmap temporary"])
def test_checkpoint_carrying_transitions_is_refused_by_another_capacity_or_layout(tmp_path, mode):
    rb = filled("replay", mode, 200, 30, frame=(3, 8, 8))
    state = through_file(rb.state_dict(), tmp_path / "storage.pt")
    for capacity in (100, 300):
        with pytest.raises(CheckpointError, match=r"built with capacity=200, this storage with capacity=.*=200"):
            make_kind("replay", mode, capacity).load_state_dict(state)
    if mode == "memmap temporary":  # files already written for other frames are not rewritten to another layout
        other = make_kind("replay", mode, 200)
        other.add(pixel_rollout(frame=(3, 4, 4)))
        with pytest.raises(CheckpointError, match=r"next/pixels: expected shape \[3, 8, 8\].*load it into a new"):
            other.load_state_dict(state)
