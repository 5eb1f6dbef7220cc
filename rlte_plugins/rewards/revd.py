"""Rewarding Episodic Visitation Discrepancy (Yuan et al., 2023, "Rewarding Episodic Visitation Discrepancy for
Exploration in Reinforcement Learning")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rlte_plugins.rewards.knn import MIN_DISTANCE, RandomEncoderKNN, renyi_alpha


class RevD(RandomEncoderKNN):
    """The Rényi divergence between the states of successive rollouts of an env, per state: its k-NN distance to
    the previous rollout over its k-NN distance within the current one, raised to ``1 - alpha``.

    RevD rewards the discrepancy between the visitation of successive episodes, estimated with the k-NN estimator
    of the Rényi divergence (order ``alpha``) over embeddings ``y = f(s')`` from a randomly initialised encoder
    that is never trained: ``r_t = (d_k(y_t, previous) / d_k(y_t, current))^{1 - alpha}``, with ``d_k(y, S)`` the
    distance from ``y`` to its k-th nearest neighbour in ``S`` (``y`` itself excluded from the current set). As in
    RLeXplore, an "episode" is a rollout batch: the current set is env e's T next observations of the
    ``[num_envs, T]`` batch, the previous set env e's embeddings of the previous batch, kept per env as memory
    (``[num_envs, T, latent_dim]``; not reset at episode ends, which fall inside batches). A ``[B]`` batch (a
    replay sample) is one set, compared with the previous sample: off-policy agents recompute it on sampled batches
    (a collection step of one step per env would hold no neighbours). The first batch, or one whose number of envs
    differs from the memory's, has no previous set: its bonus is 0 (a divergence needs two sets). A state with
    fewer than k others in a set uses the farthest; distances of 0 count as 1e-8. Defaults are RLeXplore's:
    ``alpha = 0.5``, ``k = 5``, the k-th neighbour alone (``average`` off), ``latent_dim = 128``, ``beta = 1``
    without decay, the bonus divided by its running std.

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward` (nothing is trained: ``lr`` and
            ``update_proportion`` are unused).
        alpha: the Rényi order, in (0, 1) or (1, inf).
        latent_dim: size of the random embeddings.
        k: the neighbour whose distances are compared.
        average: average the ratio ``(d_j(previous) / d_j(current))^{1 - alpha}`` over the 1st..k-th neighbours
            (RLeXplore's ``average_divergence``).
        hidden: widths of the encoder's MLP on vector observations.

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> revd = rlte_plugins.make("reward", "revd").build(env.observation_spec, env.action_spec)
        >>> first = revd.compute(env.rollout(16, break_when_any_done=False))
        >>> bool((first == 0).all())  # no previous rollout yet
        True
        >>> second = revd.compute(env.rollout(16, break_when_any_done=False))
        >>> second.shape, bool((second > 0).all())
        (torch.Size([4, 16]), True)
    """

    registry_name = "revd"
    episodic = False

    def __init__(
        self,
        beta: float = 1.0,
        kappa: float = 0.0,
        reward_norm: str = "std",
        gamma: float = 0.99,
        obs_norm: bool = False,
        update_proportion: float = 1.0,
        lr: float = 1e-4,
        alpha: float = 0.5,
        latent_dim: int = 128,
        k: int = 5,
        average: bool = False,
        hidden: Sequence[int] = (256, 256),
        seed: int = 0,
    ) -> None:
        super().__init__(
            beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, latent_dim, k, average, hidden, seed
        )
        self.alpha = renyi_alpha(self.owner, alpha)
        self._previous: torch.Tensor | None = None  # the previous batch's embeddings, [groups, T, latent_dim]

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        y = self.embed(batch)
        previous, self._previous = self._previous, y
        if previous is None or previous.shape[0] != y.shape[0]:
            return y.new_zeros(batch.shape)
        within, across = self.neighbours(y, previous.to(y.device))
        ratio = across.clamp_min(MIN_DISTANCE) / within.clamp_min(MIN_DISTANCE)
        return self.reduce(ratio.pow(1.0 - self.alpha)).reshape(batch.shape)

    def memory_state(self) -> Any:
        return self._previous

    def load_memory_state(self, state: Any) -> None:
        self._previous = state

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"
