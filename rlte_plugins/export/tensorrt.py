"""A TensorRT engine of an exported policy, built with TensorRT's Python API from the ONNX model and checked against
onnxruntime on the same inputs.

The ONNX model for TensorRT is exported with its integer outputs cast to ``int32`` (the integer type every TensorRT
version takes as a network output; a discrete action fits) and its ``uint8`` inputs (pixels) read by a ``Cast`` first,
which is how TensorRT takes 8-bit network inputs. It is checked against what TensorRT's ONNX parser accepts
(:func:`tensorrt_problems`: operators, input and output types, opset, a batch axis as the only dynamic one) before
the build. The engine has one optimisation profile over the batch axis (``min``/``opt``/``max`` rows) and, with
``fp16``, lets TensorRT pick half-precision kernels (parity is then checked at a looser tolerance).

Building needs TensorRT 10's wheel (``pip install 'tensorrt>=10,<11'``, matching the CUDA of the installed torch; 11
removed the FP16 builder flag) and a CUDA GPU; elsewhere :func:`build_engine` raises one
:class:`~rlte_plugins.export.onnx.ExportError` saying so.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlte_plugins.export.onnx import (
    DEFAULT_ATOL,
    DEFAULT_OPSET,
    ExportError,
    ExportResult,
    ParityReport,
    ParityRow,
    compare,
    export_onnx,
    parity_inputs,
    require,
)
from rlte_plugins.files import atomic_write

TENSORRT_INSTALL = (
    "TensorRT export needs NVIDIA TensorRT 10's Python wheel and a CUDA GPU: `pip install 'tensorrt>=10,<11'` (the "
    "build matching the CUDA version of your torch, see https://docs.nvidia.com/deeplearning/tensorrt/latest/"
    "installing-tensorrt/installing.html), then run `rlte export RUN_DIR --format tensorrt` on the GPU machine"
)

#: ONNX operators TensorRT 10's ONNX parser supports that exported policies use (from TensorRT's ``operators.md``;
#: the parser supports many more, none of which these graphs contain)
TENSORRT_OPS = frozenset({
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat",
    "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "CumSum", "Div", "Elu", "Equal", "Erf", "Exp",
    "Expand", "Flatten", "Floor", "GRU", "Gather", "GatherElements", "Gemm", "GlobalAveragePool", "GlobalMaxPool",
    "Greater", "GreaterOrEqual", "HardSigmoid", "Identity", "If", "InstanceNormalization", "LSTM", "LayerNormalization",
    "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mish", "Mod",
    "Mul", "Neg", "Not", "OneHot", "Or", "PRelu", "Pad", "Pow", "RNN", "Range", "Reciprocal", "ReduceL1", "ReduceL2",
    "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu",
    "Reshape", "Resize", "ScatterElements", "ScatterND", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Size", "Slice",
    "Softmax", "Softplus", "Softsign", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "ThresholdedRelu", "Tile",
    "TopK", "Transpose", "Unsqueeze", "Where", "Xor",
})  # fmt: skip
#: the opsets TensorRT 10's parser reads
TENSORRT_OPSETS = range(9, 23)
#: ONNX element types TensorRT takes as network inputs (uint8 only into a Cast) and outputs
_FLOAT, _UINT8, _INT32, _INT64, _BOOL, _FLOAT16 = 1, 2, 6, 7, 9, 10
_INPUT_TYPES = {_FLOAT, _FLOAT16, _INT32, _BOOL, _UINT8}
_OUTPUT_TYPES = {_FLOAT, _FLOAT16, _INT32, _BOOL}
#: fp16 engines agree with onnxruntime within this (continuous outputs), with at most this share of discrete actions
#: different (ties of half-precision logits)
FP16_TOLERANCE = 1e-2
FP16_DISCRETE_MISMATCH = 0.01


def tensorrt_problems(model: Any) -> list[str]:
    """What in an ONNX ``model`` (a ``ModelProto``) TensorRT's ONNX parser would refuse: operators outside
    :data:`TENSORRT_OPS`, an opset outside :data:`TENSORRT_OPSETS`, input or output types it does not take, a
    ``uint8`` input read by anything but a ``Cast``, and dynamic axes other than the batch axis (0). Empty when the
    model fits."""
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in TENSORRT_OPSETS:
        problems.append(f"opset {opset} (TensorRT 10 reads {TENSORRT_OPSETS.start}-{TENSORRT_OPSETS.stop - 1})")
    for op in sorted({n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")} - TENSORRT_OPS):
        problems.append(f"operator {op}")
    for op in sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")}):
        problems.append(f"custom operator {op}")
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    sides = (("input", model.graph.input, _INPUT_TYPES), ("output", model.graph.output, _OUTPUT_TYPES))
    for side, values, allowed in sides:
        for v in values:
            kind = v.type.tensor_type.elem_type
            if kind not in allowed:
                problems.append(f"{side} {v.name!r} of ONNX type {kind} (TensorRT takes float, half, int32, bool"
                                f"{', uint8 into a Cast' if side == 'input' else ''})")  # fmt: skip
            if side == "input" and kind == _UINT8 and set(readers.get(v.name, [])) - {"Cast"}:
                problems.append(f"uint8 input {v.name!r} is read by {sorted(set(readers[v.name]))}, not only a Cast")
            dims = v.type.tensor_type.shape.dim
            dynamic = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
            if dynamic and dynamic != [0]:
                problems.append(f"{side} {v.name!r} has dynamic axes {dynamic} (only the batch axis 0 may be)")
    return problems


def check_tensorrt_model(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ExportError` listing :func:`tensorrt_problems` of the ONNX model at ``path``."""
    onnx = require("onnx")
    problems = tensorrt_problems(onnx.load(os.fspath(path)))
    if problems:
        raise ExportError(f"the ONNX model {os.fspath(path)!r} has what TensorRT cannot build: {'; '.join(problems)}")


def require_tensorrt() -> Any:
    """The ``tensorrt`` module on a machine with a CUDA GPU, or one :class:`ExportError` saying what to install."""
    trt = require("tensorrt", TENSORRT_INSTALL)
    if not str(getattr(trt, "__version__", "")).startswith("10."):
        raise ExportError(f"TensorRT export is written for TensorRT 10 (its FP16 builder flag and weakly typed "
                          f"networks), found {trt.__version__}: pip install 'tensorrt>=10,<11'")  # fmt: skip
    if not torch.cuda.is_available():
        raise ExportError(f"TensorRT builds and runs engines on a CUDA GPU; torch sees none here. {TENSORRT_INSTALL}")
    return trt


@dataclasses.dataclass(frozen=True)
class BatchProfile:
    """The optimisation profile of the batch axis: engines run any batch in ``[min, max]``, fastest at ``opt``."""

    min: int = 1
    opt: int = 64
    max: int = 1024

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ExportError(f"the batch profile needs 1 <= min <= opt <= max, got {self.min}, {self.opt}, "
                              f"{self.max}")  # fmt: skip


def build_engine(
    onnx_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    fp16: bool = False,
    batch: BatchProfile = BatchProfile(),
    workspace_bytes: int = 1 << 30,
) -> Path:
    """Build a serialized TensorRT engine (``.engine``/``.plan``) from the ONNX model at ``onnx_path`` with one
    optimisation profile over the batch axis; ``fp16`` allows half-precision kernels. Returns the path written."""
    trt = require_tensorrt()
    check_tensorrt_model(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser refused {os.fspath(onnx_path)!r}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (batch.min, *rest), (batch.opt, *rest), (batch.max, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {os.fspath(onnx_path)!r} (its log above says why)")
    path = Path(output)
    with atomic_write(path, binary=True) as handle:
        handle.write(bytes(serialized))
    return path


class EngineRunner:
    """Runs a serialized engine on CUDA tensors (TensorRT's ``execute_async_v3`` with tensor addresses)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        trt = self.trt = require_tensorrt()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise ExportError(f"{os.fspath(path)!r} is not a TensorRT engine this TensorRT version can load")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]

    def __call__(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        device = torch.device("cuda")
        keep = []
        for name in self.inputs:
            tensor = torch.as_tensor(np.ascontiguousarray(feed[name])).to(device)
            keep.append(tensor)
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise ExportError(f"input {name!r} of shape {list(tensor.shape)} is outside the engine's optimisation "
                                  "profile (its batch range)")  # fmt: skip
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, dtype=self.trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            out = torch.empty(shape, dtype=dtype, device=device)
            outputs.append(out)
            self.context.set_tensor_address(name, out.data_ptr())
        torch.cuda.current_stream().synchronize()  # the inputs are on the device
        if not self.context.execute_async_v3(self.stream.cuda_stream):  # a stream of its own, not the legacy one
            raise ExportError("TensorRT failed to run the engine")
        self.stream.synchronize()
        return [o.cpu().numpy() for o in outputs]


def check_engine(
    engine_path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    feeds: Sequence[tuple[str, dict[str, np.ndarray]]],
    fp16: bool = False,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> ParityReport:
    """Run the engine and onnxruntime on the same ``feeds`` (``(source, {input name: array})``) and compare; with
    ``fp16`` continuous outputs are compared within :data:`FP16_TOLERANCE` and up to
    :data:`FP16_DISCRETE_MISMATCH` of the discrete actions may differ."""
    ort = require("onnxruntime")
    session = ort.InferenceSession(os.fspath(onnx_path), providers=["CPUExecutionProvider"])
    runner = EngineRunner(engine_path)
    names = [o.name for o in session.get_outputs()]
    if fp16:
        atol = rtol = FP16_TOLERANCE
    rows: list[ParityRow] = []
    for source, feed in feeds:
        expected = [torch.as_tensor(a) for a in session.run(names, feed)]
        got = dict(zip(runner.outputs, runner(feed), strict=True))
        for row in compare(expected, [got[n] for n in names], names, source, atol, rtol):
            if fp16 and row.exact:
                row = dataclasses.replace(row, allowed=int(FP16_DISCRETE_MISMATCH * row.rows))
            rows.append(row)
    return ParityReport(f"TensorRT{' (fp16)' if fp16 else ''}", atol, rtol, rows)


def export_tensorrt(
    agent: Any,
    output: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    batch: BatchProfile = BatchProfile(),
    check: bool = True,
    atol: float = DEFAULT_ATOL,
) -> ExportResult:
    """Export ``agent``'s deterministic policy to ONNX for TensorRT (``output`` with the suffix ``.trt.onnx``: int32
    actions, checked against PyTorch with onnxruntime), build the engine at ``output`` and, with ``check``, compare it
    with onnxruntime on random and rollout inputs; a disagreement raises :class:`ExportError` with the figures."""
    require_tensorrt()  # before any work: the one clear error on machines without TensorRT or CUDA
    engine_path = Path(output)
    if engine_path.suffix == ".onnx":
        raise ExportError(f"the engine's path {str(engine_path)!r} ends in .onnx; name it .engine or .plan")
    onnx_path = engine_path.with_suffix(".trt.onnx")  # TensorRT's flavour, beside (never over) a plain export
    result = export_onnx(agent, onnx_path, checkpoint=checkpoint, opset=opset, check=check, atol=atol, rtol=atol,
                         for_tensorrt=True)  # fmt: skip
    engine = build_engine(onnx_path, engine_path, fp16=fp16, batch=batch)
    report = None
    if check:
        names = [i["name"] for i in result.metadata["inputs"]]
        sizes = sorted({batch.min, batch.opt})
        feeds = []
        for source, inputs, _ in parity_inputs(agent, random_batches=sizes):
            for start in range(0, inputs[0].shape[0], batch.max):  # calls within the engine's batch range
                rows = slice(start, start + batch.max)
                feeds.append((source, {n: t[rows].numpy() for n, t in zip(names, inputs, strict=True)}))
        report = check_engine(engine, onnx_path, feeds, fp16=fp16, atol=atol, rtol=atol)
        if not report.ok:
            raise ExportError(f"the TensorRT engine at {str(engine)!r} disagrees with onnxruntime:\n{report.format()}")
    return dataclasses.replace(result, engine=engine, engine_parity=report)
