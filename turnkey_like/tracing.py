"""Trace a model into a graph: the one tracing function every tk command uses.

:func:`trace_model` tries, in order, until one succeeds:

1. a warm-up call with the real inputs (initialises lazy modules such as ``nn.LazyLinear`` and
   caches that models build on first call; skipped with ``warmup=False``);
2. ``torch.fx.symbolic_trace`` (cheap, Python-level; keyword arguments the caller did not pass are
   fixed to their defaults through ``concrete_args`` so ``if mask is None`` branches trace);
3. ``torch.export.export(strict=False)`` (non-strict: runs the Python code on fake tensors; handles
   data-independent control flow such as Hugging Face models and ultralytics heads);
4. ``torch.export.export(strict=True)`` (TorchDynamo bytecode capture).

Every attempt is recorded with a one-line error, so ``tk profile --trace`` can tell which models
trace and how. Counting (``turnkey_like.characterize``) runs at the dispatch level and does not
depend on tracing: its one counted call already records the dataflow graph (each op row's
``producers``), which is what fusion and pictures draw from. Tracing runs only when its result is
needed:

- ``tk profile --trace`` (``characterize(..., trace=True)``): the whole ladder, for the
  traceability line;
- the ONNX build (``turnkey_like.build``): the two export rungs only, once, in the build's child
  process; the ONNX file is converted from that :attr:`TraceResult.exported_program` instead of
  tracing again, and the program never leaves the child (nothing is pickled).
"""

from __future__ import annotations

import contextlib
import inspect
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from turnkey_like.calls import tensor_leaves
from turnkey_like.errors import one_line
from turnkey_like.records import TraceAttempt, TraceSummary

FX = "fx.symbolic_trace"
EXPORT_NONSTRICT = "torch.export(strict=False)"
EXPORT_STRICT = "torch.export(strict=True)"
NONE = "none"
NOT_TRACED = "not traced"
METHODS = (FX, EXPORT_NONSTRICT, EXPORT_STRICT)


@dataclass
class TraceResult:
    """What :func:`trace_model` found, with the live graph (the record is :meth:`summary`).

    Attributes:
        method: the method that succeeded (one of :data:`METHODS`) or ``"none"``.
        graph_module: (property) the traced ``torch.fx.GraphModule``; ``None`` when nothing traced.
            For FX it is built on first access (code generation costs about as much as tracing, and
            characterize only needs the graph).
        graph: the traced ``torch.fx.Graph``.
        node_count: nodes in that graph (0 when nothing traced).
        attempts: every method tried, in order, with its one-line error.
        duration_s: wall time of the warm-up and all attempts, seconds.
        warmup_error: one-line error when the warm-up call itself failed.
        exported_program: the ``torch.export.ExportedProgram`` when an export rung succeeded (what
            ``torch.onnx.export(..., dynamo=True)`` converts), else ``None``.
    """

    method: str = NONE
    node_count: int = 0
    attempts: list[TraceAttempt] = field(default_factory=list)
    duration_s: float = 0.0
    warmup_error: str | None = None
    graph: Any = field(default=None, repr=False, compare=False)
    exported_program: Any = field(default=None, repr=False, compare=False)
    _gm: Any = field(default=None, repr=False, compare=False)
    _gm_factory: Any = field(default=None, repr=False, compare=False)

    @property
    def graph_module(self):
        """The traced ``torch.fx.GraphModule`` (built lazily for FX), or ``None``."""
        if self._gm is None and self._gm_factory is not None:
            self._gm = self._gm_factory()
            self._gm_factory = None
        return self._gm

    @property
    def ok(self) -> bool:
        """True when some method produced a graph."""
        return self.method != NONE

    def summary(self) -> TraceSummary:
        """The :class:`~turnkey_like.records.TraceSummary` record of this trace (everything but the graph)."""
        return TraceSummary(method=self.method, node_count=self.node_count, attempts=list(self.attempts),
                            duration_s=self.duration_s, warmup_error=self.warmup_error)


def _concrete_args(model, args: tuple, kwargs: dict) -> dict | None:
    """Fix forward parameters the caller did not pass to their defaults (for fx.symbolic_trace)."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    concrete = {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for i, p in enumerate(params):
        if p.kind == p.VAR_KEYWORD:
            continue
        passed = (p in positional and positional.index(p) < len(args)) or p.name in kwargs
        if not passed and p.default is not p.empty:
            concrete[p.name] = p.default
    return concrete or None


def _fx(model, args: tuple, kwargs: dict):
    """Trace with ``torch.fx.Tracer`` (what ``symbolic_trace`` does); return (graph, lazy GraphModule, None)."""
    import torch.fx

    tracer = torch.fx.Tracer()
    graph = tracer.trace(model, concrete_args=_concrete_args(model, args, kwargs))
    name = model.__class__.__name__ if isinstance(model, torch.nn.Module) else model.__name__
    return graph, lambda: torch.fx.GraphModule(tracer.root, graph, name), None


def _flat_output_wrapper(model):
    """Wrap ``model`` so its output is a flat tuple of tensors (for outputs export cannot flatten)."""
    import torch

    class FlatOutput(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            return tuple(tensor_leaves(self.inner(*args, **kwargs), objects=True))

    return FlatOutput(model)


def _export(model, args: tuple, kwargs: dict, strict: bool):
    """Export with torch.export; return (graph, GraphModule factory, ExportedProgram). Retry with a
    flat-output wrapper when the output type is the problem.

    Output objects that are not registered pytrees (e.g. transformers' ``DynamicCache`` returned by
    GPT-2 with ``use_cache=True``) make export fail after tracing the whole model; the wrapper
    returns the same tensors as a tuple. Module paths in that graph then start with ``inner.``.
    """
    import torch

    try:
        ep = torch.export.export(model, tuple(args), kwargs=dict(kwargs), strict=strict)
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "output" not in text.lower():
            raise
        wrapped = _flat_output_wrapper(model)
        ep = torch.export.export(wrapped, tuple(args), kwargs=dict(kwargs), strict=strict)
    gm = ep.graph_module
    return gm.graph, lambda: gm, ep


@contextlib.contextmanager
def _quiet():
    """Silence the tracers while they try: their warnings, their log records, and the partial graph
    ``torch.export`` prints to stderr when it meets data-dependent control flow. Every failure is
    recorded in :class:`~turnkey_like.records.TraceAttempt` instead."""
    import io
    import logging

    loggers = [logging.getLogger(n) for n in ("torch._dynamo", "torch._export", "torch.export", "torch.fx")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def trace_model(
    model,
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    warmup: bool = True,
    methods: tuple[str, ...] = METHODS,
) -> TraceResult:
    """Trace ``model(*args, **kwargs)`` into an FX graph, trying each method in turn.

    Args:
        model: a ``torch.nn.Module``.
        args, kwargs: the inputs of one call (real, meta or fake tensors).
        warmup: run one call first (under ``torch.no_grad()``) to initialise lazy modules; pass
            ``False`` when the caller has just run the model (e.g. counting did).
        methods: the methods to try, in order (default: FX, non-strict export, strict export).

    Returns:
        A :class:`TraceResult`; ``method == "none"`` when every attempt failed. Never raises for a
        tracing failure: errors are recorded in ``attempts``.
    """
    import torch

    kwargs = dict(kwargs or {})
    result = TraceResult()
    start = time.perf_counter()
    if warmup:
        try:
            with torch.no_grad():
                model(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recorded, tracing may still work
            result.warmup_error = one_line(exc)
    tracers = {
        FX: lambda: _fx(model, args, kwargs),
        EXPORT_NONSTRICT: lambda: _export(model, args, kwargs, strict=False),
        EXPORT_STRICT: lambda: _export(model, args, kwargs, strict=True),
    }
    for method in methods:
        t0 = time.perf_counter()
        try:
            with _quiet():
                graph, factory, program = tracers[method]()
        except Exception as exc:  # noqa: BLE001 - every tracer failure is recorded, not raised
            result.attempts.append(TraceAttempt(method=method, ok=False, error=one_line(exc),
                                               duration_s=time.perf_counter() - t0))
            continue
        result.attempts.append(TraceAttempt(method=method, ok=True, duration_s=time.perf_counter() - t0))
        result.method = method
        result.graph = graph
        result._gm_factory = factory
        result.exported_program = program
        result.node_count = len(graph.nodes)
        break
    result.duration_s = time.perf_counter() - start
    return result
