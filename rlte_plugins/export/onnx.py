"""The deterministic policy of any agent as an ONNX model, checked against PyTorch with onnxruntime.

What is exported is :attr:`agent.actor <rlte_plugins.agents.base.Agent.actor>` under deterministic exploration (the
mode of the action distribution; exploration noise off): encoder, actor head, and the observation normalisation the
agent acts with (its statistics frozen into the graph). Its inputs are the acting module's keys as the env gives them
(``uint8`` pixels stay ``uint8``; the graph casts them) and its outputs ``"action"`` and, for a recurrent policy, the
next recurrent state. Nested keys are joined with dots: the LSTM state read as ``"recurrent_state_h"`` comes out as
``"next.recurrent_state_h"``, to be fed back at the next step; at an episode's first step feed ``is_init = True`` (the
graph then starts from a zero state, whatever state it is given). Every axis is fixed but the first, the batch.

What deployment must reproduce outside the graph is written in the model's metadata (``metadata_props``, key
``rlte``: one JSON object, see :func:`policy_metadata`):

- ``frame_stack``: how many of the newest frames a pixel observation stacks on its channel axis (oldest first; a
  reset fills the stack with the first frame); the rest of the preprocessing (Atari's 84x84 grayscale, frame skip
  and max-pool...) is the env's, named with its arguments in ``env``.
- ``action``: the action space the graph writes: ``discrete`` (an index in ``[0, n)``), ``one_hot``, or ``continuous``
  with ``low``/``high`` and ``mapping`` (the env clips each component into ``[low, high]`` before acting; the mode of a
  Gaussian head may lie outside them).
- ``inputs`` / ``outputs``: name, key, per-row shape and dtype of each; ``recurrent``: the state each output feeds.
- ``agent``, ``preset``, ``env`` (how the training env is made: its name and arguments), ``frames`` trained,
  ``checkpoint_sha256`` and the ``versions`` of the packages that made the model.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torchrl.data import TensorSpec
from torchrl.envs.utils import ExplorationType, set_exploration_type

from rlte_plugins.errors import RlteError
from rlte_plugins.files import atomic_write, sha256_of

#: the metadata key of the JSON object :func:`policy_metadata` writes
METADATA_KEY = "rlte"
#: the format of that object
METADATA_FORMAT = "rlte-policy/1"
#: continuous actions and recurrent states agree with PyTorch within ``atol + rtol * |torch|`` (float32 kernels
#: differ in the order they sum in); discrete actions must be equal
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4
#: the opset written by default: LayerNormalization needs 17; onnxruntime >= 1.14 and TensorRT >= 8.6 read 18
DEFAULT_OPSET = 18

_EXPORT_EXTRA = "pip install 'rlte-plugins[export]' (onnx, onnxscript, onnxruntime)"


class ExportError(RlteError, RuntimeError):
    """An export that cannot be made or that disagrees with the PyTorch policy."""


def require(module: str, why: str = _EXPORT_EXTRA) -> Any:
    """``import module``, or one :class:`ExportError` saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f"exporting needs {module!r}, which is not installed ({exc}): {why}") from None


def onnx_name(key: str | tuple[str, ...]) -> str:
    """The ONNX input or output name of a TensorDict key (nested keys joined by dots).

    Examples:
        >>> onnx_name("observation"), onnx_name(("next", "recurrent_state_h"))
        ('observation', 'next.recurrent_state_h')
    """
    return key if isinstance(key, str) else ".".join(key)


class PolicyGraph(nn.Module):
    """The acting module on plain tensors, as the exporter traces it: ``forward(*inputs)`` in the order of
    ``input_keys`` returns the tensors at ``output_keys``, with deterministic exploration.

    Args:
        actor: the agent's acting module (a copy is taken, in eval mode, with frozen observation statistics).
        input_keys, output_keys: what it reads and writes.
        for_tensorrt: the graph TensorRT builds: ``uint8`` inputs go through a ``Cast`` first (scaled to [0, 1],
            which the built-in pixel encoders take as already scaled: the same values) and integer outputs are cast
            to ``int32`` (TensorRT's integer type for network outputs).
    """

    def __init__(
        self,
        actor: nn.Module,
        input_keys: Sequence[Any],
        output_keys: Sequence[Any],
        for_tensorrt: bool = False,
    ) -> None:
        super().__init__()
        self.actor = copy.deepcopy(actor).eval()
        for module in self.actor.modules():
            if hasattr(module, "updating"):  # observation statistics: frozen in the exported graph
                module.updating = False
        self.input_keys, self.output_keys = list(input_keys), list(output_keys)
        self.for_tensorrt = for_tensorrt

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.for_tensorrt:
            inputs = tuple(x.float() / 255.0 if x.dtype == torch.uint8 else x for x in inputs)
        td = TensorDict(dict(zip(self.input_keys, inputs, strict=True)), batch_size=inputs[0].shape[:1])
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            out = self.actor(td)
        values = [out.get(k) for k in self.output_keys]
        if self.for_tensorrt:
            values = [v.int() if v.dtype == torch.int64 else v for v in values]
        return tuple(values)


@dataclasses.dataclass
class PolicySignature:
    """What the exported policy reads and writes: ``inputs`` / ``outputs`` map TensorDict keys to their per-row
    specs (leading batch axis removed); ``recurrent`` maps each state output to the input it feeds."""

    inputs: dict[Any, TensorSpec]
    outputs: dict[Any, TensorSpec]
    recurrent: dict[Any, Any]

    @property
    def input_names(self) -> list[str]:
        return [onnx_name(k) for k in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [onnx_name(k) for k in self.outputs]


def _row_spec(spec: TensorSpec, batch_dims: int) -> TensorSpec:
    """The spec of one row of a batched spec."""
    index = (0,) * batch_dims
    return spec[index] if batch_dims else spec


def policy_signature(agent: Any, env: Any | None = None) -> PolicySignature:
    """The keys and per-row specs the exported policy of ``agent`` reads and writes (from the env's specs after the
    agent's own transforms: the recurrent state and ``is_init``)."""
    actor = agent.actor
    env = agent.wrap_env(agent.env if env is None else env)
    dims = len(env.batch_size)
    observations = env.full_observation_spec if hasattr(env, "full_observation_spec") else env.observation_spec
    keys = observations.keys(True, True)
    missing = [k for k in actor.in_keys if k not in keys]
    if missing:
        raise ExportError(f"{agent.owner}: the acting module reads {missing} that the env's observation spec does "
                          "not hold; it cannot be exported with a spec for each input")  # fmt: skip
    inputs = {k: _row_spec(observations[k], dims) for k in actor.in_keys}
    recurrent = {("next", k) if isinstance(k, str) else ("next", *k): k for k in actor.in_keys
                 if (("next", k) if isinstance(k, str) else ("next", *k)) in actor.out_keys}  # fmt: skip
    action = _row_spec(env.full_action_spec[env.action_key] if hasattr(env, "full_action_spec") else env.action_spec,
                       dims)  # fmt: skip
    outputs = {"action": action, **{out: inputs[state] for out, state in recurrent.items()}}
    return PolicySignature(inputs, outputs, recurrent)


def _spec_json(name: str, key: Any, spec: TensorSpec) -> dict[str, Any]:
    return {"name": name, "key": list(key) if isinstance(key, tuple) else key, "shape": list(spec.shape),
            "dtype": str(spec.dtype).removeprefix("torch.")}  # fmt: skip


def action_space(spec: TensorSpec) -> dict[str, Any]:
    """The action space of the exported graph's ``"action"`` output, as written in its metadata."""
    from torchrl.data import Categorical, MultiCategorical, MultiOneHot, OneHot

    if isinstance(spec, (OneHot, MultiOneHot)):
        return {"kind": "one_hot", "n": int(spec.space.n) if hasattr(spec.space, "n") else None,
                "shape": list(spec.shape)}  # fmt: skip
    if isinstance(spec, (Categorical, MultiCategorical)):
        n = getattr(spec.space, "n", None)
        nvec = getattr(spec, "nvec", None)
        return {"kind": "discrete", "n": None if n is None else int(n), "shape": list(spec.shape),
                **({"nvec": nvec.flatten().tolist()} if nvec is not None else {})}  # fmt: skip
    out: dict[str, Any] = {"kind": "continuous", "shape": list(spec.shape)}
    low, high = getattr(spec.space, "low", None), getattr(spec.space, "high", None)
    if low is not None and high is not None and torch.isfinite(low).all() and torch.isfinite(high).all():
        out.update(low=low.flatten().tolist(), high=high.flatten().tolist(),
                   mapping="clip each component into [low, high] before stepping the env (the training env clips "
                   "the same way; the mode of a Gaussian head may lie outside the bounds)")  # fmt: skip
    else:
        out["mapping"] = "unbounded: pass the action to the env as it is"
    return out


def _frame_stack(env: Any) -> int | None:
    """How many frames a pixel observation stacks on its channel axis: the env's ``frame_stack`` where it has one
    (torch-native tasks), else its channels over ``frame_channels`` (Atari: 1, DMC: 3; RGB where the channels
    divide by 3, else gray); ``None`` without pixels."""
    from torchrl.envs import TransformedEnv

    while isinstance(env, TransformedEnv):
        env = env.base_env
    if not getattr(env, "from_pixels", True) or "pixels" not in env.observation_spec.keys():
        return None
    stack = getattr(env, "frame_stack", None)
    if isinstance(stack, int):
        return stack
    total = int(env.observation_spec["pixels"].shape[-3])
    channels = getattr(env, "frame_channels", None) or (3 if total % 3 == 0 else 1)
    return total // channels


def versions() -> dict[str, str]:
    """Versions of the packages that make and check an exported model."""
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for dist in ("rlte-plugins", "torch", "torchrl", "tensordict", "onnx", "onnxscript", "onnxruntime"):
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return found


def policy_metadata(
    agent: Any, signature: PolicySignature, checkpoint: str | os.PathLike[str] | None, opset: int
) -> dict[str, Any]:
    """The JSON object written under :data:`METADATA_KEY` in the model's ``metadata_props``."""
    return {
        "format": METADATA_FORMAT,
        "agent": agent.name,
        "preset": agent.preset,
        "env": agent.env_reference(),
        "frames": int(agent.frames),
        "checkpoint": None if checkpoint is None else os.path.basename(os.fspath(checkpoint)),
        "checkpoint_sha256": None if checkpoint is None else sha256_of(checkpoint),
        "opset": opset,
        "versions": versions(),
        "exploration": "deterministic (the mode of the action distribution; exploration noise off)",
        "inputs": [_spec_json(onnx_name(k), k, s) for k, s in signature.inputs.items()],
        "outputs": [_spec_json(onnx_name(k), k, s) for k, s in signature.outputs.items()],
        "recurrent": {onnx_name(out): onnx_name(state) for out, state in signature.recurrent.items()},
        "frame_stack": _frame_stack(agent.env),
        "action": action_space(signature.outputs["action"]),
        "batch_axis": 0,
    }


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The :func:`policy_metadata` object of an exported model (numpy-free: reads only the ONNX protobuf)."""
    onnx = require("onnx")
    model = onnx.load(os.fspath(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ExportError(f"{os.fspath(path)!r} is not a policy exported by rlte (no {METADATA_KEY!r} metadata)")
    return json.loads(props[METADATA_KEY])


def refuse_untraceable(agent: Any) -> None:
    """One clear error for acting modules ``torch.export`` cannot trace with a dynamic batch."""
    from torchrl.modules import GRUModule

    if any(isinstance(m, GRUModule) for m in agent.actor.modules()):
        raise ExportError(
            f"{agent.owner}: a GRU policy cannot be exported: TorchRL's GRUModule decides from the data whether to "
            "reset its state (is_init.any()), which torch.export cannot trace; train with recurrent={'cell': "
            "'lstm', ...} to deploy a recurrent policy"
        )


def graph_of(agent: Any, signature: PolicySignature, for_tensorrt: bool = False) -> PolicyGraph:
    return PolicyGraph(agent.actor, list(signature.inputs), list(signature.outputs), for_tensorrt).cpu()


def sample_inputs(signature: PolicySignature, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``batch`` random rows of every input, drawn from its spec (seeded through ``generator``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        return [spec.rand((batch,)).cpu() for spec in signature.inputs.values()]


@contextlib.contextmanager
def _quiet_exporter() -> Any:
    """The exporter without its warnings about torchvision operators and deprecated tracing paths (none of which
    a policy uses): what ``rlte export`` prints is the export's own report."""
    import logging
    import warnings

    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        registration.setLevel(level)


@contextlib.contextmanager
def _symbolic_numel() -> Any:
    """While tracing: ``TensorDictBase.numel`` without its ``max(1, ...)`` on a symbolic batch size (the max
    guards the batch axis to the example's size, which TorchRL's recurrent modules reach through ``reshape(-1)``,
    and the exported model would accept that one batch size only)."""
    original = TensorDictBase.numel

    def numel(self: TensorDictBase) -> Any:
        size = math.prod(self.batch_size)
        return size if isinstance(size, torch.SymInt) else max(1, size)

    TensorDictBase.numel = numel  # type: ignore[method-assign]
    try:
        yield
    finally:
        TensorDictBase.numel = original  # type: ignore[method-assign]


def export_graph(
    graph: PolicyGraph, signature: PolicySignature, output: str | os.PathLike[str], opset: int,
    metadata: Mapping[str, Any],
) -> Path:  # fmt: skip
    """Trace ``graph`` with torch's ONNX exporter (``torch.export`` underneath) into ``output`` with a dynamic batch
    axis on every input and output, named inputs and outputs and ``metadata``; returns the path written."""
    require("onnxscript")
    onnx = require("onnx")
    example = sample_inputs(signature, 2, torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in example)
    try:
        with _symbolic_numel(), _quiet_exporter():
            program = torch.onnx.export(
                graph, tuple(example), dynamo=True, opset_version=opset, input_names=signature.input_names,
                output_names=signature.output_names, dynamic_shapes=(dynamic,), verbose=False,
            )  # fmt: skip
    except Exception as exc:
        raise ExportError(f"torch's ONNX exporter could not trace the policy: {type(exc).__name__}: {exc}") from exc
    model = program.model_proto
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(dict(metadata))})
    model.producer_name, model.doc_string = "rlte-plugins", f"deterministic policy of agent {metadata.get('agent')!r}"
    path = Path(output)
    with atomic_write(path, binary=True) as handle:
        handle.write(model.SerializeToString())
    return path


# -- parity ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ParityRow:
    """One comparison of an output on one set of inputs."""

    source: str  # "random (batch N)" or "rollout (E envs x T steps)"
    output: str
    rows: int
    max_abs_diff: float
    mismatches: int  # discrete: rows whose action differs; continuous: elements outside the tolerance
    exact: bool  # discrete outputs are compared for equality
    allowed: int = 0  # mismatches tolerated (half-precision engines: ties of discrete actions)

    @property
    def ok(self) -> bool:
        return self.mismatches <= self.allowed


@dataclasses.dataclass
class ParityReport:
    """PyTorch against a runtime (onnxruntime, TensorRT) on the same inputs."""

    runtime: str
    atol: float
    rtol: float
    rows: list[ParityRow]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def format(self) -> str:
        lines = [
            f"parity of {self.runtime} against PyTorch (continuous: |diff| <= {self.atol:g} + {self.rtol:g} x "
            "|torch|; discrete: equal)",  # fmt: skip
            f"  {'inputs':<28} {'output':<26} {'rows':>6} {'max |diff|':>11} {'mismatches':>11}",
        ]
        for r in self.rows:
            lines.append(f"  {r.source:<28} {r.output:<26} {r.rows:>6} {r.max_abs_diff:>11.3g} "
                         f"{r.mismatches:>11}{'' if r.ok else '  FAIL'}")  # fmt: skip
        lines.append(f"  {'ok' if self.ok else 'FAILED'}")
        return "\n".join(lines)


def compare(
    expected: Sequence[torch.Tensor], got: Sequence[np.ndarray], names: Sequence[str], source: str,
    atol: float, rtol: float,
) -> list[ParityRow]:  # fmt: skip
    """One :class:`ParityRow` per output: integer and boolean outputs must be equal; floats within tolerance."""
    rows = []
    for want, have, name in zip(expected, got, names, strict=True):
        want = want.detach().cpu()
        have_t = torch.as_tensor(np.asarray(have))
        exact = not want.is_floating_point()
        if tuple(have_t.shape) != tuple(want.shape):  # every row differs from what the policy writes
            rows.append(ParityRow(source, f"{name} (shape {list(have_t.shape)})", int(want.shape[0]), math.inf,
                                  int(want.shape[0]), exact))  # fmt: skip
            continue
        if exact:
            diff = (want.long() - have_t.long()).abs().reshape(want.shape[0], -1)
            bad = int((diff != 0).any(-1).sum())
            largest = float(diff.max()) if diff.numel() else 0.0
        else:
            diff = (want.double() - have_t.double()).abs()
            bad = int((diff > atol + rtol * want.double().abs()).sum())
            largest = float(diff.max()) if diff.numel() else 0.0
        rows.append(ParityRow(source, name, int(want.shape[0]), largest, bad, exact))
    return rows


@contextlib.contextmanager
def _acting(agent: Any) -> Any:
    """``agent.actor`` in eval mode under deterministic exploration, without gradients (as evaluation acts)."""
    actor = agent.actor
    was_training = actor.training
    actor.eval()
    try:
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            yield actor
    finally:
        actor.train(was_training)


def actor_outputs(agent: Any, signature: PolicySignature, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """What ``agent.actor`` itself writes at the signature's outputs for ``inputs`` (on the host)."""
    td = TensorDict({k: x.to(agent.device) for k, x in zip(signature.inputs, inputs, strict=True)},
                    batch_size=[inputs[0].shape[0]], device=agent.device)  # fmt: skip
    with _acting(agent) as actor:
        out = actor(td)
    return tuple(out.get(k).detach().cpu() for k in signature.outputs)


def rollout_inputs(agent: Any, num_envs: int = 4, steps: int = 64, seed: int = 12345) -> tuple[list, list]:
    """Inputs and outputs of ``agent.actor`` along a deterministic rollout in an env made like its training env
    (``num_envs`` envs, ``steps`` steps): the observations and states a deployed policy meets."""
    signature = policy_signature(agent)
    env = agent.wrap_env(agent.make_env_like(num_envs, seed))
    inputs: list[list[torch.Tensor]] = []
    outputs: list[tuple[torch.Tensor, ...]] = []
    try:
        with _acting(agent) as actor:
            td: TensorDictBase = env.reset()
            for _ in range(steps):
                inputs.append([td.get(k).detach().cpu().clone() for k in signature.inputs])
                td = actor(td)
                outputs.append(tuple(td.get(k).detach().cpu().clone() for k in signature.outputs))
                _, td = env.step_and_maybe_reset(td)
    finally:
        env.close()
    return inputs, outputs


def parity_inputs(
    agent: Any,
    random_batches: Sequence[int] = (1, 64),
    rollout_envs: int = 4,
    rollout_steps: int = 64,
    seed: int = 0,
) -> list[tuple[str, list[torch.Tensor], tuple[torch.Tensor, ...]]]:
    """``(source, inputs, outputs of agent.actor)`` to compare a runtime with: random inputs drawn from the env's
    specs (one set per size in ``random_batches``) and the inputs of a real deterministic rollout. The expected
    outputs are the agent's own acting module's, never the copy that was traced."""
    signature = policy_signature(agent)
    generator = torch.Generator().manual_seed(seed)
    sets = []
    for size in random_batches:
        batch = sample_inputs(signature, size, generator)
        sets.append((f"random (batch {size})", batch, actor_outputs(agent, signature, batch)))
    if rollout_steps:
        inputs, expected = rollout_inputs(agent, rollout_envs, rollout_steps, seed=seed + 12345)
        stacked_in = [torch.cat(parts) for parts in zip(*inputs, strict=True)]
        stacked_out = tuple(torch.cat(parts) for parts in zip(*expected, strict=True))
        sets.append((f"rollout ({rollout_envs} envs x {rollout_steps} steps)", stacked_in, stacked_out))
    return sets


def check_onnx(
    agent: Any,
    path: str | os.PathLike[str],
    *,
    random_batches: Sequence[int] = (1, 64),
    rollout_envs: int = 4,
    rollout_steps: int = 64,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    seed: int = 0,
) -> ParityReport:
    """Run the exported model with onnxruntime on random inputs drawn from the env's specs (each batch size in
    ``random_batches``) and on a real deterministic rollout, and compare with the PyTorch policy."""
    ort = require("onnxruntime")
    signature = policy_signature(agent)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    names, outs = signature.input_names, signature.output_names
    rows: list[ParityRow] = []
    for source, inputs, expected in parity_inputs(agent, random_batches, rollout_envs, rollout_steps, seed):
        got = session.run(outs, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        rows += compare(expected, got, outs, source, atol, rtol)
    return ParityReport("onnxruntime", atol, rtol, rows)


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and how it compared."""

    path: Path
    metadata: dict[str, Any]
    parity: ParityReport | None
    engine: Path | None = None
    engine_parity: ParityReport | None = None


def export_onnx(
    agent: Any,
    output: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    for_tensorrt: bool = False,
) -> ExportResult:
    """Export ``agent``'s deterministic policy to ``output`` (ONNX) and, with ``check``, compare onnxruntime with
    PyTorch (:func:`check_onnx`); a disagreement raises :class:`ExportError` with the figures (the model stays on
    disk for inspection). ``checkpoint``: the file the agent was loaded from (its sha256 goes in the metadata).

    Examples:
        >>> import tempfile, os, rlte_plugins
        >>> agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=2)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     result = export_onnx(agent, os.path.join(d, "policy.onnx"))
        >>> result.parity.ok, result.metadata["action"]["kind"], [i["name"] for i in result.metadata["inputs"]]
        (True, 'discrete', ['observation'])
    """
    if not 7 <= opset <= 30:
        raise ExportError(f"opset must be an ONNX opset version (e.g. {DEFAULT_OPSET}), got {opset}")
    agent.build()
    signature = policy_signature(agent)
    refuse_untraceable(agent)
    metadata = policy_metadata(agent, signature, checkpoint, opset)
    if for_tensorrt:
        for out in metadata["outputs"]:
            out["dtype"] = "int32" if out["dtype"] == "int64" else out["dtype"]
    graph = graph_of(agent, signature, for_tensorrt)
    path = export_graph(graph, signature, output, opset, metadata)
    parity = None
    if check:
        parity = check_onnx(agent, path, atol=atol, rtol=rtol)
        if not parity.ok:
            raise ExportError(f"the ONNX model at {str(path)!r} disagrees with the PyTorch policy:\n{parity.format()}")
    return ExportResult(path, metadata, parity)


def describe(metadata: Mapping[str, Any]) -> str:
    """A few lines on what an exported model reads and writes (``rlte export`` prints them)."""
    ios = [f"  in  {i['name']:<26} {i['dtype']:<8} [batch, {', '.join(map(str, i['shape']))}]"
           for i in metadata["inputs"]]  # fmt: skip
    ios += [f"  out {o['name']:<26} {o['dtype']:<8} [batch{''.join(', ' + str(d) for d in o['shape'])}]"
            for o in metadata["outputs"]]  # fmt: skip
    action = metadata["action"]
    extra = [f"  action: {action['kind']}" + (f", n={action['n']}" if action.get("n") else "")
             + (f"; {action['mapping']}" if "mapping" in action else "")]  # fmt: skip
    if (metadata.get("frame_stack") or 0) > 1:
        extra.append(f"  frame stack: the newest {metadata['frame_stack']} frames on the channel axis, oldest first")
    if metadata.get("recurrent"):
        pairs = ", ".join(f"{o} -> {i}" for o, i in metadata["recurrent"].items())
        extra.append(f"  recurrent state fed back: {pairs}; is_init=True at each episode's first step")
    return "\n".join(ios + extra)
