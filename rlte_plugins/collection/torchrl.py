"""Collection through TorchRL's ``Collector``: any TorchRL env, and the seam for multi-process collectors."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.envs import EnvBase


class TorchRLCollection:
    """Batches of ``num_envs x num_steps`` frames from a ``Collector`` over ``env`` running ``actor``.

    The collector is given the acting module only (never the agent) and shares its parameters: it is created
    with ``trust_policy=True`` on the training device, so updates are seen without copying weights. The envs'
    mid-episode state is not checkpointed: a resumed run starts from a reset.
    """

    def __init__(self, env: EnvBase, actor: Any, num_steps: int, device: torch.device) -> None:
        self.env, self.actor, self.device = env, actor, device
        self.frames_per_batch = int(env.batch_size.numel()) * num_steps
        self._collector: Collector | None = None
        self._iter: Any = None

    def collect(self) -> TensorDictBase:
        if self._collector is None:
            self._collector = Collector(
                self.env,
                self.actor,
                frames_per_batch=self.frames_per_batch,
                total_frames=-1,
                device=self.device,
                trust_policy=True,
                auto_register_policy_transforms=False,
            )
            self._iter = iter(self._collector)
        return next(self._iter)

    def close(self) -> None:
        if self._collector is not None:
            self._collector.shutdown(close_env=False)
            self._collector, self._iter = None, None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.close()  # the next batch starts from a fresh reset
