"""The registry contract: listing, make() argument checks, plugin failures, clash rule, allow/deny lists."""

from __future__ import annotations

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
        ("agent", "fast_ppo"),
        ("agent", "ppo_lstm"),
        ("agent", "a2c"),
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


def test_misspelt_hook_gets_did_you_mean():
    reg = Registry.from_plugins([("p", _plugin(register_encoder=lambda register: None))])
    assert reg.plugins[0].status == "failed"
    assert "unknown hook 'register_encoder'; did you mean 'register_encoders'?" in reg.plugins[0].error


def test_hook_without_hookimpl_is_reported():
    module = types.ModuleType("unmarked_plugin")
    module.register_encoders = lambda register: register("never", _mlp_factory)
    module.register_rewardz = lambda register: None
    reg = Registry.from_plugins([("p", module)])
    assert reg.plugins[0].status == "loaded" and reg.plugins[0].components == 0
    problems = [p.problem for p in rlte_plugins.registry.plugin_problems(reg)]
    assert any(
        "register_encoders is not marked with @rlte_plugins.hookimpl, so it is never called" in p for p in problems
    )
    assert any("register_rewardz is not marked" in p and "called 'register_rewards'" in p for p in problems)


@pytest.mark.parametrize(
    ("group", "near"),
    [
        ("rlte-plugins", True),
        ("rlte_plugin", True),
        ("RLTE_PLUGINS", True),
        ("rlte_plugins", False),
        ("pytest11", False),
    ],
)
def test_entry_point_groups_close_to_ours(group, near):
    assert rlte_plugins.registry._near_group(group) is near


def _failing_factory(error: Exception):
    def factory(width: int = 1):
        """Raises whatever it was given."""
        raise error

    return factory


@pytest.fixture()
def own_registry(monkeypatch):
    """Point make() at a registry of in-process plugins for one test."""

    def use(**encoders):
        def register_encoders(register):
            for name, factory in encoders.items():
                register(name, factory)

        reg = Registry.from_plugins([("p", _plugin(register_encoders=register_encoders))])
        monkeypatch.setattr(rlte_plugins.registry, "get_registry", lambda: reg)
        return reg

    return use


def test_make_names_the_component_whose_constructor_raised(own_registry):
    import pickle

    original = ValueError("width must be even\nsecond line")
    own_registry(bad=_failing_factory(original))
    with pytest.raises(ValueError) as info:  # still the original type for Python callers
        rlte_plugins.make("encoder", "bad")
    err = info.value
    assert isinstance(err, rlte_plugins.errors.ComponentError) and err.__cause__ is original
    assert str(err) == "encoder 'bad' from p 0 failed while being made: ValueError: width must be even"
    assert (err.kind, err.name, err.provider, err.version) == ("encoder", "bad", "p", "0")
    copy = pickle.loads(pickle.dumps(err))  # crosses process boundaries (bench workers)
    assert isinstance(copy, ValueError) and str(copy) == str(err) and copy.provider == "p"


def test_make_passes_deliberate_errors_and_names_the_innermost_component(own_registry):
    deliberate = rlte_plugins.SpecMismatchError("encoder 'bad': does not fit")

    def outer(width: int = 1):
        return rlte_plugins.make("encoder", "inner")

    own_registry(bad=_failing_factory(deliberate), inner=_failing_factory(KeyError("k")), outer=outer)
    with pytest.raises(rlte_plugins.SpecMismatchError) as info:
        rlte_plugins.make("encoder", "bad")
    assert info.value is deliberate
    with pytest.raises(KeyError, match="encoder 'inner' from p 0 failed while being made: KeyError: 'k'"):
        rlte_plugins.make("encoder", "outer")


def test_build_errors_are_traced_back_to_their_component(own_registry):
    from rlte_plugins.registry import component_failure

    class Built:
        def __init__(self, width: int = 1):
            self.width = width

        def build(self):
            return [][self.width]

    own_registry(built=Built)
    component = rlte_plugins.make("encoder", "built")
    with pytest.raises(IndexError) as info:
        component.build()
    err = component_failure(info.value)
    assert str(err) == "encoder 'built' from p 0 failed while being built: IndexError: list index out of range"
    assert isinstance(err, IndexError) and err.__cause__ is info.value
    with pytest.raises(IndexError) as info:
        [][1]
    assert component_failure(info.value) is None  # not from a component: a bug to show in full
    assert component_failure(rlte_plugins.ConfigError("bad key")) is None


def test_qualified_name_of_a_plugin_that_is_not_loaded_says_why():
    from rlte_plugins.registry import PluginInfo

    reg = Registry.from_plugins([("p", _plugin(register_encoders=lambda register: register("enc", _mlp_factory)))])
    reg.plugins.append(PluginInfo("off", "rlte-off", "2.0", "rlte_off", status="disabled"))
    with pytest.raises(rlte_plugins.UnknownComponentError, match="comes from plugin 'gone', which is not installed"):
        reg.get("encoder", "gone:enc")
    with pytest.raises(rlte_plugins.UnknownComponentError, match=r"plugin 'off' \(rlte-off\), which is disabled"):
        reg.get("encoder", "off:enc")
    with pytest.raises(rlte_plugins.UnknownComponentError, match="did you mean 'p:enc'"):
        reg.get("encoder", "p:emc")  # a loaded plugin: a misspelt name
    assert reg.unavailable("gone", "rlte-gone", "1.2") == (
        "plugin 'gone' (rlte-gone 1.2), which is not installed: pip install 'rlte-gone==1.2'"
    )
