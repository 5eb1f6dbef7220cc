"""`rlte doctor` reports what works and what is missing, with the fix, and tells the truth on this machine."""

from __future__ import annotations

import json
import subprocess
import sys

from rlte_plugins.envs import backends


def run(*args):
    return subprocess.run([sys.executable, "-m", "rlte_plugins.cli", *args], capture_output=True, text=True)


def test_doctor_json_agrees_with_the_checks():
    out = run("doctor", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["backend"]: r for r in json.loads(out.stdout)}
    assert set(rows) == set(backends.BACKENDS)
    for name, row in rows.items():
        ok, _ = backends.check(name)
        assert row["ok"] == ok, name
        assert (row["fix"] is None) == ok


def test_doctor_text_prints_the_fix_for_missing_ones():
    out = run("doctor")
    assert out.returncode == 0
    assert "backends work" in out.stdout
    blocks = out.stdout.split("\n")
    for i, line in enumerate(blocks):
        if line.startswith("MISSING"):
            assert blocks[i + 2].strip().startswith("fix: "), blocks[i : i + 3]


def test_a_missing_backend_raises_what_to_install(monkeypatch):
    import importlib

    import pytest

    from rlte_plugins.errors import MissingDependencyError

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "dm_control":
            raise ImportError("No module named 'dm_control'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(MissingDependencyError, match=r"rlte-plugins\[dmc\]"):
        backends.require("dm_control", "dmc")
    assert "apt-get update && apt-get install -y libegl1" in backends.BACKENDS["dmc-egl"].fix()


def test_fixes_that_are_not_one_install_line():
    import sys

    from rlte_plugins.envs import backends

    # robosuite and DeepMind Control pin different mujoco versions: the fix must not break the dmc install
    assert "virtualenv" in backends.BACKENDS["robosuite"].fix()
    if sys.version_info >= (3, 11):
        assert "EnvPool" in backends.BACKENDS["procgen"].fix()
        assert "pip install procgen" not in backends.BACKENDS["procgen"].fix()
