"""Shared machinery of action distributions: a parameter head built against the action spec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import ProbabilisticActor

from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError


def default_distribution(action_spec: TensorSpec) -> str:
    """The registry name of the distribution that fits ``action_spec`` when none is chosen.

    TorchRL's ``Binary`` and ``MultiCategorical`` subclass ``Categorical``, so the most specific spec is tested
    first: ``bernoulli`` for binary vectors, ``multi_categorical`` for multi-discrete actions, ``categorical``
    for one discrete action, ``diagonal_gaussian`` for anything continuous.

    Examples:
        >>> from torchrl.data import Binary, Bounded, Categorical, MultiCategorical
        >>> specs = Binary(n=3), MultiCategorical([2, 3]), Categorical(4), Bounded(-1, 1, (2,))
        >>> [default_distribution(s) for s in specs]
        ['bernoulli', 'multi_categorical', 'categorical', 'diagonal_gaussian']
    """
    from torchrl.data import Binary, Categorical, MultiCategorical

    if isinstance(action_spec, Binary):
        return "bernoulli"
    if isinstance(action_spec, MultiCategorical):
        return "multi_categorical"
    if isinstance(action_spec, Categorical):
        return "categorical"
    return "diagonal_gaussian"


class DistributionHead(nn.Module):
    """Maps features to distribution parameters and names the distribution class TorchRL samples from.

    Subclasses set ``registry_name``, ``param_keys`` and ``distribution_class`` and implement
    :meth:`_check` (refuse an action spec that does not fit) and :meth:`_make` (the parameter network).
    """

    registry_name = "distribution"
    param_keys: tuple[str, ...] = ()
    distribution_class: Any = None
    distribution_kwargs: dict[str, Any] = {}

    def __init__(self, in_keys: Sequence[str] = ("features",)) -> None:
        super().__init__()
        if isinstance(in_keys, str) or len(in_keys) != 1:
            raise ComponentArgumentError(f"{self._owner()}: in_keys must be a list of one key")
        self.in_keys = list(in_keys)
        self.head: TensorDictModule | None = None
        self.action_shape: tuple[int, ...] | None = None

    def _owner(self) -> str:
        return f"distribution {self.registry_name!r}"

    def build(
        self, action_spec: TensorSpec, in_features: int, batch_dims: int = 0, observation_spec: Any = None
    ) -> DistributionHead:
        """Check the action spec (and, where the distribution reads observations, the observation spec) and
        create the head for features of size ``in_features``."""
        shape = tuple(action_spec.shape[batch_dims:])
        self._check(action_spec, shape)
        if observation_spec is not None:
            self._check_observation(observation_spec)
        if self.head is None:
            self.action_shape = shape
            self.head = TensorDictModule(
                self._make(in_features, action_spec, shape), self.in_keys, self._head_out_keys()
            )
        return self

    def actor(self, body: nn.Module | None, action_spec: TensorSpec) -> ProbabilisticActor:
        """A TorchRL ``ProbabilisticActor``: ``body`` (e.g. the encoder), this head, then sampling."""
        if self.head is None:
            raise RuntimeError(f"{self._owner()} is not built: call .build(action_spec, in_features) first")
        module = self.head if body is None else TensorDictSequential(body, self.head)
        return ProbabilisticActor(
            module,
            in_keys=self.distribution_in_keys(),
            distribution_class=self.distribution_class,
            distribution_kwargs=dict(self.distribution_kwargs),
            return_log_prob=True,
            spec=action_spec,
        )

    # -- the plain-tensor path ------------------------------------------------------------------------------
    #: The head implements :meth:`sample_tensors` and :meth:`score_tensors`: direct collection and the PPO loss
    #: then act and score on plain tensors, without building a TensorDict or a ``torch.distributions`` object
    #: per call. The two paths are the same distribution (tests/agents/test_tensor_path.py checks it). Only the
    #: class that sets it has the path (see :meth:`has_tensor_path`).
    tensor_ops: bool = False

    def has_tensor_path(self) -> bool:
        """Whether this head's own class declares ``tensor_ops``: a subclass (a plugin's head changing
        ``distribution_class``, its kwargs or :meth:`actor`) does not inherit the path, since the plain-tensor
        methods would go on computing its parent's distribution; it declares ``tensor_ops`` again once they fit."""
        return bool(vars(type(self)).get("tensor_ops", False))

    def params(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The distribution's parameters (in ``param_keys`` order) for ``features``."""
        if self.head is None:
            raise RuntimeError(f"{self._owner()} is not built: call .build(action_spec, in_features) first")
        out = self.head.module(features)
        return out if isinstance(out, tuple) else (out,)

    def sample_tensors(self, *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A sampled action and its log-probability, as the ``ProbabilisticActor`` writes them."""
        raise NotImplementedError(f"{self._owner()} has no plain-tensor path (tensor_ops is False)")

    def score_tensors(self, action: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The log-probability of ``action`` and the entropy, per sample."""
        raise NotImplementedError(f"{self._owner()} has no plain-tensor path (tensor_ops is False)")

    def on_policy(self) -> None:
        """Called by agents that store actions and score them again in the loss (PPO and its family) before the
        actor is built: a distribution whose score of a fresh draw can differ from its score of the stored action
        (``squashed_normal``) switches to the latter, so importance ratios start at exactly 1. Nothing to do for
        distributions whose score depends on the action alone."""

    def _head_out_keys(self) -> list[str]:
        return list(self.param_keys)

    def distribution_in_keys(self) -> list[str] | dict[str, str]:
        """What the distribution is built from: its parameters, or ``{argument: key}`` where it reads more."""
        return list(self.param_keys)

    def _check(self, action_spec: TensorSpec, shape: tuple[int, ...]) -> None:
        raise NotImplementedError

    def _check_observation(self, observation_spec: Any) -> None:
        """Refuse an observation spec that lacks what the distribution reads (nothing, by default)."""

    def _make(self, in_features: int, action_spec: TensorSpec, shape: tuple[int, ...]) -> nn.Module:
        raise NotImplementedError

    def _refuse(self, action_spec: TensorSpec, shape: tuple[int, ...], needs: str, instead: str) -> None:
        fitting = default_distribution(action_spec)
        if fitting != self.registry_name:
            instead = fitting
        raise SpecMismatchError(
            f"{self._owner()} needs {needs} but the environment's actions are {type(action_spec).__name__} "
            f"of shape {list(shape)} and dtype {action_spec.dtype}; use {instead!r}"
        )
