"""`rlte train` and `rlte eval`: resume, evaluation, Ctrl-C, threads, one-line errors and the generated help.

Runs are tiny (torch_cartpole, 8 envs x 16 steps = 128 frames an iteration, one thread) and trained in-process
where a subprocess adds nothing but start-up time.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from rlte_plugins.cli import main

LOGS = Path("fast_ppo_cartpole") / "scalars" / "charts" / "SPS.csv"  # the CSV logger's, under the run's name
TINY = [
    "train",
    "fast_ppo_cartpole",
    "--set",
    "env.num_envs=8",
    "--set",
    "agent.num_steps=16",
    "--set",
    "agent.num_minibatches=1",
    "--set",
    "train.eval_episodes=2",
    "--set",
    "train.eval_every=0",
    "--set",
    "train.stop_conditions=[]",
    "--no-progress",
    "--threads",
    "1",  # torch's default on a busy machine is many times slower for networks this small
]


def logged_frames(run: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in (run / LOGS).read_text().splitlines()]


def checkpoint_frames(run: Path) -> int:
    return torch.load(run / "checkpoint.pt", weights_only=True)["counters"]["frames"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 512-frame run (read-only: copy it to change it)."""
    threads = torch.get_num_threads()  # the per-test restore runs after module fixtures: restore it here
    run = tmp_path_factory.mktemp("trained") / "run"
    try:
        assert main([*TINY, "--total-frames", "512", "--output", str(run)]) == 0
    finally:
        torch.set_num_threads(threads)
    return run


def test_resume_continues_a_run_from_its_checkpoint(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert checkpoint_frames(run) == 512 and logged_frames(run) == [128, 256, 384, 512]
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--total-frames", "1024", "--no-progress", "--threads", "1"]) == 0
    assert "continued to 1,024 frames" in capsys.readouterr().out
    assert checkpoint_frames(run) == 1024
    assert logged_frames(run) == [128, 256, 384, 512, 640, 768, 896, 1024]  # one log, carried on
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["total_frames"] == 1024 and config["agent"]["num_steps"] == 16
    assert json.loads((run / "summary.json").read_text())["frames"] == 1024


def test_resume_refuses_what_it_would_ignore(trained_run, capsys):
    for extra, what in (
        (["--set", "agent.lr=0.1"], "agent.lr cannot change"),
        (["--seed", "3"], "train.seed cannot change"),
        (["fast_ppo_cartpole"], "not both"),
    ):
        capsys.readouterr()
        assert main(["train", "--resume", str(trained_run), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and what in err and len(err.splitlines()) == 1, err
    assert checkpoint_frames(trained_run) == 512


def test_eval_prints_the_returns_of_a_run(trained_run, capsys):
    assert main(["eval", str(trained_run), "--episodes", "3", "--json", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 3 and len(result["returns"]) == 3 and result["frames"] == 512
    assert result["agent"] == "ppo" and result["preset"] == "fast_ppo" and result["deterministic"] is True
    returns = result["returns"]
    assert result["mean"] == pytest.approx(statistics.fmean(returns))
    assert result["std"] == pytest.approx(statistics.pstdev(returns))
    assert (result["min"], result["max"]) == (min(returns), max(returns))
    # a checkpoint file works too; text output names the count and the figures
    assert main(["eval", str(trained_run / "checkpoint.pt"), "--episodes", "2", "--stochastic", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^2 stochastic episodes: mean \S+  std \S+  min \S+  max \S+$", out, re.M), out
    assert main(["eval", str(trained_run.parent)]) == 2  # a folder without checkpoint.pt: one line
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no checkpoint.pt" in err and len(err.splitlines()) == 1


def test_threads_sets_torchs_thread_count(trained_run, tmp_path):
    # the conftest fixture restores the count after the test
    torch.set_num_threads(2)
    assert main(["eval", str(trained_run), "--episodes", "1", "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    run = tmp_path / "run"
    assert main([*TINY, "--total-frames", "128", "--set", "train.eval_episodes=0", "--output", str(run)]) == 0
    assert torch.get_num_threads() == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["threads"] == 1


def test_ctrl_c_saves_says_how_to_resume_and_exits_130(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "rlte_plugins.cli", *TINY, "--total-frames", "10000000", "--output", str(run)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / LOGS).exists():  # logged after the first iteration: the loop is handling Ctrl-C
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    stopped = re.search(r"^interrupted at frame (\d+): wrote checkpoint (\S+) \(frame \1\)$", err, re.M)
    assert stopped and Path(stopped[2]) == run / "checkpoint.pt", err
    assert err.rstrip().splitlines()[-1] == f"resume with: rlte train --resume {run}"
    frames = int(stopped[1])
    assert checkpoint_frames(run) == frames and logged_frames(run)[-1] == frames
    # the hint works: the interrupted run (no summary.json yet) continues in the same logs
    capsys.readouterr()
    resume = ["train", "--resume", str(run), "--total-frames", str(frames + 128), "--no-progress", "--threads", "1"]
    assert main(resume) == 0
    assert checkpoint_frames(run) == frames + 128
    assert logged_frames(run) == list(range(128, frames + 129, 128))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_one_line(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY, "--device", "cuda", "--output", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: agent 'fast_ppo' (a preset of 'ppo'): device 'cuda' is not available")
    assert len(err.splitlines()) == 1
    assert not run.exists()
    assert main(["eval", str(trained_run), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'cuda' is not available" in err and len(err.splitlines()) == 1


def test_an_output_that_is_a_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    assert main([*TINY, "--output", str(taken)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot create the run directory '{taken}' (--output / train.output): it exists and is not a directory"
    ]


def test_a_failed_run_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run directory is runs/NAME-TIME under the working directory
    assert main([*TINY, "--set", "encoder.name=no_such_encoder"]) == 2
    assert main([*TINY, "--set", "encoder.name=no_such_encoder", "--output", str(tmp_path / "named")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: unknown encoder 'no_such_encoder'") for line in err)
    assert not (tmp_path / "named").exists() and not list(tmp_path.glob("runs/*"))


def test_train_help_is_generated_from_the_agents_and_the_config_schema(capsys):
    import rlte_plugins
    from rlte_plugins.agents.a2c import A2C
    from rlte_plugins.agents.ppo import PPO
    from rlte_plugins.training.config import COMPONENT_SECTIONS, TRAIN_KEYS, parse_yaml

    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    text = " ".join(out.split())  # the help is wrapped to the terminal's width
    for key, help in TRAIN_KEYS.items():
        assert f"train.{key} {' '.join(help.split())}" in text, key
    assert f"{', '.join(s for s in COMPONENT_SECTIONS if s != 'env')} name and arguments" in text
    assert {"reward", "augmentation"} <= set(COMPONENT_SECTIONS)
    listed = out.partition("agents and their options")[2].partition("\nexamples:")[0]
    heading = r"^  ([\w.-]+): "  # options and wrapped lines are indented further
    found = re.finditer(rf"{heading}(.*?)(?={heading}|\Z)", listed, re.M | re.S)
    sections = {m[1]: " ".join(m[2].split()) for m in found}
    assert set(sections) == {spec.name for spec in rlte_plugins.list_components("agent")}
    for name, cls in (("ppo", PPO), ("a2c", A2C)):
        for field in dataclasses.fields(cls.Config):
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            help = " ".join(field.metadata["help"].split())
            shown = re.search(rf" {field.name}=(\S+) {re.escape(help)}", sections[name])
            assert shown and parse_yaml(shown[1]) == default, (name, field.name)
    assert "a preset of ppo: num_envs=8192 num_steps=32" in sections["fast_ppo"]
    assert "a preset of ppo: recurrent={cell: lstm, hidden_size: 128}" in sections["ppo_lstm"]
    assert "rlte train --resume" in text


def test_listing_and_parsing_import_no_torch():
    code = (
        "import sys\n"
        "from rlte_plugins.cli import main\n"
        "main(['list', 'agent'])\n"
        "assert 'torch' not in sys.modules, 'rlte list imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
