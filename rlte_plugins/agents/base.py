"""What every agent shares: resolving components given by name or instance, envs, evaluation, references."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError
from rlte_plugins.registry import get_registry, make

_PLAIN = (str, int, float, bool, type(None))


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


def env_like(env: EnvBase, num_envs: int, seed: int | None) -> EnvBase | None:
    """A new env made like ``env`` (through its registry reference) with other ``num_envs``/``seed``."""
    ref = component_ref(env)
    if ref is None:
        return None
    kwargs = {**ref["kwargs"], "num_envs": num_envs, "seed": seed}
    try:
        return make("env", ref["name"], **kwargs)
    except ComponentArgumentError:
        return None


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
