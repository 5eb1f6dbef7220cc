"""Categorical distribution over a discrete action space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrl.data import Categorical, TensorSpec

from rlte_plugins.distributions.base import DistributionHead
from rlte_plugins.encoders.base import orthogonal_init


class CategoricalHead(DistributionHead):
    """Categorical distribution over discrete actions (logits from a linear head, small-gain init).

    Examples:
        >>> import torch, rlte_plugins
        >>> from torchrl.data import Categorical
        >>> head = rlte_plugins.make("distribution", "categorical").build(Categorical(3), in_features=8)
        >>> actor = head.actor(None, Categorical(3))
        >>> from tensordict import TensorDict
        >>> td = actor(TensorDict(features=torch.zeros(5, 8), batch_size=[5]))
        >>> td["action"].shape, td["action_log_prob"].shape
        (torch.Size([5]), torch.Size([5]))
    """

    registry_name = "categorical"
    param_keys = ("logits",)
    distribution_class = torch.distributions.Categorical

    def __init__(self, init_gain: float = 0.01, in_keys: Sequence[str] = ("features",)) -> None:
        super().__init__(in_keys)
        self.init_gain = init_gain

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        if not isinstance(action_spec, Categorical) or shape != ():
            self._refuse(action_spec, shape, "one discrete action (a Categorical spec)", "diagonal_gaussian")

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        layer = nn.Linear(in_features, int(action_spec.space.n))
        orthogonal_init(layer, self.init_gain)
        return layer
