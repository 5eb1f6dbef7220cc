"""Diagonal Gaussian distribution over a continuous action vector."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import IndependentNormal

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import orthogonal_init


class _GaussianParams(nn.Module):
    def __init__(self, in_features: int, dim: int, log_std_init: float, state_dependent: bool, gain: float) -> None:
        super().__init__()
        self.loc = nn.Linear(in_features, dim)
        orthogonal_init(self.loc, gain)
        self.state_dependent = state_dependent
        if state_dependent:
            self.log_std = nn.Linear(in_features, dim)
            orthogonal_init(self.log_std, gain)
            nn.init.constant_(self.log_std.bias, log_std_init)
        else:
            self.log_std = nn.Parameter(torch.full((dim,), float(log_std_init)))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.loc(features)
        log_std = self.log_std(features) if self.state_dependent else self.log_std.expand_as(loc)
        return loc, log_std.clamp(-20.0, 2.0).exp()


class DiagonalGaussianHead(DistributionHead):
    """Diagonal Gaussian over continuous actions (mean head, state-independent log-std by default).

    Samples are unbounded: the environment clips them into its bounds while the log-probability keeps the
    sampled value, as PPO needs.

    Examples:
        >>> import torch, rlte_plugins
        >>> from torchrl.data import Bounded
        >>> spec = Bounded(-1.0, 1.0, shape=(2,))
        >>> head = rlte_plugins.make("distribution", "diagonal_gaussian").build(spec, in_features=8)
        >>> from tensordict import TensorDict
        >>> td = head.actor(None, spec)(TensorDict(features=torch.zeros(5, 8), batch_size=[5]))
        >>> td["action"].shape, td["scale"][0].tolist()
        (torch.Size([5, 2]), [1.0, 1.0])
    """

    registry_name = "diagonal_gaussian"
    param_keys = ("loc", "scale")
    distribution_class = IndependentNormal
    tensor_ops = True

    def __init__(
        self,
        log_std_init: float = 0.0,
        state_dependent_std: bool = False,
        init_gain: float = 0.01,
        in_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(in_keys)
        self.log_std_init = log_std_init
        self.state_dependent_std = state_dependent_std
        self.init_gain = init_gain

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        if not action_spec.dtype.is_floating_point or len(shape) != 1:
            self._refuse(action_spec, shape, "a continuous action vector (a float Box)", "categorical")

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        return _GaussianParams(in_features, shape[0], self.log_std_init, self.state_dependent_std, self.init_gain)

    def sample_tensors(  # type: ignore[override]
        self, loc: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        action = torch.normal(loc, scale)  # as torch's Normal draws: with one seed the two paths act alike
        return action, _normal_log_prob(action, loc, scale)

    def score_tensors(  # type: ignore[override]
        self, action: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_prob = _normal_log_prob(action, loc, scale)  # first, as the loss asks torch's Normal
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(scale)).sum(-1)
        return log_prob, entropy


def _normal_log_prob(value: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Summed log-density of independent normals: torch's ``Normal.log_prob`` step for step (the same rounding)."""
    var = scale**2
    return (-((value - loc) ** 2) / (2 * var) - scale.log() - math.log(math.sqrt(2 * math.pi))).sum(-1)
