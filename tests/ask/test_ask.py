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
from rlte_plugins.ask import ask, llm, snippet
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


#: envs where what follows the training call costs more than a unit test should (rendered DMC episodes, 64
#: Procgen games, an untrained agent's Atari episodes): there the snippet runs up to and through its training call
SLOW_TAILS = ("dmc", "procgen", "minigrid", "envpool", "atari")
#: envs whose first training iteration is itself long on CPU (Procgen: 64 games x 128 steps through a ResNet
#: before PPO checks its budget): there the snippet builds its agent in place of training it
BUILD_ONLY = ("procgen",)
#: frames each snippet trains in the tests, in place of its own total
TEST_FRAMES = 64
#: the review's questions whose snippets did not run, and the clash-free ones that must keep running
REVIEW_QUESTIONS = {
    "train DQN on pendulum": {"agent": "sac", "env": "torch_pendulum", "warning": "'dqn' acts on discrete actions"},
    "DrQ on cartpole swingup": {"agent": "drq", "env": "dmc", "env_kwargs": {"task": "cartpole_swingup"}},
    "PPO on envpool Breakout-v5": {"agent": "ppo", "env": "envpool", "env_kwargs": {"task_id": "Breakout-v5"}},
    "SAC on bullet HalfCheetah": {"agent": "sac", "env": "bullet", "env_kwargs": {"task": "HalfCheetah"}},
    "PPO on envpool": {"agent": "ppo", "env": "gymnasium", "warning": "env 'envpool' needs task_id=..."},
    "PPO on rl8": {"agent": "ppo", "env": "gymnasium", "warning": "env 'rl8' needs env_cls=..."},
}


def _runnable(snippet: str, env: str) -> ast.Module:
    """The snippet training :data:`TEST_FRAMES` frames and evaluating one episode; on :data:`SLOW_TAILS` envs,
    without what follows the training call (on :data:`BUILD_ONLY` envs, building the agent in its place)."""
    tree = ast.parse(snippet)
    trains = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "train":
            node.args = [ast.Constant(TEST_FRAMES)]
            trains += 1
        if isinstance(node, ast.keyword) and node.arg == "episodes":
            node.value = ast.Constant(1)
    assert trains == 1, "the snippet has not one agent.train(...) call"
    if env in SLOW_TAILS:
        body = tree.body
        cut = next(i for i, n in enumerate(body) if "agent.train(" in ast.unparse(n))
        tree.body = body[: cut + 1]
        if env in BUILD_ONLY:
            tree.body[cut] = ast.parse("agent.build()").body[0]
    return ast.fix_missing_locations(tree)


def _run(result: object) -> dict[str, object]:
    """Runs ``result``'s snippet (see :func:`_runnable`); a skip only where the env's backend is not installed."""
    namespace: dict[str, object] = {}
    try:
        exec(compile(_runnable(result.snippet, result.plan.env), "<snippet>", "exec"), namespace)  # noqa: S102
    except MissingDependencyError as exc:
        pytest.skip(f"env {result.plan.env!r} needs a backend that is not installed here: {exc}")
    return namespace


@pytest.mark.parametrize("question", [*QUESTIONS, *REVIEW_QUESTIONS])
def test_every_snippet_runs(question, answers, tmp_path, monkeypatch):
    result = answers[question] if question in answers else ask(question, offline=True)
    monkeypatch.chdir(tmp_path)  # what a snippet saves (agent.pt, policy.onnx) lands here
    namespace = _run(result)
    agent = namespace["agent"]
    assert agent.built and (result.plan.env in BUILD_ONLY or agent.frames >= TEST_FRAMES)
    if result.plan.intent == "evaluate":  # one mean return per seed: rliable's runs
        assert namespace["scores"].shape == (snippet.EVALUATION_SEEDS, 1)
    agent.close()


@pytest.mark.parametrize("question", list(REVIEW_QUESTIONS))
def test_the_review_s_questions_get_a_fitting_plan(question):
    result, expected = ask(question, offline=True), REVIEW_QUESTIONS[question]
    assert (result.plan.agent, result.plan.env) == (expected["agent"], expected["env"])
    assert expected.get("env_kwargs", {}).items() <= result.plan.env_kwargs.items()
    if "warning" in expected:
        assert any(expected["warning"] in w for w in result.warnings), result.warnings
    if question == "train DQN on pendulum":
        assert "'sac' instead" in result.warnings[0]
    if question == "DrQ on cartpole swingup":
        assert result.plan.pixels and not result.warnings


@pytest.mark.parametrize(
    ("question", "warning"),
    [
        (
            "compare PPO and SAC on pendulum",
            "the question names several agents ('ppo' too): the snippet uses 'sac' only",
        ),
        ("how do I use PPO with RND on Montezuma", "'Montezuma' matches no component, env or task: left out"),
        (
            "how do I use PPO with RND on Montezuma",
            "no env named: the snippet uses 'minigrid' (recipe ppo_rnd_minigrid)",
        ),
        ("random shift augmentation", "no agent or env named: the snippet trains"),
        ("PPO on dmc", "no dmc task named: the snippet uses task='cartpole_swingup'"),
    ],
)
def test_silent_substitutions_are_warned(question, warning):
    warnings = ask(question, offline=True).warnings
    assert any(w.startswith(warning) for w in warnings), warnings


def test_named_things_give_no_warning(answers):
    for question in ("train DrQ-v2 on walker walk from pixels", "TD3 on DeepMind Control cheetah run from states"):
        assert answers[question].warnings == []
    assert ask("fast PPO on cartpole", offline=True).warnings == []


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


def _task_env(task: str, num_envs: int = 1):
    """Any task of an external simulator: its tasks cannot be listed."""
    return rlte_plugins.make("env", "torch_pendulum", num_envs=num_envs)


def test_an_env_whose_tasks_cannot_be_listed_takes_the_question_s_task_id(third_party):
    plugin = types.ModuleType("rlte_simulator")
    plugin.register_envs = rlte_plugins.hookimpl(
        lambda register: register("simulator", _task_env, tags=("vector", "continuous"))
    )
    third_party.add_plugin(plugin, PluginInfo("rlte_simulator", "rlte-simulator", "1.0", "rlte_simulator"))
    result = ask("SAC on simulator Reacher-v2", offline=True)
    assert (result.plan.env, result.plan.env_kwargs) == ("simulator", {"task": "Reacher-v2"})
    without = ask("SAC on simulator", offline=True)
    assert (without.plan.agent, without.plan.env) == ("sac", "torch_pendulum")
    assert without.warnings[0].startswith("env 'simulator' needs task=... and the question names none")


def _clashing_encoder(in_features: int | None = None, num_cells: tuple[int, ...] = (32,)):
    """Spiking neuromorphic encoder for event cameras (an MLP stand-in)."""
    return rlte_plugins.make("encoder", "mlp", num_cells=list(num_cells))


def test_a_clashing_name_is_written_qualified_and_only_the_chosen_one_is_used(third_party, tmp_path, monkeypatch):
    for plugin_name in ("acme", "zeta"):
        plugin = types.ModuleType(plugin_name)
        plugin.register_encoders = rlte_plugins.hookimpl(
            lambda register: register("spiking", _clashing_encoder, tags=("vector",))
        )
        third_party.add_plugin(plugin, PluginInfo(plugin_name, f"{plugin_name}-dist", "1.0", plugin_name))
    result = ask("PPO on cartpole with a spiking neuromorphic encoder", offline=True)
    chosen = result.plan.slots["encoder"]
    assert chosen in ("acme:spiking", "zeta:spiking") and f'encoder="{chosen}"' in result.snippet
    spiking = [c for c in result.components if c["name"] == "spiking"]
    assert [c["qualified_name"] for c in spiking if c["used"]] == [chosen]
    monkeypatch.chdir(tmp_path)
    assert _run(result)["agent"].frames >= TEST_FRAMES


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


def _redirect_to(target: str) -> Callable[[http.server.BaseHTTPRequestHandler, dict], None]:
    def respond(handler, body):
        handler.send_response(302)
        handler.send_header("Location", target)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


def test_a_redirect_is_refused_and_its_target_receives_nothing(monkeypatch, capsys):
    target = _serve(lambda h, b: _reply(h, 200, b'{"choices": [{"message": {"content": "stolen"}}]}'))
    target_url, target_seen = next(target)
    server = _serve(_redirect_to(target_url.replace("127.0.0.1", "localhost") + "/steal"))
    url, seen = next(server)
    monkeypatch.setenv("RLTE_LLM_URL", url)
    monkeypatch.setenv("RLTE_LLM_API_KEY", "sk-secret")
    try:
        assert main(["ask", QUESTION]) == 0
    finally:
        server.close()
        target.close()
    out, err = capsys.readouterr()
    assert len(seen) == 1 and target_seen == [] and "stolen" not in out
    assert err.splitlines() == [
        f"warning: RLTE_LLM_URL {url} unreachable (redirected to localhost; set RLTE_LLM_URL to the final URL); "
        "answered offline"
    ]


def test_an_oversized_reply_is_refused(monkeypatch):
    padding = "x" * llm.MAX_REPLY_BYTES
    big = json.dumps({"choices": [{"message": {"content": "ok"}}], "padding": padding}).encode()
    server = _serve(lambda h, b: _reply(h, 200, big))
    monkeypatch.setenv("RLTE_LLM_URL", next(server)[0])
    try:
        result = ask(QUESTION)
    finally:
        server.close()
    assert result.llm is None
    assert len(result.warnings) == 1 and "(the reply is larger than 4 MB); answered offline" in result.warnings[0]


def test_credentials_in_the_url_are_never_printed(monkeypatch, capsys):
    def respond(handler, body):
        _reply(handler, 200, json.dumps({"choices": [{"message": {"content": "from the model"}}]}).encode())

    server = _serve(respond)
    url, seen = next(server)
    secret = url.replace("http://", "http://me:sk-userinfo@") + "?api_key=sk-query"
    monkeypatch.setenv("RLTE_LLM_URL", secret)
    try:
        assert main(["ask", QUESTION, "--json"]) == 0
    finally:
        server.close()
    out, err = capsys.readouterr()
    assert json.loads(out)["llm"]["url"] == url and "sk-" not in out + err
    (request,) = seen
    assert request["path"] == "/v1/chat/completions?api_key=sk-query" and request["auth"].startswith("Basic ")
    monkeypatch.setenv("RLTE_LLM_URL", _closed_port().replace("http://", "http://me:sk-userinfo@") + "?k=sk-q")
    assert main(["ask", QUESTION]) == 0
    err = capsys.readouterr().err
    assert "sk-" not in err and err.startswith("warning: RLTE_LLM_URL http://127.0.0.1:")


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
    plan = data["plan"]
    assert (plan["agent"], plan["env"], plan["env_kwargs"]) == ("sac", "torch_pendulum", {})
    assert plan["agent_kwargs"]["lr"] == 0.0003 and plan["components"]["storage"]["name"] == "replay"


@pytest.mark.parametrize("argv", [["ask", ""], ["ask", "   "]])
def test_cli_refuses_an_empty_question(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: rlte ask needs a question") and len(err.splitlines()) == 1
