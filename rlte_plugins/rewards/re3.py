"""Random Encoders for Efficient Exploration (Seo et al., 2021, "State entropy maximization with random encoders
for efficient exploration")."""

from __future__ import annotations

import torch

from rlte_plugins.rewards.knn import RandomEncoderKNN


class RE3(RandomEncoderKNN):
    """The log-distance of a state's embedding to its k-th nearest neighbour in the rollout: a particle estimate of
    the state entropy, computed in the space of a fixed random encoder.

    RE3 maximises the entropy of the state distribution with the k-NN estimator of Singh et al. over embeddings
    ``y = f(s')`` from a randomly initialised encoder that is never trained; the bonus of a transition is
    ``r = log(||y - y^{k-NN}||_2 + 1)``, the k-NN among the other embeddings of the same batch. Here the batch of
    a ``[num_envs, T]`` rollout is each env's own T next observations (RLeXplore's choice: envs are not mixed), and
    a ``[B]`` replay sample is one set, as the paper does for SAC; the bonus therefore depends on the batch but not
    on episode history (``episodic`` is False: off-policy agents recompute it on every sampled batch, as the
    paper). Defaults: ``k = 3`` and ``latent_dim = 128``; the paper's encoder is the agent's CNN, randomly
    initialised (here the ICM CNN and a linear layer on images, an MLP on vectors). The paper tunes the weight
    ``beta`` and its decay per domain; the defaults are RLeXplore's (``beta = 1``, no decay, the bonus divided by
    its running std), the scale being set by the agent's ``intrinsic_coef``.

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward` (nothing is trained: ``lr`` and
            ``update_proportion`` are unused).
        latent_dim: size of the random embeddings.
        k: the neighbour whose distance is the bonus (the state itself excluded).
        average: average ``log(d_j + 1)`` over the 1st..k-th neighbours (RLeXplore's ``average_entropy``).
        hidden: widths of the encoder's MLP on vector observations.

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> re3 = rlte_plugins.make("reward", "re3").build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(16, break_when_any_done=False)
        >>> bonus = re3.compute(batch)
        >>> bonus.shape, bool((bonus >= 0).all())
        (torch.Size([4, 16]), True)
        >>> re3.update(batch)  # the encoder stays random
        {}
    """

    registry_name = "re3"

    def bonus(self, y: torch.Tensor) -> torch.Tensor:
        (within,) = self.neighbours(y)
        return self.reduce(torch.log1p(within))
