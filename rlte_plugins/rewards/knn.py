"""What the particle-based entropy rewards (RE3, RISE, RevD) share: a fixed, randomly initialised encoder and the
distances from each embedded state to its k nearest neighbours in the same rollout of the same env.

A ``[num_envs, T]`` batch is grouped per env (env e's T next observations are one set of particles, as RLeXplore
computes the k-NN within each env's rollout); a ``[B]`` batch (a replay sample) is one set of B, as RE3 computes
the k-NN within a sampled minibatch off-policy. All groups are compared at once: ``torch.cdist`` over
``[groups, n, m]`` then ``topk``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rlte_plugins.errors import ComponentArgumentError, positive_int
from rlte_plugins.rewards.base import IntrinsicReward, widths

#: rows embedded per encoder call: bounds the CNN's activations on long pixel rollouts
ENCODE_CHUNK = 1024
#: floor of a k-NN distance raised to a power or divided by: a state repeated k times has distance 0
MIN_DISTANCE = 1e-8


def knn_distances(query: torch.Tensor, k: int, keys: torch.Tensor | None = None) -> torch.Tensor:
    """The Euclidean distances from every row of ``query`` (``[G, n, D]``) to its ``k`` nearest rows of ``keys``
    (``[G, m, D]``, the same group), ascending: ``[G, n, k]``. Without ``keys`` the neighbours are the other rows
    of ``query``: a row is not its own neighbour, a duplicate of it is (at distance 0).

    Examples:
        >>> import torch
        >>> points = torch.tensor([[[0.0], [1.0], [3.0]]])
        >>> knn_distances(points, 2)
        tensor([[[1., 3.],
                 [1., 2.],
                 [2., 3.]]])
    """
    dist = torch.cdist(query, query if keys is None else keys)
    if keys is None:
        dist.diagonal(dim1=-2, dim2=-1).fill_(math.inf)
    return dist.topk(k, dim=-1, largest=False).values


def renyi_alpha(owner: str, value: Any) -> float:
    """``value`` if it is a Rényi order: a finite number in (0, 1) or (1, inf); else one
    :class:`~rlte_plugins.errors.ComponentArgumentError` line naming ``owner`` and ``alpha``."""
    valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not valid or value <= 0 or value == 1:
        raise ComponentArgumentError(f"{owner}: alpha must be a number in (0, 1) or (1, inf) (the Rényi order; 1 "
                                     f"is Shannon's), got {value!r}")  # fmt: skip
    return float(value)


class RandomEncoderKNN(IntrinsicReward):
    """Base of the k-NN rewards: a frozen random encoder (:meth:`embed`) and the neighbour distances
    (:meth:`neighbours`, :meth:`reduce`); a subclass turns distances into its bonus in :meth:`bonus`.

    The encoder is the ICM CNN and a linear layer on images, an MLP on vectors, initialised from ``seed`` and never
    trained (``requires_grad_(False)``: no optimiser, :meth:`update` does nothing). A set of n states has n - 1
    neighbours for each: with n - 1 < ``k`` the farthest one stands for the k-th, a single state gets 0.

    Args:
        latent_dim: size of the embeddings.
        k: which neighbour's distance the bonus reads (the k-th nearest, the state itself excluded).
        average: average the bonus over the 1st..k-th neighbours instead of reading the k-th alone (RLeXplore's
            ``average_entropy`` / ``average_divergence``).
        hidden: widths of the encoder's MLP on vector observations.
    """

    def __init__(
        self,
        beta: float = 1.0,
        kappa: float = 0.0,
        reward_norm: str = "std",
        gamma: float = 0.99,
        obs_norm: bool = False,
        update_proportion: float = 1.0,
        lr: float = 1e-4,
        latent_dim: int = 128,
        k: int = 3,
        average: bool = False,
        hidden: Sequence[int] = (256, 256),
        seed: int = 0,
    ) -> None:
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed)
        self.latent_dim = positive_int(self.owner, "latent_dim", latent_dim)
        self.k = positive_int(self.owner, "k", k)
        if not isinstance(average, bool):
            raise ComponentArgumentError(f"{self.owner}: average must be True or False, got {average!r}")
        self.average = average
        self.hidden = widths(self.owner, "hidden", hidden)

    def _build(self) -> None:
        self.encoder = self.feature_net(self.latent_dim, self.hidden)
        self.encoder.requires_grad_(False)

    def embed(self, batch: TensorDictBase) -> torch.Tensor:
        """The embeddings of ``batch``'s next observations grouped as the k-NN compares them:
        ``[num_envs, T, latent_dim]`` for a ``[num_envs, T]`` batch, ``[1, B, latent_dim]`` for a ``[B]`` one."""
        assert self.obs_shape is not None
        obs = self.observations(batch).reshape(-1, *self.obs_shape)
        if not self.pixels:
            obs = obs.float()
        with torch.no_grad():
            y = torch.cat([self.encoder(part) for part in obs.split(ENCODE_CHUNK)])
        groups = batch.shape[0] if batch.batch_dims >= 2 else 1
        return y.reshape(groups, -1, self.latent_dim)

    def neighbours(self, query: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The ascending distances ``[G, n, j]`` from each embedding of ``query`` to its ``j`` nearest others in
        ``query`` itself, then to its ``j`` nearest in each of ``others``, with ``j = min(k, neighbours that every
        set offers)`` so that the j-th of each pair up."""
        j = min(self.k, query.shape[-2] - 1, *(other.shape[-2] for other in others))
        return knn_distances(query, j), *(knn_distances(query, j, other) for other in others)

    def reduce(self, values: torch.Tensor) -> torch.Tensor:
        """The bonus ``[G, n]`` from per-neighbour values ``[G, n, j]``: the last (k-th) one's, or their mean with
        ``average``; 0 where there is no neighbour."""
        if values.shape[-1] == 0:
            return values.new_zeros(values.shape[:-1])
        return values.mean(-1) if self.average else values[..., -1]

    def bonus(self, y: torch.Tensor) -> torch.Tensor:
        """The bonus ``[G, n]`` of grouped embeddings ``y`` (``[G, n, latent_dim]``)."""
        raise NotImplementedError

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        return self.bonus(self.embed(batch)).reshape(batch.shape)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, latent_dim={self.latent_dim}, k={self.k}, average={self.average}"
