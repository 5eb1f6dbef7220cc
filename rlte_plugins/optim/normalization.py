"""Running statistics on the device: observation normalisation (a module of the acting policy) and the return
scale that divides rewards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase


class RunningMeanStd:
    """Running mean and variance over a batch axis (Chan et al.'s parallel update), kept on the device."""

    def __init__(self, shape: Sequence[int], device: torch.device) -> None:
        self.mean = torch.zeros(tuple(shape), device=device)
        self.var = torch.ones(tuple(shape), device=device)
        self.count = torch.tensor(1e-4, device=device)

    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape).float()
        n = torch.tensor(float(x.shape[0]), device=x.device)
        mean, var = x.mean(0), x.var(0, unbiased=False)
        delta, total = mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.mean, self.var, self.count = (state[k].to(self.mean.device) for k in ("mean", "var", "count"))


class ObservationNorm(TensorDictModuleBase):
    """Writes ``key`` normalised by running statistics, clipped to ``[-clip, clip]`` (CleanRL's and rl8's
    observation normalisation, inside the acting module so that evaluation and export normalise alike).

    The statistics move only while :attr:`updating` is set (the agent sets it while collecting); the rollout
    stores normalised observations, so the update re-scores exactly what the policy acted on.
    """

    def __init__(self, shape: Sequence[int], device: torch.device, key: str = "observation", clip: float = 10.0):
        super().__init__()
        self.in_keys, self.out_keys = [key], [key]
        self.key, self.clip = key, clip
        self.register_buffer("mean", torch.zeros(tuple(shape), device=device))
        self.register_buffer("var", torch.ones(tuple(shape), device=device))
        self.register_buffer("count", torch.tensor(1e-4, device=device))
        self.updating = False

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        stats = RunningMeanStd(self.mean.shape, self.mean.device)
        stats.mean, stats.var, stats.count = self.mean, self.var, self.count
        stats.update(x)
        self.mean.copy_(stats.mean)
        self.var.copy_(stats.var)
        self.count.copy_(stats.count)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / (self.var + 1e-8).sqrt()).clamp(-self.clip, self.clip)

    def normalize_tracking(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs`` normalised, after moving the statistics with it while :attr:`updating` (not ``apply``, which
        would shadow ``nn.Module.apply`` and break it on any module tree holding this one)."""
        if self.updating:
            self.update(obs)
        return self.normalize(obs)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict.set(self.key, self.normalize_tracking(tensordict.get(self.key)))
