"""On-policy rollout storage on a TorchRL replay buffer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tensordict import TensorDictBase
from torchrl.data import LazyTensorStorage, SamplerWithoutReplacement, TensorDictReplayBuffer

from rlte_plugins.errors import ComponentArgumentError


class RolloutStorage:
    """On-policy rollout buffer: one batch of transitions, minibatches drawn without replacement.

    A thin owner of a TorchRL ``TensorDictReplayBuffer`` (``LazyTensorStorage`` +
    ``SamplerWithoutReplacement``), allocated on the training device by :meth:`build`.

    Args:
        device: where the rollout lives (default: the agent's device).

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> storage = rlte_plugins.make("storage", "rollout").build(capacity=8, minibatch_size=4)
        >>> batch = TensorDict(x=torch.arange(8), batch_size=[8])
        >>> sorted(torch.cat([mb["x"] for mb in storage.minibatches(batch, epochs=1)]).tolist())
        [0, 1, 2, 3, 4, 5, 6, 7]
    """

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = device
        self.buffer: TensorDictReplayBuffer | None = None
        self.capacity = 0
        self.minibatch_size = 0

    def build(self, capacity: int, minibatch_size: int, device: str | torch.device | None = None) -> RolloutStorage:
        if minibatch_size < 1 or minibatch_size > capacity:
            raise ComponentArgumentError(
                f"storage 'rollout': minibatch_size must be in [1, {capacity}] (the rollout size), got {minibatch_size}"
            )
        self.capacity, self.minibatch_size = capacity, minibatch_size
        self.buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(capacity, device=self.device or device or "cpu"),
            sampler=SamplerWithoutReplacement(drop_last=True),
            batch_size=minibatch_size,
        )
        return self

    def minibatches(self, batch: TensorDictBase, epochs: int) -> Iterator[TensorDictBase]:
        """Store ``batch`` (flattened) and yield ``epochs`` passes of shuffled minibatches over it."""
        if self.buffer is None:
            raise RuntimeError("storage 'rollout' is not built: call .build(capacity, minibatch_size) first")
        flat = batch.reshape(-1)
        if flat.numel() > self.capacity:
            raise ComponentArgumentError(
                f"storage 'rollout' holds {self.capacity} transitions but got a batch of {flat.numel()}"
            )
        self.buffer.empty()
        self.buffer.extend(flat)
        per_epoch = flat.numel() // self.minibatch_size
        for _ in range(epochs * per_epoch):
            yield self.buffer.sample()


class DictRolloutStorage(RolloutStorage):
    """On-policy rollout for dict observations (identical to ``rollout``: TensorDicts nest natively)."""
