"""Episodic pseudo-counts (NGU's episodic novelty: Badia et al., 2020, "Never give up: learning directed
exploration strategies")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rlte_plugins.errors import positive_int
from rlte_plugins.rewards.base import number
from rlte_plugins.rewards.embedding import EmbeddingReward


class PseudoCounts(EmbeddingReward):
    """NGU's episodic novelty: 1 / sqrt of a kernel pseudo-count of the next state among the episode's k-NN.

    The pseudo-count is a sum of kernels between the next state's embedding and its k nearest neighbours in the
    memory of the episode's earlier next states.

    Follows Badia et al. (2020), section 2 and appendix A.1: a controllable-state embedding trained with an
    inverse-dynamics loss; each env keeps the embeddings of its episode's earlier next states; the bonus is
    ``1 / (sqrt(sum_i K(x, n_i)) + c)`` over the ``k`` nearest neighbours ``n_i``, with the kernel
    ``K = eps / (d^2 / d_m^2 + eps)``, ``d^2 / d_m^2`` lowered by the cluster distance ``xi`` and clamped at 0,
    ``d_m^2`` the running mean of the squared k-NN distances (all envs, all episodes), and 0 when the similarity
    ``sqrt(sum K) + c`` exceeds ``max_similarity``. The paper's constants: ``k`` 10, ``eps`` 1e-4, ``xi`` 0.008,
    ``c`` 0.001, ``s_m`` 8, embedding size 32, memory capacity 30,000 (a ring: the oldest embeddings are
    overwritten), Adam at 5e-4. The first step of an episode has no neighbour to be counted against and gets 0
    (the formula's ``1 / c`` would be a constant 1000 at every episode start). The memory is one tensor
    ``[num_envs, capacity, latent_dim]`` with a fill count per env, allocated as the episodes grow; the
    neighbours come from ``torch.cdist`` and ``topk``, batched over envs (a loop over time only).

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward` (RLeXplore's std normalisation of the bonus).
        latent_dim: size of the embedding.
        hidden: MLP widths on vector observations (images use the ICM encoder); the last is the inverse head's.
        k: number of neighbours.
        kernel_epsilon: the kernel's ``eps``.
        cluster_distance: ``xi``, below which normalised squared distances count as 0.
        c: the pseudo-count constant.
        max_similarity: ``s_m``: above it the bonus is 0.
        capacity: embeddings kept per env and episode.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> counts = rlte_plugins.make("reward", "pseudo_counts").build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(8, break_when_any_done=False)
        >>> counts(batch)["intrinsic_reward"].shape
        torch.Size([4, 8])
        >>> sorted(counts.update(batch))
        ['losses/pseudo_counts_loss']
    """

    registry_name = "pseudo_counts"

    def __init__(
        self,
        beta: float = 1.0,
        kappa: float = 0.0,
        reward_norm: str = "std",
        gamma: float = 0.99,
        obs_norm: bool = False,
        update_proportion: float = 1.0,
        lr: float = 5e-4,
        latent_dim: int = 32,
        hidden: Sequence[int] = (256, 256),
        k: int = 10,
        kernel_epsilon: float = 1e-4,
        cluster_distance: float = 0.008,
        c: float = 0.001,
        max_similarity: float = 8.0,
        capacity: int = 30_000,
        seed: int = 0,
    ) -> None:
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, latent_dim, hidden, seed)
        owner = self.owner
        self.k = positive_int(owner, "k", k)
        self.kernel_epsilon = number(owner, "kernel_epsilon", kernel_epsilon, 0.0, strict=True)
        self.cluster_distance = number(owner, "cluster_distance", cluster_distance, 0.0)
        self.c = number(owner, "c", c, 0.0, strict=True)
        self.max_similarity = number(owner, "max_similarity", max_similarity, 0.0, strict=True)
        self.capacity = positive_int(owner, "capacity", capacity)
        self._memory: torch.Tensor | None = None  # [num_envs, allocated <= capacity, latent_dim]
        self._count: torch.Tensor | None = None  # [num_envs]: steps of the current episode (fill = min(., capacity))
        self._dist_sum: torch.Tensor | None = None  # d_m^2 = _dist_sum / _dist_count, float64 scalars
        self._dist_count: torch.Tensor | None = None

    @torch.no_grad()
    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        phi, ends = self.embed_steps(batch)
        return self.episodic_bonus(phi, ends).reshape(batch.shape)

    def episodic_bonus(self, phi: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """The bonus of each step of ``phi`` (``[num_envs, T, dim]``) against the memories, each step added after
        its bonus, the memory of env ``e`` emptied after a step where ``ends[e, t]``."""
        num_envs, steps, dim = phi.shape
        device = phi.device
        if self._memory is None or self._memory.shape[0] != num_envs or self._memory.shape[2] != dim:
            self._memory = torch.zeros(num_envs, 0, dim, device=device)
            self._count = torch.zeros(num_envs, dtype=torch.long, device=device)
        if self._dist_sum is None:
            self._dist_sum = torch.zeros((), dtype=torch.float64, device=device)
            self._dist_count = torch.zeros((), dtype=torch.float64, device=device)
        memory, count = self._memory.to(device), self._count.to(device)
        dist_sum, dist_count = self._dist_sum.to(device), self._dist_count.to(device)
        # one host sync per call: the longest episode so far bounds the slots each step can read or write
        start = int(count.max())
        longest = min(self.capacity, start + steps)
        if memory.shape[1] < longest:
            grown = min(self.capacity, max(longest, 2 * memory.shape[1]))
            memory = torch.cat([memory, memory.new_zeros(num_envs, grown - memory.shape[1], dim)], 1)
        envs = torch.arange(num_envs, device=device)
        bonus = torch.zeros(num_envs, steps, device=device)
        for t in range(steps):
            x = phi[:, t]
            used = min(self.capacity, start + t)
            if used:
                bonus[:, t], dist_sum, dist_count = self._bonus(x, memory[:, :used], count, dist_sum, dist_count)
            memory[envs, count % self.capacity] = x
            count = torch.where(ends[:, t], 0, count + 1)
        self._memory, self._count, self._dist_sum, self._dist_count = memory, count, dist_sum, dist_count
        return bonus

    def _bonus(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        count: torch.Tensor,
        dist_sum: torch.Tensor,
        dist_count: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        used = memory.shape[1]
        filled = torch.arange(used, device=x.device) < count.clamp(max=self.capacity)[:, None]
        squared = torch.cdist(x[:, None], memory).squeeze(1).pow(2).masked_fill(~filled, float("inf"))
        nearest = squared.topk(min(self.k, used), largest=False).values
        found = nearest.isfinite()
        nearest = torch.where(found, nearest, 0.0)
        dist_sum = dist_sum + nearest.double().sum()
        dist_count = dist_count + found.sum()
        mean = (dist_sum / dist_count.clamp_min(1.0)).float().clamp_min(1e-12)
        normalised = (nearest / mean - self.cluster_distance).clamp_min(0.0)
        kernel = torch.where(found, self.kernel_epsilon / (normalised + self.kernel_epsilon), 0.0)
        similarity = kernel.sum(-1).sqrt() + self.c
        bonus = torch.where((similarity > self.max_similarity) | ~found.any(-1), 0.0, 1.0 / similarity)
        return bonus, dist_sum, dist_count

    def memory_state(self) -> dict[str, Any]:
        memory = self._memory
        if memory is not None and self._count is not None:
            # only the filled slots: a view would save the whole allocation
            memory = memory[:, : min(self.capacity, int(self._count.max()))].clone()
        return {"memory": memory, "count": self._count, "dist_sum": self._dist_sum, "dist_count": self._dist_count}

    def load_memory_state(self, state: Any) -> None:
        memory = state["memory"]
        self._memory = memory.clone() if memory is not None else None  # written in place by the next steps
        self._count = state["count"]
        self._dist_sum, self._dist_count = state["dist_sum"], state["dist_count"]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, latent_dim={self.latent_dim}, k={self.k}, capacity={self.capacity}"
