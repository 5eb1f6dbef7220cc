"""The update engine every agent trains through: optimiser (Adam or RMSprop), learning-rate schedule in frames, AMP,
``torch.compile``, CUDA graphs, chunked gradients, gradient accumulation and clipping.

An agent hands :meth:`UpdateEngine.minibatch` a minibatch and a loss function ``loss_fn(piece) -> (total,
diagnostics)``; the engine computes the gradient over cache-sized chunks (the same gradient as one pass: every
term is a mean and the chunks are equal), steps the optimiser every ``grad_accumulation`` minibatches and returns
the diagnostics summed on the device. Nothing is copied to the host here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from tensordict import TensorDictBase

from rlte_plugins.errors import CheckpointError, ComponentArgumentError
from rlte_plugins.optim.schedules import Schedule

#: ``torch.compile`` modes the ``compile`` option takes besides ``True``
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
AMP_MODES = (None, "bf16", "fp16")
#: the optimisers the ``optimizer`` option takes
OPTIMIZERS = ("adam", "rmsprop")

LossFn = Callable[[TensorDictBase], "tuple[torch.Tensor, torch.Tensor]"]


def check_engine_options(
    owner: str, device: torch.device, amp: Any, compile: Any, cudagraphs: bool, optimizer: Any = "adam"
) -> None:
    """One clear error for an option this device cannot run (or an optimiser the engine does not have)."""
    if optimizer not in OPTIMIZERS:
        raise ComponentArgumentError(f"{owner}: optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got "
                                     f"{optimizer!r}")  # fmt: skip
    if amp not in AMP_MODES:
        raise ComponentArgumentError(f"{owner}: amp must be null, 'bf16' or 'fp16', got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ComponentArgumentError(f"{owner}: amp='fp16' needs a CUDA device; use amp='bf16' on {device}")
    if not isinstance(compile, bool) and compile not in COMPILE_MODES:
        raise ComponentArgumentError(
            f"{owner}: compile must be true, false or one of {', '.join(COMPILE_MODES)}, got {compile!r}"
        )
    if cudagraphs and device.type != "cuda":
        raise ComponentArgumentError(f"{owner}: cudagraphs needs a CUDA device, got {device}")


def _fusable(params: list[Any], device: torch.device) -> bool:
    """Whether torch's fused Adam takes these parameters (floating point, all on a CPU or CUDA ``device``)."""
    flat = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    return device.type in ("cpu", "cuda") and all(p.is_floating_point() and p.device.type == device.type for p in flat)


class UpdateEngine:
    """Adam (or RMSprop) over ``params`` with every update-side option an agent declares.

    Args:
        params: parameters or parameter groups (``[{"params": ..., "lr": ...}]``).
        device: where the update runs.
        lr: a number or a :class:`~rlte_plugins.optim.schedules.Schedule` in frames (set by :meth:`set_lr`).
        optimizer: ``"adam"`` (torch's fused kernel where the parameters allow it) or ``"rmsprop"``
            (``torch.optim.RMSprop``: ``eps`` is added to the root of the mean square, which starts at zero;
            TensorFlow's RMSProp, which IMPALA's authors used, adds it under the root and starts the mean square at 1).
        eps: the optimiser's epsilon. ``alpha``, ``momentum``: RMSprop's decay of the mean square and its momentum
            (not read by Adam). ``max_grad_norm``: global gradient-norm clip (``None``: off).
        amp: ``None``, ``"bf16"`` or ``"fp16"`` (fp16 with a gradient scaler; CUDA only).
        compile: ``torch.compile`` the modules given to :meth:`compiled` (``True`` or a mode name).
        cudagraphs: capture each chunk's forward and backward in a CUDA graph (tensordict's ``CudaGraphModule``;
            CUDA only); the optimiser step, clipping and scaling stay outside it, and gradients are zeroed in place
            so that the graph's writes land where the optimiser reads them.
        chunk_size: samples per chunk of the gradient computation.
        grad_accumulation: consecutive minibatches averaged into one optimiser step.

    Examples:
        >>> import torch
        >>> net = torch.nn.Linear(3, 1)
        >>> engine = UpdateEngine(net.parameters(), device=torch.device("cpu"), optimizer="rmsprop", lr=6e-4,
        ...                       eps=0.01, alpha=0.99, max_grad_norm=40.0)
        >>> type(engine.optimizer).__name__, engine.optimizer.param_groups[0]["alpha"]
        ('RMSprop', 0.99)
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        device: torch.device,
        lr: Schedule | float = 3e-4,
        optimizer: str = "adam",
        eps: float = 1e-5,
        alpha: float = 0.99,
        momentum: float = 0.0,
        max_grad_norm: float | None = None,
        amp: str | None = None,
        compile: bool | str = False,
        cudagraphs: bool = False,
        chunk_size: int = 8192,
        grad_accumulation: int = 1,
        owner: str = "agent",
    ) -> None:
        check_engine_options(owner, device, amp, compile, cudagraphs, optimizer)
        self.device = device
        self.lr = Schedule.parse(lr, owner)
        # groups' parameters as lists: a generator would be used up by the check below
        params = [{**p, "params": list(p["params"])} if isinstance(p, dict) else p for p in params]
        # the fused kernel: one call for every parameter (on a 64x64 MLP pair, 50 us a step on one CPU thread
        # against 186 us for the per-tensor loop, the default on CPU)
        self.kind = optimizer
        self.fused = optimizer == "adam" and _fusable(params, device)
        self.optimizer: torch.optim.Optimizer
        if optimizer == "rmsprop":
            self.optimizer = torch.optim.RMSprop(params, lr=self.lr(0), alpha=alpha, eps=eps, momentum=momentum)
        else:
            self.optimizer = torch.optim.Adam(params, lr=self.lr(0), eps=eps, fused=self.fused)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.max_grad_norm = max_grad_norm
        self.compile, self.cudagraphs = compile, cudagraphs
        self.chunk_size, self.grad_accumulation = chunk_size, grad_accumulation
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self._autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
        # the largest gradient norm since the last read: a non-finite one stops training (see the run loop)
        self.grad_norm = torch.zeros((), device=device)
        self._chunk: Callable[[TensorDictBase, float], torch.Tensor] | None = None
        self._loss_fn: LossFn | None = None

    # -- options ------------------------------------------------------------------------------------------
    def compiled(self, module: Any) -> Any:
        """``module`` under ``torch.compile`` when the ``compile`` option is set, else ``module``."""
        if not self.compile:
            return module
        return torch.compile(module, mode=None if self.compile is True else self.compile)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def set_lr(self, frames: int) -> float:
        """Set every group's learning rate to the schedule's value at ``frames``; returns it."""
        lr = float(self.lr(frames))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    # -- one minibatch ------------------------------------------------------------------------------------
    def minibatch(self, batch: TensorDictBase, loss_fn: LossFn, index: int, rows_per_chunk: int | None = None) -> Any:
        """Gradient of ``loss_fn`` on ``batch`` over chunks, then an optimiser step every ``grad_accumulation``
        minibatches (``index`` counts the minibatches of this update across epochs). Returns the diagnostics'
        mean over the chunks, on the device."""
        # == rather than `is`: an agent's bound method is a new object at every access, but compares equal; a new
        # function would otherwise mean a new CUDA graph for every minibatch, none of them past its warm-up
        if self._chunk is None or loss_fn != self._loss_fn:
            self._loss_fn = loss_fn
            self._chunk = self._capture(self._loss_and_gradient) if self.cudagraphs else self._loss_and_gradient
        n = batch.shape[0]
        per_chunk = rows_per_chunk or max(1, self.chunk_size)
        chunk = per_chunk if n % per_chunk == 0 else n
        parts = n // chunk
        total = None
        for c in range(parts):
            piece = batch if parts == 1 else batch[c * chunk : (c + 1) * chunk]
            out = self._chunk(piece, 1.0 / (self.grad_accumulation * parts))
            total = out if total is None else total + out
        if (index + 1) % self.grad_accumulation == 0:
            self.step()
        return total / parts

    def step(self) -> None:
        """Unscale, clip, step, zero the gradients."""
        norm = None
        if self.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        elif not self.scaler.is_enabled():
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        if norm is not None:
            self.grad_norm = torch.maximum(self.grad_norm, norm.detach().float())
        if norm is not None and not self.scaler.is_enabled():
            # a NaN reward or a diverged loss: this step is skipped on the device (no host sync), so the rest of
            # the update acts with finite weights; a NaN policy fails inside the next minibatch's loss before the
            # run loop can name the cause, and the loop stops on the norm recorded above (fp16's scaler skips
            # such steps the same way)
            nonfinite = (~norm.isfinite()).float()
            if self.fused:
                self.optimizer.found_inf = nonfinite  # read by the fused kernel, which then does nothing
            else:  # the per-tensor loop has no such input: it steps with zeroed gradients (momentum only)
                for p in self.params:
                    if p.grad is not None:
                        p.grad.masked_fill_(nonfinite.bool(), 0.0)
        self.scaler.step(self.optimizer)
        if hasattr(self.optimizer, "found_inf") and not self.scaler.is_enabled():
            del self.optimizer.found_inf  # read at every step: none may linger for a later caller's
        self.scaler.update()
        self.zero_grad()

    def zero_grad(self) -> None:
        # CUDA graphs replay into the gradients' memory: it must stay where it was when captured
        self.optimizer.zero_grad(set_to_none=not self.cudagraphs)

    def read_grad_norm(self) -> torch.Tensor:
        """The largest clipped-over norm since the last read (a device scalar), then reset. With fp16 a
        non-finite norm is the scaler's business (it skips the step), so it reads as zero."""
        norm, self.grad_norm = self.grad_norm, torch.zeros((), device=self.device)
        return torch.zeros((), device=self.device) if self.scaler.is_enabled() else norm

    def _loss_and_gradient(self, piece: TensorDictBase, weight: float) -> torch.Tensor:
        assert self._loss_fn is not None
        with self.autocast():
            total, diagnostics = self._loss_fn(piece)
        self.scaler.scale(total * weight).backward()
        return diagnostics

    def _capture(self, fn: Any) -> Any:
        from tensordict.nn import CudaGraphModule
        from tensordict.nn.functional_modules import _exclude_td_from_pytree

        _exclude_td_from_pytree().set()  # CudaGraphModule's requirement, set up front instead of with a warning
        return CudaGraphModule(fn, warmup=3, device=self.device)

    # -- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "kind": self.kind}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        kind = state.get("kind", "adam")  # checkpoints from before the choice were all Adam's
        if kind != self.kind:
            # each keeps other statistics (Adam's moments, RMSprop's mean square): one would step on the other's
            raise CheckpointError(f"the checkpoint's optimiser state is {kind!r}'s, not {self.kind!r}'s: load it with "
                                  f"optimizer={kind!r}")  # fmt: skip
        self.optimizer.load_state_dict(state["optimizer"])
        # a checkpoint of another kernel (the per-tensor loop, before fused Adam) would switch it back: the groups
        # keep this engine's kernel, and the step counters move where the fused kernel reads them
        for group in self.optimizer.param_groups:
            group["foreach"] = None
            if self.kind == "adam":
                group["fused"] = True if self.fused else None
            if self.fused:
                for p in group["params"]:
                    saved = self.optimizer.state.get(p, {})
                    if "step" in saved:
                        saved["step"] = saved["step"].to(device=p.device, dtype=torch.float32)
        self.scaler.load_state_dict(state["scaler"])
