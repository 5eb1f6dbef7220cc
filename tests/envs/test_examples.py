"""The env makers' examples skip, saying what to install, where their extras are missing (see envs/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("envpool", "ale_py", "dm_control", "minigrid", "pybullet", "pybullet_envs_gymnasium", "procgen")


def test_examples_skip_with_the_reason_where_no_extra_is_installed():
    # a None entry in sys.modules makes the import raise ImportError, as an extra that is not installed does;
    # --confcutdir leaves out the repository's conftest (it pip-installs the example plugin, not needed here)
    code = (
        f"import sys, pytest; sys.modules.update(dict.fromkeys({EXTRAS!r})); "
        "sys.exit(pytest.main(['-q', '-rs', '--confcutdir=rlte_plugins/envs', 'rlte_plugins/envs']))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    for module in ("atari", "bullet", "dmc", "minigrid", "procgen"):
        line = next(line for line in skipped if f"rlte_plugins/envs/{module}.py" in line)
        assert "not working here" in line and "fix:" in line, line
