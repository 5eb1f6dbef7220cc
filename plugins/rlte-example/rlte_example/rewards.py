"""Count-based exploration bonus over SimHash codes of observations (Tang et al., 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rlte_plugins.errors import ComponentArgumentError, positive_int


class SimHashCountReward(TensorDictModuleBase):
    """Count-based exploration bonus beta / sqrt(n(code)) over SimHash codes of observations.

    Observations are projected by a fixed Gaussian matrix; the signs form a ``bits``-bit code whose visit
    count lives in a table on the observation's device. Calling the module writes the bonus for each
    observation; :meth:`update` counts a batch of visited observations.

    Args:
        beta: bonus scale.
        bits: code length (at most 62).
        table_size: number of count slots (codes are folded into it).
        seed: seed of the projection.
        in_keys, out_keys: the observation read and the bonus written (shape ``[..., 1]``).

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> bonus = rlte_plugins.make("reward", "simhash_count", beta=1.0)
        >>> td = TensorDict(observation=torch.ones(2, 4), batch_size=[2])
        >>> bonus(td)["intrinsic_reward"].squeeze(-1).tolist()
        [1.0, 1.0]
        >>> bonus.update(td)
        >>> bonus(td)["intrinsic_reward"].squeeze(-1).tolist()
        [0.7071067690849304, 0.7071067690849304]
    """

    def __init__(
        self,
        beta: float = 0.01,
        bits: int = 32,
        table_size: int = 1 << 20,
        seed: int = 0,
        in_keys: Sequence[str] = ("observation",),
        out_keys: Sequence[str] = ("intrinsic_reward",),
    ) -> None:
        super().__init__()
        # ComponentArgumentError, not ValueError: rlte shows it as the user's argument to change, where anything
        # else is reported as a failure of this plugin (encoders.py says when to raise which error)
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 62:
            raise ComponentArgumentError(f"reward 'simhash_count': bits must be an int in [1, 62], got {bits!r}")
        positive_int("reward 'simhash_count'", "table_size", table_size)
        self.in_keys, self.out_keys = list(in_keys), list(out_keys)
        self.beta, self.bits, self.table_size, self.seed = beta, bits, table_size, seed
        self.register_buffer("projection", torch.empty(0))
        self.register_buffer("counts", torch.zeros(table_size, dtype=torch.float32))
        self.register_buffer("weights", 2 ** torch.arange(bits, dtype=torch.int64))

    def _codes(self, obs: torch.Tensor) -> torch.Tensor:
        flat = obs.reshape(*obs.shape[: obs.dim() - 1], -1).float() if obs.dim() > 1 else obs.float().unsqueeze(-1)
        if self.projection.numel() == 0:
            gen = torch.Generator().manual_seed(self.seed)
            self.projection = torch.randn(flat.shape[-1], self.bits, generator=gen).to(flat.device)
        signs = (flat @ self.projection > 0).long()
        return (signs * self.weights).sum(-1) % self.table_size

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # the projection is sized by the first observation seen: size it from the saved one before loading
        saved = state_dict.get(prefix + "projection")
        if saved is not None:
            self.projection = torch.empty_like(saved)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        counts = self.counts[self._codes(tensordict.get(self.in_keys[0]))]
        return tensordict.set(self.out_keys[0], (self.beta / counts.clamp_min(1.0).sqrt()).unsqueeze(-1))

    def update(self, tensordict: TensorDictBase) -> None:
        codes = self._codes(tensordict.get(self.in_keys[0])).reshape(-1)
        self.counts.index_add_(0, codes, torch.ones_like(codes, dtype=self.counts.dtype))
