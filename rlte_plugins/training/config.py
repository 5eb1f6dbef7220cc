"""Training configurations: YAML files (or packaged recipes) with ``--set key=value`` overrides, checked."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rlte_plugins.errors import ConfigError

COMPONENT_SECTIONS = ("env", "encoder", "policy", "distribution", "storage", "augmentation", "reward")
TRAIN_KEYS = {
    "total_frames": "frames to train for (int)",
    "seed": "seed of torch, numpy, Python and the env (int)",
    "device": "training device, e.g. cpu or cuda (str)",
    "eval_episodes": "episodes of each deterministic evaluation, during training and at the end (int, 0 skips the "
    "final one)",
    "eval_every": "iterations between evaluations during training (int, 0: none; logged as eval/episodic_return)",
    "stop_conditions": "conditions over logged keys, e.g. [{hits_upper_bound: {key: eval/episodic_return, bound: "
    "475}}] (list)",
    "logger": "TorchRL logger: csv, tensorboard, wandb, mlflow or none (str)",
    "output": "run directory for logs, checkpoint, curve and summary (str)",
    "checkpoint_every": "frames between checkpoints (int, null: only at the end)",
    "progress": "show progress (bool)",
    "threads": "torch's CPU thread count (int, null: torch's default)",
}
TOP_KEYS = ("description", "agent", *COMPONENT_SECTIONS, "train")
DEFAULT_TRAIN: dict[str, Any] = {
    "total_frames": 100_000,
    "seed": 0,
    "device": "cpu",
    "eval_episodes": 10,
    "logger": "csv",
    "output": None,
    "checkpoint_every": None,
    "progress": True,
    "eval_every": 0,
    "stop_conditions": [],
    "threads": None,
}


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``3e-4`` as a string; this loader reads it as a float, as YAML 1.2 and people do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def recipes_dir() -> Path:
    """The folder of the recipes packaged with rlte-plugins (``rlte train NAME`` reads ``NAME.yaml`` there)."""
    return Path(str(resources.files("rlte_plugins"))) / "configs"


def recipe_names() -> list[str]:
    """Names of the recipes packaged with rlte-plugins (``rlte train NAME``)."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def load_config(target: str) -> tuple[dict[str, Any], str]:
    """Read a YAML file, or the packaged recipe called ``target``; returns the config and its source."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {target!r} does not exist")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        names = recipe_names()
        if target not in names:
            raise ConfigError(f"unknown recipe {target!r} (recipes: {', '.join(names)}; or pass a YAML file)")
        text = (recipes_dir() / f"{target}.yaml").read_text(encoding="utf-8")
        source = f"recipe {target!r}"
    try:
        config = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{source} must be a mapping of sections ({', '.join(TOP_KEYS)})")
    return config, source


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML: ``3e-4``, ``[64, 64]``, ``true``)."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. agent.lr=3e-4), got {item!r}")
        try:
            value = parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        parts = key.strip().split(".")
        node = config
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part != "train":
                child = {"name": child}  # `encoder: mlp` grows into a mapping when a key is set under it
            elif child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
            node[part] = child
            node = child
        node[parts[-1]] = value
    return config


def normalize_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Check the sections and fill defaults: every component section becomes ``{"name": ..., **kwargs}``."""
    unknown = [k for k in config if k not in TOP_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {source} (accepted: {', '.join(TOP_KEYS)})")
    out: dict[str, Any] = {"description": config.get("description", "")}
    for section in ("agent", *COMPONENT_SECTIONS):
        value = config.get(section)
        if value is None:
            if section in ("agent", "env"):
                raise ConfigError(f"{source} needs an {section!r} section")
            out[section] = None
            continue
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ConfigError(f"section {section!r} in {source} must be a name or a mapping with a 'name' key")
        out[section] = dict(value)
    train = dict(DEFAULT_TRAIN)
    given = config.get("train") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"section 'train' in {source} must be a mapping")
    bad = [k for k in given if k not in TRAIN_KEYS]
    if bad:
        raise ConfigError(f"unknown key {bad[0]!r} in section 'train' of {source} (accepted: {', '.join(TRAIN_KEYS)})")
    train.update(given)
    for key in ("total_frames", "threads", "checkpoint_every"):
        value = train[key]
        optional = key != "total_frames"
        if not (optional and value is None) and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"train.{key} must be a positive int{' or null' if optional else ''}, got {value!r}")
    for key in ("eval_every", "eval_episodes"):
        if not isinstance(train[key], int) or isinstance(train[key], bool) or train[key] < 0:
            raise ConfigError(f"train.{key} must be an int >= 0, got {train[key]!r}")
    if not isinstance(train["stop_conditions"], list):
        raise ConfigError(f"train.stop_conditions must be a list, got {train['stop_conditions']!r}")
    out["train"] = train
    return out
