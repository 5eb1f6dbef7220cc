"""The optional environment backends: how to detect each one and the exact command that installs it.

One table serves both the env makers (:func:`require` raises a :class:`MissingDependencyError` that says what
to install) and ``rlte doctor`` (which runs every check and prints what works, what is missing and the fix).
Nothing here is imported until a backend is actually needed.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlte_plugins.errors import MissingDependencyError


@dataclass(frozen=True)
class Backend:
    """One optional dependency: a module to import, the pip extra and Debian packages that provide it."""

    name: str
    module: str
    extra: str
    purpose: str
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    probe: Callable[[], str] | None = field(default=None, compare=False)
    fix_text: str = ""  # the fix, where it is not one apt/pip line

    def fix(self) -> str:
        if self.fix_text:
            return self.fix_text
        steps = []
        if self.apt:
            steps.append(f"apt-get update && apt-get install -y {' '.join(self.apt)}")
        if self.extra:
            steps.append(f"pip install 'rlte-plugins[{self.extra}]'")
        elif self.pip:
            steps.append(f"pip install {' '.join(self.pip)}")
        return " && ".join(steps)


def _probe_procgen_qt() -> str:
    import envpool

    env = envpool.make("BigfishEasy-v0", env_type="gymnasium", num_envs=1)
    env.close()
    return f"envpool {envpool.__version__} Procgen (Qt5 runtime found)"


def _probe_egl() -> str:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from dm_control import suite

    env = suite.load("cartpole", "balance")
    env.reset()
    frame = env.physics.render(height=16, width=16, camera_id=0)
    env.close()
    return f"rendered a {frame.shape[0]}x{frame.shape[1]} frame with MUJOCO_GL={os.environ['MUJOCO_GL']}"


def _probe_roms() -> str:
    import ale_py
    import ale_py.roms

    roms = ale_py.roms.get_all_rom_ids()
    if "pong" not in roms:
        raise RuntimeError("ale-py is installed without its ROMs")
    return f"ale-py {ale_py.__version__} with {len(roms)} ROMs"


def _probe_cuda() -> str:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} sees no CUDA device")
    return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"


def _probe_robosuite() -> str:
    import mujoco
    import robosuite

    env = robosuite.make("Lift", robots="Panda", has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False)
    env.reset()
    env.step(env.action_spec[0] * 0.0)
    env.close()
    try:
        importlib.import_module("rlte_robosuite")
    except ImportError as exc:
        raise RuntimeError(
            f"robosuite {robosuite.__version__} works but the rlte-robosuite plugin is not installed"
        ) from exc
    return f"robosuite {robosuite.__version__} on mujoco {mujoco.__version__} stepped Lift; plugin installed"


def _procgen_fix() -> str:
    if sys.version_info >= (3, 11):
        return (
            "the procgen package has no build for this Python "
            f"({sys.version_info.major}.{sys.version_info.minor}); the 'procgen' env runs on EnvPool's Procgen "
            "instead (see procgen-qt5)"
        )
    return "pip install procgen"


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("envpool", "envpool", "atari", "fast C++ Atari, Procgen, MiniGrid and DMC-state envs"),
        Backend("ale-py", "ale_py", "atari", "Atari through gymnasium (fallback) and the ROMs", probe=_probe_roms),
        Backend(
            "procgen",
            "procgen",
            "",
            "the procgen package (no build for Python >= 3.11)",
            pip=("procgen",),
            fix_text=_procgen_fix(),
        ),
        Backend(
            "procgen-qt5",
            "envpool",
            "procgen",
            "EnvPool's Procgen (needs Debian's Qt5 runtime)",
            apt=("libqt5gui5",),
            probe=_probe_procgen_qt,
        ),
        Backend("dm_control", "dm_control", "dmc", "DeepMind Control Suite (state observations)"),
        Backend(
            "dmc-egl",
            "dm_control",
            "dmc",
            "DeepMind Control pixels rendered headless through EGL",
            apt=("libegl1", "libgl1", "libgl1-mesa-dri"),
            probe=_probe_egl,
        ),
        Backend("minigrid", "minigrid", "minigrid", "MiniGrid/BabyAI (full and one-hot observations, all tasks)"),
        Backend("pybullet", "pybullet_envs_gymnasium", "bullet", "PyBullet locomotion tasks"),
        Backend(
            "robosuite",
            "robosuite",
            "",
            "robosuite manipulation (plugin package; see plugins/rlte-robosuite)",
            pip=("./plugins/rlte-robosuite",),
            probe=_probe_robosuite,
            # robosuite 1.5 needs mujoco 3.3 and dm_control 1.0.50 needs 3.17: one venv cannot hold both
            fix_text=(
                "in a virtualenv without the dmc extra: pip install -e . -e ./plugins/rlte-robosuite "
                "(robosuite 1.5 needs mujoco 3.3, DeepMind Control needs 3.17; `make test-robosuite` builds one)"
            ),
        ),
        Backend(
            "cuda",
            "torch",
            "",
            "GPU training and on-device envs",
            pip=("torch==2.13.0 (a CUDA build)",),
            probe=_probe_cuda,
        ),
    )
}


def require(name: str, family: str) -> Any:
    """Import backend ``name``'s module for env ``family``, or raise one line that says what to install."""
    backend = BACKENDS[name]
    try:
        return importlib.import_module(backend.module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"env {family!r} needs {backend.module!r} ({backend.purpose}), which is not importable ({exc}); "
            f"install it with: {backend.fix()}"
        ) from exc


def check(name: str) -> tuple[bool, str]:
    """``(works, detail)`` for one backend: importable, then its probe (which really runs it) if it has one."""
    backend = BACKENDS[name]
    try:
        module = importlib.import_module(backend.module)
    except Exception as exc:  # an ImportError, or a broken native library raising something else
        return False, f"{type(exc).__name__}: {exc}"
    if backend.probe is None:
        return True, f"{backend.module} {getattr(module, '__version__', '')}".strip()
    try:
        return True, backend.probe()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
