"""Never Give Up (Badia et al., 2020, "Never give up: learning directed exploration strategies")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, TensorSpec

from rlte_plugins.errors import positive_int
from rlte_plugins.optim.normalization import RunningMeanStd
from rlte_plugins.rewards.base import number
from rlte_plugins.rewards.pseudo_counts import PseudoCounts
from rlte_plugins.rewards.rnd import RND


class NGU(PseudoCounts):
    """Never Give Up: the episodic pseudo-count bonus times a lifelong factor in ``[1, L]`` from RND's error.

    Follows Badia et al. (2020), section 2: ``r = r_episodic * clip(alpha, 1, L)`` with the episodic part of
    :class:`~rlte_plugins.rewards.pseudo_counts.PseudoCounts` (same defaults) and
    ``alpha = 1 + (err - mean(err)) / std(err)``, ``err`` the error of an RND predictor (Burda et al. 2019) on
    the next observation, ``mean`` and ``std`` running over every error seen, ``L = 5``. The RND networks are
    built by an :class:`~rlte_plugins.rewards.rnd.RND` held inside (seeded with ``seed + 1`` so that they differ
    from the embedding's MLP) and read the same observations as the embedding (normalised by default, as RND's);
    one optimiser (the paper's Adam at 5e-4) trains both the embedding and the RND predictor.

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward`.
        latent_dim, hidden, k, kernel_epsilon, cluster_distance, c, max_similarity, capacity: the episodic part's,
            as :class:`~rlte_plugins.rewards.pseudo_counts.PseudoCounts` (``hidden`` also the RND networks').
        max_modulation: ``L``, the largest lifelong factor.
        rnd_latent_dim: output size of the RND networks.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> ngu = rlte_plugins.make("reward", "ngu").build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(8, break_when_any_done=False)
        >>> ngu(batch)["intrinsic_reward"].shape
        torch.Size([4, 8])
        >>> sorted(ngu.update(batch))
        ['losses/ngu_inverse', 'losses/ngu_loss', 'losses/ngu_rnd']
    """

    registry_name = "ngu"

    def __init__(
        self,
        beta: float = 1.0,
        kappa: float = 0.0,
        reward_norm: str = "std",
        gamma: float = 0.99,
        obs_norm: bool = True,
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
        max_modulation: float = 5.0,
        rnd_latent_dim: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(
            beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, latent_dim, hidden, k, kernel_epsilon,
            cluster_distance, c, max_similarity, capacity, seed,
        )  # fmt: skip
        self.max_modulation = number(self.owner, "max_modulation", max_modulation, 1.0)
        rnd_latent_dim = positive_int(self.owner, "rnd_latent_dim", rnd_latent_dim)
        # NGU normalises the observations itself (one set of statistics for both networks) and the bonus as a whole
        self.rnd = RND(reward_norm="none", obs_norm=False, latent_dim=rnd_latent_dim, hidden=self.hidden, seed=seed + 1)
        self._error_rms: RunningMeanStd | None = None

    def build(self, observation_spec: Composite, action_spec: TensorSpec | None = None) -> NGU:
        self.rnd.build(observation_spec, action_spec)
        # NGU's optimiser (made by its build) trains the predictor: RND's own would hold the same parameters
        self.rnd.optimizer = None
        super().build(observation_spec, action_spec)
        return self

    def rnd_errors(self, batch: TensorDictBase) -> torch.Tensor:
        """RND's error on the next observations, shaped ``batch.shape``."""
        obs = self.observations(batch)
        return (self.rnd.predictor(obs) - self.rnd.target(obs)).pow(2).mean(-1)

    def modulator(self, errors: torch.Tensor) -> torch.Tensor:
        """``clip(1 + (err - mean) / std, 1, L)``, after moving the running mean and std with ``errors``."""
        if self._error_rms is None:
            self._error_rms = RunningMeanStd((), errors.device)
        self._error_rms.update(errors.reshape(-1))
        rms = self._error_rms
        return (1.0 + (errors - rms.mean) / rms.var.sqrt().clamp_min(1e-8)).clamp(1.0, self.max_modulation)

    @torch.no_grad()
    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        return super().compute(batch) * self.modulator(self.rnd_errors(batch)).reshape(batch.shape)

    def loss(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        inverse, rnd = self.inverse_loss(batch), self.rnd_errors(batch).mean()
        return {"loss": inverse + rnd, "inverse": inverse, "rnd": rnd}

    def memory_state(self) -> dict[str, Any]:
        rms = self._error_rms.state_dict() if self._error_rms is not None else None
        return {**super().memory_state(), "error_rms": rms}

    def load_memory_state(self, state: Any) -> None:
        super().load_memory_state(state)
        self._error_rms = None
        if state["error_rms"] is not None:
            self._error_rms = RunningMeanStd((), state["error_rms"]["mean"].device)
            self._error_rms.load_state_dict(state["error_rms"])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_modulation={self.max_modulation}"
