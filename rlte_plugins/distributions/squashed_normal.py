"""Tanh-squashed Gaussian over a bounded continuous action (SAC, DrQ), with an exact log-probability."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributions as D
import torch.nn.functional as F
from torch import nn
from torchrl.data import TensorSpec

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import orthogonal_init

_LOG2 = math.log(2.0)


def _log_one_minus_tanh_sq(u: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` without cancellation: ``2 (log 2 - u - softplus(-2u))``."""
    return 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))


class SquashedNormal(D.Distribution):
    """``low + (tanh(u) + 1) / 2 * (high - low)`` with ``u ~ Normal(loc, scale)`` independently per dimension.

    ``log_prob`` is the change of variables ``log N(u) - sum log|d action / d u|`` at ``u = atanh`` of the action
    (clamped just inside the bounds), always computed from the action alone, so the score a ``ProbabilisticActor``
    writes while collecting is bit for bit what a loss recomputes from the stored action. Scoring the exact pre-tanh
    draw at sampling instead (a cache, or TorchRL's ``rsample_and_log_prob`` hook, which ``ProbabilisticActor``
    prefers when it exists) disagrees with any re-evaluation once float32 ``tanh`` rounds to +-1 (``|u| > 9``):
    with ``scale = exp(2)`` that put 26% of PPO ratios outside [0.8, 1.2] before any update. ``entropy`` has no
    closed form; it returns the single-sample Monte-Carlo estimate ``-log p(u)`` at exact pre-tanh draws, unbiased
    and differentiable (pass ``samples`` to average more).

    Examples:
        >>> import torch
        >>> dist = SquashedNormal(torch.zeros(4, 1), torch.full((4, 1), 20.0))  # most draws saturate
        >>> action = dist.sample()
        >>> fresh = SquashedNormal(torch.zeros(4, 1), torch.full((4, 1), 20.0))
        >>> torch.equal(dist.log_prob(action), fresh.log_prob(action.clone()))
        True
    """

    arg_constraints = {"loc": D.constraints.real, "scale": D.constraints.positive}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        low: torch.Tensor | float = -1.0,
        high: torch.Tensor | float = 1.0,
        validate_args: bool | None = None,
    ) -> None:
        self.loc, self.scale = loc, scale
        self.low = torch.as_tensor(low, dtype=loc.dtype, device=loc.device)
        self.high = torch.as_tensor(high, dtype=loc.dtype, device=loc.device)
        self._half_range = (self.high - self.low) / 2.0
        self._base = D.Normal(loc, scale, validate_args=False)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(u) + 1.0) * self._half_range

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self._squash(self._base.rsample(sample_shape))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def _pre_tanh(self, action: torch.Tensor) -> torch.Tensor:
        # float32 tanh rounds |u| > 9 onto the bounds, where atanh is infinite: score those as u = atanh(1 - eps)
        eps = torch.finfo(action.dtype).eps
        y = ((action - self.low) / self._half_range - 1.0).clamp(-1.0 + eps, 1.0 - eps)
        return torch.atanh(y)

    def _log_prob_pre_tanh(self, u: torch.Tensor) -> torch.Tensor:
        log_det = _log_one_minus_tanh_sq(u) + torch.log(self._half_range)
        return (self._base.log_prob(u) - log_det).sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._log_prob_pre_tanh(self._pre_tanh(value))

    def entropy(self, samples: int = 1) -> torch.Tensor:
        # an estimate, never compared with a stored score, so it uses the exact draws (no atanh round trip)
        return -self._log_prob_pre_tanh(self._base.rsample(torch.Size([samples]))).mean(0)

    @property
    def mode(self) -> torch.Tensor:
        """The squashed mean (``tanh`` of the Gaussian's mode); what evaluation acts with."""
        return self._squash(self.loc)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    @property
    def mean(self) -> torch.Tensor:
        return self.mode


class _LocScale(nn.Module):
    def __init__(self, in_features: int, dim: int, gain: float, log_std_min: float, log_std_max: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * dim)
        orthogonal_init(self.linear, gain)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_std = self.linear(features).chunk(2, dim=-1)
        # tanh-bounded log-std (as SAC/DrQ implementations do): smooth gradients at both ends
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1.0)
        return loc, log_std.exp()


class SquashedNormalHead(DistributionHead):
    """Tanh-squashed Gaussian onto the action bounds, with a state-dependent standard deviation (SAC).

    Args:
        log_std_min, log_std_max: the range the log-standard deviation is squashed into.
        init_gain: orthogonal-init gain of the parameter layer.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> spec = Bounded(-2.0, 2.0, shape=(3,))
        >>> head = rlte_plugins.make("distribution", "squashed_normal").build(spec, in_features=8)
        >>> td = head.actor(None, spec)(TensorDict(features=torch.randn(100, 8), batch_size=[100]))
        >>> bool(td["action"].abs().max() <= 2.0), td["action_log_prob"].shape
        (True, torch.Size([100]))
    """

    registry_name = "squashed_normal"
    param_keys = ("loc", "scale")
    distribution_class = SquashedNormal

    def __init__(
        self,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        init_gain: float = 0.01,
        in_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(in_keys)
        if not log_std_min < log_std_max:
            from rlte_plugins.errors import ComponentArgumentError

            raise ComponentArgumentError(
                f"{self._owner()}: log_std_min must be below log_std_max, got {log_std_min} and {log_std_max}"
            )
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.init_gain = init_gain

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        bounded = hasattr(action_spec, "space") and hasattr(action_spec.space, "low")
        if not action_spec.dtype.is_floating_point or len(shape) != 1 or not bounded:
            self._refuse(
                action_spec, shape, "a bounded continuous action vector (a float Bounded spec)", "diagonal_gaussian"
            )

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        low = action_spec.space.low.reshape(-1, shape[0])[0].detach().clone()
        high = action_spec.space.high.reshape(-1, shape[0])[0].detach().clone()
        self.distribution_kwargs: dict[str, Any] = {"low": low, "high": high}
        return _LocScale(in_features, shape[0], self.init_gain, self.log_std_min, self.log_std_max)
