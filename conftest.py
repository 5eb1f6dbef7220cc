"""Test session set-up: the template plugin is pip-installed for real (into a private target directory, so the
virtualenv stays untouched) before any test runs; fixture plugins (broken, clashing, misconfigured) are installed
on demand. Each is built from a temporary copy of its source, so no ``build/`` or egg-info lands in the tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
EXAMPLE = ROOT / "plugins" / "rlte-example"
FIXTURES = ROOT / "tests" / "fixtures"
BROKEN = FIXTURES / "rlte-broken"
CLASH = FIXTURES / "rlte-clash"
MISCONFIGURED = (FIXTURES / "rlte-misspelt", FIXTURES / "rlte-no-entry-point")


def pip_install(target: Path, *sources: Path) -> Path:
    """``pip install`` plugin projects into ``target`` (a real wheel build and install, no network).

    pip builds in the source tree, and a stale ``build/lib`` there would be installed: build from copies.
    """
    with tempfile.TemporaryDirectory(prefix="rlte-plugin-src-") as scratch:
        copies = []
        for source in sources:
            copy = Path(scratch) / source.name
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            copies.append(str(copy))
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
                *copies,
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
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(str(path) + os.sep):
            del sys.modules[name]
    import rlte_plugins

    rlte_plugins.reset_registry()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    site = Path(tempfile.mkdtemp(prefix="rlte-example-site-"))
    config._rlte_example_site = site  # type: ignore[attr-defined]
    try:
        pip_install(site, EXAMPLE)
    except subprocess.CalledProcessError as exc:
        raise pytest.UsageError(f"could not pip install {EXAMPLE}: {exc.stderr}") from exc
    add_site(site)


def pytest_unconfigure(config: pytest.Config) -> None:
    site = getattr(config, "_rlte_example_site", None)
    if site is None:
        return
    if str(site) in sys.path:
        remove_site(site)
    shutil.rmtree(site, ignore_errors=True)


def _installed(tmp_path_factory: pytest.TempPathFactory, name: str, *sources: Path) -> Iterator[Path]:
    site = pip_install(tmp_path_factory.mktemp(name), *sources)
    add_site(site)
    yield site
    remove_site(site)


@pytest.fixture(scope="session")
def example_site(pytestconfig: pytest.Config) -> Path:
    return pytestconfig._rlte_example_site  # type: ignore[attr-defined]


@pytest.fixture()
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The broken plugin installed and visible to this process and its subprocesses, for one test."""
    yield from _installed(tmp_path_factory, "rlte-broken-site", BROKEN)


@pytest.fixture(scope="module")
def clash_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """rlte-clash installed for one test module: encoders ``mlp`` (a built-in's name), ``residual_mlp``
    (rlte-example's) and ``faulty`` (raises ValueError when made with ``fail="init"`` or when built)."""
    yield from _installed(tmp_path_factory, "rlte-clash-site", CLASH)


@pytest.fixture()
def misconfigured_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two packages that are never loaded: rlte-misspelt (group ``rlte_plugin``) and rlte-no-entry-point."""
    yield from _installed(tmp_path_factory, "rlte-misconfigured-site", *MISCONFIGURED)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """Undo a test's ``torch.set_num_threads``: results of later tests depend on it. (Inter-op threads can be
    set only once per process, so no test may set them.)"""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
