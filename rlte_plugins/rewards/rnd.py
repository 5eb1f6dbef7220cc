"""Random Network Distillation (Burda et al., 2019, "Exploration by random network distillation")."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from rlte_plugins.errors import positive_int
from rlte_plugins.rewards.base import IntrinsicReward, widths


class RND(IntrinsicReward):
    """The error of a predictor trained to match a fixed, randomly initialised target network on the next
    observation: high on states seen rarely, falling on states seen often.

    The paper's defaults: observations normalised (running mean/std, clipped to +-5), the bonus divided by the
    running std of its forward-discounted return (non-episodic, gamma 0.99), the predictor trained on a quarter of
    each batch. Args as :class:`~rlte_plugins.rewards.base.IntrinsicReward`, plus ``latent_dim`` (output size of
    both networks) and ``hidden`` (MLP widths on vector observations; images use the ICM encoder).

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> rnd = rlte_plugins.make("reward", "rnd").build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(8, break_when_any_done=False)
        >>> rnd(batch)["intrinsic_reward"].shape
        torch.Size([4, 8])
    """

    registry_name = "rnd"

    def __init__(
        self,
        beta: float = 1.0,
        kappa: float = 0.0,
        reward_norm: str = "return",
        gamma: float = 0.99,
        obs_norm: bool = True,
        update_proportion: float = 0.25,
        lr: float = 1e-4,
        latent_dim: int = 128,
        hidden: tuple[int, ...] = (256, 256),
        seed: int = 0,
    ) -> None:
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed)
        self.latent_dim = positive_int(self.owner, "latent_dim", latent_dim)
        self.hidden = widths(self.owner, "hidden", hidden)

    def _build(self) -> None:
        self.predictor = self.feature_net(self.latent_dim, self.hidden)
        self.target = self.feature_net(self.latent_dim, self.hidden)
        self.target.requires_grad_(False)

    def _errors(self, batch: TensorDictBase) -> torch.Tensor:
        obs = self.observations(batch)
        return (self.predictor(obs) - self.target(obs)).pow(2).mean(-1)

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        return self._errors(batch)

    def loss(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        return {"loss": self._errors(batch).mean()}
