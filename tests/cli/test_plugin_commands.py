"""Plugins add `rlte` subcommands through `register_commands(cli)`; a plugin that gets it wrong breaks nothing."""

from __future__ import annotations

import json

import pytest

import rlte_plugins
from rlte_plugins import hookimpl
from rlte_plugins.cli import main, plugin_commands
from rlte_plugins.registry import Registry


def test_the_example_plugin_adds_a_command(example_site, capsys):
    plugins = {p.name: p for p in rlte_plugins.get_registry().plugins}
    assert "register_commands" in plugins["rlte_example"].hooks
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert "residual-mlp-size" in listed and "[rlte-example]" in " ".join(listed.split())
    argv = ["residual-mlp-size", "--in-features", "4", "--width", "8", "--blocks", "0", "1", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    # Linear(4, 8) and the final LayerNorm, plus per block a LayerNorm and two Linear(8, 8)
    assert [(r["blocks"], r["parameters"]) for r in rows] == [(0, 4 * 8 + 8 + 16), (1, 56 + 16 + 2 * (64 + 8))]
    assert main(["residual-mlp-size", "--in-features", "4", "--width", "0"]) == 2  # the encoder's own check
    assert capsys.readouterr().err == "error: encoder 'residual_mlp': width must be a positive int, got 0\n"


class Hello:
    """A plugin with a working command, and one whose own code fails when it runs."""

    @hookimpl
    def register_commands(self, cli):
        cli.add_command("hello", self.hello, help="say hello", configure=self.configure)
        cli.add_command("crash", self.crash, help="fail")

    @staticmethod
    def configure(parser):
        parser.add_argument("--name", default="world")

    @staticmethod
    def hello(args):
        print(f"hello {args.name}")
        return 3

    @staticmethod
    def crash(args):
        raise ValueError("a bug in the plugin")


class Raises:
    @hookimpl
    def register_commands(self, cli):
        cli.add_command("half", print, help="added before the hook fails: dropped with the rest")
        raise RuntimeError("register_commands is broken")


class TakesTrain:
    @hookimpl
    def register_commands(self, cli):
        cli.add_command("train", print, help="a built-in command's name")


class TakesDebug:
    @hookimpl
    def register_commands(self, cli):
        cli.add_command("debugged", print, help="clashes with rlte's --debug", configure=self.configure)

    @staticmethod
    def configure(parser):
        parser.add_argument("--debug")


@pytest.fixture()
def plugins(monkeypatch: pytest.MonkeyPatch) -> Registry:
    registry = Registry.from_plugins(
        [("hello", Hello()), ("raises", Raises()), ("takes_train", TakesTrain()), ("takes_debug", TakesDebug())]
    )
    monkeypatch.setattr(plugin_commands, "get_registry", lambda: registry)
    return registry


def test_commands_of_a_plugin_that_fails_are_reported_and_skipped(plugins, capsys):
    assert [info.name for info, _ in plugins.plugin_hooks("register_commands")] == [
        "hello",
        "raises",
        "takes_train",
        "takes_debug",
    ]
    assert main(["hello", "--name", "you"]) == 3  # the command's exit status
    captured = capsys.readouterr()
    assert captured.out == "hello you\n"
    warnings = captured.err.splitlines()
    assert len(warnings) == 3 and all(w.startswith("warning: plugin ") for w in warnings)
    assert "plugin raises 0: register_commands failed (RuntimeError: register_commands is broken" in warnings[0]
    assert "'takes_train' adds command 'train', which rlte already has" in warnings[1]
    assert "takes_debug" in warnings[2] and "--debug" in warnings[2]
    assert all(w.endswith("its commands are skipped") for w in warnings)
    for skipped in ("half", "debugged"):
        with pytest.raises(SystemExit) as exited:
            main([skipped])
        assert exited.value.code == 2  # argparse: invalid choice
    assert main(["list", "encoder", "mlp"]) == 0  # the built-in commands are untouched


def test_an_error_in_a_plugin_command_names_the_command_and_plugin(plugins, capsys):
    assert main(["crash"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: command 'crash' from hello 0 failed while being run: ValueError: a bug in the plugin "
        "(rerun with --debug for the traceback)"
    )
    assert main(["crash", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise ValueError("a bug in the plugin")' in err


def test_command_names_are_checked():
    cli = plugin_commands.Commands("mine", taken={"list"})
    for name in ("Bad", "two words", "-x", "x_y", "", None):
        with pytest.raises(rlte_plugins.RegistrationError, match="command name .* is invalid"):
            cli.add_command(name, print, help="h")
    with pytest.raises(rlte_plugins.RegistrationError, match="needs a one-line help"):
        cli.add_command("ok", print, help=" ")
    cli.add_command("ok", print, help="h")
    with pytest.raises(rlte_plugins.RegistrationError, match="'ok', which rlte already has"):
        cli.add_command("ok", print, help="twice")


def test_a_misspelt_command_hook_gets_a_did_you_mean():
    class Misspelt:
        @hookimpl
        def register_command(self, cli):
            pass

    registry = Registry.from_plugins([("misspelt", Misspelt())])
    assert registry.plugins[0].status == "failed"
    assert "did you mean 'register_commands'?" in registry.plugins[0].error
