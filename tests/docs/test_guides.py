"""The guides' examples run: every ```python block of a page, in order, in one namespace, in a fresh directory
(a block preceded by ``<!-- no-run: REASON -->`` is skipped), and every ``rlte`` command shown in a shell block
parses with the real command line."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rlte_plugins.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDES = sorted(DOCS.glob("*.md"))
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=ticks)[ \t]*$", re.M | re.S
)
_NO_RUN = re.compile(r"<!--\s*no-run:\s*\S.*?-->\s*$")

# Runs a page's blocks one by one so that a failure names the block's line.
_RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for line, source in json.load(sys.stdin):
    exec(compile(source, f"{sys.argv[1]}:{line}", "exec"), namespace)
"""


def blocks(page: Path, languages: tuple[str, ...]) -> list[tuple[int, str, bool]]:
    """The fenced blocks of ``page`` in ``languages``: (line, source, skipped)."""
    text = page.read_text(encoding="utf-8")
    out = []
    for match in _FENCE.finditer(text):
        if match.group("info").strip().split(" ")[0] not in languages:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        indent = match.group("indent")
        body = "\n".join(line[len(indent) :] for line in match.group("body").splitlines())
        line = text.count("\n", 0, match.start("body")) + 1
        out.append((line, body, bool(_NO_RUN.search(before))))
    return out


def test_the_guides_exist():
    names = {p.name for p in GUIDES}
    assert {
        "index.md",
        "quickstart.md",
        "writing-plugins.md",
        "agent-contract.md",
        "fast-path.md",
        "evaluation.md",
        "exploration.md",
        "deployment.md",
        "scale-out.md",
    } <= names


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_python_examples_run(page, tmp_path):
    found = blocks(page, ("python",))
    runnable = [(line, source) for line, source, skipped in found if not skipped]
    if not runnable:
        pytest.skip(f"{page.name} has no runnable Python example")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "WANDB_MODE": "offline",
        "RLTE_HUB_DIR": str(tmp_path / "hub"),
        "MPLBACKEND": "Agg",
    }
    run = subprocess.run(
        [sys.executable, "-c", _RUNNER, page.name],
        input=json.dumps(runnable),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, f"{page.name}: an example failed\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"


def _commands(source: str) -> list[str]:
    joined = source.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        for part in re.split(r"&&|\|\||;", line):
            part = re.split(r"\s[|>]", part)[0].strip()
            if part.startswith("rlte "):
                out.append(part)
    return out


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_shown_rlte_commands_parse(page):
    commands = [c for _, source, _ in blocks(page, ("bash", "console", "sh", "shell")) for c in _commands(source)]
    if not commands:
        pytest.skip(f"{page.name} shows no rlte command")
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(shlex.split(command, comments=True)[1:])
        except SystemExit as exc:
            if exc.code == 0:  # --help, --version
                continue
            pytest.fail(f"{page.name}: `{command}` does not parse (exit {exc.code})")
