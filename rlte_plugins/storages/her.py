"""Hindsight experience replay (Andrychowicz et al., 2017): goal relabelling at sampling time.

A per-env circular store ``[capacity_per_env, num_envs]`` (each env's steps contiguous in time, so an episode is
a range of rows), relabelling vectorised over the batch. TorchRL 0.14.1 ships ``HERReplayBuffer`` (same
strategies plus ``"random"``), but it is not used here because, measured on two envs' ``[num_envs, T]`` batches
added twice with episodes crossing the adds (``achieved_goal_key=("next", "achieved_goal")``, ``her_ratio=1``;
``tests/components/test_storages.py`` rechecks TorchRL's 2-D refusal and RNG and that goals here stay in the episode):

- it refuses a 2-D storage (``NotImplementedError``: 1D storages only), and on the flattened batches it finds
  episodes from ``done`` flags alone in storage order, so an episode still running at the end of one add runs on
  into the next env's steps: 32% (``future``), 39% (``final``) and 42% (``episode``) of relabelled goals came
  from another env, 12-13% of ``future``/``final`` goals from steps before ``t``; 0% here;
- it draws the goal steps from the global torch RNG, not the buffer's ``generator``: two buffers seeded alike
  sampled the same transitions with different goals; here ``seed`` fixes both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rlte_plugins.errors import CheckpointError, ComponentArgumentError, SpecMismatchError, positive_int

RewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sparse_goal_reward(threshold: float = 0.05) -> RewardFn:
    """The robotics-suite reward: ``0`` where ``||achieved - goal|| <= threshold``, else ``-1``."""

    def reward(achieved: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return -((achieved - goal).norm(dim=-1, keepdim=True) > threshold).float()

    return reward


class HERReplayStorage:
    """Replay whose sampled transitions have their goal replaced, with probability ``relabel_prob``, by a goal
    achieved later in the same episode, and the reward recomputed for it.

    Strategies: ``"future"`` (the goal achieved at a uniformly drawn step from ``t`` to the episode's end),
    ``"final"`` (the goal achieved at the end of the episode) and ``"episode"`` (at any step of the episode).
    Episodes still running count up to their latest stored step.

    Transitions must hold ``achieved_goal_key`` (in ``"next"``: the goal reached by the step) and
    ``desired_goal_key`` (at the root and in ``"next"``). Data is added as ``[num_envs, T]``.

    Args:
        num_envs: how many envs write (fixed at build).
        capacity: transitions kept in total (``capacity // num_envs`` per env).
        batch_size: default size of :meth:`sample`.
        strategy, relabel_prob: see above (0.8 = the paper's k = 4).
        reward_fn: ``reward_fn(achieved, goal) -> [.., 1]`` rewards; default :func:`sparse_goal_reward`.
        achieved_goal_key, desired_goal_key: observation keys.
        seed: seeds the sampling generator.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> rb = rlte_plugins.make("storage", "her_replay", capacity=40, batch_size=8, seed=0).build(num_envs=2)
        >>> goal, done = torch.zeros(2, 5, 2), torch.zeros(2, 5, 1, dtype=torch.bool)
        >>> nxt = TensorDict(achieved_goal=torch.rand(2, 5, 2), desired_goal=goal, reward=-torch.ones(2, 5, 1),
        ...                  done=done, terminated=done, truncated=done, batch_size=[2, 5])
        >>> rb.add(TensorDict(desired_goal=goal, next=nxt, batch_size=[2, 5]))
        >>> rb.sample()["next", "reward"].shape
        torch.Size([8, 1])
    """

    STRATEGIES = ("future", "final", "episode")

    def __init__(
        self,
        capacity: int = 1_000_000,
        batch_size: int = 256,
        strategy: str = "future",
        relabel_prob: float = 0.8,
        reward_fn: RewardFn | None = None,
        achieved_goal_key: str = "achieved_goal",
        desired_goal_key: str = "desired_goal",
        device: str | torch.device | None = None,
        seed: int | None = None,
    ) -> None:
        owner = "storage 'her_replay'"
        self.capacity = positive_int(owner, "capacity", capacity)
        self.batch_size = positive_int(owner, "batch_size", batch_size)
        if strategy not in self.STRATEGIES:
            raise ComponentArgumentError(f"{owner}: strategy must be one of {self.STRATEGIES}, got {strategy!r}")
        if not 0.0 <= relabel_prob <= 1.0:
            raise ComponentArgumentError(f"{owner}: relabel_prob must be in [0, 1], got {relabel_prob!r}")
        self.strategy, self.relabel_prob = strategy, float(relabel_prob)
        self.reward_fn = reward_fn or sparse_goal_reward()
        self.achieved_key, self.desired_key = achieved_goal_key, desired_goal_key
        self.device, self.seed = device, seed
        self.data: TensorDictBase | None = None

    def build(self, num_envs: int = 1, device: str | torch.device | None = None) -> HERReplayStorage:
        self.num_envs = positive_int("storage 'her_replay'", "num_envs", num_envs)
        self.rows = max(1, self.capacity // self.num_envs)
        self._device = torch.device(self.device or device or "cpu")
        self._gen = torch.Generator(device=self._device)
        if self.seed is not None:
            self._gen.manual_seed(int(self.seed))
        self.written = 0  # rows written so far (absolute, per env: every add writes all envs)
        # absolute row where each stored step's episode started / ended (-1: still running)
        self.ep_start = torch.zeros(self.rows, self.num_envs, dtype=torch.long, device=self._device)
        self.ep_end = torch.full((self.rows, self.num_envs), -1, dtype=torch.long, device=self._device)
        self._open_start = torch.zeros(self.num_envs, dtype=torch.long, device=self._device)
        return self

    def __len__(self) -> int:
        return 0 if self.data is None else min(self.written, self.rows) * self.num_envs

    def add(self, batch: TensorDictBase) -> None:
        """Store ``[num_envs, T]`` transitions (``T`` consecutive steps of every env)."""
        if batch.ndim != 2 or batch.shape[0] != self.num_envs:
            raise SpecMismatchError(
                f"storage 'her_replay' was built for {self.num_envs} envs and takes [num_envs, T] data, got "
                f"batch size {list(batch.batch_size)}"
            )
        for key in (self.desired_key, ("next", self.achieved_key), ("next", self.desired_key)):
            if key not in batch.keys(True):
                raise SpecMismatchError(f"storage 'her_replay' needs {key!r} in every transition")
        steps = batch.transpose(0, 1).to(self._device)  # [T, num_envs]
        if self.data is None:
            self.data = steps[0].unsqueeze(0).expand(self.rows, self.num_envs).clone().zero_()
        done = steps.get(("next", "done")).reshape(steps.shape[0], self.num_envs)
        for t in range(steps.shape[0]):  # T rows; each row is written for every env at once
            absolute = self.written
            row = absolute % self.rows
            self.data[row] = steps[t]
            self.ep_start[row] = self._open_start
            self.ep_end[row] = -1
            ended = done[t]
            if ended.any():
                for env in ended.nonzero().flatten().tolist():
                    start = int(self._open_start[env])
                    first = max(start, absolute - self.rows + 1)  # rows older than that were overwritten
                    idx = torch.arange(first, absolute + 1, device=self._device) % self.rows
                    self.ep_end[idx, env] = absolute
                self._open_start = torch.where(ended, absolute + 1, self._open_start)
            self.written += 1

    def sample(self, batch_size: int | None = None) -> TensorDictBase:
        if self.data is None or self.written == 0:
            raise RuntimeError("storage 'her_replay' is empty: add transitions before sampling")
        n = batch_size or self.batch_size
        filled = min(self.written, self.rows)
        oldest = self.written - filled
        g, dev = self._gen, self._device
        absolute = oldest + torch.randint(0, filled, (n,), generator=g, device=dev)
        env = torch.randint(0, self.num_envs, (n,), generator=g, device=dev)
        rows = absolute % self.rows
        batch = self.data[rows, env].clone()
        start = torch.maximum(self.ep_start[rows, env], torch.full_like(absolute, oldest))
        end = self.ep_end[rows, env]
        end = torch.where(end < 0, torch.full_like(end, self.written - 1), end)
        u = torch.rand(n, generator=g, device=dev)
        if self.strategy == "future":
            source = absolute + (u * (end - absolute + 1)).long().clamp_max(end - absolute)
        elif self.strategy == "final":
            source = end
        else:
            source = start + (u * (end - start + 1)).long().clamp_max(end - start)
        relabel = torch.rand(n, generator=g, device=dev) < self.relabel_prob
        new_goal = self.data.get(("next", self.achieved_key))[source % self.rows, env]
        mask = relabel.reshape(n, *([1] * (new_goal.dim() - 1)))
        for key in (self.desired_key, ("next", self.desired_key)):
            batch.set(key, torch.where(mask, new_goal, batch.get(key)))
        reward = self.reward_fn(batch.get(("next", self.achieved_key)), batch.get(("next", self.desired_key)))
        batch.set(
            ("next", "reward"),
            reward.reshape(batch.get(("next", "reward")).shape).to(batch.get(("next", "reward")).dtype),
        )
        batch.set("relabelled", relabel)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The stored steps, episode bounds, write count and generator state (tensors and plain values). Rows fill in
        order until the store is full: one not yet full carries only its ``written`` rows."""
        filled = min(self.written, self.rows)
        # the rows copied: torch.save of a slice would write the whole tensor it views
        return {
            "data": None if self.data is None else self.data[:filled].clone().to_dict(),
            "written": self.written,
            "rows": self.rows,
            "ep_start": self.ep_start[:filled].clone(),
            "ep_end": self.ep_end[:filled].clone(),
            "open_start": self._open_start,
            "generator": self._gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s state, or from one that carried every row, on a storage built alike."""
        stored, num_envs = state["ep_end"].shape
        rows = state.get("rows", stored)  # a state without it carried every row
        if (rows, num_envs) != (self.rows, self.num_envs):
            raise CheckpointError(
                f"storage 'her_replay': the checkpoint's store keeps {rows} rows of {num_envs} envs, this storage "
                f"keeps {self.rows} rows of {self.num_envs} envs: build it with the checkpoint's capacity and num_envs"
            )

        # onto this storage's device (a checkpoint is read onto the CPU), into tensors of its own: adds write these in
        # place, and must not write into the state of another storage. Rows past the stored ones are as a new
        # storage has them.
        def padded(tensor: torch.Tensor, empty: float) -> torch.Tensor:
            out = torch.full((self.rows, *tensor.shape[1:]), empty, dtype=tensor.dtype, device=self._device)
            out[: tensor.shape[0]] = tensor
            return out

        data = state["data"]
        if data is not None:
            data = TensorDict(data, batch_size=[stored, self.num_envs])
            data = data.apply(lambda t: padded(t, 0), batch_size=[self.rows, self.num_envs], device=self._device)
        self.data = data
        self.written = int(state["written"])
        self.ep_start, self.ep_end = padded(state["ep_start"], 0), padded(state["ep_end"], -1)
        self._open_start = state["open_start"].to(self._device, copy=True)
        self._gen.set_state(state["generator"])
