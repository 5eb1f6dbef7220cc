"""The fast path for recurrent (LSTM/GRU) policies: truncated backpropagation through time over stored states,
with optional burn-in."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs import Compose, TransformedEnv
from torchrl.modules import set_recurrent_mode

from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.training.fast import FastPPO


class RecurrentFastPPO(FastPPO):
    """:class:`~rlte_plugins.training.fast.FastPPO` with the ``recurrent_actor_critic`` policy.

    Collection runs the cell step by step and stores its state with every transition (TorchRL's
    ``LSTMModule``/``GRUModule`` keys). The update cuts each env's rollout into sequences of ``sequence_length``
    steps and runs the cell over each from the state stored at its first step (truncated BPTT), resetting it
    at episode starts (``is_init``). With ``burn_in`` > 0, the first ``burn_in`` steps of every sequence only
    warm the state up, without gradient and outside the loss.

    Args:
        cell: ``"lstm"`` or ``"gru"``; ``hidden_size``: its state size.
        sequence_length: steps per training sequence (a divisor of ``horizon``; default the whole horizon).
        burn_in: leading steps of each sequence used to refresh the stored state only.
        **kwargs: :class:`~rlte_plugins.training.fast.FastPPO`'s arguments; ``minibatch_size`` counts
            transitions and must hold whole sequences.

    Examples:
        >>> algo = RecurrentFastPPO("torch_cartpole", num_envs=8, horizon=16, sequence_length=8, burn_in=2,
        ...                         hidden_size=16, encoder={"name": "mlp", "num_cells": [16]})
        >>> algo.collect()["frames"], "losses/total" in algo.step()
        (128, True)
    """

    def __init__(
        self,
        env: Any = "torch_cartpole",
        *,
        cell: str = "lstm",
        hidden_size: int = 128,
        sequence_length: int | None = None,
        burn_in: int = 0,
        **kwargs: Any,
    ) -> None:
        horizon = kwargs.get("horizon", 32)
        length = sequence_length or horizon
        owner = "algorithm 'recurrent_fast_ppo'"
        if not isinstance(length, int) or length < 1 or horizon % length:
            raise ComponentArgumentError(f"{owner}: sequence_length must divide horizon={horizon}, got {length!r}")
        if not isinstance(burn_in, int) or not 0 <= burn_in < length:
            raise ComponentArgumentError(f"{owner}: burn_in must be in [0, sequence_length), got {burn_in!r}")
        if kwargs.get("compile") or kwargs.get("cudagraphs"):
            raise ComponentArgumentError(f"{owner}: compile/cudagraphs are not supported with recurrent policies")
        self.cell, self.hidden_size, self.burn_in = cell, hidden_size, burn_in
        self._sample_length = length
        super().__init__(env, **kwargs)
        if self.minibatch_size % length:
            raise ComponentArgumentError(
                f"{owner}: minibatch_size ({self.minibatch_size}) must hold whole sequences of {length} steps"
            )

    def _policy_choice(self) -> Any:
        return {"name": "recurrent_actor_critic", "cell": self.cell, "hidden_size": self.hidden_size}

    def _build_policy(self, encoder: Any, distribution: Any) -> None:
        super()._build_policy(encoder, distribution)
        # episode starts and the recurrent state's primer, so that the state lives in the TensorDict
        self._base_env = self.env
        self.env = TransformedEnv(self.env, Compose(*self.policy.env_transforms()))

    def _make_env_copy(self, num_envs: int, seed: int) -> Any:
        trained, self.env = self.env, self._base_env
        try:
            copy = super()._make_env_copy(num_envs, seed)
        finally:
            self.env = trained
        return TransformedEnv(copy, Compose(*self.policy.env_transforms()))

    def _state_keys(self, data: TensorDictBase) -> list[str]:
        return [k for k in data.keys() if isinstance(k, str) and k.startswith("recurrent_state")]

    def _keep_keys(self, data: TensorDictBase) -> list[str]:
        return [*super()._keep_keys(data), "is_init", *self._state_keys(data)]

    def _chunked(self, module: Any, td: TensorDictBase, keys: list[str]) -> TensorDictBase:
        return module(td)  # one step per env: the state is part of the input, chunks would not change that

    def _values(self, data: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        # the critic shares the recurrent trunk: each step from the state stored with it (no recurrent mode)
        values = self.policy.critic(data.clone().exclude("next"))["state_value"].float()
        nxt = data.get("next").clone()
        # the state after step t is ("next", state) of step t: what the cell consumed at t + 1
        next_values = self.policy.critic(nxt)["state_value"].float()
        return values, next_values

    def _samples(self, buffer: TensorDictBase) -> TensorDictBase:
        """``[num_envs, horizon]`` cut into ``[num_envs * horizon / L, L]`` sequences; each one starts with the
        state stored at its first step, so it is marked as a start for the cell (which then reads that state)."""
        length = self._sample_length
        seqs = buffer.reshape(buffer.shape[0], -1, length).flatten(0, 1)
        init = seqs.get("is_init").clone()
        init[:, 0] = True
        seqs.set("is_init", init)
        return seqs

    def _trained_part(self, rows: torch.Tensor) -> torch.Tensor:
        # burn-in steps only warm the state up: advantages are normalised over the steps the loss sees
        return rows[:, self.burn_in :]

    def _policy_mode(self) -> contextlib.AbstractContextManager[Any]:
        return set_recurrent_mode(True)

    def _loss_call(self, piece: TensorDictBase) -> TensorDictBase:
        if self.burn_in:
            piece = self._burn_in(piece)
        return super()._loss_call(piece)

    @torch.no_grad()
    def _burn_in(self, piece: TensorDictBase) -> TensorDictBase:
        """Run the first ``burn_in`` steps to refresh the state the rest of each sequence starts from (where an
        episode starts right there, its stored reset state is kept)."""
        with set_recurrent_mode(True):
            warm = self.policy.trunk(piece[:, : self.burn_in].clone())
        rest = piece[:, self.burn_in :].clone()
        started = rest.get("is_init")[:, 0]
        for key in self._state_keys(rest):
            stored = rest.get(key)
            fresh = warm.get(("next", key))[:, -1]
            mask = started.reshape(-1, *([1] * (stored.dim() - 2)))
            stored[:, 0] = torch.where(mask, stored[:, 0], fresh)
        init = rest.get("is_init").clone()
        init[:, 0] = True  # the (refreshed) stored state is where each sequence starts
        rest.set("is_init", init)
        return rest
