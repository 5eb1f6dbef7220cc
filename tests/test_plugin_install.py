"""Plugins installed for real with pip: the template plugin works everywhere, a broken one breaks nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import rlte_plugins


def rlte(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlte_plugins.cli", *args], capture_output=True, text=True)


def test_cli_lists_the_installed_example_plugin(example_site):
    listed = json.loads(rlte("list", "--json").stdout)
    mine = {(c["kind"], c["name"]): c for c in listed if c["provider"] == "rlte-example"}
    assert set(mine) == {("encoder", "residual_mlp"), ("reward", "simhash_count")}
    assert mine[("encoder", "residual_mlp")]["version"] == "0.1.0"
    plugins = {p["name"]: p for p in json.loads(rlte("plugins", "--json").stdout)}
    assert plugins["rlte_example"]["status"] == "loaded"
    assert plugins["rlte_example"]["hooks"] == ["register_encoders", "register_rewards"]
    info = json.loads(rlte("info", "encoder", "residual_mlp", "--json").stdout)
    assert info["provider"] == "rlte-example" and "width: 'int' = 64" in info["signature"]


def test_ppo_accepts_the_plugin_encoder_and_reward_by_name(example_site):
    agent = rlte_plugins.make("agent", "ppo", env="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, seed=0)
    agent.set(encoder={"name": "residual_mlp", "width": 16, "blocks": 1}, reward="simhash_count")
    stats = agent.train(total_frames=128, progress=False)
    assert stats["frames"] == 128 and stats["intrinsic_reward"] > 0
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
