"""Discrete action distributions beyond one categorical: masked, independent binary, and multi-discrete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributions as D
from torch import nn
from torchrl.data import Binary, Categorical, Composite, MultiCategorical, TensorSpec
from torchrl.modules import MaskedCategorical

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import orthogonal_init
from rlte_plugins.errors import SpecMismatchError


def _linear(in_features: int, out_features: int, gain: float) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    orthogonal_init(layer, gain)
    return layer


class MaskedCategoricalHead(DistributionHead):
    """Categorical over discrete actions where an action mask (``True`` = allowed) comes with the observation.

    Masked actions get zero probability (never sampled, excluded from the entropy); the mask is read from
    ``mask_key`` of the same TensorDict, so it must be one of the env's observations (checked at build time).

    Args:
        mask_key: the observation key holding a boolean mask of shape ``[n_actions]``.
        init_gain: orthogonal-init gain of the logits layer.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Categorical
        >>> head = rlte_plugins.make("distribution", "masked_categorical").build(Categorical(3), in_features=4)
        >>> mask = torch.tensor([[True, False, False]]).expand(100, 3)
        >>> obs = TensorDict(features=torch.randn(100, 4), action_mask=mask, batch_size=[100])
        >>> td = head.actor(None, Categorical(3))(obs)
        >>> td["action"].unique().tolist()
        [0]
    """

    registry_name = "masked_categorical"
    param_keys = ("logits",)
    distribution_class = MaskedCategorical

    def __init__(
        self, mask_key: str = "action_mask", init_gain: float = 0.01, in_keys: Sequence[str] = ("features",)
    ) -> None:
        super().__init__(in_keys)
        self.mask_key = mask_key
        self.init_gain = init_gain

    def distribution_in_keys(self) -> dict[str, str]:
        return {"logits": "logits", "mask": self.mask_key}

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        if not isinstance(action_spec, Categorical) or shape != ():
            self._refuse(action_spec, shape, "one discrete action (a Categorical spec)", "diagonal_gaussian")
        self._n = int(action_spec.space.n)

    def _check_observation(self, observation_spec: Any) -> None:
        if not isinstance(observation_spec, Composite) or self.mask_key not in observation_spec.keys(True, True):
            keys = list(observation_spec.keys(True, True)) if isinstance(observation_spec, Composite) else []
            raise SpecMismatchError(
                f"{self._owner()} reads its action mask from {self.mask_key!r}, which the environment does not "
                f"provide (observations: {keys}); pass mask_key=... or use 'categorical'"
            )
        spec = observation_spec[self.mask_key]
        if spec.shape[-1:] != (self._n,):
            raise SpecMismatchError(
                f"{self._owner()}: the mask {self.mask_key!r} has shape {list(spec.shape)} but there are "
                f"{self._n} actions"
            )

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        return _linear(in_features, int(action_spec.space.n), self.init_gain)


class IndependentBernoulli(D.Distribution):
    """Independent Bernoulli variables over the last dimension (one log-probability per action vector).

    Samples are ``int64`` 0/1 (the dtype of binary action specs); ``log_prob`` accepts any numeric dtype.
    """

    arg_constraints = {"logits": D.constraints.real}
    has_rsample = False

    def __init__(self, logits: torch.Tensor, validate_args: bool | None = None) -> None:
        self.logits = logits
        self._base = D.Bernoulli(logits=logits, validate_args=False)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=False)

    @property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self._base.sample(sample_shape).long()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._base.log_prob(value.to(self.logits.dtype)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self._base.entropy().sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return (self.logits > 0).long()

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode


class BernoulliHead(DistributionHead):
    """Independent Bernoulli actions for a binary action vector (gymnasium ``MultiBinary``).

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Binary
        >>> head = rlte_plugins.make("distribution", "bernoulli").build(Binary(n=5), in_features=4)
        >>> td = head.actor(None, Binary(n=5))(TensorDict(features=torch.zeros(2, 4), batch_size=[2]))
        >>> td["action"].shape, td["action"].dtype, td["action_log_prob"].shape
        (torch.Size([2, 5]), torch.int64, torch.Size([2]))
    """

    registry_name = "bernoulli"
    param_keys = ("logits",)
    distribution_class = IndependentBernoulli

    def __init__(self, init_gain: float = 0.01, in_keys: Sequence[str] = ("features",)) -> None:
        super().__init__(in_keys)
        self.init_gain = init_gain

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        if not isinstance(action_spec, Binary) or len(shape) != 1:
            self._refuse(action_spec, shape, "a binary action vector (a Binary spec)", "multi_categorical")

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        return _linear(in_features, shape[0], self.init_gain)


class MultiCategoricalDistribution(D.Distribution):
    """Independent categoricals of sizes ``nvec`` from one concatenated logits vector.

    ``sample`` stacks one ``int64`` index per sub-action; ``log_prob`` and ``entropy`` are the sums.
    """

    arg_constraints = {"logits": D.constraints.real}
    has_rsample = False

    def __init__(self, logits: torch.Tensor, nvec: Sequence[int], validate_args: bool | None = None) -> None:
        self.logits = logits
        self.nvec = [int(n) for n in nvec]
        self._parts = [D.Categorical(logits=x, validate_args=False) for x in logits.split(self.nvec, dim=-1)]
        super().__init__(logits.shape[:-1], torch.Size([len(self.nvec)]), validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return torch.stack([p.sample(sample_shape) for p in self._parts], dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = value.long()
        return sum(p.log_prob(value[..., i]) for i, p in enumerate(self._parts))  # type: ignore[return-value]

    def entropy(self) -> torch.Tensor:
        return sum(p.entropy() for p in self._parts)  # type: ignore[return-value]

    @property
    def mode(self) -> torch.Tensor:
        return torch.stack([x.argmax(-1) for x in self.logits.split(self.nvec, dim=-1)], dim=-1)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode


class MultiCategoricalHead(DistributionHead):
    """One categorical per sub-action of a multi-discrete action (gymnasium ``MultiDiscrete``).

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> from torchrl.data import MultiCategorical
        >>> spec = MultiCategorical([3, 2])
        >>> head = rlte_plugins.make("distribution", "multi_categorical").build(spec, in_features=4)
        >>> td = head.actor(None, spec)(TensorDict(features=torch.zeros(6, 4), batch_size=[6]))
        >>> td["action"].shape, bool((td["action"][:, 0] < 3).all() and (td["action"][:, 1] < 2).all())
        (torch.Size([6, 2]), True)
    """

    registry_name = "multi_categorical"
    param_keys = ("logits",)
    distribution_class = MultiCategoricalDistribution

    def __init__(self, init_gain: float = 0.01, in_keys: Sequence[str] = ("features",)) -> None:
        super().__init__(in_keys)
        self.init_gain = init_gain

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        if not isinstance(action_spec, MultiCategorical) or len(shape) != 1:
            self._refuse(action_spec, shape, "a multi-discrete action (a MultiCategorical spec)", "categorical")

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        nvec = [int(n) for n in action_spec.nvec.reshape(-1, shape[0])[0].tolist()]
        self.distribution_kwargs = {"nvec": tuple(nvec)}
        return _linear(in_features, sum(nvec), self.init_gain)
