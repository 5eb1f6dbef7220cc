"""rlte ask: the tokeniser and BM25 against hand computations, ten questions answered with the right components,
every snippet run for real, a third-party component found, the LLM endpoint and its failures, the CLI."""

from __future__ import annotations

import ast
import http.server
import json
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator

import pytest

import rlte_plugins
from rlte_plugins.ask import ask
from rlte_plugins.ask.index import BM25Index, stem, tokenize
from rlte_plugins.cli import main
from rlte_plugins.errors import MissingDependencyError
from rlte_plugins.registry import PluginInfo, Registry


# -- index -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("DrQ-v2", ["drqv2", "drq", "v2", "dr", "q"]),
        ("walker_walk", ["walkerwalk", "walker", "walk"]),
        (
            "MiniGrid-DoorKey-8x8-v0",
            ["minigriddoorkey8x8v0", "minigrid", "doorkey", "8x8", "v0", "mini", "grid", "door", "key"],
        ),
        ("PPO on the CartPole", ["ppo", "cartpol", "cart", "pole"]),
        ("prioritized replay buffers", ["prioritiz", "replay", "buffer"]),
        ("e3b RND", ["e3b", "rnd"]),
    ],
)
def test_tokenize_splits_identifiers_lowercases_and_stems(text, terms):
    assert tokenize(text) == terms


def test_stem_is_the_same_on_both_sides():
    assert stem("policies") == stem("policy") == "policy"
    assert stem("embedding") == stem("embed")
    assert stem("class") == "class"


def test_bm25_matches_a_hand_computation():
    # N = 3, avgdl = 2; idf(a) = ln(2.5 / 1.5 + 1) = 0.980829, idf(b) = ln(1.5 / 2.5 + 1) = 0.470004
    # doc 0 (|D| = 3): K = 1.5 * (0.25 + 0.75 * 1.5) = 2.0625; a: 0.980829 * 2 * 2.5 / 4.0625 = 1.207174,
    #   b: 0.470004 * 2.5 / 3.0625 = 0.383677; doc 1 (|D| = 2): K = 1.5; b: 0.470004 * 2.5 / 2.5
    index = BM25Index([["a", "b", "a"], ["b", "c"], ["d"]])
    assert index.scores(["a", "b"]) == pytest.approx([1.590851, 0.470004, 0.0], abs=1e-6)
    assert BM25Index([["a"]], k1=1.5, b=0.75).k1 == 1.5


# -- ten questions ---------------------------------------------------------------------------------------------
QUESTIONS = {
    "train DrQ-v2 on walker walk from pixels": {"agent": {"drqv2"}, "env": {"dmc"},
                                                "env_kwargs": {"task": "walker_walk", "from_pixels": True}},
    "PPO on CartPole as fast as possible": {"agent": {"fast_ppo", "ppo"}, "env": {"torch_cartpole"}},
    "curiosity-driven exploration with RND on MiniGrid": {"reward": {"rnd"}, "env": {"minigrid"}},
    "SAC on pendulum": {"agent": {"sac"}, "env": {"torch_pendulum"}},
    "random shift augmentation": {"augmentation": {"random_shift"}},
    "prioritized replay for DQN": {"agent": {"dqn"}, "storage": {"prioritized_replay"}},
    "IMPALA encoder for Procgen": {"encoder": {"espeholt_resnet"}, "env": {"procgen"}},
    "export a policy to ONNX": {"docs": "deployment", "recipes": "deploy_onnx", "snippet": "export_onnx("},
    "evaluate with IQM": {"docs": "evaluation", "snippet": "aggregate_iqm"},
    "TD3 on DeepMind Control cheetah run from states": {"agent": {"td3"}, "env": {"dmc"},
                                                        "env_kwargs": {"task": "cheetah_run"}},
}  # fmt: skip


@pytest.fixture(scope="module")
def answers() -> dict[str, object]:
    return {question: ask(question, offline=True) for question in QUESTIONS}


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_answers_name_the_right_components(question, answers):
    result, expected = answers[question], QUESTIONS[question]
    used = result.plan.component_names()
    retrieved = {(c["kind"], c["name"]) for c in result.components}
    for kind, names in expected.items():
        if kind == "env_kwargs":
            assert names.items() <= result.plan.env_kwargs.items()
        elif kind == "docs":
            assert any(names in d["ref"] for d in result.docs), result.docs
        elif kind == "recipes":
            assert any(names in r["ref"] for r in result.recipes), result.recipes
        elif kind == "snippet":
            assert names in result.snippet
        else:
            assert used[kind] in names, (kind, used)
            assert (kind, used[kind]) in retrieved  # what the snippet uses is among the sources
    if "from states" in question:
        assert "from_pixels" not in result.plan.env_kwargs


def test_a_matching_packaged_recipe_is_offered_with_the_question_s_task(answers):
    drqv2 = answers["train DrQ-v2 on walker walk from pixels"]
    assert drqv2.plan.command == "rlte train drqv2_dmc --set env.task=walker_walk"
    assert any(r["ref"].startswith("rlte_plugins/configs/drqv2_dmc.yaml:") for r in drqv2.recipes)
    assert answers["SAC on pendulum"].plan.command == "rlte train sac_pendulum"


#: statements after the training call that cost more than a unit test should on these envs (rendered DMC
#: episodes, 64 Procgen games); there the snippet runs up to the training call
SLOW_TAILS = ("dmc", "procgen", "minigrid")


def _statements(snippet: str, env: str) -> ast.Module:
    """The snippet without its training call (``agent.train(...)``: skipped, documented in the snippet's own
    rule, see snippet.render) and, on :data:`SLOW_TAILS` envs, without what follows it."""
    tree = ast.parse(snippet)
    kept = []
    for node in tree.body:
        is_train = (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "train"
        )
        if is_train:
            if env in SLOW_TAILS:
                break
            continue
        kept.append(node)
    assert len(kept) < len(tree.body), "the snippet has no agent.train(...) call"
    tree.body = kept
    return tree


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_every_snippet_runs(question, answers, tmp_path, monkeypatch):
    result = answers[question]
    monkeypatch.chdir(tmp_path)  # what a snippet saves (agent.pt, policy.onnx) lands here
    namespace: dict[str, object] = {}
    try:
        exec(compile(_statements(result.snippet, result.plan.env), "<snippet>", "exec"), namespace)  # noqa: S102
    except MissingDependencyError as exc:
        pytest.skip(f"{result.plan.env}: {exc}")
    agent = namespace["agent"]
    agent.build()  # every component built against the env's specs: what training does first
    assert agent.built
    agent.close()


# -- third-party components ----------------------------------------------------------------------------------------
def _wavelet_encoder(in_features: int = 4, scales: int = 3):
    """Wavelet scattering encoder: multiscale Haar features of a vector observation."""
    return ("wavelet", in_features, scales)


@pytest.fixture()
def third_party(monkeypatch) -> Iterator[Registry]:
    plugin = types.ModuleType("rlte_wavelets")
    plugin.register_encoders = rlte_plugins.hookimpl(
        lambda register: register("wavelet_scattering", _wavelet_encoder, tags=("vector", "multiscale"))
    )
    registry = Registry.from_entry_points()
    registry.add_plugin(plugin, PluginInfo("rlte_wavelets", "rlte-wavelets", "1.0", "rlte_wavelets"))
    monkeypatch.setattr(rlte_plugins.registry, "get_registry", lambda: registry)
    yield registry


def test_a_third_party_component_is_retrieved(third_party):
    result = ask("multiscale wavelet scattering features", offline=True)
    top = result.components[0]
    assert (top["kind"], top["name"], top["provider"]) == ("encoder", "wavelet_scattering", "rlte-wavelets")
    assert ask("a wavelet encoder", offline=True).plan.slots["encoder"] == "wavelet_scattering"


def test_without_docs_the_answer_says_so_and_goes_on(monkeypatch, tmp_path):
    monkeypatch.setenv("RLTE_DOCS_DIR", str(tmp_path / "missing"))
    result = ask("SAC on pendulum", offline=True)
    assert any("RLTE_DOCS_DIR" in w and "without the docs" in w for w in result.warnings)
    assert result.plan.agent == "sac" and all(d["ref"].startswith("README.md") for d in result.docs)


# -- the LLM endpoint ------------------------------------------------------------------------------------------------
QUESTION = "train DrQ-v2 on walker walk from pixels"


def _serve(respond: Callable[[http.server.BaseHTTPRequestHandler, dict], None]) -> Iterator[str]:
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            try:
                respond(self, body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the timeout case)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def _reply(handler: http.server.BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def test_the_endpoint_answers_from_the_retrieved_context(monkeypatch, capsys):
    def respond(handler, body):
        message = {"role": "assistant", "content": "Run rlte train drqv2_dmc (from the model)"}
        answer = {"choices": [{"message": message}]}
        _reply(handler, 200, json.dumps(answer).encode())

    server = _serve(respond)
    url, seen = next(server)
    monkeypatch.setenv("RLTE_LLM_URL", url)
    monkeypatch.setenv("RLTE_LLM_MODEL", "tiny-test-model")
    monkeypatch.setenv("RLTE_LLM_API_KEY", "secret")
    try:
        assert main(["ask", QUESTION]) == 0
    finally:
        server.close()
    out, err = capsys.readouterr()
    assert "Run rlte train drqv2_dmc (from the model)" in out and "```python" in out and "sources (" in out
    assert err == ""
    (request,) = seen
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
    assert request["body"]["model"] == "tiny-test-model"
    system, user = request["body"]["messages"]
    assert system["role"] == "system" and "only" in system["content"] and "component names" in system["content"]
    for name in ("drqv2", "dmc", "random_shift", "walker_walk", "rlte train drqv2_dmc"):
        assert name in user["content"], name
    assert main(["ask", QUESTION, "--offline"]) == 0  # the variable ignored: nothing more reaches the server
    assert len(seen) == 1 and "from the model" not in capsys.readouterr().out


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("failure", ["refused", "http500", "garbage", "timeout"])
def test_an_unusable_endpoint_falls_back_offline_with_one_warning(failure, monkeypatch, capsys):
    responses = {
        "http500": lambda h, b: _reply(h, 500, b'{"error": "boom"}'),
        "garbage": lambda h, b: _reply(h, 200, b"<html>not json"),
        "timeout": lambda h, b: (time.sleep(1.5), _reply(h, 200, b"{}")),
    }
    assert main(["ask", QUESTION, "--offline"]) == 0
    offline = capsys.readouterr().out
    server = _serve(responses[failure]) if failure in responses else None
    url = next(server)[0] if server else _closed_port()
    monkeypatch.setenv("RLTE_LLM_URL", url)
    monkeypatch.setenv("RLTE_LLM_TIMEOUT", "0.5")
    try:
        assert main(["ask", QUESTION]) == 0
    finally:
        if server:
            server.close()
    out, err = capsys.readouterr()
    assert out == offline and "```python" in out
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"warning: RLTE_LLM_URL {url} unreachable (") and lines[0].endswith("answered offline")


# -- the CLI -------------------------------------------------------------------------------------------------------
def test_cli_json(capsys):
    assert main(["ask", "SAC", "on", "pendulum", "--json", "--offline", "--top", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"question", "answer", "snippet", "components", "docs", "recipes", "llm", "warnings"}
    assert data["question"] == "SAC on pendulum" and data["llm"] is None
    used = {(c["kind"], c["name"]) for c in data["components"] if c["used"]}
    assert {("agent", "sac"), ("env", "torch_pendulum")} <= used
    assert len(data["docs"]) <= 2 and len(data["recipes"]) <= 2
    assert data["command"] == "rlte train sac_pendulum"


@pytest.mark.parametrize("argv", [["ask", ""], ["ask", "   "]])
def test_cli_refuses_an_empty_question(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: rlte ask needs a question") and len(err.splitlines()) == 1
