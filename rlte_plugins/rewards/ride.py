"""Rewarding Impact-Driven Exploration (Raileanu and Rocktaschel, 2020, "RIDE: Rewarding impact-driven
exploration for procedurally-generated environments")."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase

from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.rewards.base import episode_ends, number
from rlte_plugins.rewards.icm import InverseForwardReward

#: observations are matched by two sums of their bytes with random weights below this prime, each taken modulo it
HASH_PRIME = 2**26 - 5
#: bytes per float64 product-sum: 255 * HASH_PRIME * HASH_CHUNK < 2**53, so every sum is exact
HASH_CHUNK = 4096


class RIDE(InverseForwardReward):
    """Impact: how far an action moves the learned embedding, over the root of the next state's episodic count.

    Raileanu and Rocktaschel (2020), "RIDE: Rewarding impact-driven exploration for procedurally-generated
    environments". The embedding ``phi`` is ICM's (:class:`~rlte_plugins.rewards.icm.InverseForwardReward`: an
    inverse and a forward model train it, here with RIDE's weights ``inverse_coef`` and ``forward_coef`` on ICM's
    losses). The bonus of a transition is ``||phi(s_{t+1}) - phi(s_t)||_2 / sqrt(N_ep(s_{t+1}))``, where
    ``N_ep(s_{t+1})`` counts the visits of ``s_{t+1}`` in the current episode, this one included (a state
    reached for the k-th time earns ``impact / sqrt(k)``). The memory of env e is reset after each transition
    where its episode ends.

    As RIDE's code counts exact (partial) observations, states are matched exactly on the raw next observation
    (before any ``obs_norm``), through a 64-bit hash of its bytes (two sums with random weights modulo a 26-bit
    prime: two different observations collide with probability about ``2**-52``). Continuous observations
    rarely repeat exactly: ``bin_size`` counts them on a grid instead (``floor(obs / bin_size)``).

    Defaults from RIDE's code: the bonus scaled by ``beta=0.1`` and not normalised, lr ``1e-4``,
    ``forward_coef=10``, ``inverse_coef=0.1``, embeddings of 128, inverse and forward models with one hidden
    layer of 256 units.

    Args:
        beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, seed: as
            :class:`~rlte_plugins.rewards.base.IntrinsicReward`.
        forward_coef: weight of the forward loss.
        inverse_coef: weight of the inverse loss.
        latent_dim: size of the embedding ``phi``.
        hidden: MLP widths of the encoder on vector observations (images use the ICM encoder).
        bin_size: count observations on a grid of this step (``None``: exact matches).

    Examples:
        >>> import torch, rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
        >>> ride = rlte_plugins.make("reward", "ride", bin_size=0.5).build(env.observation_spec, env.action_spec)
        >>> batch = env.rollout(8, break_when_any_done=False)
        >>> ride(batch)["intrinsic_reward"].shape
        torch.Size([4, 8])
        >>> sorted(ride.update(batch))
        ['losses/ride_forward', 'losses/ride_inverse', 'losses/ride_loss']
    """

    registry_name = "ride"
    episodic = True

    def __init__(
        self,
        beta: float = 0.1,
        kappa: float = 0.0,
        reward_norm: str = "none",
        gamma: float = 0.99,
        obs_norm: bool = False,
        update_proportion: float = 1.0,
        lr: float = 1e-4,
        forward_coef: float = 10.0,
        inverse_coef: float = 0.1,
        latent_dim: int = 128,
        hidden: tuple[int, ...] = (256, 256),
        bin_size: float | None = None,
        seed: int = 0,
    ) -> None:
        owner = self.owner
        forward_coef = number(owner, "forward_coef", forward_coef, 0.0)
        inverse_coef = number(owner, "inverse_coef", inverse_coef, 0.0)
        if bin_size is not None and (isinstance(bin_size, bool) or not isinstance(bin_size, int | float)
                                     or not math.isfinite(bin_size) or bin_size <= 0):  # fmt: skip
            raise ComponentArgumentError(f"{owner}: bin_size must be a number > 0 or None, got {bin_size!r}")
        super().__init__(beta, kappa, reward_norm, gamma, obs_norm, update_proportion, lr, latent_dim, hidden,
                         inverse_coef, forward_coef, seed)  # fmt: skip
        self.bin_size = None if bin_size is None else float(bin_size)
        self._keys: torch.Tensor | None = None  # [num_envs, n]: hashes of the current episode's next observations
        self._lengths: torch.Tensor | None = None  # [num_envs]: how many of them are stored

    def _build(self) -> None:
        super()._build()
        assert self.obs_shape is not None and self.obs_dtype is not None
        itemsize = 8 if self.bin_size is not None else torch.empty((), dtype=self.obs_dtype).element_size()
        n_bytes = math.prod(self.obs_shape) * itemsize
        self.register_buffer("hash_weights", torch.randint(0, HASH_PRIME, (n_bytes, 2), dtype=torch.int64))

    def state_keys(self, obs: torch.Tensor) -> torch.Tensor:
        """A 64-bit key per observation of ``obs`` (``[..., *obs_shape]`` to ``[...]``): equal observations (or
        grid cells, with ``bin_size``) get equal keys."""
        assert self.obs_shape is not None
        lead = obs.shape[: obs.dim() - len(self.obs_shape)]
        x = obs.reshape(-1, *self.obs_shape)
        if self.bin_size is not None:
            x = torch.floor(x.double() / self.bin_size).long()
        data = x.reshape(x.shape[0], -1).contiguous().view(torch.uint8)
        weights = self.hash_weights.double()
        sums = torch.zeros(data.shape[0], 2, dtype=torch.int64, device=data.device)
        for i in range(0, data.shape[1], HASH_CHUNK):
            sums += (data[:, i : i + HASH_CHUNK].double() @ weights[i : i + HASH_CHUNK]).long() % HASH_PRIME
        sums %= HASH_PRIME
        return (sums[:, 0] * HASH_PRIME + sums[:, 1]).reshape(lead)

    def episodic_counts(self, batch: TensorDictBase) -> torch.Tensor:
        """``N_ep(s_{t+1})`` of every transition (this visit included), shaped ``batch.shape``; adds the batch's
        next observations to the per-env memories and resets them where episodes end."""
        steps = batch.reshape(batch.shape[0], -1)  # [num_envs, T]; a [B] batch is one step of B envs
        keys = self.state_keys(steps.get(self.obs_key))
        done = episode_ends(steps).long()
        num_envs, horizon = keys.shape
        if self._keys is None or self._lengths is None or self._keys.shape[0] != num_envs:
            self._keys = keys.new_zeros(num_envs, 0)
            self._lengths = keys.new_zeros(num_envs)
        # the index of the episode each transition belongs to, counted from the episode the memory holds
        episode = done.cumsum(1) - done
        earlier = torch.ones(horizon, horizon, dtype=torch.bool, device=keys.device).tril()
        matches = (keys[:, :, None] == keys[:, None, :]) & (episode[:, :, None] == episode[:, None, :]) & earlier
        stored = torch.arange(self._keys.shape[1], device=keys.device) < self._lengths[:, None]
        remembered = ((keys[:, :, None] == self._keys[:, None, :]) & stored[:, None, :]).sum(-1) * (episode == 0)
        counts = matches.sum(-1) + remembered
        # the memory keeps the next observations of each env's unfinished episode, stored entries first
        keep = torch.cat([stored & (done.sum(1, keepdim=True) == 0), episode == done.sum(1, keepdim=True)], 1)
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
        self._lengths = keep.sum(1)
        self._keys = torch.cat([self._keys, keys], 1).gather(1, order)[:, : int(self._lengths.max())]
        return counts.reshape(batch.shape)

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        phi, phi_next = self.embed(batch)
        impact = torch.linalg.vector_norm(phi_next - phi, dim=-1)
        return impact / self.episodic_counts(batch).to(impact.dtype).sqrt()

    def memory_state(self) -> dict[str, torch.Tensor] | None:
        if self._keys is None or self._lengths is None:
            return None
        return {"keys": self._keys.clone(), "lengths": self._lengths.clone()}

    def load_memory_state(self, state: Any) -> None:
        self._keys = None if state is None else state["keys"].to(self.device, copy=True)
        self._lengths = None if state is None else state["lengths"].to(self.device, copy=True)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, latent_dim={self.latent_dim}, bin_size={self.bin_size}"
