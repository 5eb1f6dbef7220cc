"""The agent contract every agent is built on, and what every agent shares.

:class:`Agent` is ``Agent(env, device="cpu", seed=0, **config)``: each agent declares its hyperparameters once,
as a dataclass (``Agent.Config``, every field made with :func:`option` and a one-line help). That declaration is
the constructor's validation, the class's signature (so :func:`rlte_plugins.make` checks arguments and ``rlte
info agent NAME`` prints them), the YAML schema, ``rlte train --help`` and what a checkpoint stores. Component
slots (``encoder``, ``policy``, ``distribution``, ``augmentation``, ``reward``...) are declared per agent and filled
with :meth:`Agent.set`. :func:`load_agent` rebuilds any agent from its file alone.

The acting policy is a TensorDict module, :attr:`Agent.actor` (only what acts); the agent itself is not an
``nn.Module``, so :meth:`Agent.train` means training it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import inspect
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.envs import Compose, EnvBase, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from rlte_plugins.errors import (
    CheckpointError,
    ComponentArgumentError,
    RlteError,
    SpecMismatchError,
    UnknownComponentError,
    positive_int,
)
from rlte_plugins.registry import get_registry, get_spec, make
from rlte_plugins.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

_PLAIN = (str, int, float, bool, type(None))
_INFER = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


# -- hyperparameters ----------------------------------------------------------------------------------------
def option(
    default: Any,
    help: str,
    *,
    types: tuple[type, ...] | None = None,
    choices: Sequence[Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    schedule: bool = False,
) -> Any:
    """A hyperparameter of an agent's ``Config``: its default, one line of help and what it accepts.

    ``types`` defaults to the default's type (an ``int`` is accepted where a ``float`` is); ``None`` is accepted
    where ``types`` includes ``type(None)``. ``low``/``high`` bound numbers (``low_open``: strictly above).
    ``schedule``: a number or ``"linear(start, end, frames)"``
    (:class:`~rlte_plugins.optim.schedules.Schedule`).
    """
    meta = {"help": help, "types": types, "choices": tuple(choices) if choices else None,
            "low": low, "high": high, "low_open": low_open, "schedule": schedule}  # fmt: skip
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class AgentConfig:
    """Hyperparameters shared by every agent (none yet: each kind of agent adds its own)."""


def collection_option(strategies: tuple[str, ...] | None = None, described: str | None = None) -> Any:
    """The ``collection`` option: ``auto``, ``torchrl``, ``direct``, ``ray`` (and ``strategies`` where an agent offers
    more, ``described`` in its help)."""
    from rlte_plugins.collection import STRATEGIES

    default = "torchrl, direct or ray (Ray workers acting with the learner's weights, pushed before every batch)"
    described = described or default
    return option("auto", f"auto (direct for rlte envs, else torchrl), {described}", choices=strategies or STRATEGIES)


def num_workers_option(workers: str = "Ray workers of collection='ray'") -> Any:
    """The ``num_workers`` option of the worker strategies."""
    return option(1, f"{workers} (must divide the envs)", low=1)


def ray_address_option() -> Any:
    """The ``ray_address`` option: the Ray cluster of ``collection='ray'``."""
    return option(None, "Ray cluster of collection='ray': null (RAY_ADDRESS, else a new local Ray), 'auto' (the "
                  "cluster this machine joined with ray start) or an address ray.init takes (ray://head:10001)",
                  types=(str, type(None)))  # fmt: skip


def config_fields(config_cls: type) -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(config_cls))


def field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def check_option(owner: str, f: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` if it fits the field's declaration, else one error naming the agent and the argument (a
    schedule's start and end are held to the field's bounds)."""
    meta = f.metadata
    if meta.get("schedule") and isinstance(value, str):
        from rlte_plugins.optim.schedules import Schedule

        schedule = Schedule.parse(value, f"{owner}: {f.name}")
        for end in (schedule.start, schedule.end):
            _check_bounds(owner, f, end, f" (in {value!r})")
        return value
    types = meta.get("types") or _INFER.get(type(field_default(f)), (type(field_default(f)),))
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ComponentArgumentError(f"{owner}: {f.name} must be {names}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        accepted = ", ".join(repr(c) for c in meta["choices"])
        raise ComponentArgumentError(f"{owner}: {f.name} must be one of {accepted}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_bounds(owner, f, value)
    return value


def _check_bounds(owner: str, f: dataclasses.Field[Any], value: float, where: str = "") -> None:
    meta = f.metadata
    low, high = meta.get("low"), meta.get("high")
    below = low is not None and (value <= low if meta.get("low_open") else value < low)
    if below or (high is not None and value > high):
        lo = "" if low is None else f"{'>' if meta.get('low_open') else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        bounds = " and ".join(x for x in (lo, hi) if x)
        raise ComponentArgumentError(f"{owner}: {f.name} must be {bounds}, got {value!r}{where}")


def build_config(owner: str, config_cls: type, kwargs: Mapping[str, Any]) -> Any:
    """The agent's ``Config`` from keyword arguments, each checked; unknown ones name the accepted ones."""
    fields = {f.name: f for f in config_fields(config_cls)}
    for key in kwargs:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ComponentArgumentError(
                f"{owner} got unexpected argument {key!r}{hint} (accepted: env, device, seed, {', '.join(fields)})"
            )
    values = {name: check_option(owner, f, kwargs[name]) for name, f in fields.items() if name in kwargs}
    return config_cls(**copy.deepcopy(values))


def config_signature(config_cls: type, defaults: Mapping[str, Any] | None = None) -> inspect.Signature:
    """``(env, device="cpu", seed=0, *, <every field with its default>)``."""
    P = inspect.Parameter
    defaults = defaults or {}
    params = [
        P("env", P.POSITIONAL_OR_KEYWORD, **({"default": defaults["env"]} if "env" in defaults else {})),
        P("device", P.POSITIONAL_OR_KEYWORD, default="cpu"),
        P("seed", P.POSITIONAL_OR_KEYWORD, default=0),
    ]
    for f in config_fields(config_cls):
        params.append(P(f.name, P.KEYWORD_ONLY, default=defaults.get(f.name, field_default(f)), annotation=f.type))
    return inspect.Signature(params)


def check_device(device: Any, owner: str) -> torch.device:
    """``device`` as a ``torch.device`` that this machine has, or one error saying what it has."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ComponentArgumentError(f"{owner}: {device!r} is not a device (cpu, cuda, cuda:1, mps)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise ComponentArgumentError(f"{owner}: device {str(dev)!r} is not available on this machine ({why}); "
                                         "use device='cpu'")  # fmt: skip
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ComponentArgumentError(
                f"{owner}: device {str(dev)!r} does not exist: this machine has {count} CUDA device(s) "
                f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ComponentArgumentError(f"{owner}: device 'mps' is not available on this machine; use device='cpu'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (torch's on every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- the agent ----------------------------------------------------------------------------------------------
class Agent:
    """Base of every agent: configuration, components, the acting module, training, evaluation, checkpoints.

    A concrete agent sets :attr:`name`, a ``Config`` dataclass (subclassing its base's), the component
    :attr:`slots` it uses (slot -> default: a registry name, a mapping or ``"auto"``, resolved from the env's
    specs by :meth:`default_component`), and implements :meth:`_build`, :meth:`iteration` and the state hooks;
    :class:`~rlte_plugins.agents.on_policy.OnPolicyAgent` does all of that for on-policy agents.

    Args:
        env: a registered env name, a gymnasium id, ``{"name": ..., **kwargs}``, a TorchRL ``EnvBase`` (batched),
            or a factory ``f(num_envs=..., seed=..., device=...)`` (rebuildable when importable by name).
        device: where the networks, the rollout and the update live (checked against this machine).
        seed: seeds Python, numpy, torch and the env.
        **config: the agent's ``Config`` fields.
    """

    name: ClassVar[str] = "agent"
    Config: ClassVar[type] = AgentConfig
    #: component slot -> default choice (``"auto"``: chosen from the env's specs by :meth:`default_component`)
    slots: ClassVar[dict[str, Any]] = {}
    #: slots whose default is no component at all (optional: ``reward``, ``augmentation``)
    optional_slots: ClassVar[tuple[str, ...]] = ()
    preset: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:
            cls.__signature__ = config_signature(cls.Config)  # type: ignore[attr-defined]

    @classmethod
    def option_help(cls) -> dict[str, str]:
        """``{argument: one line of help}`` for every argument (what ``rlte info`` and ``rlte train --help`` show)."""
        base = {
            "env": "env name, gymnasium id, {name: ..., **kwargs}, EnvBase or factory",
            "device": "training device (cpu, cuda, cuda:1)",
            "seed": "seed of Python, numpy, torch and the env",
        }
        return {**base, **{f.name: f.metadata.get("help", "") for f in config_fields(cls.Config)}}

    @classmethod
    def make_preset(
        cls, name: str, doc: str, components: Mapping[str, Any] | None = None, **defaults: Any
    ) -> Callable[..., Agent]:
        """A registrable factory: this agent with other defaults (and default components), e.g. ``fast_ppo``.

        The agent it makes is of this class; its checkpoint names this class, so :func:`load_agent` rebuilds it
        without the preset."""
        fields = {f.name for f in config_fields(cls.Config)}
        unknown = sorted(set(defaults) - fields - {"env"})
        if unknown:
            raise ComponentArgumentError(f"preset {name!r} of agent {cls.name!r}: unknown option {unknown[0]!r}")
        bad = sorted(set(components or {}) - set(cls.slots))
        if bad:
            raise ComponentArgumentError(f"preset {name!r} of agent {cls.name!r}: unknown slot {bad[0]!r}")

        def factory(env: Any = defaults.get("env"), device: Any = "cpu", seed: int = 0, **config: Any) -> Agent:
            options = {k: v for k, v in defaults.items() if k != "env"}
            try:
                agent = cls(env, device, seed, **{**options, **config})
            except ComponentArgumentError as exc:  # name what the user made, not only the class behind it
                message = str(exc).replace(f"agent {cls.name!r}", f"agent {name!r} (a preset of {cls.name!r})", 1)
                raise ComponentArgumentError(message) from exc
            agent.preset = name
            agent._defaults.update(copy.deepcopy(dict(components or {})))
            return agent

        factory.__name__ = factory.__qualname__ = name
        factory.__module__ = cls.__module__
        factory.__doc__ = doc
        factory.__signature__ = config_signature(cls.Config, defaults)  # type: ignore[attr-defined]
        factory.option_help = cls.option_help  # type: ignore[attr-defined]
        factory.agent_class = cls  # type: ignore[attr-defined]
        return factory

    def __init__(self, env: Any, device: Any = "cpu", seed: int = 0, **config: Any) -> None:
        self.owner = f"agent {self.name!r}"
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ComponentArgumentError(f"{self.owner}: seed must be a non-negative int, got {seed!r}")
        self.config = build_config(self.owner, self.Config, config)
        self.check_config()
        self.device = check_device(device, self.owner)
        self.seed = seed
        seed_everything(seed)
        self._env_factory: str | None = None
        self.env = self._make_env(env)
        self.check_env()
        self._defaults: dict[str, Any] = copy.deepcopy(dict(self.slots))
        self._choices: dict[str, Any] = {}
        self.components: dict[str, Any] = {}
        self.built = False
        self.frames = 0
        self.iterations = 0
        self.total_frames: int | None = None
        self.elapsed = 0.0
        self.history: list[dict[str, float]] = []
        # evaluation draws its env and action seeds here: evaluating never touches the training generators
        self._eval_seeds = torch.Generator().manual_seed(seed + 10_000)

    # -- configuration hooks ------------------------------------------------------------------------------
    def check_config(self) -> None:
        """Checks across fields (each field is already checked on its own)."""

    def check_env(self) -> None:
        """Checks of the config against the env (its batch size...), once the env is made."""

    @property
    def num_envs(self) -> int:
        return int(getattr(self.config, "num_envs", 1))

    # -- envs ---------------------------------------------------------------------------------------------
    def _make_env(self, env: Any) -> EnvBase:
        if isinstance(env, str) and ":" in env and env.partition(":")[0] not in _registry_names("env"):
            env = _import_factory(env, self.owner)
        if callable(env) and not isinstance(env, (EnvBase, type)):
            self._env_factory = _factory_path(env)
            made = env(num_envs=self.num_envs, seed=self.seed, device=self.device)
            if not isinstance(made, EnvBase):
                raise ComponentArgumentError(f"{self.owner}: the env factory returned {type(made).__name__}, "
                                             "not a TorchRL EnvBase")  # fmt: skip
            self._env_object = env
            env = made
        made = make_env(env, self.num_envs, self.seed, self.device)
        check_batched(made, self.owner)
        if made.device is not None and made.device != self.device and self.device.type != "cpu":
            raise ComponentArgumentError(
                f"{self.owner}: the env lives on {made.device} but the agent on {self.device}; make the env on "
                "the agent's device (or pass it by name)"
            )
        return made

    def env_reference(self) -> dict[str, Any] | None:
        """How to make this env again (``{"name": ..., **kwargs}`` or ``{"factory": "module:name"}``), or None."""
        if self._env_factory is not None:
            return {"factory": self._env_factory}
        ref = component_ref(self.env)
        return None if ref is None else {"name": ref["name"], **ref["kwargs"]}

    def make_env_like(self, num_envs: int, seed: int) -> EnvBase:
        """A new env made like the training env with ``num_envs`` envs and ``seed`` (evaluation, more workers)."""
        ref = self.env_reference()
        if ref is None:
            raise ComponentArgumentError(
                f"{self.owner}: the training env was given as an instance, which cannot be made again: pass the "
                "env by name, mapping or factory, or give evaluate(env=...)"
            )
        if "factory" in ref:
            factory = getattr(self, "_env_object", None) or _import_factory(ref["factory"], self.owner)
            return factory(num_envs=num_envs, seed=seed, device=self.device)
        kwargs = {k: v for k, v in ref.items() if k != "name"}
        return make("env", ref["name"], **{**kwargs, "num_envs": num_envs, "seed": seed, "device": str(self.device)})

    def env_transforms(self) -> list[Any]:
        """Transforms the acting module needs on any env it runs on (recurrent agents: episode starts and the
        state primer); ``env.rollout(n, agent.actor)`` runs on ``TransformedEnv(env, Compose(*these))``."""
        self.build()
        return self._env_transforms()

    def _env_transforms(self) -> list[Any]:
        return []

    def wrap_env(self, env: EnvBase) -> EnvBase:
        """``env`` with :meth:`env_transforms` (as is when there are none)."""
        self.build()
        return self._wrap(env)

    def _wrap(self, env: EnvBase) -> EnvBase:
        transforms = self._env_transforms()
        return TransformedEnv(env, Compose(*transforms)) if transforms else env

    # -- components ---------------------------------------------------------------------------------------
    def set(self, **components: Any) -> Agent:
        """Choose components for this agent's slots: instances, registry names or ``{"name": ..., **kwargs}``
        (``None`` restores the default)."""
        unknown = sorted(set(components) - set(self.slots))
        if unknown:
            raise ComponentArgumentError(f"{self.owner}.set() got unknown component {unknown[0]!r} "
                                         f"(accepted: {', '.join(self.slots)})")  # fmt: skip
        if self.built:
            raise ComponentArgumentError(
                f"{self.owner} is already built (trained, evaluated or loaded): set components before"
            )
        for slot, choice in components.items():
            if choice is None:
                self._choices.pop(slot, None)
            else:
                self._choices[slot] = resolve_component(_slot_kind(slot), choice)
        return self

    def default_component(self, slot: str) -> Any:
        """The choice for ``slot`` when its default is ``"auto"`` (override per agent)."""
        raise ComponentArgumentError(f"{self.owner} has no automatic choice for {slot!r}")

    def _component(self, slot: str) -> Any:
        if slot in self._choices:
            return self._choices[slot]
        default = self._defaults.get(slot)
        if default is None:
            return None
        if default == "auto":
            default = self.default_component(slot)
        return resolve_component(_slot_kind(slot), default)

    def build(self) -> Agent:
        """Build every component against the env's specs, then the agent's own parts (loss, optimiser...)."""
        if self.built:
            return self
        components = {slot: self._component(slot) for slot in self.slots}
        self.components = {slot: c for slot, c in components.items() if c is not None}
        reward = self.components.get("reward")
        if getattr(self.config, "pretraining", False) and reward is None:
            raise ComponentArgumentError(f"{self.owner}: pretraining=True learns from the intrinsic reward alone: "
                                         "set(reward=...) first")  # fmt: skip
        if reward is not None:
            from rlte_plugins.rewards.base import IntrinsicReward

            if isinstance(reward, IntrinsicReward):
                reward.build(self.env.observation_spec, self.env.action_spec)
            elif hasattr(reward, "build"):
                reward.build(self.env.observation_spec)
            if isinstance(reward, torch.nn.Module):
                reward.to(self.device)
        self._build()
        self.built = True
        return self

    def _build(self) -> None:
        raise NotImplementedError

    # -- acting -------------------------------------------------------------------------------------------
    @property
    def actor(self) -> Any:
        """The acting module (a ``TensorDictModuleBase``): reads the policy's observation keys, writes
        ``"action"`` under the current exploration type. Give this, never the agent, to rollouts, collectors,
        Ray and export."""
        self.build()
        return self._actor

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self.actor(tensordict)

    # -- training -----------------------------------------------------------------------------------------
    def train(
        self,
        total_frames: int | None = None,
        *,
        stop_conditions: Sequence[Any] = (),
        eval_every: int = 0,
        eval_episodes: int = 10,
        logger: Any = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Train until ``total_frames`` frames in all (a loaded agent continues where it stopped) or a stop
        condition holds.

        Args:
            total_frames: the run's frame budget (what annealed schedules count towards).
            stop_conditions: conditions over the logged keys (``HitsUpperBound("eval/episodic_return", 475)``) or
                their config mappings (``{"hits_upper_bound": {...}}``).
            eval_every: evaluate ``eval_episodes`` episodes every this many iterations (0: never).
            logger: a TorchRL logger or a logger name (``"csv"``, ``"tensorboard"``, ``"wandb"``...).
            checkpoint: a file to save to every ``checkpoint_every`` frames, at the end and on Ctrl-C.
            progress: show a progress bar (a line every few seconds when not on a terminal).

        Returns the last iteration's logged statistics with ``frames`` and ``wall_time``.
        """
        if total_frames is None:
            raise ComponentArgumentError(
                f"{self.owner}.train() needs total_frames, e.g. agent.train(100_000): agents are not nn.Modules "
                "(agent.actor.train() / .eval() switch the acting module's mode)"
            )
        from rlte_plugins.training.loop import run_loop

        positive_int(self.owner, "total_frames", total_frames)
        return run_loop(
            self,
            total_frames,
            stop_conditions=stop_conditions,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            logger=logger,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            progress=progress,
        )

    def set_total_frames(self, total_frames: int) -> None:
        """The run's frame budget, which schedules annealed over a run count towards."""
        self.total_frames = total_frames

    def iteration(self) -> dict[str, Any]:
        """Collect one batch and learn from it; returns the statistics as device tensors (the run loop fetches
        them in one transfer). Keys starting with ``_`` are checks, not logged: ``_finite/<what>`` (1 when
        finite), ``_episodes``."""
        raise NotImplementedError

    @torch.no_grad()
    def _add_intrinsic_reward(
        self,
        batch: TensorDictBase,
        stats: dict[str, Any],
        separate: bool = False,
        stored: bool = False,
        frames: int | None = None,
    ) -> None:
        """Add ``intrinsic_coef`` times the intrinsic reward's bonus (``reward`` slot) of ``batch`` to
        ``("next", "reward")`` (or put it in its place when ``pretraining``: reward-free pre-training), before any
        return or advantage is computed; then train the reward's networks on ``batch``. The
        bonus's mean goes to ``stats`` as ``charts/intrinsic_reward``, the reward's losses as
        ``losses/<name>_<loss>``. With ``stored``, a batch that already carries its bonus
        (``("next", "intrinsic_reward")``, stored at collection by episodic rewards off-policy) keeps it; the
        weight is read at ``frames`` (default: the agent's count). With ``separate`` (a two-stream critic) the
        bonus stays apart, as ``("next", "intrinsic_reward")``, and the reward is the extrinsic one (zero when
        ``pretraining``)."""
        module = self.components.get("reward")
        if module is None:
            return
        following = batch.get("next")
        kept = following.get("intrinsic_reward", None) if stored else None
        bonus = kept if kept is not None else self.intrinsic_bonus(batch, frames)
        reward = following.get("reward")
        extrinsic = torch.zeros_like(reward) if getattr(self.config, "pretraining", False) else reward
        bonus = bonus.reshape(reward.shape).to(reward.dtype)
        if separate:
            following.set("reward", extrinsic)
            following.set("intrinsic_reward", bonus)
        else:
            following.set("reward", extrinsic + self.config.intrinsic_coef * bonus)
        stats["charts/intrinsic_reward"] = bonus.float().mean()
        if hasattr(module, "update"):
            losses = module.update(batch)
            if isinstance(losses, dict):
                stats.update(losses)

    @torch.no_grad()
    def intrinsic_bonus(self, batch: TensorDictBase, frames: int | None = None) -> torch.Tensor:
        """The intrinsic reward's scaled bonus of ``batch``, its weight read at ``frames`` (default: the agent's
        frame count)."""
        from rlte_plugins.rewards.base import IntrinsicReward

        module = self.components["reward"]
        kwargs = {"frames": self.frames if frames is None else frames} if isinstance(module, IntrinsicReward) else {}
        return module(batch.clone(False), **kwargs).get("intrinsic_reward")

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """Every trained parameter (what a non-finite check before a checkpoint looks at)."""
        self.build()
        seen: set[int] = set()
        for module in self.components.values():
            if isinstance(module, torch.nn.Module):
                for p in module.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        yield p

    def close(self) -> None:
        """Release what collection holds (worker processes, collectors)."""
        if self.built and getattr(self, "collection", None) is not None:
            self.collection.close()

    def _build_collection(
        self, acting: Any, pre: Any = None, tensor_actor: Any = None, collect_actor: Any = None
    ) -> None:
        """``self.collection`` for the ``collection`` option: ``acting`` is the policy part of :attr:`actor`
        (compiled for direct collection when ``compile`` is set), ``pre`` a module run before it (observation
        normalisation), whose outputs are kept too; ``tensor_actor`` the whole acting path on plain tensors
        (:data:`~rlte_plugins.collection.direct.TensorActor`), which direct collection prefers; ``collect_actor``
        what TorchRL's collector runs instead of :attr:`actor` (an off-policy agent's seed-frames switch). Ray's
        workers get ``collect_actor`` (default: :attr:`actor`) and an env factory from :meth:`env_reference`."""
        from rlte_plugins.collection import is_rlte_env, make_collection, resolve_strategy

        c = self.config
        self.collection_env = self._wrap(self.env)
        strategy = resolve_strategy(c.collection, self.env, self.owner)
        if strategy == "ray":
            self._build_ray_collection(acting, pre, collect_actor)
            return
        if strategy == "torchrl":
            if not is_rlte_env(self.env):
                # the episode statistics every rlte env reports, so that charts/episodic_return is logged
                from torchrl.envs import RewardSum, StepCounter

                statistics = Compose(
                    RewardSum(in_keys=["reward"], out_keys=["episode_reward"]),
                    StepCounter(step_count_key="episode_length"),
                )
                self.collection_env = TransformedEnv(self.collection_env, statistics)
            actor = self._actor if collect_actor is None else collect_actor
            self.collection = make_collection(strategy, self.collection_env, actor, c.num_steps, self.device)
            return
        keys = self._collected_keys(acting, collect_actor)
        engine = getattr(self, "engine", None)
        compiled = engine.compiled(acting) if engine is not None else acting
        act = compiled if pre is None else (lambda td: compiled(pre(td)))
        self.collection = make_collection(
            strategy, self.collection_env, act, c.num_steps, self.device, keys=keys, chunk_size=c.chunk_size,
            tensor_actor=tensor_actor,
        )  # fmt: skip

    def _collected_keys(self, acting: Any, collect_actor: Any = None) -> list[Any]:
        """The outputs of the collecting policy a batch keeps: all but the encoders' features."""
        features = {k for m in acting.modules() if hasattr(m, "out_features") and hasattr(m, "out_keys")
                    for k in m.out_keys}  # fmt: skip
        return [k for k in (self._actor if collect_actor is None else collect_actor).out_keys if k not in features]

    def _build_ray_collection(self, acting: Any, pre: Any = None, collect_actor: Any = None, **options: Any) -> None:
        """``self.collection`` on Ray workers (``num_workers``, ``ray_address``); ``options`` go to
        :class:`~rlte_plugins.collection.ray.RayCollection` (``lagged``)."""
        from rlte_plugins.collection import make_collection

        c = self.config
        refused = "normalize_observation" if pre is not None else "recurrent" if self._env_transforms() else None
        if refused:
            # the statistics would be updated in the workers / the workers' envs would need the policy's transforms
            raise ComponentArgumentError(f"{self.owner}: {refused} is not supported with collection='ray'")
        envs = int(self.env.batch_size.numel())
        if envs % c.num_workers:
            raise ComponentArgumentError(f"{self.owner}: num_workers ({c.num_workers}) must divide the env's {envs} "
                                         "envs")  # fmt: skip
        self.collection_env = self.env
        self.collection = make_collection(
            "ray", self.env, self._actor if collect_actor is None else collect_actor, c.num_steps, self.device,
            reference=self.env_reference(), num_workers=c.num_workers, seed=self.seed,
            keys=self._collected_keys(acting, collect_actor), ray_address=c.ray_address, **options,
        )  # fmt: skip

    # -- evaluation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self, episodes: int = 10, deterministic: bool = True, env: EnvBase | None = None, max_steps: int = 100_000
    ) -> list[float]:
        """Returns of ``episodes`` episodes of the current policy (mode actions when ``deterministic``).

        Without ``env``, one is made like the training env with up to 16 envs and a seed drawn from the agent's
        evaluation generator, so successive evaluations see new start states and a resumed run draws the same
        ones. Sampled actions use a second drawn seed inside a fork of torch's generators, with the acting module
        in eval mode: evaluating never changes the training run. Raises if an episode has not ended after
        ``max_steps`` steps."""
        positive_int(self.owner, "episodes", episodes)
        self.build()
        env_seed, action_seed = torch.randint(2**31 - 1, (2,), generator=self._eval_seeds).tolist()
        cuda = self.device.type == "cuda"
        # only the generators the fork restores are reseeded (torch.manual_seed would reseed every device's)
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            torch.default_generator.manual_seed(action_seed)
            if cuda:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(action_seed)
            made = None if env is not None else self.make_env_like(min(episodes, 16), env_seed)
            run_env = self.wrap_env(env if made is None else made)
            actor = self.actor
            was_training = actor.training
            actor.eval()
            try:
                return run_episodes(run_env, actor, episodes, deterministic, max_steps)
            finally:
                actor.train(was_training)
                if made is not None:
                    made.close()  # worker processes of async envs end now, not at garbage collection

    # -- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything :func:`load_agent` needs: agent name, config, env and component references, weights,
        optimiser and normalisation state, counters, RNG states and the collection's state."""
        self.build()
        return {
            "agent": self.name,
            "preset": self.preset,
            "config": dataclasses.asdict(self.config),
            "seed": self.seed,
            "device": str(self.device),
            "env": self.env_reference(),
            "components": {slot: component_ref(obj) for slot, obj in self.components.items()},
            "state": {**self._state(), "reward": self._reward_state(), "collection": self.collection.state_dict()},
            "counters": {
                "frames": self.frames,
                "iterations": self.iterations,
                "total_frames": self.total_frames,
                "elapsed": self.elapsed,
            },  # fmt: skip
            "rng": rng_state(),
            "eval_seed_rng": self._eval_seeds.get_state(),
            "history": [dict(h) for h in self.history],
        }

    def _state(self) -> dict[str, Any]:
        """The agent's own state (the intrinsic reward's and the collection's are added by :meth:`state_dict`)."""
        raise NotImplementedError

    def _check_augmentation(self, aug: Any) -> None:
        """Refuse an augmentation whose keys the env lacks or whose event shape the keys do not have."""
        spec = self.env.observation_spec
        for key in aug.in_keys:
            if key not in spec.keys(True, True):
                keys = [k for k in spec.keys(True, True) if not str(k).startswith("episode_")]
                raise SpecMismatchError(f"{self.owner}: augmentation {aug.registry_name!r} reads {key!r}, which the "
                                        f"env does not provide ({keys}); pass in_keys=[...]")  # fmt: skip
            shape = spec[key].shape[len(self.env.batch_size) :]
            event = aug.event_dims(torch.empty(shape, device="meta"))
            if len(shape) < event:
                raise SpecMismatchError(
                    f"{self.owner}: augmentation {aug.registry_name!r} works on images ([C, H, W]) but {key!r} has "
                    f"shape {list(shape)}: use it on a pixel env, or an augmentation for vectors (gaussian_noise, "
                    "random_amplitude_scaling)"
                )

    def _reward_state(self) -> dict[str, Any] | None:
        reward = self.components.get("reward")
        return reward.state_dict() if reward is not None and hasattr(reward, "state_dict") else None

    def _loss_terms_of(self, out: TensorDictBase, metrics: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The sum of a TorchRL loss's ``loss*`` terms and its ``metrics`` entries stacked into one tensor (zero
        where the loss did not write one): what the update engine differentiates and accumulates."""
        total = sum(out.get(k) for k in out.keys() if isinstance(k, str) and k.startswith("loss"))
        zero = torch.zeros((), device=self.device)
        return total, torch.stack([out.get(k, zero).detach().float().mean() for k in metrics])

    def _load_state(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the agent atomically to ``path`` (loadable with ``weights_only=True``)."""
        return str(save_checkpoint(self.state_dict(), path))

    @classmethod
    def load(cls, path: str | os.PathLike[str], **overrides: Any) -> Agent:
        """Rebuild an agent of this class from :meth:`save`'s file (see :func:`load_agent`)."""
        return load_agent(path, expected=cls, **overrides)

    @classmethod
    def _restore(cls, data: Mapping[str, Any], path: str, overrides: dict[str, Any]) -> Agent:
        env = overrides.pop("env", None)
        device = overrides.pop("device", None)
        slots = {k: overrides.pop(k) for k in list(overrides) if k in cls.slots}
        config = {**data["config"], **overrides}
        env_choice = env if env is not None else data["env"]
        if env_choice is None:
            raise CheckpointError(f"checkpoint {path!r} was trained on an env given as an instance: pass env=...")
        device = device if device is not None else data["device"]
        saved_envs = env_choice.get("num_envs") if env is None and isinstance(env_choice, Mapping) else None
        if "num_envs" in overrides and saved_envs is not None and overrides["num_envs"] != saved_envs:
            raise ComponentArgumentError(
                f"checkpoint {path!r} was trained on {saved_envs} envs and its state (collection, statistics) is "
                f"per env: pass env=... to load it with num_envs={overrides['num_envs']!r}"
            )
        if env is None and "device" in env_choice:
            env_choice = {**env_choice, "device": str(device)}
        if env is None and "factory" in env_choice:
            env_choice = _import_factory(env_choice["factory"], f"checkpoint {path!r}")
        agent = cls(env_choice, device, int(data["seed"]), **config)
        agent.preset = data.get("preset")
        choices = {}
        for slot, ref in data["components"].items():
            if slot in slots:
                choices[slot] = slots.pop(slot)
            elif ref is None:
                raise CheckpointError(f"checkpoint {path!r}: its {slot} was not made by rlte_plugins.make; pass "
                                      f"{slot}=...")  # fmt: skip
            else:
                choices[slot] = ref
        agent.set(**choices, **slots).build()
        agent._load_state(data["state"])
        reward = agent.components.get("reward")
        if reward is not None and data["state"].get("reward") is not None:
            reward.load_state_dict(data["state"]["reward"])
        agent.collection.load_state_dict(data["state"]["collection"])
        counters = data["counters"]
        agent.frames, agent.iterations = int(counters["frames"]), int(counters["iterations"])
        agent.total_frames, agent.elapsed = counters["total_frames"], float(counters.get("elapsed", 0.0))
        if agent.total_frames:
            agent.set_total_frames(int(agent.total_frames))  # collect()/step() go on with the run's schedules
        agent.history = [dict(h) for h in data["history"]]
        agent._eval_seeds.set_state(data["eval_seed_rng"])
        set_rng_state(data["rng"])
        return agent

    def __repr__(self) -> str:
        preset = f", preset={self.preset!r}" if self.preset else ""
        env = type(self.env).__name__
        return f"{type(self).__name__}(env={env}, device={self.device}, frames={self.frames}{preset})"


def load_agent(path: str | os.PathLike[str], *, expected: type | None = None, **overrides: Any) -> Agent:
    """Rebuild any agent from its checkpoint alone: agent name, config, env and components are inside.

    ``overrides`` may give ``env=`` or a component (``encoder=...``) that the file could not name, ``device=``,
    or config fields to change (e.g. ``num_envs``). A checkpoint whose agent or components came from a plugin
    that is not installed says which.

    Examples:
        >>> import rlte_plugins, tempfile, os
        >>> agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8)
        >>> path = agent.save(os.path.join(tempfile.mkdtemp(), "ppo.pt"))
        >>> rlte_plugins.load_agent(path).frames
        0
    """
    path = str(path)
    data = load_checkpoint(path)
    name = data.get("agent")
    if not isinstance(name, str) or "config" not in data:
        raise CheckpointError(f"checkpoint {path!r} does not hold an agent (written by another version?)")
    try:
        factory = get_spec("agent", name).load()
    except UnknownComponentError as exc:
        raise CheckpointError(
            f"checkpoint {path!r} holds agent {name!r}, which no installed plugin registers; install the plugin "
            "that provides it (rlte list agent shows what is installed)"
        ) from exc
    cls = getattr(factory, "agent_class", factory)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise CheckpointError(f"checkpoint {path!r}: agent {name!r} is not built on the agent contract")
    if expected is not None and not issubclass(cls, expected):
        raise CheckpointError(f"checkpoint {path!r} holds a {name!r} agent, not {expected.name!r}")
    generators = rng_state()  # building the agent reseeds them: a refused checkpoint gives them back as they were
    try:
        return cls._restore(data, path, dict(overrides))
    except RlteError:
        set_rng_state(generators)
        raise  # a bad override or a checkpoint refused on purpose says so itself
    except (KeyError, TypeError) as exc:
        set_rng_state(generators)
        raise CheckpointError(f"checkpoint {path!r} is incomplete or malformed: {exc}") from exc
    except RuntimeError as exc:
        set_rng_state(generators)
        raise CheckpointError(
            f"checkpoint {path!r} does not fit the components it names: {str(exc).splitlines()[0]}"
        ) from exc


# -- shared helpers -----------------------------------------------------------------------------------------
_SLOT_KINDS = {"encoder": "encoder", "policy": "policy", "distribution": "distribution", "storage": "storage",
               "augmentation": "augmentation", "reward": "reward"}  # fmt: skip


def _slot_kind(slot: str) -> str:
    return _SLOT_KINDS.get(slot, slot)


def _registry_names(kind: str) -> set[str]:
    specs = get_registry().specs(kind)
    return {s.name for s in specs} | {s.qualified_name for s in specs} | {s.plugin for s in specs}


def _factory_path(factory: Callable[..., Any]) -> str | None:
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        return None
    return f"{module}:{qualname}"


def _import_factory(path: str, owner: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ComponentArgumentError(f"{owner}: cannot import the env factory {path!r} ({exc})") from exc
    return obj


def component_ref(obj: Any) -> dict[str, Any] | None:
    """``{"name": ..., "kwargs": ...}`` for an object built by :func:`rlte_plugins.make` with plain arguments.

    ``None`` when the object was built some other way or its arguments are not plain data: such a component
    cannot be rebuilt from a checkpoint and must be passed again to ``load``.
    """
    ref = getattr(obj, "_rlte_component", None)
    if ref is None:
        return None
    kwargs = _plain(ref.kwargs)
    return None if kwargs is None else {"name": ref.name, "kwargs": kwargs}


def _plain(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value, strict=True)) else items
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        items = {k: _plain(v) for k, v in value.items()}
        return None if any(items[k] is None and value[k] is not None for k in value) else items
    return None


def split_mapping(kind: str, choice: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{"name": n, **kwargs}`` or ``{"name": n, "kwargs": {...}}`` (a checkpoint reference) -> ``(n, kwargs)``."""
    if "name" not in choice:
        raise ComponentArgumentError(f"a {kind} given as a mapping needs a 'name' key, got {dict(choice)}")
    if set(choice) <= {"name", "kwargs"}:
        return choice["name"], dict(choice.get("kwargs", {}))
    return choice["name"], {k: v for k, v in choice.items() if k != "name"}


def resolve_component(kind: str, choice: Any) -> Any:
    """An instance as is; a registry name or ``{"name": ..., **kwargs}`` made through the registry."""
    if isinstance(choice, str):
        return make(kind, choice)
    if isinstance(choice, Mapping):
        name, kwargs = split_mapping(kind, choice)
        return make(kind, name, **kwargs)
    return choice


def make_env(env: Any, num_envs: int, seed: int | None, device: torch.device) -> EnvBase:
    """Build the training env from an ``EnvBase``, a registered env name, a gymnasium id or a mapping."""
    if isinstance(env, EnvBase):
        return env
    if isinstance(env, str):
        names = {s.name for s in get_registry().specs("env")} | {s.qualified_name for s in get_registry().specs("env")}
        env = {"name": env} if env in names else {"name": "gymnasium", "env_id": env}
    if isinstance(env, Mapping):
        name, spec = split_mapping("env", env)
        spec.setdefault("num_envs", num_envs)
        spec.setdefault("seed", seed)
        spec.setdefault("device", str(device))
        return make("env", name, **spec)
    raise ComponentArgumentError(
        f"env must be a TorchRL EnvBase, a registered env name, a gymnasium id or a mapping, got {type(env).__name__}"
    )


def check_batched(env: EnvBase, owner: str) -> None:
    if len(env.batch_size) != 1:
        raise SpecMismatchError(
            f"{owner} needs an env with one batch dimension (num_envs), got batch_size {list(env.batch_size)}"
        )


@torch.no_grad()
def run_episodes(
    env: EnvBase, actor: Any, episodes: int, deterministic: bool = True, max_steps: int = 1_000_000
) -> list[float]:
    """Return of the first episode of each sub-env after a reset, in rounds until ``episodes`` are done.

    Taking each env's first episode (never "the first N to finish") keeps short episodes from being
    over-represented. Where the env reports ``"episode_end"`` and ``"episode_reward"`` (every rlte env), the
    return is the env's own episode score at the real end: a lost life under episodic life does not end it,
    and clipped training rewards do not change it.
    """
    mode = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
    returns: list[float] = []
    n = env.batch_size[0]
    with set_exploration_type(mode):
        while len(returns) < episodes:
            td: TensorDictBase = env.reset()
            finished = torch.zeros(n, dtype=torch.bool, device=env.device)
            total = torch.zeros(n, dtype=torch.float64, device=env.device)
            keys = env.observation_spec.keys()
            scored = "episode_end" in keys and "episode_reward" in keys
            for _ in range(max_steps):
                td = actor(td)
                td, next_td = env.step_and_maybe_reset(td)
                if scored:
                    end = td.get(("next", "episode_end")).reshape(n)
                    score = td.get(("next", "episode_reward")).reshape(n).double()
                    total = torch.where(end & ~finished, score, total)
                    finished |= end
                else:
                    reward = td.get(("next", "reward")).reshape(n).double()
                    total += torch.where(finished, torch.zeros_like(reward), reward)
                    finished |= td.get(("next", "done")).reshape(n)
                if bool(finished.all()):
                    break
                td = next_td
            else:
                raise RuntimeError(f"evaluation episodes did not end within {max_steps} steps")
            returns.extend(total.tolist())
    return returns[:episodes]
