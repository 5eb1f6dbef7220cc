"""The controllable-state embedding that E3B, pseudo-counts and NGU share: ``phi(s)`` trained with an
inverse-dynamics loss (predict ``a_t`` from ``phi(s_t)`` and ``phi(s_{t+1})``), so that it keeps what the agent's
actions change and drops what they do not (Pathak et al. 2017; Badia et al. 2020; Henaff et al. 2022).

:class:`EmbeddingReward` is the base of those bonuses: it reads the observation, the action and the next
observation (``"pixels"`` on pixel envs), trains the embedding and reads each rollout as ``[num_envs, T]`` steps
for the episodic memories its subclasses keep.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from torch import nn
from torch.nn import functional as F

from rlte_plugins.errors import positive_int
from rlte_plugins.rewards.base import NEXT_OBS, IntrinsicReward, episode_ends, widths


class InverseDynamics(nn.Module):
    """``phi = encoder(obs)``, and a head predicting the action between two embeddings (logits over discrete
    actions, the action itself for continuous ones)."""

    def __init__(self, encoder: nn.Module, latent_dim: int, action_dim: int, discrete: bool, hidden: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(2 * latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, action_dim))
        self.discrete = discrete

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs)

    def loss(self, obs: torch.Tensor, next_obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (discrete, ``action`` one-hot) or squared error (continuous) of the predicted action."""
        prediction = self.head(torch.cat([self(obs), self(next_obs)], -1))
        if self.discrete:
            return F.cross_entropy(prediction, action.argmax(-1))
        return F.mse_loss(prediction, action)


class EmbeddingReward(IntrinsicReward):
    """Base of the episodic bonuses on an inverse-dynamics embedding (E3B, pseudo-counts, NGU).

    Args as :class:`~rlte_plugins.rewards.base.IntrinsicReward`, plus ``latent_dim`` (size of the embedding) and
    ``hidden`` (MLP widths on vector observations, the last one also the inverse head's width; images use the
    ICM encoder).
    """

    in_keys = ("observation", "action", NEXT_OBS)
    episodic = True

    def __init__(
        self,
        beta: float,
        kappa: float,
        reward_norm: str,
        gamma: float,
        obs_norm: bool,
        update_proportion: float,
        lr: float,
        latent_dim: int,
        hidden: Sequence[int],
        seed: int,
    ) -> None:
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed)
        self.latent_dim = positive_int(self.owner, "latent_dim", latent_dim)
        self.hidden = widths(self.owner, "hidden", hidden)

    def _build(self) -> None:
        discrete = getattr(getattr(self.action_spec, "space", None), "n", None) is not None
        encoder = self.feature_net(self.latent_dim, self.hidden)
        self.embedding = InverseDynamics(encoder, self.latent_dim, self.action_dim, discrete, self.hidden[-1])

    def embed_steps(self, batch: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi`` of the next observations as ``[num_envs, T, latent_dim]`` and the episode ends as
        ``[num_envs, T]`` (a ``[B]`` batch is one step of ``B`` envs)."""
        num_envs = batch.shape[0]
        phi = self.embedding(self.observations(batch)).float()
        return phi.reshape(num_envs, -1, phi.shape[-1]), episode_ends(batch).reshape(num_envs, -1)

    def inverse_loss(self, batch: TensorDictBase) -> torch.Tensor:
        obs = self.observations(batch, self.obs_key[-1])
        return self.embedding.loss(obs, self.observations(batch), self.action_input(batch.get("action")))

    def loss(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        return {"loss": self.inverse_loss(batch)}
