"""How an agent gathers its batches: ``torchrl`` (TorchRL's ``Collector``, any TorchRL env), ``direct`` (a buffer
allocated once and filled by stepping an rlte env in-process, on CPU or on the training device) or ``ray`` (remote
workers on a Ray cluster, :mod:`rlte_plugins.collection.ray`), and, for an agent that corrects for a lagging
behaviour policy (IMPALA), ``async``: worker processes acting while the learner trains.

All return ``[num_envs, num_steps]`` TensorDicts with TorchRL's keys (``("next", "reward")``, ``("next",
"done")``, ``("next", "terminated")``...), so everything after collection is the same code.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase

from rlte_plugins.errors import ComponentArgumentError

STRATEGIES = ("auto", "torchrl", "direct", "ray")
#: strategies whose batches come from weights that lag the learner's (each frame carries their ``policy_version``):
#: offered only by agents that correct for the lag and declare them in their ``collection`` option
LAGGED_STRATEGIES = ("async",)


def is_rlte_env(env: EnvBase) -> bool:
    """True for envs this package makes (every family has exact resets and the ``episode_*`` statistics)."""
    from torchrl.envs import TransformedEnv

    from rlte_plugins.envs.core import BatchedEnv
    from rlte_plugins.envs.torch_native.base import TorchEnv

    while isinstance(env, TransformedEnv):
        env = env.base_env
    return isinstance(env, (BatchedEnv, TorchEnv))


def resolve_strategy(choice: str, env: EnvBase, owner: str, accepted: tuple[str, ...] = STRATEGIES) -> str:
    """``auto`` -> ``direct`` for rlte envs, ``torchrl`` otherwise; a ``direct`` request on another env is refused.
    ``accepted``: the strategies the agent offers (:data:`STRATEGIES`, and :data:`LAGGED_STRATEGIES` where it
    corrects for the lag)."""
    if choice not in accepted:
        raise ComponentArgumentError(f"{owner}: collection must be one of {', '.join(accepted)}, got {choice!r}")
    if choice == "auto":
        return "direct" if is_rlte_env(env) else "torchrl"
    if choice == "direct" and not is_rlte_env(env):
        raise ComponentArgumentError(
            f"{owner}: collection='direct' steps rlte envs (made by rlte_plugins.make); {type(env).__name__} is not "
            "one: use collection='torchrl'"
        )
    return choice


def make_collection(strategy: str, env: EnvBase, actor: Any, num_steps: int, device: Any, **options: Any) -> Any:
    """The collection object of ``strategy`` (already resolved); ``options`` are the strategy's own (``direct``:
    ``keys``, ``chunk_size``, ``tensor_actor``; ``async``: ``reference``, ``num_workers``, ``seed``, ``keys``;
    ``ray``: those of ``async`` and ``lagged``, ``ray_address``, ``num_cpus``)."""
    if strategy == "ray":
        from rlte_plugins.collection.ray import RayCollection

        return RayCollection(env, actor, num_steps, device, **options)
    if strategy == "async":
        from rlte_plugins.collection.asynchronous import AsyncCollection

        return AsyncCollection(env, actor, num_steps, device, **options)
    if strategy == "direct":
        from rlte_plugins.collection.direct import DirectCollection

        return DirectCollection(env, actor, num_steps, device, **options)
    from rlte_plugins.collection.torchrl import TorchRLCollection

    return TorchRLCollection(env, actor, num_steps, device)


def batch_statistics(batch: TensorDictBase) -> dict[str, torch.Tensor]:
    """Episode statistics and finiteness checks of a collected batch, as device scalars (nothing leaves the
    device): the mean score and length of the games that ended in it (``episode_end``, the real end of a game,
    where the env reports it), their count (``_episodes``) and ``_finite/reward`` / ``_finite/observation``."""
    nxt = batch.get("next")
    end_key = "episode_end" if "episode_end" in nxt.keys() else "done"
    ended = nxt.get(end_key).squeeze(-1)
    count = ended.sum()
    stats: dict[str, torch.Tensor] = {"_episodes": count.float()}
    for key, name in (("episode_reward", "charts/episodic_return"), ("episode_length", "charts/episodic_length")):
        if key in nxt.keys():
            value = nxt.get(key).squeeze(-1).float()
            stats[name] = torch.where(ended, value, torch.zeros_like(value)).sum() / count.clamp_min(1)
    stats["_finite/reward"] = nxt.get("reward").isfinite().all().float()
    observed = [v.isfinite().all() for k, v in nxt.items(True, True)
                if v.is_floating_point() and k != "reward" and not str(k).startswith("episode_")]  # fmt: skip
    stats["_finite/observation"] = torch.stack(observed).all().float() if observed else torch.ones(())
    return stats
