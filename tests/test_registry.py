"""The registry contract: listing, make() argument checks, plugin failures, clash rule, allow/deny lists."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

import rlte_plugins
from rlte_plugins.registry import Registry, natural_key


def _plugin(**hooks):
    module = types.ModuleType("fake_plugin")
    for name, fn in hooks.items():
        setattr(module, name, rlte_plugins.hookimpl(fn))
    return module


def _mlp_factory(width: int, depth: int = 2):
    """A fake encoder factory.

    Longer text that is not the summary.
    """
    return ("mlp", width, depth)


def test_builtins_listed_with_provider_and_summary():
    specs = {(s.kind, s.name): s for s in rlte_plugins.list_components()}
    for key in [
        ("agent", "ppo"),
        ("encoder", "mlp"),
        ("encoder", "identity"),
        ("policy", "actor_critic"),
        ("distribution", "categorical"),
        ("distribution", "diagonal_gaussian"),
        ("storage", "rollout"),
        ("env", "gymnasium"),
    ]:
        assert key in specs
        assert specs[key].provider == "rlte-plugins"
        assert specs[key].summary and "\n" not in specs[key].summary


def test_pattern_and_kind_filter_and_natural_sort():
    names = [s.name for s in rlte_plugins.list_components("encoders", "m*")]
    assert names == ["mlp", "mnih_cnn"]
    assert sorted(["env10", "env2", "Env1"], key=natural_key) == ["Env1", "env2", "env10"]


HEAVY = ("torch", "gymnasium", "torchrl", "envpool", "dm_control", "ale_py", "minigrid", "pybullet", "robosuite")


def test_listing_imports_no_torch_or_backend():
    code = (
        "import sys, rlte_plugins; rlte_plugins.list_components(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda: rlte_plugins.make("encdoer", "mlp"), rlte_plugins.UnknownKindError, "did you mean 'encoder'"),
        (lambda: rlte_plugins.make("encoder", "mpl"), rlte_plugins.UnknownComponentError, "did you mean 'mlp'"),
        (
            lambda: rlte_plugins.make("encoder", "mlp", num_cell=[4]),
            rlte_plugins.ComponentArgumentError,
            "unexpected argument 'num_cell'; did you mean 'num_cells'",
        ),
        (
            lambda: rlte_plugins.make("env", "gymnasium"),
            rlte_plugins.ComponentArgumentError,
            "missing required argument 'env_id'",
        ),
    ],
)
def test_make_errors_are_one_clear_line(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_argument_error_lists_accepted_arguments():
    with pytest.raises(rlte_plugins.ComponentArgumentError, match=r"accepted: num_cells=\(64, 64\), activation='tanh'"):
        rlte_plugins.make("encoder", "mlp", bogus=1)


def test_make_records_how_the_component_was_made():
    enc = rlte_plugins.make("encoder", "mlp", num_cells=[8])
    assert enc._rlte_component.name == "rlte_plugins:mlp"
    assert enc._rlte_component.kwargs == {"num_cells": [8]}


def test_summary_defaults_to_docstring_first_line_and_lazy_targets_are_read_without_import():
    reg = Registry.from_plugins(
        [
            (
                "p",
                _plugin(
                    register_encoders=lambda register: (
                        register("callable", _mlp_factory),
                        register("lazy", "rlte_plugins.encoders.mlp:MLPEncoder"),
                        register("given", _mlp_factory, summary="Explicit.", tags=("a",)),
                    )
                ),
            )
        ]
    )
    assert reg.get("encoder", "callable").summary == "A fake encoder factory."
    assert reg.get("encoder", "lazy").summary.startswith("Multi-layer perceptron")
    assert reg.get("encoder", "given").summary == "Explicit."
    assert reg.get("encoder", "given").tags == ("a",)


def test_clash_rule_builtin_wins_and_third_party_clash_needs_qualified_name():
    def one(register):
        register("enc", lambda width=1: ("one", width))

    def two(register):
        register("enc", lambda width=1: ("two", width))

    reg = Registry.from_plugins(
        [("rlte_plugins", _plugin(register_encoders=one)), ("other", _plugin(register_encoders=two))]
    )
    assert reg.get("encoder", "enc").plugin == "rlte_plugins"
    assert reg.get("encoder", "other:enc").plugin == "other"

    reg = Registry.from_plugins([("a", _plugin(register_encoders=one)), ("b", _plugin(register_encoders=two))])
    with pytest.raises(rlte_plugins.AmbiguousComponentError, match="'a:enc', 'b:enc'"):
        reg.get("encoder", "enc")
    assert reg.get("encoder", "b:enc").load()() == ("two", 1)
    assert [s.qualified_name for s in reg.specs("encoder")] == ["a:enc", "b:enc"]


@pytest.mark.parametrize(
    ("hooks", "fragment"),
    [
        ({"register_encoders": lambda register: register("Bad Name", _mlp_factory)}, "is invalid"),
        ({"register_encoders": lambda register: register("x", 42)}, "factory must be callable"),
        ({"register_encoders": lambda register: register("x", "no_colon")}, "must look like"),
        ({"register_encoders": lambda register: register("x", _mlp_factory, colour="red")}, "unknown metadata"),
        ({"register_encoderz": lambda register: None}, "register_encoderz"),
        ({"register_encoders": lambda register: 1 / 0}, "ZeroDivisionError"),
    ],
)
def test_broken_plugin_is_reported_and_none_of_its_components_kept(hooks, fragment):
    def good(register):
        register("fine", _mlp_factory)

    bad = _plugin(register_policies=lambda register: register("half", _mlp_factory), **hooks)
    reg = Registry.from_plugins([("good", _plugin(register_encoders=good)), ("bad", bad)])
    status = {p.name: p for p in reg.plugins}
    assert status["good"].status == "loaded" and status["good"].components == 1
    assert status["bad"].status == "failed" and fragment in status["bad"].error
    assert [s.name for s in reg.specs()] == ["fine"]


def test_plugin_registering_the_same_name_twice_fails():
    def twice(register):
        register("dup", _mlp_factory)
        register("dup", _mlp_factory)

    reg = Registry.from_plugins([("p", _plugin(register_encoders=twice))])
    assert reg.plugins[0].status == "failed" and "twice" in reg.plugins[0].error


def _rlte_json(*args, env=None):
    import os

    out = subprocess.run(
        [sys.executable, "-m", "rlte_plugins.cli", *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return json.loads(out.stdout)


def test_allow_and_deny_lists(broken_site):
    plugins = {
        p["name"]: p["status"] for p in _rlte_json("plugins", env={"RLTE_DISABLE_PLUGINS": "rlte_broken, rlte-example"})
    }
    assert plugins == {"rlte_plugins": "loaded", "rlte_example": "disabled", "rlte_broken": "disabled"}
    plugins = {p["name"]: p["status"] for p in _rlte_json("plugins", env={"RLTE_PLUGINS": "rlte-example"})}
    assert plugins == {"rlte_plugins": "loaded", "rlte_example": "loaded", "rlte_broken": "disabled"}
