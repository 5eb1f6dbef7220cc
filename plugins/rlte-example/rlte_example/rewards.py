"""Count-based exploration bonus over SimHash codes of observations (Tang et al., 2017), on the intrinsic-reward
contract (:class:`rlte_plugins.rewards.IntrinsicReward`): a third-party reward writes ``compute`` (and, when it
learns or counts, ``update``); weighting, normalisation, agent wiring and checkpoints come from the base."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from rlte_plugins.errors import ComponentArgumentError, positive_int
from rlte_plugins.rewards import IntrinsicReward


class SimHashCountReward(IntrinsicReward):
    """Count-based exploration bonus 1 / sqrt(n(code)) over SimHash codes of the next observation.

    Observations are projected by a fixed Gaussian matrix; the signs form a ``bits``-bit code whose visit count
    lives in a table on the observation's device. :meth:`compute` reads the counts, :meth:`update` counts a batch
    of visited observations. The base scales the bonus by ``beta`` (no normalisation by default: counts are
    already on a known scale).

    Args:
        beta: bonus scale.
        bits: code length (at most 62).
        table_size: number of count slots (codes are folded into it).
        seed: seed of the projection.

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=2)
        >>> bonus = rlte_plugins.make("reward", "simhash_count", beta=1.0).build(env.observation_spec)
        >>> batch = env.rollout(1)
        >>> bonus(batch)["intrinsic_reward"].squeeze(-1).tolist()
        [1.0, 1.0]
        >>> for _ in range(2):  # each state visited twice
        ...     _ = bonus.update(batch)
        >>> bonus(batch)["intrinsic_reward"].squeeze(-1).tolist()
        [0.7071067690849304, 0.7071067690849304]
    """

    registry_name = "simhash_count"

    def __init__(
        self, beta: float = 0.01, bits: int = 32, table_size: int = 1 << 20, seed: int = 0, reward_norm: str = "none"
    ) -> None:
        super().__init__(beta=beta, reward_norm=reward_norm, seed=seed)
        # ComponentArgumentError, not ValueError: rlte shows it as the user's argument to change, where anything
        # else is reported as a failure of this plugin (encoders.py says when to raise which error)
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 62:
            raise ComponentArgumentError(f"reward 'simhash_count': bits must be an int in [1, 62], got {bits!r}")
        self.bits, self.table_size = bits, positive_int(self.owner, "table_size", table_size)
        self.register_buffer("counts", torch.zeros(table_size, dtype=torch.float32))
        self.register_buffer("weights", 2 ** torch.arange(bits, dtype=torch.int64))

    def _build(self) -> None:
        size = int(torch.tensor(self.obs_shape).prod()) if self.obs_shape else 1
        generator = torch.Generator().manual_seed(self.seed)
        self.register_buffer("projection", torch.randn(size, self.bits, generator=generator))

    def _codes(self, batch: TensorDictBase) -> torch.Tensor:
        obs = batch.get(self.obs_key)
        flat = obs.reshape(*batch.shape, -1).float()
        signs = (flat @ self.projection > 0).long()
        return (signs * self.weights).sum(-1) % self.table_size

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        return 1.0 / self.counts[self._codes(batch)].clamp_min(1.0).sqrt()

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        codes = self._codes(batch).reshape(-1)
        self.counts.index_add_(0, codes, torch.ones_like(codes, dtype=self.counts.dtype))
        return {}
