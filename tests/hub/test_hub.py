"""The hub: the shipped results load by name and feed a plot; a trained agent goes through the registry, a local
artifact folder and W&B's offline mode and comes back acting the same; ``rlte hub`` exits 0 and 2 as it should.

Everything is written under a temporary ``RLTE_HUB_DIR``."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import rlte_plugins
from rlte_plugins import cli
from rlte_plugins.cli import hub as hub_cli
from rlte_plugins.errors import CheckpointError, ConfigError
from rlte_plugins.hub import LocalArtifactStore, datasets, models


@pytest.fixture(autouse=True)
def hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RLTE_HUB_DIR", str(tmp_path / "hub"))
    monkeypatch.delenv("RLTE_HUB_ARTIFACTS", raising=False)
    return tmp_path / "hub"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with a tiny trained PPO's ``checkpoint.pt`` and a ``summary.json``."""
    folder = tmp_path_factory.mktemp("run") / "ppo-run"
    folder.mkdir()
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=16)
    try:
        agent.train(256)
        agent.save(folder / "checkpoint.pt")
    finally:
        agent.close()
    (folder / "summary.json").write_text(json.dumps({"frames": 256, "eval_return_mean": 12.5, "eval_returns": [12.5]}))
    return folder


def _actions(agent: Any) -> torch.Tensor:
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    env = agent.make_env_like(4, seed=3)
    try:
        td = env.reset()
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            return agent.actor(td)["action"].clone()
    finally:
        env.close()


# -- datasets ------------------------------------------------------------------------------------------------
def test_shipped_dataset_loads_by_name_and_feeds_a_plot(tmp_path: Path) -> None:
    from rlte_plugins.evaluation import plot_sample_efficiency_curve, sample_efficiency_curve

    data = datasets.load("classic_control")
    assert data.path == datasets.shipped_dir() / "classic_control"
    assert (data.algorithms, data.tasks) == (["a2c", "ppo"], ["CartPole-v1", "torch_pendulum"])
    assert {a: s.shape for a, s in data.scores.items()} == {"a2c": (5, 2), "ppo": (5, 2)}
    assert {a: c.shape for a, c in data.curves.items()} == {"a2c": (5, 2, 50), "ppo": (5, 2, 50)}
    assert data.frames.shape == (50,) and np.isfinite(data.scores["ppo"]).all()

    only = datasets.load("classic_control", algorithm="ppo")
    assert only.algorithms == ["ppo"] and list(only.scores) == ["ppo"]
    np.testing.assert_array_equal(only.scores["ppo"], data.scores["ppo"])

    points, intervals = sample_efficiency_curve(data.curves, reps=50, random_state=0)
    written = plot_sample_efficiency_curve(data.frames, points, intervals, path=tmp_path / "curve", formats=["png"])
    assert [p.name for p in written] == ["curve.png"] and written[0].stat().st_size > 0


def test_unknown_dataset_or_algorithm_lists_what_exists(hub_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"no dataset 'nope'.*datasets: classic_control"):
        datasets.load("nope")
    with pytest.raises(ConfigError, match=r"no finished runs of 'sac' \(algorithms: a2c, ppo\)"):
        datasets.load("classic_control", algorithm="sac")


def test_hub_dataset_hides_the_shipped_one_and_travels_as_an_artifact(hub_home: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    assert datasets.push("classic_control", store=store)["ref"] == "classic_control:v0"
    folder = datasets.resolve("artifact:classic_control", store=store)
    assert folder == hub_home / "datasets" / "classic_control"
    assert datasets.resolve("classic_control") == folder  # the hub's copy comes before the shipped one
    listed = [(d["name"], d["source"], d["hidden"], d["runs"]) for d in datasets.list_datasets()]
    assert listed == [("classic_control", "hub", False, 20), ("classic_control", "shipped", True, 20)]


# -- models --------------------------------------------------------------------------------------------------
def test_register_list_load_and_refuse_a_changed_checkpoint(run_dir: Path, hub_home: Path) -> None:
    record = models.register("ppo-cartpole", run_dir, note="tiny")
    folder = hub_home / "models" / "ppo-cartpole"
    assert json.loads((folder / "model.json").read_text()) == record
    assert (record["agent"], record["frames"], record["metadata"]) == ("ppo", 256, {"note": "tiny"})
    assert record["env"]["name"] == "rlte_plugins:torch_cartpole" and record["evaluation"]["eval_return_mean"] == 12.5
    assert record["source"] == str((run_dir / "checkpoint.pt").resolve()) and record["versions"]["torch"]
    assert record["sha256"] == models.sha256_of(run_dir / "checkpoint.pt")
    assert [m["name"] for m in models.list_models()] == ["ppo-cartpole"]

    original = rlte_plugins.load_agent(run_dir / "checkpoint.pt")
    loaded = models.load("ppo-cartpole")
    try:
        assert loaded.frames == 256
        torch.testing.assert_close(_actions(loaded), _actions(original), rtol=0, atol=0)
    finally:
        loaded.close()
        original.close()

    with pytest.raises(ConfigError, match="already registered"):
        models.register("ppo-cartpole", run_dir)
    assert models.register("ppo-cartpole", run_dir, overwrite=True, note="again")["metadata"] == {"note": "again"}

    data = bytearray((folder / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "checkpoint.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"has sha256 [0-9a-f]{64}, but model.json records"):
        models.load("ppo-cartpole")

    models.remove("ppo-cartpole")
    assert models.list_models() == [] and not folder.exists()
    with pytest.raises(ConfigError, match=r"no model 'ppo-cartpole'.*registered: none"):
        models.load("ppo-cartpole")


@pytest.mark.parametrize("name", ["a/b", "../x", ".hidden", "", "a b"])
def test_bad_names_are_refused(run_dir: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="is not valid"):
        models.register(name, run_dir)


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        models.register("broken", tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        models.register("missing", tmp_path / "elsewhere")


def test_push_and_pull_through_a_local_artifact_folder(run_dir: Path, hub_home: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    first = models.push(run_dir, store=store)
    assert (first["name"], first["ref"]) == ("ppo-run", "ppo-run:v0")
    models.register("mine", run_dir)
    assert models.push("mine", "ppo-run", store=store)["ref"] == "ppo-run:v1"
    manifest = json.loads((tmp_path / "artifacts" / "ppo-run" / "v1" / "artifact.json").read_text())
    assert (manifest["type"], sorted(manifest["contents"])) == ("model", ["checkpoint.pt", "model.json"])
    assert manifest["contents"]["checkpoint.pt"]["sha256"] == first["sha256"]

    pulled = models.pull("ppo-run:v0", "copy", store=store)
    assert (pulled["name"], pulled["artifact"]["ref"], pulled["sha256"]) == ("copy", "ppo-run:v0", first["sha256"])
    with pytest.raises(ConfigError, match="already registered"):
        models.pull("ppo-run", "copy", store=store)
    agent = models.load("copy")
    try:
        assert agent.frames == 256
    finally:
        agent.close()
    with pytest.raises(ConfigError, match=r"has no version 'v7'.*v0, v1, latest"):
        models.pull("ppo-run:v7", store=store)
    with pytest.raises(ConfigError, match=r"no artifact 'other'.*stored: ppo-run"):
        models.pull("other", store=store)

    (tmp_path / "artifacts" / "ppo-run" / "v1" / "checkpoint.pt").write_bytes(b"tampered")
    with pytest.raises(ConfigError, match="does not match the SHA-256"):
        models.pull("ppo-run", "tampered", store=store)
    assert [m["name"] for m in models.list_models()] == ["copy", "mine"]  # nothing half-pulled is left


def test_push_to_wandb_offline_logs_a_model_artifact(run_dir: Path, tmp_path: Path) -> None:
    wandb = pytest.importorskip("wandb")
    publish = _load_test_module(Path(__file__).parents[1] / "evaluation" / "test_publish.py")
    from rlte_plugins.hub.store import WandbArtifactStore

    with pytest.MonkeyPatch.context() as mp:
        publish._offline_here(mp, tmp_path)
        try:
            where = models.push(run_dir, "ppo-offline", store=WandbArtifactStore(project="rlte-test"))
        finally:
            wandb.teardown()
    assert (where["store"], where["ref"], where["url"]) == ("wandb", "ppo-offline:latest", None)
    records = publish._records(where["offline_dir"])
    (artifact,) = [a for a in publish._of(records, "artifact") if a.type == "model"]
    assert artifact.name == "ppo-offline" and "latest" in list(artifact.aliases)
    metadata = json.loads(artifact.metadata)
    assert (metadata["sha256"], metadata["agent"], metadata["frames"]) == (where["sha256"], "ppo", 256)
    assert sorted(c.path for c in artifact.manifest.contents) == ["checkpoint.pt", "model.json"]


def test_pull_from_wandb_without_credentials_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    publish = _load_test_module(Path(__file__).parents[1] / "evaluation" / "test_publish.py")
    from rlte_plugins.hub.store import WandbArtifactStore

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login either
    with pytest.MonkeyPatch.context() as mp:
        publish._offline_here(mp, tmp_path)
        try:
            with pytest.raises(ConfigError, match=r"cannot fetch W&B artifact 'rlte-test/ppo:latest': No API key"):
                models.pull("ppo", store=WandbArtifactStore(project="rlte-test"))
        finally:
            wandb.teardown()
    assert models.list_models() == []


def _load_test_module(path: Path) -> Any:
    # the offline-run record reader lives with the publishing tests; loaded by path (tests are not a package)
    spec = importlib.util.spec_from_file_location("_hub_publish_records", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- command line --------------------------------------------------------------------------------------------
@pytest.fixture
def rlte(monkeypatch: pytest.MonkeyPatch) -> Any:
    if hub_cli not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, hub_cli))

    def run(*argv: str) -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            return int(exc.code)

    return run


def test_cli(rlte: Any, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rlte("hub", "datasets") == 0
    assert "classic_control  shipped  a2c, ppo" in capsys.readouterr().out
    assert rlte("hub", "models") == 0 and "(none)" in capsys.readouterr().out
    assert rlte("hub", "register", str(run_dir), "--name", "cli-model") == 0
    assert "registered 'cli-model'" in capsys.readouterr().out
    assert rlte("hub", "models") == 0
    assert re.search(r"\ncli-model\s+ppo\s+torch_cartpole\s+256\s+12\.50\s", capsys.readouterr().out)
    assert rlte("hub", "models", "--json") == 0
    assert [m["name"] for m in json.loads(capsys.readouterr().out)] == ["cli-model"]
    artifacts = str(tmp_path / "artifacts")
    assert rlte("hub", "push", "cli-model", "--artifacts", artifacts) == 0
    assert "as cli-model:v0" in capsys.readouterr().out
    assert rlte("hub", "pull", "cli-model", "--as", "pulled", "--artifacts", artifacts) == 0
    assert "pulled cli-model:v0 as 'pulled'" in capsys.readouterr().out
    assert rlte("hub", "remove", "pulled") == 0

    assert rlte("hub", "register", str(run_dir), "--name", "cli-model") == 2
    assert "already registered" in capsys.readouterr().err
    assert rlte("hub", "register", str(run_dir), "--name", "a/b") == 2
    assert rlte("hub", "pull", "nothing", "--artifacts", artifacts) == 2
    assert "error: no artifact 'nothing'" in capsys.readouterr().err
    assert rlte("hub", "remove", "nothing") == 2
    assert rlte("hub") == 2  # a subcommand is required
