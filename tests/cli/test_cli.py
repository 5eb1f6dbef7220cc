"""The rlte command line end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from rlte_plugins.cli import main


def rlte(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlte_plugins.cli", *args], capture_output=True, text=True)


def test_list_table_json_kind_and_pattern(capsys):
    assert main(["list", "encoder"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "KIND", "SUMMARY", "PROVIDER"]
    assert "mlp" in out and "ppo" not in out
    assert main(["list", "m*", "--json"]) == 0
    names = [c["name"] for c in json.loads(capsys.readouterr().out)]
    # by kind (encoder, distribution, reward, env: the registry's kind order), then name
    assert names == ["mlp", "mnih_cnn", "masked_categorical", "multi_categorical", "mixture", "minigrid"]


def test_info_shows_signature_docstring_and_provider(capsys):
    assert main(["info", "agent", "ppo"]) == 0
    out = capsys.readouterr().out
    assert "ppo(env, device='cpu', seed=0, *, num_envs: int = 4, num_steps: int = 128" in out
    helped = r"^  clip_epsilon +PPO ratio clip \(start of the schedule when anneal_clip\) \(default 0\.2\)$"
    assert re.search(helped, out, re.M)  # each argument's help, from PPO.Config
    assert "provider: rlte-plugins" in out and "Proximal Policy Optimization" in out
    assert main(["info", "env", "gymnasium", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    required = [p["name"] for p in info["parameters"] if p["required"]]
    assert required == ["env_id"]


def test_errors_exit_2_with_one_line():
    for args, fragment in [
        (("info", "encoder", "mpl"), "did you mean 'mlp'"),
        (("list", "bogus", "x"), "unknown component kind 'bogus'"),
        (("train", "no_such_recipe"), "unknown recipe 'no_such_recipe'"),
    ]:
        result = rlte(*args)
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and fragment in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_train_config_with_unknown_key_is_refused(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump({"agent": "ppo", "env": {"name": "gymnasium", "env_id": "CartPole-v1"}, "trian": {}})
    )
    result = rlte("train", "-f", str(config))
    assert result.returncode == 2 and "unknown key 'trian'" in result.stderr
    result = rlte("train", "ppo_cartpole", "--set", "agent.learning_rate=0.1")
    assert result.returncode == 2 and "unexpected argument 'learning_rate'" in result.stderr


def test_train_end_to_end_writes_run_directory(tmp_path):
    out = tmp_path / "run"
    result = rlte(
        "train",
        "ppo_cartpole",
        "--total-frames",
        "512",
        "--output",
        str(out),
        "--seed",
        "3",
        "--set",
        "agent.lr=3e-4",
        "--set",
        "train.eval_episodes=2",
        "--set",
        "encoder.num_cells=[16]",
        "--threads",
        "1",  # torch's default thread count is many times slower for a network this small on a busy machine
    )
    assert result.returncode == 0, result.stderr
    assert "final mean return over 2 evaluation episodes" in result.stdout
    assert "[train] frames 512/512" in result.stderr  # plain progress lines when not a TTY
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 512 and summary["config"]["agent"]["lr"] == 3e-4
    assert summary["config"]["train"]["seed"] == 3
    assert (out / "checkpoint.pt").stat().st_size > 0 and (out / "learning_curve.png").stat().st_size > 0
    assert (
        (out / "ppo_cartpole" / "scalars" / "charts" / "episodic_return.csv").read_text().strip()
    )  # TorchRL's CSV logger


def test_every_component_has_a_summary_and_info_shows_forwarded_arguments(capsys):
    import rlte_plugins

    kinds = ("encoder", "policy", "distribution", "augmentation", "storage")
    for kind in kinds:
        specs = rlte_plugins.list_components(kind)
        assert specs and all(s.summary for s in specs), kind
    assert main(["info", "augmentation", "random_shift", "--json"]) == 0
    params = {p["name"]: p for p in json.loads(capsys.readouterr().out)["parameters"]}
    assert {"pad", "in_keys", "out_keys", "seed"} <= set(params)


def test_exit_statuses(tmp_path, capsys, monkeypatch):
    import pytest

    from rlte_plugins.cli import list_
    from rlte_plugins.errors import TrainingInterrupted

    assert main(["list"]) == 0
    assert main([]) == 0 and "exit status:" in capsys.readouterr().out  # help, with the table of statuses
    for argv in (["--bogus"], ["list", "--bogus"], ["train", "--seed", "x"]):  # argparse: usage errors
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()
    assert main(["info", "encoder", "mpl"]) == 2  # unknown name
    assert main(["list", "encoder", "zzz"]) == 1  # matched nothing

    def interrupted(args):
        raise KeyboardInterrupt

    capsys.readouterr()
    monkeypatch.setattr(list_, "run", interrupted)
    assert main(["list"]) == 130 and capsys.readouterr().err == "interrupted\n"

    def stopped(args):  # what the run loop raises once Ctrl-C's checkpoint is written
        raise TrainingInterrupted("interrupted at frame 640: wrote checkpoint run/checkpoint.pt (frame 640)")

    monkeypatch.setattr(list_, "run", stopped)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "interrupted at frame 640: wrote checkpoint run/checkpoint.pt (frame 640)\n"

    def bug(args):
        raise ZeroDivisionError("a bug of rlte itself")

    monkeypatch.setattr(list_, "run", bug)
    with pytest.raises(ZeroDivisionError):  # not a component's: the interpreter prints it in full and exits 1
        main(["list"])


def test_an_output_directory_that_cannot_be_created_is_one_line():
    result = rlte("train", "ppo_cartpole", "--output", "/dev/null/run")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: cannot create the run directory '/dev/null/run' (--output / train.output): Not a directory"
    ]


def test_an_output_path_that_is_a_file_is_one_line(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    result = rlte("train", "ppo_cartpole", "--set", f"train.output={taken}")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: cannot create the run directory '{taken}' (--output / train.output): it exists and is not a directory"
    ]


def test_list_that_matches_nothing_says_what_was_searched(capsys):
    cases = [
        (["list", "encoder", "zzz"], "no encoder matches 'zzz' (`rlte list encoder` shows what there is)"),
        (["list", "encodr"], "no component of any kind matches 'encodr'; did you mean the kind 'encoder'?"),
        (["list", "mpl"], "no component of any kind matches 'mpl'; did you mean encoder 'mlp'?"),
        (["list", "encoder", "categorical"], "no encoder matches 'categorical'; distribution 'categorical' does"),
        (["list", "encoder", "cnn"], "no encoder matches 'cnn'; some names contain it: `rlte list encoder '*cnn*'`"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith(message), (argv, captured.err)
    assert main(["list", "q*x", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [] and "no component of any kind matches 'q*x'" in captured.err


def test_list_into_a_closed_pipe_ends_quietly():
    import os

    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything is written, as `rlte list | head -0` would
    try:
        result = subprocess.run(
            [sys.executable, "-m", "rlte_plugins.cli", "list"], stdout=write, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write)
    assert result.returncode == 141 and result.stderr == ""
