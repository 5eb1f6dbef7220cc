"""Exploration via Elliptical Episodic Bonuses (Henaff et al., 2022, "Exploration via elliptical episodic
bonuses")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rlte_plugins.rewards.base import number
from rlte_plugins.rewards.embedding import EmbeddingReward


class E3B(EmbeddingReward):
    """Elliptical episodic bonus: ``phi^T C^-1 phi`` of the next state's embedding against the episode's states.

    ``C = ridge I + sum phi phi^T`` over the episode's earlier next states: a count generalised to continuous
    embeddings, reset every episode.

    Follows Henaff et al. (2022): ``phi`` is trained with an inverse-dynamics loss (predict ``a_t`` from
    ``phi(s_t)`` and ``phi(s_{t+1})``); each env keeps the inverse of its episode's covariance, initialised to
    ``I / ridge`` (the paper's ridge 0.1), and after each bonus ``b`` takes the paper's Sherman-Morrison rank-1
    update ``C^-1 <- C^-1 - (C^-1 phi)(C^-1 phi)^T / (1 + b)``, batched over envs (a loop over time only), back to
    ``I / ridge`` where the episode ends. The embedding size (128) and the std normalisation of the bonus
    follow RLeXplore's E3B; the embedding trains with Adam at 1e-4.

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward`.
        latent_dim: size of the embedding ``phi``.
        hidden: MLP widths on vector observations (images use the ICM encoder); the last is the inverse head's.
        ridge: the covariance's regulariser ``lambda``: the first bonus of an episode is ``|phi|^2 / ridge``.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> e3b = rlte_plugins.make("reward", "e3b").build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(8, break_when_any_done=False)
        >>> e3b(batch)["intrinsic_reward"].shape
        torch.Size([4, 8])
        >>> sorted(e3b.update(batch))
        ['losses/e3b_loss']
    """

    registry_name = "e3b"

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
        hidden: Sequence[int] = (256, 256),
        ridge: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, latent_dim, hidden, seed)
        self.ridge = number(self.owner, "ridge", ridge, 0.0, strict=True)
        self._cov_inv: torch.Tensor | None = None  # [num_envs, latent_dim, latent_dim]

    @torch.no_grad()
    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        phi, ends = self.embed_steps(batch)
        num_envs, steps, dim = phi.shape
        initial = torch.eye(dim, device=phi.device) / self.ridge
        cov_inv = self._cov_inv
        if cov_inv is None or cov_inv.shape != (num_envs, dim, dim):
            cov_inv = initial.expand(num_envs, dim, dim)
        cov_inv = cov_inv.to(phi.device)
        bonus = torch.empty(num_envs, steps, device=phi.device)
        for t in range(steps):
            x = phi[:, t]
            u = torch.einsum("eij,ej->ei", cov_inv, x)  # C^-1 phi (C^-1 is symmetric: also phi^T C^-1)
            b = (u * x).sum(-1)
            bonus[:, t] = b
            cov_inv = cov_inv - torch.einsum("ei,ej->eij", u, u) / (1.0 + b)[:, None, None]
            cov_inv = torch.where(ends[:, t, None, None], initial, cov_inv)
        self._cov_inv = cov_inv
        return bonus.reshape(batch.shape)

    def memory_state(self) -> dict[str, Any]:
        return {"cov_inv": self._cov_inv}

    def load_memory_state(self, state: Any) -> None:
        self._cov_inv = state["cov_inv"]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, latent_dim={self.latent_dim}, ridge={self.ridge}"
