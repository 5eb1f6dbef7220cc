"""`rlte doctor` reports what works and what is missing, with the fix, and tells the truth on this machine."""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import json
import subprocess
import sys

from rlte_plugins.envs import backends


def run(*args):
    return subprocess.run([sys.executable, "-m", "rlte_plugins.cli", *args], capture_output=True, text=True)


def test_doctor_reports_what_this_machine_really_has():
    out = run("doctor", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["backend"]: r for r in json.loads(out.stdout)}
    assert set(backends.BACKENDS) <= set(rows)
    # facts found here without the doctor's check(): the module is absent, or it imports
    for name, backend in backends.BACKENDS.items():
        assert (rows[name]["fix"] is None) == rows[name]["ok"], name
        if importlib.util.find_spec(backend.module) is None:
            assert not rows[name]["ok"], name
        elif backend.probe is None:
            importlib.import_module(backend.module)
            assert rows[name]["ok"], name
    import torch

    assert rows["cuda"]["ok"] == torch.cuda.is_available()
    for library, name in (("EGL", "dmc-egl"), ("Qt5Gui", "procgen-qt5")):
        if ctypes.util.find_library(library) is None:
            assert not rows[name]["ok"], name


def test_a_module_that_cannot_be_imported_is_missing_with_the_exact_fix(monkeypatch, capsys):
    from rlte_plugins.cli import main

    for module in ("minigrid", "dm_control"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` now fails, whatever is installed
    names = ("minigrid", "dm_control", "dmc-egl")
    monkeypatch.setattr(backends, "BACKENDS", {name: backends.BACKENDS[name] for name in names})
    assert main(["doctor", "--json"]) == 0
    rows = {r["backend"]: r for r in json.loads(capsys.readouterr().out)}
    assert not any(rows[name]["ok"] for name in names)
    assert rows["minigrid"]["fix"] == "pip install 'rlte-plugins[minigrid]'"
    assert rows["dmc-egl"]["fix"] == (
        "apt-get update && apt-get install -y libegl1 libgl1 libgl1-mesa-dri && pip install 'rlte-plugins[dmc]'"
    )
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("MISSING minigrid     MiniGrid/BabyAI (full and one-hot observations, all tasks)")
    assert out[at + 2].strip() == "fix: pip install 'rlte-plugins[minigrid]'"
    assert out[-1] == "0 of 3 backends work; 3 missing"


def test_fixes_name_extras_and_system_packages_that_exist():
    import importlib.metadata
    import re
    from pathlib import Path

    extras = importlib.metadata.metadata("rlte-plugins").get_all("Provides-Extra")
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    apt = re.search(r"^APT_PACKAGES = (.*)$", makefile, re.M)[1].split()
    for name, backend in backends.BACKENDS.items():
        fix = backend.fix()
        assert all(extra in extras for extra in re.findall(r"rlte-plugins\[(\w+)\]", fix)), name
        installed = re.search(r"apt-get install -y ([^&]+)", fix)
        assert installed is None or set(installed[1].split()) <= set(apt), name


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
