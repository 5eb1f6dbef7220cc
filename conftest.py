"""Test session set-up: the template plugin is pip-installed for real (into a private target directory, so the
virtualenv stays untouched) before any test runs; the broken-plugin fixture is installed on demand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
EXAMPLE = ROOT / "plugins" / "rlte-example"
BROKEN = ROOT / "tests" / "fixtures" / "rlte-broken"


def pip_install(source: Path, target: Path) -> Path:
    """``pip install`` a plugin project into ``target`` (a real wheel build and install, no network)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def add_site(path: Path) -> None:
    sys.path.insert(0, str(path))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(path), *filter(None, [os.environ.get("PYTHONPATH")])])
    import rlte_plugins

    rlte_plugins.reset_registry()


def remove_site(path: Path) -> None:
    sys.path.remove(str(path))
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(path)]
    if parts:
        os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    else:
        os.environ.pop("PYTHONPATH", None)
    for name in [m for m in sys.modules if m == "rlte_broken" or m.startswith("rlte_broken.")]:
        del sys.modules[name]
    import rlte_plugins

    rlte_plugins.reset_registry()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import tempfile

    site = Path(tempfile.mkdtemp(prefix="rlte-example-site-"))
    try:
        pip_install(EXAMPLE, site)
    except subprocess.CalledProcessError as exc:
        raise pytest.UsageError(f"could not pip install {EXAMPLE}: {exc.stderr}") from exc
    config._rlte_example_site = site  # type: ignore[attr-defined]
    add_site(site)


@pytest.fixture(scope="session")
def example_site(pytestconfig: pytest.Config) -> Path:
    return pytestconfig._rlte_example_site  # type: ignore[attr-defined]


@pytest.fixture()
def broken_site(tmp_path_factory: pytest.TempPathFactory):
    """The broken plugin installed and visible to this process and its subprocesses, for one test."""
    site = pip_install(BROKEN, tmp_path_factory.mktemp("rlte-broken-site"))
    add_site(site)
    yield site
    remove_site(site)
