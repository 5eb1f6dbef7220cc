"""The intrinsic-reward contract (kind ``reward``): one :class:`IntrinsicReward` base every exploration bonus
builds on.

A reward reads a rollout batch (``[num_envs, T]`` on-policy, ``[B]`` sampled off-policy) with the keys it declares
(``in_keys``: observation, action, next observation, done flags) and writes ``"intrinsic_reward"``:

- :meth:`IntrinsicReward.compute` returns the raw bonus, one value per transition, vectorised over envs (a loop
  over time only where the definition is a recurrence);
- :meth:`IntrinsicReward.forward` (``reward(batch)``) scales it: normalised (``reward_norm``: ``"none"``,
  ``"std"`` of the bonuses or ``"return"``, the std of the forward-discounted bonus return, as RND does), then
  weighted by ``beta * (1 - kappa) ** frames`` (decay counted in frames);
- :meth:`IntrinsicReward.update` trains the reward's own networks with its own optimiser, on a random
  ``update_proportion`` of the batch;
- ``state_dict()`` holds everything an exact resume needs: networks, optimiser, running statistics, episodic
  memories, the frame count.

Observations can be normalised (``obs_norm=True``: running mean and std, clipped to +-5), the statistics seeded
from the first batch the reward sees, never by stepping the env behind the agent's back. Episodic rewards
(``episodic = True``) keep per-env memories, reset where episodes end: off-policy agents compute them at collection
time and store them with the transition; lifelong ones are recomputed on sampled batches at update time.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.data import Composite, OneHot, TensorSpec

from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError, positive_int
from rlte_plugins.optim.normalization import RunningMeanStd

NEXT_OBS = ("next", "observation")
REWARD_NORMS = ("none", "std", "return")


def number(
    owner: str, name: str, value: Any, low: float | None = None, high: float | None = None, strict: bool = False
) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]`` (``low`` excluded when ``strict``), else
    one :class:`ComponentArgumentError` line naming ``owner`` and the argument."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ComponentArgumentError(f"{owner}: {name} must be a number, got {value!r}")
    too_low = low is not None and (value < low or (strict and value == low))
    if too_low or (high is not None and value > high):
        left = "(" if strict else "["
        bounds = f"in {left}{low}, {high}]" if high is not None else f"{'>' if strict else '>='} {low:g}"
        raise ComponentArgumentError(f"{owner}: {name} must be {bounds}, got {value!r}")
    return float(value)


def widths(owner: str, name: str, value: Any) -> tuple[int, ...]:
    """Hidden widths as the MLP encoder takes them (an int or a non-empty list of positive ints), else one
    :class:`ComponentArgumentError` line naming ``owner`` and the argument."""
    listed = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(listed, str) or not isinstance(listed, Sequence) or not listed:
        raise ComponentArgumentError(f"{owner}: {name} must be a non-empty list of positive ints, got {value!r}")
    return tuple(positive_int(owner, name, width) for width in listed)


class IntrinsicReward(nn.Module):
    """Base of every intrinsic reward: weighting, normalisation, sub-sampled updates, state for resume.

    Args:
        beta: weight of the bonus at frame 0.
        kappa: decay of the weight per frame: ``beta * (1 - kappa) ** frames``.
        reward_norm: ``"none"``, ``"std"`` (divide by the running std of the bonuses) or ``"return"`` (by the
            running std of their forward-discounted return per env, at ``gamma``: RND's normaliser).
        gamma: discount of the ``"return"`` normaliser.
        obs_norm: normalise the observations the reward's networks read (running mean/std, clipped to +-5).
        update_proportion: fraction of each batch the networks are trained on (RND's 0.25 at 32+ envs).
        lr: learning rate of the reward's own Adam optimiser.
        seed: seed of the networks' initialisation and of the update's sub-sampling.
    """

    registry_name: ClassVar[str] = "intrinsic"
    #: the batch keys :meth:`compute` reads (checked against the env at build)
    in_keys: ClassVar[tuple[Any, ...]] = (NEXT_OBS,)
    #: depends on the history within an episode (computed at collection time by off-policy agents)
    episodic: ClassVar[bool] = False
    #: the observation key the networks read (normalised with ``obs_norm``)
    obs_key: ClassVar[Any] = NEXT_OBS

    def __init__(
        self,
        beta: float = 1.0,
        kappa: float = 0.0,
        reward_norm: str = "std",
        gamma: float = 0.99,
        obs_norm: bool = False,
        update_proportion: float = 1.0,
        lr: float = 1e-4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        owner = self.owner
        self.beta = number(owner, "beta", beta, 0.0)
        self.kappa = number(owner, "kappa", kappa, 0.0, 1.0)
        if reward_norm not in REWARD_NORMS:
            raise ComponentArgumentError(f"{owner}: reward_norm must be one of {', '.join(REWARD_NORMS)}, got "
                                         f"{reward_norm!r}")  # fmt: skip
        self.reward_norm = reward_norm
        self.gamma = number(owner, "gamma", gamma, 0.0, 1.0)
        self.obs_norm = bool(obs_norm)
        self.update_proportion = number(owner, "update_proportion", update_proportion, 0.0, 1.0, strict=True)
        self.lr = number(owner, "lr", lr, 0.0)
        self.seed = int(seed)
        self.obs_shape: tuple[int, ...] | None = None
        self.obs_dtype: torch.dtype | None = None
        self.action_spec: TensorSpec | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.frames = 0
        self._generator = torch.Generator().manual_seed(self.seed)
        self._obs_rms: RunningMeanStd | None = None
        self._reward_rms: RunningMeanStd | None = None
        self._return_acc: torch.Tensor | None = None  # the "return" normaliser's running return per env

    @property
    def owner(self) -> str:
        return f"reward {self.registry_name!r}"

    @property
    def built(self) -> bool:
        return self.obs_shape is not None

    # ---- building -------------------------------------------------------------------------------------------

    def build(self, observation_spec: Composite, action_spec: TensorSpec | None = None) -> IntrinsicReward:
        """Check the env's specs against :attr:`in_keys` and create the networks (once). On an env whose only
        observation is ``"pixels"``, a reward declared on ``"observation"`` reads the pixels."""
        key = self.obs_key[-1] if isinstance(self.obs_key, tuple) else self.obs_key
        keys = set(observation_spec.keys(True, True))
        if key == "observation" and key not in keys and "pixels" in keys:

            def to_pixels(k: Any) -> Any:
                if k == "observation":
                    return "pixels"
                return (*k[:-1], "pixels") if isinstance(k, tuple) and k[-1] == "observation" else k

            self.obs_key = to_pixels(self.obs_key)
            self.in_keys = tuple(to_pixels(k) for k in self.in_keys)
            key = "pixels"
        needed = [k for k in self.in_keys if (k[-1] if isinstance(k, tuple) else k) in ("observation", "pixels")]
        for k in needed:
            name = k[-1] if isinstance(k, tuple) else k
            if name not in keys:
                raise SpecMismatchError(f"{self.owner} reads {name!r} but the env's observations are "
                                        f"{sorted(str(k) for k in keys)}")  # fmt: skip
        if key not in keys:
            raise SpecMismatchError(f"{self.owner} reads {key!r} but the env's observations are "
                                    f"{sorted(str(k) for k in keys)}")  # fmt: skip
        if any((k[-1] if isinstance(k, tuple) else k) == "action" for k in self.in_keys) and action_spec is None:
            raise SpecMismatchError(f"{self.owner} reads the action: build it with the env's action spec")
        spec = observation_spec[key]
        shape = tuple(spec.shape[len(observation_spec.shape) :])
        if self.built:
            if shape != self.obs_shape:
                raise SpecMismatchError(f"{self.owner} was built for observations of shape {list(self.obs_shape or ())}"
                                        f" but {key!r} has shape {list(shape)}")  # fmt: skip
            return self
        self.obs_shape, self.obs_dtype, self.action_spec = shape, spec.dtype, action_spec
        self._check_observation(shape, spec.dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._build()
        params = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=self.lr) if params else None
        return self

    def _check_observation(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        """Refuse observations the reward cannot read (a subclass narrows it)."""

    def _build(self) -> None:
        """Create the networks (``self.obs_shape``, ``self.obs_dtype``, ``self.action_spec`` are set)."""

    @property
    def pixels(self) -> bool:
        return self.obs_shape is not None and len(self.obs_shape) >= 3

    def feature_net(self, out_features: int, hidden: Sequence[int] = (256, 256)) -> nn.Module:
        """A network from observations to ``out_features``: the ICM encoder (Pathak et al.) and a linear layer on
        images, an MLP on vectors."""
        from rlte_plugins.registry import make

        assert self.obs_shape is not None
        if self.pixels:
            body = make("encoder", "pathak_cnn", in_shape=list(self.obs_shape), features=None)
            return nn.Sequential(body.net, nn.Linear(body.out_features, out_features))
        if len(self.obs_shape) != 1:
            raise SpecMismatchError(f"{self.owner} reads images (C, H, W) or flat vectors, got shape "
                                    f"{list(self.obs_shape)}")  # fmt: skip
        body = make("encoder", "mlp", in_features=self.obs_shape[0], num_cells=list(hidden), activation="relu")
        return nn.Sequential(body.net, nn.Linear(body.out_features, out_features))

    @property
    def action_dim(self) -> int:
        """Actions as network inputs: the number of choices (one-hot) or the flat continuous size."""
        spec = self.action_spec
        if spec is None:
            raise SpecMismatchError(f"{self.owner} needs the action spec")
        n = getattr(getattr(spec, "space", None), "n", None)
        return int(n) if n is not None else int(math.prod(spec.shape[-1:]))

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """Actions as float network inputs: one-hot for discrete actions (indices or one-hot), else as given."""
        n = getattr(getattr(self.action_spec, "space", None), "n", None)
        if n is None:
            return action.float()
        if isinstance(self.action_spec, OneHot):  # the spec says how actions come, never their shape
            return action.float()
        return torch.nn.functional.one_hot(action.long(), int(n)).float()

    # ---- observations ---------------------------------------------------------------------------------------

    def observations(self, batch: TensorDictBase, key: Any = None) -> torch.Tensor:
        """``batch[key]`` (default :attr:`obs_key`) as the networks read it: normalised with ``obs_norm``."""
        obs = batch.get(self.obs_key if key is None else key)
        if not self.obs_norm:
            return obs
        if self._obs_rms is None:  # seeded from the first batch, not from extra env steps
            self._obs_rms = RunningMeanStd(obs.shape[batch.batch_dims :], obs.device)
            self._obs_rms.update(obs.reshape(-1, *obs.shape[batch.batch_dims :]))
        rms = self._obs_rms
        return ((obs.float() - rms.mean) / rms.var.sqrt().clamp_min(1e-8)).clamp(-5.0, 5.0)

    # ---- the bonus ------------------------------------------------------------------------------------------

    def compute(self, batch: TensorDictBase) -> torch.Tensor:
        """The raw bonus of every transition of ``batch``, shaped ``batch.shape``."""
        raise NotImplementedError

    def weight(self) -> float:
        """``beta * (1 - kappa) ** frames``."""
        return self.beta * (1.0 - self.kappa) ** self.frames

    def _normalize(self, bonus: torch.Tensor) -> torch.Tensor:
        if self.reward_norm == "none":
            return bonus
        if self._reward_rms is None:
            self._reward_rms = RunningMeanStd((), bonus.device)
        if self.reward_norm == "std" or bonus.dim() < 2:
            self._reward_rms.update(bonus.reshape(-1))
        else:  # forward-discounted return per env along time ([num_envs, T]), never reset (RND's non-episodic)
            flat = bonus.reshape(bonus.shape[0], bonus.shape[1], -1).float()
            acc = self._return_acc
            if acc is None or acc.shape != flat[:, 0].shape:
                acc = torch.zeros_like(flat[:, 0])
            returns = torch.empty_like(flat)
            for t in range(flat.shape[1]):
                acc = self.gamma * acc + flat[:, t]
                returns[:, t] = acc
            self._return_acc = acc
            self._reward_rms.update(returns.reshape(-1))
        return bonus / self._reward_rms.var.sqrt().clamp_min(1e-8)

    @torch.no_grad()
    def forward(self, batch: TensorDictBase, frames: int | None = None) -> TensorDictBase:
        """Write ``"intrinsic_reward"`` (shape ``batch.shape``): the normalised bonus of ``batch`` weighted at
        ``frames`` env frames (an agent passes its count; without it the reward counts ``batch.numel()`` frames
        per call)."""
        if frames is not None:
            self.frames = int(frames)
        if not self.built:
            raise RuntimeError(f"{self.owner} is not built: call .build(env.observation_spec, env.action_spec)")
        missing = [k for k in self.in_keys if k not in batch.keys(True)]
        if missing:
            raise SpecMismatchError(f"{self.owner} reads {missing[0]!r}, which the batch lacks")
        seeded_now = self._obs_rms is None  # the first batch seeds the statistics inside observations()
        bonus = self.compute(batch).reshape(batch.shape).float()
        if self.obs_norm and not seeded_now and self._obs_rms is not None:
            # after the bonus: a batch is normalised with the statistics of the batches before it (RND's order)
            obs = batch.get(self.obs_key)
            self._obs_rms.update(obs.reshape(-1, *obs.shape[batch.batch_dims :]))
        weight = self.weight()
        if frames is None:
            self.frames += batch.numel()
        return batch.set("intrinsic_reward", weight * self._normalize(bonus))

    # ---- training -------------------------------------------------------------------------------------------

    def loss(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """The losses of the reward's networks on ``batch`` (flat): ``"loss"`` is minimised, the other entries
        are logged as ``losses/<name>_<key>``. Rewards without networks return ``{}``."""
        return {}

    def subsample(self, batch: TensorDictBase) -> TensorDictBase:
        """A random ``update_proportion`` of ``batch``'s transitions, flattened."""
        flat = batch.reshape(-1)
        if self.update_proportion >= 1.0:
            return flat
        n = max(1, int(round(self.update_proportion * flat.shape[0])))
        index = torch.randperm(flat.shape[0], generator=self._generator)[:n].to(flat.device)
        return flat[index]

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """One optimiser step of :meth:`loss` on a sub-sample of ``batch``; returns the losses (detached)."""
        if self.optimizer is None:
            return {}
        with torch.enable_grad():
            losses = self.loss(self.subsample(batch))
            if not losses:
                return {}
            self.optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            self.optimizer.step()
        return {f"losses/{self.registry_name}_{k}": v.detach() for k, v in losses.items()}

    # ---- state ----------------------------------------------------------------------------------------------

    def get_extra_state(self) -> dict[str, Any]:
        rms = {name: r.state_dict() for name, r in (("obs", self._obs_rms), ("reward", self._reward_rms)) if r}
        return {
            "frames": self.frames,
            "generator": self._generator.get_state(),
            "rms": rms,
            "return_acc": self._return_acc,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "memory": self.memory_state(),
        }

    @property
    def device(self) -> torch.device:
        """Where the reward's networks and buffers live (the CPU before any)."""
        first = next(itertools.chain(self.parameters(), self.buffers()), None)
        return first.device if first is not None else torch.device("cpu")

    def set_extra_state(self, state: Mapping[str, Any]) -> None:
        device = self.device  # a checkpoint is read onto the CPU: running state follows the networks
        self.frames = int(state["frames"])
        self._generator.set_state(state["generator"])
        for name, saved in state["rms"].items():
            rms = RunningMeanStd(saved["mean"].shape, device)
            rms.load_state_dict(saved)
            setattr(self, f"_{name}_rms", rms)
        acc = state["return_acc"]
        self._return_acc = None if acc is None else acc.to(device)
        if self.optimizer is not None and state["optimizer"] is not None:
            # a copy: an optimiser loaded from another live module must not share its moment tensors with it
            self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.load_memory_state(state["memory"])

    def memory_state(self) -> Any:
        """Episodic memories to checkpoint (a subclass with memories returns its tensors)."""
        return None

    def load_memory_state(self, state: Any) -> None:
        """Restore what :meth:`memory_state` returned."""

    def extra_repr(self) -> str:
        return f"beta={self.beta}, kappa={self.kappa}, reward_norm={self.reward_norm!r}, obs_norm={self.obs_norm}"


def episode_ends(batch: TensorDictBase) -> torch.Tensor:
    """Where an episode ended at each transition (``("next", "done")``), shaped ``batch.shape``."""
    return batch.get(("next", "done")).reshape(batch.shape).bool()
