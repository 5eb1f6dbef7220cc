"""Plugins installed for real with pip: the template plugin works everywhere, a broken one breaks nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

import rlte_plugins


def rlte(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlte_plugins.cli", *args], capture_output=True, text=True)


def _rlte_json(*args: str, env: dict[str, str] | None = None):
    out = subprocess.run(
        [sys.executable, "-m", "rlte_plugins.cli", *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return json.loads(out.stdout)


def test_cli_lists_the_installed_example_plugin(example_site):
    listed = json.loads(rlte("list", "--json").stdout)
    mine = {(c["kind"], c["name"]): c for c in listed if c["provider"] == "rlte-example"}
    assert set(mine) == {("encoder", "residual_mlp"), ("reward", "simhash_count")}
    assert mine[("encoder", "residual_mlp")]["version"] == "0.1.0"
    plugins = {p["name"]: p for p in json.loads(rlte("plugins", "--json").stdout)}
    assert plugins["rlte_example"]["status"] == "loaded"
    assert plugins["rlte_example"]["hooks"] == ["register_commands", "register_encoders", "register_rewards"]
    info = json.loads(rlte("info", "encoder", "residual_mlp", "--json").stdout)
    assert info["provider"] == "rlte-example" and "width: int = 64" in info["signature"]


def test_ppo_accepts_the_plugin_encoder_and_reward_by_name(example_site):
    agent = rlte_plugins.make("agent", "ppo", env="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, seed=0)
    agent.set(encoder={"name": "residual_mlp", "width": 16, "blocks": 1}, reward="simhash_count")
    stats = agent.train(total_frames=128, progress=False)
    assert stats["frames"] == 128 and stats["charts/intrinsic_reward"] > 0
    assert type(agent.components["encoder"]).__name__ == "ResidualMLPEncoder"


def test_broken_plugin_is_reported_and_breaks_nothing(broken_site):
    plugins = json.loads(rlte("plugins", "--json").stdout)
    broken = next(p for p in plugins if p["name"] == "rlte_broken")
    assert broken["status"] == "failed" and broken["version"] == "6.6.6"
    assert "deliberately broken" in broken["error"]
    listing = rlte("list")
    assert listing.returncode == 0 and "residual_mlp" in listing.stdout and "mlp" in listing.stdout
    assert "rlte_broken 6.6.6 failed to load" in listing.stderr
    table = rlte("plugins")
    assert table.returncode == 0 and "rlte_broken 6.6.6 failed to load: RuntimeError" in table.stdout
    assert rlte("info", "encoder", "mlp").returncode == 0
    assert rlte_plugins.make("encoder", "mlp", in_features=2).out_features == 64


def _without(site, env=None):
    """The environment of a subprocess in which the plugin installed at ``site`` is not installed."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(site)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(parts), **(env or {})}


def test_checkpoint_names_the_plugin_that_is_no_longer_installed(example_site, tmp_path):
    import torch

    agent = rlte_plugins.make("agent", "ppo", env="CartPole-v1", num_envs=2, num_steps=8, num_minibatches=1, seed=0)
    agent.set(encoder={"name": "residual_mlp", "width": 8, "blocks": 1})
    path = agent.save(tmp_path / "new.pt")
    data = torch.load(path, weights_only=True)
    assert data["providers"]["rlte_example"] == {"distribution": "rlte-example", "version": "0.1.0"}
    assert data["providers"]["rlte_plugins"]["distribution"] == "rlte-plugins"
    del data["providers"]  # as checkpoints written before providers were recorded
    torch.save(data, tmp_path / "old.pt")
    code = (
        "import sys\n"
        "from rlte_plugins.agents.ppo import PPO\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        PPO.load(name)\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "old.pt")],
        capture_output=True,
        text=True,
        env=_without(example_site),
    )
    new, old = out.stdout.strip().splitlines()
    assert new == (
        f"CheckpointError checkpoint {str(path)!r} was written with plugin 'rlte_example' (rlte-example 0.1.0), "
        "which is not installed: pip install 'rlte-example==0.1.0'"
    )
    assert old.startswith(
        "UnknownComponentError encoder 'rlte_example:residual_mlp' comes from plugin 'rlte_example', which is not "
        "installed"
    )
    assert "did you mean" not in old


def test_clashing_names_through_real_entry_points(clash_site):
    table = rlte("list", "encoder")
    assert table.returncode == 0, table.stderr
    names = [line.split()[0] for line in table.stdout.splitlines()[1:]]
    for qualified in ("rlte_plugins:mlp", "rlte_clash:mlp", "rlte_clash:residual_mlp", "rlte_example:residual_mlp"):
        assert qualified in names
    assert "identity" in names  # names without a clash stay plain
    listed = {c["qualified_name"]: c for c in json.loads(rlte("list", "encoder", "*mlp", "--json").stdout)}
    assert listed["rlte_clash:mlp"]["provider"] == "rlte-clash" and listed["rlte_clash:mlp"]["version"] == "1.0.0"
    assert type(rlte_plugins.make("encoder", "mlp", in_features=3)).__name__ == "MLPEncoder"  # the built-in wins
    assert type(rlte_plugins.make("encoder", "rlte_clash:mlp", in_features=3)).__name__ == "ClashMLP"
    both = "name one of 'rlte_clash:residual_mlp', 'rlte_example:residual_mlp'"
    with pytest.raises(rlte_plugins.AmbiguousComponentError, match=both):
        rlte_plugins.make("encoder", "residual_mlp", in_features=3)
    info = rlte("info", "encoder", "residual_mlp")
    assert (
        info.returncode == 2
        and info.stderr.strip() == f"error: encoder 'residual_mlp' is registered by several plugins; {both}"
    )


def test_ambiguous_name_in_a_config_is_one_line(clash_site, tmp_path):
    config = tmp_path / "clash.yaml"
    config.write_text(
        yaml.safe_dump(
            {"agent": "ppo", "env": {"name": "gymnasium", "env_id": "CartPole-v1"}, "encoder": "residual_mlp"}
        )
    )
    result = rlte("train", "-f", str(config), "--total-frames", "64", "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: encoder 'residual_mlp' is registered by several plugins; "
        "name one of 'rlte_clash:residual_mlp', 'rlte_example:residual_mlp'"
    ]


def test_disabling_the_builtins(clash_site):
    env = {"RLTE_DISABLE_PLUGINS": "rlte_plugins"}
    plugins = {p["name"]: p["status"] for p in _rlte_json("plugins", env=env)}
    assert plugins == {"rlte_plugins": "disabled", "rlte_example": "loaded", "rlte_clash": "loaded"}
    providers = {c["provider"] for c in _rlte_json("list", env=env)}
    assert providers == {"rlte-example", "rlte-clash"}
    assert _rlte_json("info", "encoder", "mlp", env=env)["provider"] == "rlte-clash"  # now the only provider
    result = subprocess.run(
        [sys.executable, "-m", "rlte_plugins.cli", "train", "ppo_cartpole"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown agent 'ppo'")
    assert "not loaded: rlte_plugins (disabled)" in result.stderr


def test_a_component_that_raises_is_one_line_naming_it_and_its_provider(clash_site, tmp_path):
    with pytest.raises(ValueError, match="refuses to be made") as info:
        rlte_plugins.make("encoder", "faulty", fail="init")
    assert info.value.provider == "rlte-clash" and isinstance(info.value.__cause__, ValueError)

    def train(*extra, fail):
        config = tmp_path / f"{fail}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "agent": {"name": "ppo", "num_envs": 2, "num_steps": 8, "num_minibatches": 1},
                    "env": {"name": "gymnasium", "env_id": "CartPole-v1"},
                    "encoder": {"name": "faulty", "fail": fail},
                    "train": {"total_frames": 16, "eval_episodes": 0, "output": str(tmp_path / fail)},
                }
            )
        )
        return rlte(*extra, "train", "-f", str(config), "--no-progress")

    built = train(fail="build")
    assert built.returncode == 2
    assert built.stderr.strip().splitlines() == [
        "error: encoder 'faulty' from rlte-clash 1.0.0 failed while being built: ValueError: faulty encoder refuses "
        "inputs of shape [4] (rerun with --debug for the traceback)"
    ]
    made = train("--debug", fail="init")
    assert made.returncode == 2
    assert made.stderr.startswith("Traceback (most recent call last):") and "rlte_clash/encoders.py" in made.stderr
    assert made.stderr.strip().splitlines()[-1] == (
        "error: encoder 'faulty' from rlte-clash 1.0.0 failed while being made: ValueError: faulty encoder refuses "
        "to be made"
    )


def test_packages_that_are_never_loaded_are_reported(misconfigured_site, capsys, monkeypatch):
    from rlte_plugins.cli import main
    from rlte_plugins.envs import backends

    misspelt = "rlte-misspelt 0.2.0 declares the entry-point group 'rlte_plugin', not 'rlte_plugins'"
    missing = "rlte-no-entry-point 0.3.0 depends on rlte-plugins but declares no 'rlte_plugins' entry point"
    table = rlte("plugins")
    assert table.returncode == 0
    assert misspelt in table.stdout and missing in table.stdout
    assert 'fix: add [project.entry-points.rlte_plugins] rlte_no_entry_point = "rlte_no_entry_point.plugin"' in (
        table.stdout
    )
    listed = rlte("plugins", "--json")
    assert json.loads(listed.stdout) and misspelt in listed.stderr
    monkeypatch.setattr(backends, "BACKENDS", {})  # only the plugin checks: the backends have tests of their own
    assert main(["doctor"]) == 0
    out = [line.strip() for line in capsys.readouterr().out.splitlines()]
    at = out.index("PROBLEM plugin:rlte-misspelt an installed rlte-plugins plugin")
    assert out[at + 1].startswith(misspelt)
    assert (
        out[at + 2]
        == "fix: rename the table in its pyproject.toml to [project.entry-points.rlte_plugins] and reinstall it"
    )
    at = out.index("PROBLEM plugin:rlte-no-entry-point an installed rlte-plugins plugin")
    assert out[at + 1].startswith(missing) and out[at + 2].startswith("fix: add [project.entry-points.rlte_plugins]")
    assert out[-1] == "0 of 0 backends work; 2 plugin problems"


# -- the test session's own set-up (conftest.py) -------------------------------------------------------------
def test_plugins_are_built_from_a_copy_so_the_source_tree_stays_clean(tmp_path):
    import shutil

    from conftest import EXAMPLE, FIXTURES, pip_install

    for tree in (EXAMPLE, *FIXTURES.iterdir()):  # the session has pip-installed the example already
        assert not (tree / "build").exists() and not list(tree.glob("*.egg-info")), tree
    source = tmp_path / "rlte-example"
    shutil.copytree(EXAMPLE, source)
    stale = source / "build" / "lib" / "rlte_example" / "stale.py"  # what an old in-tree build leaves
    stale.parent.mkdir(parents=True)
    stale.write_text("raise RuntimeError('stale')\n")
    site = pip_install(tmp_path / "site", source)
    assert (site / "rlte_example" / "encoders.py").is_file() and not (site / "rlte_example" / "stale.py").exists()
    assert not list(source.glob("*.egg-info"))


def test_the_session_site_is_removed_at_the_end(tmp_path):
    import types

    import conftest

    site = tmp_path / "site"
    site.mkdir()
    conftest.add_site(site)
    conftest.pytest_unconfigure(types.SimpleNamespace(_rlte_example_site=site))
    assert not site.exists() and str(site) not in sys.path
    assert str(site) not in os.environ.get("PYTHONPATH", "")


_THREADS: list[int] = []


def test_a_test_may_change_torch_threads():
    import torch

    _THREADS.append(torch.get_num_threads())
    torch.set_num_threads(_THREADS[0] + 1)


def test_the_next_test_gets_the_threads_back():
    import torch

    if not _THREADS:
        pytest.skip("runs after test_a_test_may_change_torch_threads")
    assert torch.get_num_threads() == _THREADS[0]


def test_allow_and_deny_lists(broken_site):
    def statuses(**env: str) -> dict[str, str]:
        # other plugins this module installs (the clash fixture) may be listed too: these three are the subject
        listed = {p["name"]: p["status"] for p in _rlte_json("plugins", env=env)}
        return {name: listed[name] for name in ("rlte_plugins", "rlte_example", "rlte_broken")}

    assert statuses(RLTE_DISABLE_PLUGINS="rlte_broken, rlte-example") == {
        "rlte_plugins": "loaded", "rlte_example": "disabled", "rlte_broken": "disabled"
    }  # fmt: skip
    assert statuses(RLTE_PLUGINS="rlte-example") == {
        "rlte_plugins": "loaded", "rlte_example": "loaded", "rlte_broken": "disabled"
    }  # fmt: skip
