"""The env makers' examples really build their env: where no backend they can run on works here (an extra not
installed, a system library missing), they are skipped with ``rlte doctor``'s reason instead of failing."""

from __future__ import annotations

from functools import cache

import pytest

from rlte_plugins.envs.backends import BACKENDS, check

#: For each module with examples, the backends (names in ``BACKENDS``) its maker can run them on: any one will do.
EXAMPLE_BACKENDS: dict[str, tuple[str, ...]] = {
    "rlte_plugins.envs.atari": ("envpool", "ale-py"),
    "rlte_plugins.envs.bullet": ("pybullet",),
    "rlte_plugins.envs.dmc": ("dm_control",),
    "rlte_plugins.envs.minigrid": ("envpool", "minigrid"),
    "rlte_plugins.envs.procgen": ("procgen", "procgen-qt5"),
}


@cache
def _check(backend: str) -> tuple[bool, str]:
    # a probe builds an env: once per session is enough
    return check(backend)


@pytest.fixture(autouse=True)
def _skip_examples_without_a_working_backend(request: pytest.FixtureRequest) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return
    backends = EXAMPLE_BACKENDS.get(request.node.dtest.globs["__name__"], ())
    results = {name: _check(name) for name in backends}
    if results and not any(ok for ok, _ in results.values()):
        pytest.skip(
            "; ".join(f"backend {name} not working here ({detail}); fix: {BACKENDS[name].fix()}"
                      for name, (_, detail) in results.items())
        )  # fmt: skip
