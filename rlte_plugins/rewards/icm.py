"""Intrinsic Curiosity Module (Pathak et al., 2017, "Curiosity-driven exploration by self-supervised
prediction"), and the inverse/forward models RIDE and Disagreement build on."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from torch import nn

from rlte_plugins.errors import positive_int
from rlte_plugins.rewards.base import NEXT_OBS, IntrinsicReward, number, widths

#: the paper's width of the hidden layer of the inverse and forward models
MODEL_HIDDEN = 256


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers applied at once: ``[members, N, in]`` to ``[members, N, out]``,
    each initialised as :class:`torch.nn.Linear` is."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class ForwardModel(nn.Module):
    """``members`` forward models predicting the next embedding from the embedding and the action: the ICM
    paper's two fully connected layers (``hidden`` units with ReLU, then ``latent_dim``) per member."""

    def __init__(self, latent_dim: int, action_dim: int, hidden: int = MODEL_HIDDEN, members: int = 1) -> None:
        super().__init__()
        self.members = members
        self.net = nn.Sequential(
            EnsembleLinear(members, latent_dim + action_dim, hidden),
            nn.ReLU(),
            EnsembleLinear(members, hidden, latent_dim),
        )

    def forward(self, phi: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Every member on the same inputs: ``phi [..., D]`` and ``action [..., A]`` give ``[members, ..., D]``."""
        x = torch.cat([phi, action], -1)
        lead = x.shape[:-1]
        out = self.each(x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1))
        return out.reshape(self.members, *lead, out.shape[-1])

    def each(self, x: torch.Tensor) -> torch.Tensor:
        """Each member on its own inputs: ``[members, N, D + A]`` (embeddings then actions) to
        ``[members, N, D]``."""
        return self.net(x)


class InverseForwardReward(IntrinsicReward):
    """Base of the rewards whose embedding is learned by an inverse model (the action from the embeddings of a
    transition's two observations) and a forward model (the next embedding from the embedding and the action):
    the loss is ``inverse_coef * inverse + forward_coef * forward``, with the inverse loss the cross-entropy of
    discrete actions or the squared error of continuous ones, and the forward loss the mean over transitions of
    ``0.5 * ||f(phi(s_t), a_t) - phi(s_{t+1})||^2``. Gradients of both losses reach the encoder, as in the ICM
    paper's code. Images are read with the ICM encoder, flat vectors with an MLP of widths ``hidden``."""

    in_keys = ("observation", "action", NEXT_OBS)

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
        hidden: tuple[int, ...],
        inverse_coef: float,
        forward_coef: float,
        seed: int,
    ) -> None:
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed)
        self.latent_dim = positive_int(self.owner, "latent_dim", latent_dim)
        self.hidden = widths(self.owner, "hidden", hidden)
        self.inverse_coef = inverse_coef
        self.forward_coef = forward_coef

    def _build(self) -> None:
        self.encoder = self.feature_net(self.latent_dim, self.hidden)
        self.inverse_model = nn.Sequential(
            nn.Linear(2 * self.latent_dim, MODEL_HIDDEN), nn.ReLU(), nn.Linear(MODEL_HIDDEN, self.action_dim)
        )
        self.forward_model = ForwardModel(self.latent_dim, self.action_dim)

    @property
    def discrete(self) -> bool:
        return getattr(getattr(self.action_spec, "space", None), "n", None) is not None

    def actions(self, batch: TensorDictBase) -> torch.Tensor:
        """The batch's actions as network inputs, shaped ``[*batch.shape, action_dim]``."""
        return self.action_input(batch.get("action")).reshape(*batch.shape, self.action_dim)

    def embed(self, batch: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi(s_t)`` and ``phi(s_{t+1})``, shaped ``[*batch.shape, latent_dim]`` (one encoder pass)."""
        obs = self.observations(batch, self.obs_key[-1])
        next_obs = self.observations(batch)
        phi = self.encoder(torch.stack([obs, next_obs]))
        return phi[0], phi[1]

    def forward_error(self, phi: torch.Tensor, action: torch.Tensor, phi_next: torch.Tensor) -> torch.Tensor:
        """``0.5 * ||f(phi(s_t), a_t) - phi(s_{t+1})||^2`` per transition."""
        return 0.5 * (self.forward_model(phi, action)[0] - phi_next).pow(2).sum(-1)

    def loss(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        phi, phi_next = self.embed(batch)
        action = self.actions(batch)
        predicted = self.inverse_model(torch.cat([phi, phi_next], -1))
        if self.discrete:
            inverse = F.cross_entropy(predicted, action.argmax(-1))
        else:
            inverse = F.mse_loss(predicted, action)
        forward = self.forward_error(phi, action, phi_next).mean()
        loss = self.inverse_coef * inverse + self.forward_coef * forward
        return {"loss": loss, "inverse": inverse.detach(), "forward": forward.detach()}


class ICM(InverseForwardReward):
    """Curiosity: the error of a forward model predicting the next state's features, learned by an inverse model.

    Pathak, Agrawal, Efros and Darrell (2017), "Curiosity-driven exploration by self-supervised prediction". An
    encoder ``phi`` is trained with an inverse model (predict ``a_t`` from ``phi(s_t), phi(s_{t+1})``) so that
    it keeps what the agent controls, and a forward model ``f`` predicts ``phi(s_{t+1})`` from ``phi(s_t), a_t``.
    The bonus is the forward error in feature space, ``0.5 * ||f(phi(s_t), a_t) - phi(s_{t+1})||^2`` (summed over
    features), lifelong. The loss is ``(1 - beta_icm) * inverse + beta_icm * forward`` (cross-entropy for discrete
    actions, squared error for continuous ones; ``0.5 * ||.||^2`` per transition for the forward one).

    The paper's defaults (its code, ``noreward-rl``): ``beta_icm=0.2``; the bonus scaled by ``beta=0.01`` (its
    eta), not normalised; the models trained at lr ``1e-3`` (ten times the policy's 1e-4) on every transition;
    288 features (its encoder's flattened output: here the ICM encoder on images, an MLP on vectors, then a linear
    layer to ``latent_dim``); inverse and forward models with one hidden layer of 256 units.

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward`.
        beta_icm: weight of the forward loss against the inverse loss, in [0, 1].
        latent_dim: size of the features ``phi``.
        hidden: MLP widths of the encoder on vector observations (images use the ICM encoder).

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> icm = rlte_plugins.make("reward", "icm").build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(8, break_when_any_done=False)
        >>> icm(batch)["intrinsic_reward"].shape
        torch.Size([4, 8])
        >>> sorted(icm.update(batch))
        ['losses/icm_forward', 'losses/icm_inverse', 'losses/icm_loss']
    """

    registry_name = "icm"

    def __init__(
        self,
        beta: float = 0.01,
        kappa: float = 0.0,
        reward_norm: str = "none",
        gamma: float = 0.99,
        obs_norm: bool = False,
        update_proportion: float = 1.0,
        lr: float = 1e-3,
        beta_icm: float = 0.2,
        latent_dim: int = 288,
        hidden: tuple[int, ...] = (256, 256),
        seed: int = 0,
    ) -> None:
        number(f"reward {self.registry_name!r}", "beta_icm", beta_icm, 0.0, 1.0)
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, latent_dim, hidden,
                         1.0 - beta_icm, float(beta_icm), seed)  # fmt: skip
        self.beta_icm = float(beta_icm)

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        phi, phi_next = self.embed(batch)
        return self.forward_error(phi, self.actions(batch), phi_next)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta_icm={self.beta_icm}, latent_dim={self.latent_dim}"
