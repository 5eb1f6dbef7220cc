"""How an agent gathers its batches: ``torchrl`` (TorchRL's ``Collector``, any TorchRL env) or ``direct`` (a buffer
allocated once and filled by stepping an rlte env in-process, on CPU or on the training device).

Both return ``[num_envs, num_steps]`` TensorDicts with TorchRL's keys (``("next", "reward")``, ``("next",
"done")``, ``("next", "terminated")``...), so everything after collection is the same code. A later Ray strategy
plugs in at :func:`make_collection`.
"""

from __future__ import annotations

from typing import Any

from torchrl.envs import EnvBase

from rlte_plugins.errors import ComponentArgumentError

STRATEGIES = ("auto", "torchrl", "direct")


def is_rlte_env(env: EnvBase) -> bool:
    """True for envs this package makes (every family has exact resets and the ``episode_*`` statistics)."""
    from torchrl.envs import TransformedEnv

    from rlte_plugins.envs.core import BatchedEnv
    from rlte_plugins.envs.torch_native.base import TorchEnv

    while isinstance(env, TransformedEnv):
        env = env.base_env
    return isinstance(env, (BatchedEnv, TorchEnv))


def resolve_strategy(choice: str, env: EnvBase, owner: str) -> str:
    """``auto`` -> ``direct`` for rlte envs, ``torchrl`` otherwise; a ``direct`` request on another env is refused."""
    if choice not in STRATEGIES:
        raise ComponentArgumentError(f"{owner}: collection must be one of {', '.join(STRATEGIES)}, got {choice!r}")
    if choice == "auto":
        return "direct" if is_rlte_env(env) else "torchrl"
    if choice == "direct" and not is_rlte_env(env):
        raise ComponentArgumentError(
            f"{owner}: collection='direct' steps rlte envs (made by rlte_plugins.make); {type(env).__name__} is not "
            "one: use collection='torchrl'"
        )
    return choice


def make_collection(strategy: str, env: EnvBase, actor: Any, num_steps: int, device: Any, **options: Any) -> Any:
    """The collection object of ``strategy`` (already resolved)."""
    if strategy == "direct":
        from rlte_plugins.collection.direct import DirectCollection

        return DirectCollection(env, actor, num_steps, device, **options)
    from rlte_plugins.collection.torchrl import TorchRLCollection

    return TorchRLCollection(env, actor, num_steps, device)
