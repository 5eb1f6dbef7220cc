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
    tensor_ops = True

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

    def sample_tensors(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        # torch's Categorical's arithmetic, step for step (normalised logits, their softmax, one multinomial draw
        # with replacement): with one seed both paths draw the same actions with bit-identical log-probabilities
        log_p = _normalized(logits)
        probs = log_p.softmax(-1)
        action = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, True).reshape(probs.shape[:-1])
        return action, log_p.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def score_tensors(  # type: ignore[override]
        self, action: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = _normalized(logits)
        # in the order of the loss's calls to torch's Categorical (log_prob, then entropy, which clamps before its
        # product: 0 * -inf would be NaN), so that the gradients reaching log_p add up in the same order
        log_prob = log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        entropy = -(log_p.clamp_min(torch.finfo(log_p.dtype).min) * log_p.softmax(-1)).sum(-1)
        return log_prob, entropy


def _normalized(logits: torch.Tensor) -> torch.Tensor:
    return logits - logits.logsumexp(-1, keepdim=True)
