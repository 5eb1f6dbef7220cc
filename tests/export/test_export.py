"""``rlte export``: ONNX models of a vector, a pixel and a recurrent policy agree with PyTorch in onnxruntime (on random
observations, a rollout and, for the recurrent one, an episode fed back its own state), the TensorRT path up to the
engine build, and the numpy-only deployment recipe."""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

import rlte_plugins
from rlte_plugins.cli import main
from rlte_plugins.export import ExportError, check_onnx, export_onnx, read_metadata

onnx = pytest.importorskip("onnx", reason="the export extra is not installed: pip install 'rlte-plugins[export]'")
ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
PIXELS = {"name": "torch_point_mass", "from_pixels": True, "image_size": 24, "frame_stack": 3}
AGENTS = {
    "vector": ("ppo", {"env": "torch_cartpole", "num_envs": 4, "num_steps": 16}),
    "pixels": ("drqv2", {"env": PIXELS, "num_envs": 2}),
    "recurrent": ("ppo", {"env": "CartPole-v1", "num_envs": 2, "num_steps": 16, "num_minibatches": 1,
                          "recurrent": {"cell": "lstm", "hidden_size": 16}}),
}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A checkpoint of each kind of agent, trained a little (normalised observations on the vector one, so that the
    statistics folded into the graph are not the identity)."""
    folder = tmp_path_factory.mktemp("export")
    paths = {}
    for kind, (name, kwargs) in AGENTS.items():
        extra = {"normalize_observation": True} if kind == "vector" else {}
        if kind == "pixels":
            extra = {"learning_starts": 300, "random_frames": 64}
        agent = rlte_plugins.make("agent", name, **kwargs, **extra)
        if kind == "pixels":  # a small in-memory replay: export reads none of it
            agent.set(storage={"name": "nstep_replay", "capacity": 400, "memmap": False})
        agent.train(320)
        paths[kind] = Path(agent.save(folder / f"{kind}.pt"))
        agent.close()
    return paths


@pytest.mark.parametrize("kind", list(AGENTS))
def test_export_agrees_with_pytorch(kind: str, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    agent = rlte_plugins.load_agent(checkpoints[kind])
    result = export_onnx(agent, tmp_path / "policy.onnx", checkpoint=checkpoints[kind])
    report = result.parity
    assert report.ok, report.format()
    sources = {row.source for row in report.rows}
    assert sources == {"random (batch 1)", "random (batch 64)", "rollout (4 envs x 64 steps)"}
    assert sum(r.rows for r in report.rows if r.output == "action") == 1 + 64 + 256
    meta = read_metadata(result.path)
    assert meta["checkpoint_sha256"] == hashlib.sha256(checkpoints[kind].read_bytes()).hexdigest()
    assert meta["agent"] == AGENTS[kind][0] and meta["frames"] == agent.frames
    assert meta["versions"]["torch"] == torch.__version__ and "onnxruntime" in meta["versions"]
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert all(i.shape[0] == "batch" for i in inputs.values())  # the batch axis is dynamic
    if kind == "vector":
        assert list(inputs) == ["observation"] and meta["action"] == {"kind": "discrete", "n": 2, "shape": []}
        norm = agent.obs_norm
        assert not torch.allclose(norm.mean, torch.zeros_like(norm.mean))  # the folded statistics are not trivial
    if kind == "pixels":
        assert inputs["pixels"].type == "tensor(uint8)" and meta["frame_stack"] == 3
        assert meta["action"]["kind"] == "continuous" and meta["action"]["low"] == [-1.0, -1.0]
        assert "clip" in meta["action"]["mapping"]
    if kind == "recurrent":
        assert list(inputs) == ["observation", "recurrent_state_h", "recurrent_state_c", "is_init"]
        assert [o.name for o in session.get_outputs()] == ["action", "next.recurrent_state_h", "next.recurrent_state_c"]
        assert meta["recurrent"] == {"next.recurrent_state_h": "recurrent_state_h",
                                     "next.recurrent_state_c": "recurrent_state_c"}  # fmt: skip
    agent.close()


def test_the_check_catches_a_model_that_disagrees(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Changing one weight of the exported model makes the parity check fail (the check compares real outputs)."""
    agent = rlte_plugins.load_agent(checkpoints["pixels"])
    path = export_onnx(agent, tmp_path / "policy.onnx").path
    model = onnx.load(str(path))
    weight = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    values = onnx.numpy_helper.to_array(weight).copy()
    values += 0.05
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(path))
    report = check_onnx(agent, path)
    assert not report.ok
    assert all(row.mismatches > 0 for row in report.rows)
    assert "FAIL" in report.format()
    # the expected outputs are the agent's own: a faithful model of other weights fails too
    path = export_onnx(agent, tmp_path / "faithful.onnx").path
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.05)
    assert not check_onnx(agent, path).ok


def test_recurrent_policy_fed_its_own_state_acts_like_pytorch(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """The numpy-only deployment recipe, feeding the model its own state back, takes the PyTorch policy's action at
    every step of whole episodes (an episode's first step resets the state through ``is_init``)."""
    agent = rlte_plugins.load_agent(checkpoints["recurrent"])
    path = export_onnx(agent, tmp_path / "policy.onnx", check=False).path
    deploy = runpy.run_path(str(ROOT / "recipes" / "deploy_onnx.py"))
    policy = deploy["OnnxPolicy"](str(path))
    env = agent.wrap_env(agent.make_env_like(1, seed=3))
    actor = agent.actor.eval()
    steps, episodes = 0, 0
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        td = env.reset()
        policy.reset(1)
        while episodes < 2:
            td = actor(td)
            action = policy({"observation": td.get("observation").numpy()})
            assert action.tolist() == td.get("action").tolist(), f"step {steps}"
            td, td_next = env.step_and_maybe_reset(td)
            steps += 1
            if bool(td.get(("next", "done")).any()):
                episodes += 1
                policy.reset(1)
            td = td_next
    assert steps > 10


def test_gru_policies_are_refused_with_the_reason(tmp_path: Path) -> None:
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=2, num_steps=16, num_minibatches=1,
                              recurrent={"cell": "gru", "hidden_size": 8})  # fmt: skip
    with pytest.raises(ExportError, match="GRU.*is_init.*lstm"):
        export_onnx(agent, tmp_path / "policy.onnx")
    assert not (tmp_path / "policy.onnx").exists()


def test_cli_export_writes_next_to_the_run_and_prints_parity(checkpoints: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(checkpoints["vector"].read_bytes())
    assert main(["export", str(run), "--check"]) == 0
    out = capsys.readouterr().out
    assert (run / "policy.onnx").is_file()
    assert "parity of onnxruntime against PyTorch" in out and "rollout (4 envs x 64 steps)" in out
    assert "in  observation" in out and out.rstrip().endswith("ok")
    assert main(["export", str(run), "--output", str(tmp_path / "p.onnx"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["files"] == [str(tmp_path / "p.onnx")] and data["parity"][0]["ok"]
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "has no checkpoint.pt" in capsys.readouterr().err


def test_deploy_recipe_runs_without_torch(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """``recipes/deploy_onnx.py`` plays the exported recurrent CartPole policy with numpy and onnxruntime, torch
    blocked from importing."""
    agent = rlte_plugins.load_agent(checkpoints["recurrent"])
    path = export_onnx(agent, tmp_path / "policy.onnx", check=False).path
    code = ("import sys, runpy; sys.modules['torch'] = None; "
            "sys.argv = ['recipes/deploy_onnx.py', sys.argv[1], '--episodes', '2']; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "CartPole-v1: returns" in done.stdout


# -- TensorRT -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(AGENTS))
def test_tensorrt_flavoured_models_use_only_what_tensorrt_builds(kind: str, checkpoints: dict[str, Path],
                                                                 tmp_path: Path) -> None:  # fmt: skip
    from rlte_plugins.export.tensorrt import tensorrt_problems

    agent = rlte_plugins.load_agent(checkpoints[kind])
    plain = export_onnx(agent, tmp_path / "plain.onnx", check=False).path
    result = export_onnx(agent, tmp_path / "trt.onnx", for_tensorrt=True)
    assert result.parity.ok  # the int32 actions are the same actions
    assert tensorrt_problems(onnx.load(str(result.path))) == []
    types_out = {o["name"]: o["dtype"] for o in result.metadata["outputs"]}
    if kind != "pixels":
        assert types_out["action"] == "int32"
        # the plain model's int64 action is what TensorRT would refuse: the check is not vacuous
        assert any("output 'action'" in p for p in tensorrt_problems(onnx.load(str(plain))))


def test_tensorrt_problems_names_unsupported_operators_and_axes() -> None:
    from onnx import TensorProto, helper

    from rlte_plugins.export.tensorrt import tensorrt_problems

    x = helper.make_tensor_value_info("x", TensorProto.UINT8, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["batch"])
    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"])], "g", [x], [y])
    problems = tensorrt_problems(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert any("operator Det" in p for p in problems)
    assert any("uint8 input 'x' is read by ['Det']" in p for p in problems)
    assert any("dynamic axes [0, 1]" in p for p in problems)
    assert any("output 'y' of ONNX type 7" in p for p in problems)


def test_tensorrt_missing_is_one_clear_error(checkpoints: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here: the missing-dependency error cannot show")
    except ImportError:
        pass
    from rlte_plugins.export.tensorrt import export_tensorrt

    agent = rlte_plugins.load_agent(checkpoints["vector"])
    with pytest.raises(ExportError, match=r"pip install 'tensorrt>=10,<11'"):
        export_tensorrt(agent, tmp_path / "policy.engine")
    assert list(tmp_path.iterdir()) == []  # failed before writing anything
    assert main(["export", str(checkpoints["vector"]), "--format", "tensorrt", "--output",
                 str(tmp_path / "p.engine")]) == 2  # fmt: skip
    assert "pip install 'tensorrt>=10,<11'" in capsys.readouterr().err


class _FakeTensorRT(types.ModuleType):
    """TensorRT's Python API as ``build_engine`` uses it (TensorRT 10's documented names), recording each call; the
    parser reads the ONNX model's real inputs."""

    def __init__(self) -> None:
        super().__init__("tensorrt")
        self.__version__ = "10.8.0"
        self.calls: list[tuple] = []
        fake = self

        class Logger:
            WARNING = "warning"

            def __init__(self, level: str) -> None:
                fake.calls.append(("Logger", level))

        class Tensor:
            def __init__(self, name: str, shape: tuple[int, ...]) -> None:
                self.name, self.shape = name, shape

        class Network:
            def __init__(self) -> None:
                self.inputs: list[Tensor] = []

            @property
            def num_inputs(self) -> int:
                return len(self.inputs)

            def get_input(self, i: int) -> Tensor:
                return self.inputs[i]

        class OnnxParser:
            num_errors = 0

            def __init__(self, network: Network, logger: Logger) -> None:
                self.network = network

            def parse_from_file(self, path: str) -> bool:
                model = onnx.load(path)
                for v in model.graph.input:
                    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim)
                    self.network.inputs.append(Tensor(v.name, dims))
                fake.calls.append(("parse", os.path.basename(path)))
                return True

        class Profile:
            def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
                fake.calls.append(("set_shape", name, low, opt, high))

        class Config:
            def set_memory_pool_limit(self, pool: str, size: int) -> None:
                fake.calls.append(("workspace", pool, size))

            def set_flag(self, flag: str) -> None:
                fake.calls.append(("flag", flag))

            def add_optimization_profile(self, profile: Profile) -> None:
                fake.calls.append(("add_profile",))

        class Builder:
            def __init__(self, logger: Logger) -> None:
                pass

            def create_network(self, flags: int) -> Network:
                fake.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes:
                return b"engine:" + ",".join(t.name for t in network.inputs).encode()

        self.Logger, self.Builder, self.OnnxParser = Logger, Builder, OnnxParser
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
        self.BuilderFlag = types.SimpleNamespace(FP16="fp16")


def test_engine_build_follows_tensorrts_api(checkpoints: dict[str, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """With TensorRT's API (a recording stand-in: TensorRT needs a CUDA GPU), the engine gets one optimisation
    profile over the batch axis of every input, fp16 when asked, and is written where asked."""
    from rlte_plugins.export.tensorrt import BatchProfile, build_engine

    agent = rlte_plugins.load_agent(checkpoints["recurrent"])
    model = export_onnx(agent, tmp_path / "policy.onnx", for_tensorrt=True, check=False).path
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    engine = build_engine(model, tmp_path / "policy.engine", fp16=True, batch=BatchProfile(2, 32, 512))
    assert engine.read_bytes() == b"engine:observation,recurrent_state_h,recurrent_state_c,is_init"
    shapes = {c[1]: c[2:] for c in fake.calls if c[0] == "set_shape"}
    assert shapes["observation"] == ((2, 4), (32, 4), (512, 4))
    assert shapes["recurrent_state_h"] == ((2, 1, 16), (32, 1, 16), (512, 1, 16))
    assert shapes["is_init"] == ((2, 1), (32, 1), (512, 1))
    assert ("flag", "fp16") in fake.calls and ("add_profile",) in fake.calls and ("create_network", 0) in fake.calls
    with pytest.raises(ExportError, match="min <= opt <= max"):
        BatchProfile(8, 4, 16)
    fake.__version__ = "11.0.0"  # TensorRT 11 removed the FP16 builder flag and weak typing
    with pytest.raises(ExportError, match="written for TensorRT 10"):
        build_engine(model, tmp_path / "other.engine")
