"""Exploration via disagreement (Pathak, Gandhi and Gupta, 2019, "Self-supervised exploration via
disagreement")."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from rlte_plugins.errors import positive_int
from rlte_plugins.rewards.base import NEXT_OBS, IntrinsicReward, widths
from rlte_plugins.rewards.icm import MODEL_HIDDEN, ForwardModel


class Disagreement(IntrinsicReward):
    """The variance of an ensemble of forward models' predictions of the next state's features.

    Pathak, Gandhi and Gupta (2019), "Self-supervised exploration via disagreement". ``ensemble_size`` forward
    models ``f_k`` predict ``phi(s_{t+1})`` from ``phi(s_t), a_t``; the bonus is their variance,
    ``mean_d mean_k (f_k(phi(s_t), a_t)_d - mean_j f_j(phi(s_t), a_t)_d)^2`` (the population variance over
    members, averaged over the feature dims), lifelong: high where the members, trained on different samples,
    still disagree. Each member is trained on its own bootstrap of every update's batch (as many transitions,
    drawn with replacement), to the squared error of its prediction.

    The embedding ``phi`` is a fixed, randomly initialised network (the paper's random features; it also uses
    learned ones): the ICM encoder then a linear layer on images, an MLP on vectors. The defaults follow the
    paper's code (built on Burda et al.'s large-scale curiosity): 5 members, 512 features, observations
    normalised, the bonus divided by the running std of its discounted return, lr ``1e-4``. Each member has ICM's
    forward model shape (one hidden layer of 256 units).

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward`.
        ensemble_size: the number of forward models.
        latent_dim: size of the features ``phi``.
        hidden: MLP widths of the encoder on vector observations (images use the ICM encoder).

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> reward = rlte_plugins.make("reward", "disagreement").build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(8, break_when_any_done=False)
        >>> reward(batch)["intrinsic_reward"].shape
        torch.Size([4, 8])
        >>> reward.predictions(batch).shape  # [ensemble_size, num_envs, T, latent_dim]
        torch.Size([5, 4, 8, 512])
    """

    registry_name = "disagreement"
    in_keys = ("observation", "action", NEXT_OBS)

    def __init__(
        self,
        beta: float = 1.0,
        kappa: float = 0.0,
        reward_norm: str = "return",
        gamma: float = 0.99,
        obs_norm: bool = True,
        update_proportion: float = 1.0,
        lr: float = 1e-4,
        ensemble_size: int = 5,
        latent_dim: int = 512,
        hidden: tuple[int, ...] = (256, 256),
        seed: int = 0,
    ) -> None:
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed)
        self.ensemble_size = positive_int(self.owner, "ensemble_size", ensemble_size)
        self.latent_dim = positive_int(self.owner, "latent_dim", latent_dim)
        self.hidden = widths(self.owner, "hidden", hidden)

    def _build(self) -> None:
        self.encoder = self.feature_net(self.latent_dim, self.hidden)
        self.encoder.requires_grad_(False)
        self.forward_models = ForwardModel(self.latent_dim, self.action_dim, MODEL_HIDDEN, self.ensemble_size)

    def _inputs(self, batch: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs = self.observations(batch, self.obs_key[-1])
        next_obs = self.observations(batch)
        with torch.no_grad():
            phi = self.encoder(torch.stack([obs, next_obs]))
        action = self.action_input(batch.get("action")).reshape(*batch.shape, self.action_dim)
        return phi[0], action, phi[1]

    def predictions(self, batch: TensorDictBase) -> torch.Tensor:
        """Every member's prediction of ``phi(s_{t+1})``, shaped ``[ensemble_size, *batch.shape, latent_dim]``."""
        phi, action, _ = self._inputs(batch)
        return self.forward_models(phi, action)

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        predictions = self.predictions(batch)
        # written out: torch's var over the leading dim is ten times slower on CPU
        return (predictions - predictions.mean(0)).pow(2).mean((0, -1))

    def loss(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        phi, action, phi_next = self._inputs(batch)
        n = phi.shape[0]
        # each member's own bootstrap of the batch keeps the members apart where data is scarce
        index = torch.randint(n, (self.ensemble_size, n), generator=self._generator).to(phi.device)
        x = torch.cat([phi, action], -1)[index]
        predicted = self.forward_models.each(x)
        return {"loss": (predicted - phi_next[index]).pow(2).mean()}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ensemble_size={self.ensemble_size}, latent_dim={self.latent_dim}"
