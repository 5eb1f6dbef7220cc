"""Rényi State Entropy maximisation (Yuan et al., 2022, "Rényi State Entropy Maximization for Exploration
Acceleration in Reinforcement Learning")."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlte_plugins.rewards.knn import MIN_DISTANCE, RandomEncoderKNN, renyi_alpha


class RISE(RandomEncoderKNN):
    """The distance of a state's embedding to its k-th nearest neighbour in the rollout, raised to ``1 - alpha``:
    a particle estimate of the Rényi state entropy of order ``alpha``, in the space of a fixed random encoder.

    The k-NN estimator of the Rényi entropy of order alpha sums ``||y_i - y_i^{k-NN}||^{d (1 - alpha)}`` over the
    particles; RISE rewards each state with its term, ``r = ||y - y^{k-NN}||_2^{1 - alpha}`` (the embedding size
    ``d`` dropped from the exponent, as the paper's reward and RLeXplore). The structure is RE3's (see
    :class:`~rlte_plugins.rewards.re3.RE3`): embeddings ``y = f(s')`` from a randomly initialised encoder that is
    never trained, neighbours among the same env's T next observations of a ``[num_envs, T]`` rollout (one set for
    a ``[B]`` replay sample), so ``episodic`` is False. A distance of 0 (a state repeated k times) counts as
    1e-8. With ``alpha < 1`` the bonus grows with the distance; with ``alpha > 1`` it falls with it (the estimator
    of an order above 1 is maximised by minimising that sum), so exploration wants ``alpha < 1``. Defaults are
    RLeXplore's: ``alpha = 0.5``, ``k = 5``, ``latent_dim = 128``, ``beta = 1`` without decay, the bonus divided by
    its running std.

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward` (nothing is trained: ``lr`` and
            ``update_proportion`` are unused).
        alpha: the Rényi order, in (0, 1) or (1, inf) (1 is Shannon's entropy, RE3's).
        latent_dim: size of the random embeddings.
        k: the neighbour whose distance is the bonus (the state itself excluded).
        average: average ``d_j^{1 - alpha}`` over the 1st..k-th neighbours (RLeXplore's ``average_entropy``).
        hidden: widths of the encoder's MLP on vector observations.

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> rise = rlte_plugins.make("reward", "rise", alpha=0.5).build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(16, break_when_any_done=False)
        >>> rise(batch)["intrinsic_reward"].shape
        torch.Size([4, 16])
    """

    registry_name = "rise"

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

    def bonus(self, y: torch.Tensor) -> torch.Tensor:
        (within,) = self.neighbours(y)
        return self.reduce(within.clamp_min(MIN_DISTANCE).pow(1.0 - self.alpha))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"
