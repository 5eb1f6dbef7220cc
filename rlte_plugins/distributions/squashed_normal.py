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
from rlte_plugins.errors import ComponentArgumentError

_LOG2 = math.log(2.0)


def _log_one_minus_tanh_sq(u: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` without cancellation: ``2 (log 2 - u - softplus(-2u))``."""
    return 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))


SCORES = ("exact", "from_action")


class SquashedNormal(D.Distribution):
    """``low + (tanh(u) + 1) / 2 * (high - low)`` with ``u ~ Normal(loc, scale)`` independently per dimension.

    ``log_prob`` is the change of variables ``log N(u) - sum log|d action / d u|``. Float32 ``tanh`` rounds
    ``|u| > 9`` onto the bounds and loses ``u`` well before that, so which ``u`` scores a draw is a choice:

    - ``score_draws="exact"`` (the default; TorchRL's ``TanhNormal`` semantics): a draw is scored at its exact
      pre-tanh value, with or without gradient. What off-policy losses need: SAC's actor loss and its target
      (next actions drawn without gradient) score saturated draws by their true density, whose Jacobian term
      pulls the mean back from the bound; scored through ``atanh`` of the rounded action, a draw at ``loc = 12``
      had log-prob -34.8 instead of 22.2 and a gradient of the wrong sign.
    - ``score_draws="from_action"``: a draw is scored from the action, exactly as a stored action is re-scored
      later, so what a collector writes as ``action_log_prob`` is bit for bit what an on-policy loss recomputes
      (with exact scores, 26% of PPO ratios fell outside [0.8, 1.2] before any update at ``scale = exp(2)``).
      On-policy agents switch their head to it (:meth:`SquashedNormalHead.on_policy`).

    Any other tensor (a stored action, a copy of a draw) is scored from the action: ``u = atanh`` of it, clamped
    just inside the bounds. ``entropy`` has no closed form; it returns the Monte-Carlo estimate ``-log p(u)`` at
    exact reparameterised draws (``samples`` of them). Parameters are used in at least float32, also under bf16
    autocast: the bounds and ``atanh`` need the precision.

    Examples:
        >>> import torch
        >>> loc, scale = torch.zeros(4, 1), torch.full((4, 1), 20.0)  # most draws saturate
        >>> dist = SquashedNormal(loc, scale, score_draws="from_action")
        >>> action = dist.sample()
        >>> torch.equal(dist.log_prob(action), SquashedNormal(loc, scale).log_prob(action.clone()))
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
        score_draws: str = "exact",
        validate_args: bool | None = None,
    ) -> None:
        if score_draws not in SCORES:
            raise ValueError(f"score_draws must be one of {', '.join(SCORES)}, got {score_draws!r}")
        dtype = torch.promote_types(loc.dtype, torch.float32)
        self.loc, self.scale = loc.to(dtype), scale.to(dtype)
        self.low = torch.as_tensor(low, device=loc.device).to(dtype)
        self.high = torch.as_tensor(high, device=loc.device).to(dtype)
        self._half_range = (self.high - self.low) / 2.0
        self._base = D.Normal(self.loc, self.scale, validate_args=False)
        self._exact = score_draws == "exact"
        self._draw: tuple[torch.Tensor, torch.Tensor] | None = None  # (action, exact u) of the last draw
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(u) + 1.0) * self._half_range

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        u = self._base.rsample(sample_shape)
        action = self._squash(u)
        self._draw = (action, u) if self._exact else None
        return action

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
        if self._draw is not None and value is self._draw[0]:
            return self._log_prob_pre_tanh(self._draw[1])
        return self._log_prob_pre_tanh(self._pre_tanh(value.to(self.loc.dtype)))

    def entropy(self, samples: int = 1) -> torch.Tensor:
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
        score_draws: ``"exact"`` (off-policy: SAC, DrQ) or ``"from_action"`` (what on-policy agents switch to
            through :meth:`on_policy`); see :class:`SquashedNormal`.

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
        score_draws: str = "exact",
        in_keys: Sequence[str] = ("features",),
    ) -> None:
        super().__init__(in_keys)
        if score_draws not in SCORES:
            raise ComponentArgumentError(
                f"{self._owner()}: score_draws must be one of {', '.join(SCORES)}, got {score_draws!r}"
            )
        self.score_draws = score_draws
        if not log_std_min < log_std_max:
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

    def on_policy(self) -> None:
        """Score draws from their actions: the collector's ``action_log_prob`` then equals the loss's re-score."""
        self.score_draws = "from_action"
        if "score_draws" in self.distribution_kwargs:  # already built
            self.distribution_kwargs["score_draws"] = self.score_draws

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        low = action_spec.space.low.reshape(-1, shape[0])[0].detach().clone()
        high = action_spec.space.high.reshape(-1, shape[0])[0].detach().clone()
        self.distribution_kwargs: dict[str, Any] = {"low": low, "high": high, "score_draws": self.score_draws}
        return _LocScale(in_features, shape[0], self.init_gain, self.log_std_min, self.log_std_max)
