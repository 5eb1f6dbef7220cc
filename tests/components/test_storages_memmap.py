"""Memory-mapped replay (``memmap=True``): the data is in files under ``scratch_dir`` (or a temporary directory
removed with the storage), values and dtypes round-trip through storage, sampling and checkpoints, every replay
kind behaves exactly as in memory, and batches come out on the agent's device."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from tensordict.memmap import MemoryMappedTensor

import rlte_plugins

CAPACITY = 10


def pixel_rollout(num_envs=2, steps=12):
    """[num_envs, T] transitions of every dtype a pixel agent stores; "x" is the flat index of the transition."""
    g = torch.Generator().manual_seed(0)
    shape = [num_envs, steps]
    done = torch.rand(*shape, 1, generator=g) < 0.2
    nxt = TensorDict(pixels=torch.randint(0, 256, (*shape, 3, 8, 8), dtype=torch.uint8, generator=g),
                     reward=torch.randn(*shape, 1, generator=g), done=done, terminated=done,
                     truncated=torch.zeros_like(done), batch_size=shape)  # fmt: skip
    return TensorDict(x=torch.arange(num_envs * steps, dtype=torch.float32).reshape(shape),
                      pixels=torch.randint(0, 256, (*shape, 3, 8, 8), dtype=torch.uint8, generator=g),
                      action=torch.randint(0, 4, shape, generator=g), next=nxt, batch_size=shape)  # fmt: skip


def memmap_replay(scratch_dir, kind="replay", **kwargs):
    rb = rlte_plugins.make("storage", kind, capacity=CAPACITY, batch_size=8, seed=0, memmap=True,
                           scratch_dir=None if scratch_dir is None else str(scratch_dir), **kwargs)  # fmt: skip
    return rb.build()


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


@pytest.mark.parametrize("kind", ["replay", "nstep_replay", "prioritized_replay"])
def test_memmap_checkpoint_resumes_into_files(tmp_path, kind):
    rb = memmap_replay(tmp_path / "run", kind)
    rb.add(pixel_rollout())
    state = rb.state_dict()
    # a resumed run: a fresh storage that has seen no data loads the checkpoint
    resumed = memmap_replay(tmp_path / "resumed", kind)
    resumed.load_state_dict(state)
    assert len(resumed) == CAPACITY
    assert_same(resumed.buffer[:], rb.buffer[:])
    for key, tensor in leaves(resumed.buffer.storage._storage).items():
        assert Path(tensor.filename).parent.is_relative_to(tmp_path / "resumed"), key
    assert_same(resumed.sample(), rb.sample())  # the sampler's state came along
    more = pixel_rollout(steps=1)
    for storage in (rb, resumed):
        # the writer continues where the checkpoint left it; n-step: this one step completes the windows of the
        # steps held back at the checkpoint
        storage.add(more)
    assert_same(resumed.buffer[:], rb.buffer[:])


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
