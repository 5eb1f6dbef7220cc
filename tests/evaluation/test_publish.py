"""Publishing a results folder to W&B, checked on the offline runs' own record logs.

A tiny suite (two finished seeds of ppo on CartPole-v1, one failed run) is published offline into a temporary
folder, and each ``run-*.wandb`` file is read back record by record: the run record (name, group, config), the
history and summary records, the artifact records. wandb 0.31 ships no Python reader of these files (the old
``wandb.sdk.internal.datastore`` went with the Python backend), so :func:`_records` reads their framing here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rlte_plugins.errors import ConfigError
from rlte_plugins.evaluation.results import FORMAT, MANIFEST, load_results, run_id, write_json_atomic, write_run_scores

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

from rlte_plugins.evaluation.publish import publish_run, publish_suite  # noqa: E402

TASK = "CartPole-v1"
STARTED = "2026-11-30T04:01:02+00:00"
FINAL_RETURNS = {0: [100.0, 120.0], 1: [200.0, 180.0]}
NAN = float("nan")


def _history(seed: int) -> list[dict[str, float]]:
    return [
        {"frames": 100, "charts/episodic_return": 10.0 + seed, "losses/policy_loss": 0.5},
        {"frames": 200, "losses/policy_loss": 0.4},  # no episode ended in this iteration
        {"frames": 300, "charts/episodic_return": 30.0 + seed, "losses/policy_loss": NAN},
    ]


def _config(seed: int) -> dict[str, Any]:
    return {
        "description": "ppo on CartPole",
        "agent": {"name": "ppo", "lr": 0.001, "num_envs": 8},
        "env": {"name": "gymnasium", "env_id": TASK},
        "encoder": {"name": "mlp", "num_cells": [64, 64]},
        "policy": None,
        "train": {"total_frames": 1000, "seed": seed},
    }


def _write_results(root: Path) -> Path:
    import torch
    from matplotlib.figure import Figure

    folder = root / "results"
    runs = {}
    for seed, status in ((0, "finished"), (1, "finished"), (2, "failed")):
        rid = run_id("ppo", TASK, seed)
        run_dir = folder / "runs" / rid
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(_config(seed), sort_keys=False), encoding="utf-8")
        finished = status == "finished"
        if finished:
            write_run_scores(folder / "scores" / f"{rid}.npz", FINAL_RETURNS[seed], _history(seed))
            torch.save({"w": torch.zeros(3) + seed}, run_dir / "checkpoint.pt")
            fig = Figure(figsize=(1, 1), dpi=16)
            fig.add_subplot().plot([0, 1], [0, seed])
            fig.savefig(run_dir / "learning_curve.png")
        runs[rid] = {
            "id": rid,
            "algorithm": "ppo",
            "task": TASK,
            "seed": seed,
            "status": status,
            "frames": 300 if finished else 0,
            "final_score": sum(FINAL_RETURNS[seed]) / 2 if finished else None,
            "config_hash": "c0ffee",
            "versions": {"python": "3.11.7", "torch": "2.13.0"},
            "started": STARTED,
            "finished": "2026-11-30T04:01:14+00:00",
            "wall_time": 12.5,
            "run_dir": f"runs/{rid}",
            "scores_file": f"scores/{rid}.npz" if finished else None,
            "error": None if finished else "RuntimeError: boom",
            "wandb": None,
        }
    manifest = {"format": FORMAT, "suite": "tiny", "tasks": {TASK: {"score_range": [0, 500]}}, "runs": runs}
    write_json_atomic(folder / MANIFEST, manifest)
    plot = Figure(figsize=(1, 1), dpi=16)
    plot.add_subplot().bar([0, 1], [1, 2])
    (folder / "plots").mkdir()
    plot.savefig(folder / "plots" / "aggregates.png")
    return folder


def _records(run_folder: str | Path) -> list[Any]:
    """The records of an offline run's ``run-*.wandb``: a 7-byte header (``:W&B``, magic, version), then chunks
    of ``crc32 (seeded with the chunk type) | length | type`` + payload that never cross a 32 KiB block (a block's
    tail shorter than a chunk header is zeros); a record is one full chunk, or first, middle... last."""
    (path,) = Path(run_folder).glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, header = 32768, 7
    pos, parts, out = header, [], []
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        payload = data[pos + header : pos + header + length]
        assert zlib.crc32(payload, zlib.crc32(bytes([kind]))) == crc, f"bad checksum at byte {pos}"
        pos += header + length
        parts.append(payload)
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            out.append(record)
            parts = []
    return out


def _of(records: list[Any], kind: str) -> list[Any]:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def _items(items: Any) -> dict[str, Any]:
    """Config, history or summary items as a dict; a nested key (a logged image's fields) becomes nested dicts."""
    out: dict[str, Any] = {}
    for item in items:
        *parents, last = list(item.nested_key) or [item.key]
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = json.loads(item.value_json)
    return out


def _summary(records: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for summary in _of(records, "summary"):
        out.update(_items(summary.update))
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The tiny suite published offline: ``(results folder, {"ppo__CartPole-v1__0": returned dict, ...,
    "suite": ...})``."""
    root = tmp_path_factory.mktemp("publish")
    folder = _write_results(root)
    with pytest.MonkeyPatch.context() as mp:
        _offline_here(mp, root)
        try:
            results = load_results(folder)
            out = {r["id"]: publish_run(results, r, project="rlte-test", tags=["smoke"]) for r in results.finished()}
            out["suite"] = publish_suite(results, project="rlte-test", plots=[folder / "plots" / "aggregates.png"])
        finally:
            wandb.teardown()
    yield folder, out


def _offline_here(mp: pytest.MonkeyPatch, root: Path) -> None:
    """W&B offline, writing only under ``root`` (its runs in ``root/wandb``), silent, with no credentials."""
    mp.chdir(root)
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("WANDB_DIR", str(root))
    for name in ("CONFIG", "CACHE", "DATA", "ARTIFACT"):  # nothing lands in the home directory
        mp.setenv(f"WANDB_{name}_DIR", str(root / "wandb-home" / name.lower()))
    mp.delenv("WANDB_API_KEY", raising=False)
    wandb.teardown()  # W&B reads its environment once per process, when first set up


def test_runs_have_cleanrl_names_groups_and_config(published: tuple[Path, dict[str, Any]]) -> None:
    folder, out = published
    for seed in (0, 1):
        where = out[run_id("ppo", TASK, seed)]
        assert (where["project"], where["entity"], where["group"], where["url"]) == ("rlte-test", None, "ppo", None)
        assert re.fullmatch(rf"CartPole-v1__ppo__{seed}__\d+", where["name"])
        assert where["name"].endswith("__1796011262")  # the run's start, 2026-11-30T04:01:02Z
        assert Path(where["offline_dir"]).name.startswith("offline-run-")
        assert Path(where["offline_dir"]).parent == folder.parent / "wandb"

        records = _records(where["offline_dir"])
        (run,) = _of(records, "run")
        assert (run.display_name, run.run_group, run.job_type) == (where["name"], "ppo", "train")
        assert list(run.tags) == ["tiny", "smoke"]
        config = _items(run.config.update)
        for config_record in _of(records, "config"):
            config.update(_items(config_record.update))
        assert (config["env_id"], config["exp_name"], config["seed"]) == (TASK, "ppo", seed)
        assert (config["agent.lr"], config["agent.num_envs"], config["encoder.num_cells"]) == (0.001, 8, [64, 64])
        assert (config["env.env_id"], config["train.total_frames"], config["train.seed"]) == (TASK, 1000, seed)
        assert (config["total_frames"], config["frames"], config["config_hash"]) == (1000, 300, "c0ffee")
        assert config["suite"] == "tiny" and config["versions"]["torch"] == "2.13.0"
        assert not any(k.startswith("policy") for k in config)  # a null section has no hyperparameters


def test_history_is_against_global_step(published: tuple[Path, dict[str, Any]]) -> None:
    _, out = published
    for seed in (0, 1):
        records = _records(out[run_id("ppo", TASK, seed)]["offline_dir"])
        (metric,) = _of(records, "metric")
        assert (metric.glob_name, metric.step_metric) == ("*", "global_step")
        rows = [_items(h.item) for h in _of(records, "history")]
        scalars = [{k: v for k, v in r.items() if not k.startswith(("_", "media/"))} for r in rows]
        expected = [
            {k: v for k, v in h.items() if k != "frames" and not math.isnan(v)} | {"global_step": h["frames"]}
            for h in _history(seed)
        ]
        assert scalars[:3] == expected
        assert "charts/episodic_return" not in rows[1] and "losses/policy_loss" not in rows[2]
        assert rows[3]["media/learning_curve"]["_type"] == "image-file" and rows[3]["global_step"] == 300

        summary = _summary(records)
        assert summary["eval/episodic_return"] == pytest.approx(sum(FINAL_RETURNS[seed]) / 2)
        assert summary["eval/episodic_return_std"] == pytest.approx(10.0)
        assert (summary["eval/episodes"], summary["global_step"], summary["wall_time"]) == (2, 300, 12.5)


def test_checkpoint_is_a_model_artifact_with_its_sha256(published: tuple[Path, dict[str, Any]]) -> None:
    folder, out = published
    for seed in (0, 1):
        rid = run_id("ppo", TASK, seed)
        sha256 = hashlib.sha256((folder / "runs" / rid / "checkpoint.pt").read_bytes()).hexdigest()
        assert (out[rid]["sha256"], out[rid]["artifact"]) == (sha256, rid)
        (artifact,) = [a for a in _of(_records(out[rid]["offline_dir"]), "artifact") if a.type == "model"]
        assert artifact.name == rid
        metadata = json.loads(artifact.metadata)
        assert metadata == {"sha256": sha256, "algorithm": "ppo", "task": TASK, "seed": seed, "frames": 300,
                            "config_hash": "c0ffee"}  # fmt: skip
        assert [c.path for c in artifact.manifest.contents] == ["checkpoint.pt"]


def test_suite_run_holds_every_run_in_a_table(published: tuple[Path, dict[str, Any]]) -> None:
    _, out = published
    where = out["suite"]
    assert re.fullmatch(r"tiny__summary__\d+", where["name"]) and where["group"] == "suite"
    assert where["artifact"] is None and where["sha256"] is None
    records = _records(where["offline_dir"])
    (run,) = _of(records, "run")
    assert run.job_type == "suite"
    assert _items(run.config.update)["score_ranges"] == {TASK: [0.0, 500.0]}
    (row,) = [_items(h.item) for h in _of(records, "history")]
    assert row["final_scores"]["_type"] == "table-file" and row["final_scores"]["nrows"] == 3
    assert row["plots/aggregates"]["_type"] == "image-file"
    table = json.loads((Path(where["offline_dir"]) / "files" / row["final_scores"]["path"]).read_text())
    assert table["columns"] == ["algorithm", "task", "seed", "status", "frames", "final_score", "wall_time",
                                "config_hash"]  # fmt: skip
    assert sorted((r[2], r[3], r[5]) for r in table["data"]) == [(0, "finished", 110.0), (1, "finished", 190.0),
                                                                 (2, "failed", None)]  # fmt: skip


def test_only_finished_runs_are_published(published: tuple[Path, dict[str, Any]]) -> None:
    results = load_results(published[0])
    (failed,) = [r for r in results.runs if r["status"] == "failed"]
    with pytest.raises(ValueError, match="status 'failed'"):
        publish_run(results, failed, project="rlte-test", mode="disabled")


def test_disabled_mode_publishes_nothing(published: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    results = load_results(published[0])
    with pytest.MonkeyPatch.context() as mp:
        _offline_here(mp, tmp_path)
        try:
            where = publish_run(results, results.finished()[0], project="rlte-test", mode="disabled")
        finally:
            wandb.teardown()
    assert (where["offline_dir"], where["url"]) == (None, None)
    assert where["sha256"] is not None and not (tmp_path / "wandb").exists()


def test_missing_wandb_says_what_to_install(
    published: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = load_results(published[0])
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=re.escape("pip install 'rlte-plugins[wandb]'")):
        publish_run(results, results.finished()[0], project="rlte-test")
    with pytest.raises(ConfigError, match=re.escape("pip install 'rlte-plugins[wandb]'")):
        publish_suite(results, project="rlte-test")


def test_a_suite_publishes_each_finished_run_once_and_its_figures(tmp_path: Path) -> None:
    import functools

    from rlte_plugins.bench.suite import load_suite, run_suite
    from rlte_plugins.evaluation import report

    suite = {
        "name": "wired", "seeds": 1, "set": {"train.eval_episodes": 2, "train.threads": 1, "train.logger": "none"},
        "tasks": {"torch_cartpole": {"env": {"name": "torch_cartpole", "max_episode_steps": 8}, "frames": 64}},
        "algorithms": {"ppo": {"config": {"agent": {"name": "ppo", "num_envs": 2, "num_steps": 8},
                                          "env": "torch_cartpole"}}},
    }  # fmt: skip
    path = tmp_path / "wired.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        _offline_here(mp, tmp_path)
        mp.setattr(report, "plot_results", functools.partial(report.plot_results, reps=100, curve_reps=10))
        try:
            results = run_suite(load_suite(path), tmp_path / "out", wandb_project="wired", echo=lines.append)
            run_suite(load_suite(path), tmp_path / "out", wandb_project="wired", echo=lines.append)
        finally:
            wandb.teardown()
    (record,) = results.finished()
    assert sum(line.startswith("published ppo__torch_cartpole__0") for line in lines) == 1  # not again on rerun
    records = _records(record["wandb"]["offline_dir"])
    (run,) = _of(records, "run")
    config = _items(run.config.update)
    assert config["agent.num_steps"] == 8 and config["agent.clip_epsilon"] == 0.2  # set, and the agent's default
    rows = [_items(h.item) for h in _of(records, "history")]
    assert any("charts/episodic_return" in row and "global_step" in row for row in rows)
    assert _summary(records)["eval/episodic_return"] == pytest.approx(record["final_score"])
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    suite_records = _records(manifest["wandb"]["offline_dir"])
    logged = set().union(*[_items(h.item) for h in _of(suite_records, "history")])
    assert {"final_scores", "plots/aggregates", "plots/sample_efficiency"} <= logged
