"""What characterization finds for one model call (:class:`Characterization`): its parts are in
:mod:`turnkey_like.records.costs` (op rows, modules, totals, breakdown, fusion, the trace), the
profile in :mod:`turnkey_like.records.hardware`, a generation's in :mod:`turnkey_like.records.generation`.

Units: bytes (``*bytes*``), FLOPs with 1 MAC = 2 FLOPs, arithmetic intensity in FLOPs/byte, FLOP/s
and bytes/s for hardware peaks, seconds (``*_s``).
"""

from __future__ import annotations

from turnkey_like.records.base import Record
from turnkey_like.records.costs import (Breakdown, FusionResult, InputDesc, ModuleRow, OpRow, RepeatedBlocks, Totals,
                                        TraceSummary)
from turnkey_like.records.generation import Generation
from turnkey_like.records.hardware import HardwareProfile


class Characterization(Record):
    """Everything characterize found for one model call, computed once.

    Attributes:
        model_class: class name of the model.
        inputs: input name -> shape and dtype (positional args as ``args[i]``).
        dtype: the model's main dtype (most parameter bytes; else the first floating input's).
        device: where counting ran: ``cpu``/``cuda:0`` (real tensors) or ``meta`` (no weights touched).
        no_weights: True when counting ran on meta tensors (``no_weights=True`` or a model too big).
        trace: method, node count and attempts of the FX/export trace when one was asked for
            (``tk profile --trace``, ``characterize(..., trace=True)``); ``not traced`` otherwise
            (the default: the op rows' ``producers`` already give the dataflow graph).
        hardware: the profile used for the roofline.
        ridge_point: the profile's ridge point for ``dtype``, FLOPs/byte.
        rows: one :class:`OpRow` per op, in execution order.
        modules: the per-module roll-up in display (pre-)order, root first.
        totals: see :class:`Totals`.
        uncounted: op -> calls with no formula (never dropped silently), most frequent first.
        breakdown: share of roofline time by category and by bound.
        top_ops: indices into ``rows`` of the most time-consuming ops, slowest first (up to 50).
        fusion: fusion groups and the traffic they remove.
        repeats: runs of identical consecutive sibling modules (outermost first, then in module order).
        symbolic_dims: symbolic dimension names seen in shapes (reported, never replaced by 1).
        generation: for a call that filled an empty KV cache (a prefill), the generation it started:
            prefill and decode phases (:class:`~turnkey_like.records.Generation`).
        duration_s, count_duration_s, trace_duration_s: wall times, seconds (``trace_duration_s``
            is 0 when not traced).
    """

    model_class: str
    inputs: dict[str, InputDesc]
    dtype: str
    device: str
    no_weights: bool
    trace: TraceSummary
    hardware: HardwareProfile
    ridge_point: float
    rows: list[OpRow]
    modules: list[ModuleRow]
    totals: Totals
    uncounted: dict[str, int]
    breakdown: Breakdown
    top_ops: list[int]
    fusion: FusionResult
    symbolic_dims: list[str] = []
    repeats: list[RepeatedBlocks] = []
    generation: Generation | None = None
    duration_s: float = 0.0
    count_duration_s: float = 0.0
    trace_duration_s: float = 0.0

    @property
    def profile(self) -> HardwareProfile:
        """The hardware profile used (same as :attr:`hardware`)."""
        return self.hardware

    def identical_runs(self) -> list[RepeatedBlocks]:
        """The runs of :attr:`repeats` whose blocks' module rows agree in MACs, FLOPs, bytes,
        parameters and ops: the ones a view may show once, as "×N" of the first block.

        ``find_repeats`` (``turnkey_like.characterize.assemble``) only records runs whose blocks are
        identical in cost; a record written before it compared costs (blocks matched by class and
        output shapes) may hold runs whose blocks differ, and those are left out here, so no view
        shows them as copies of their first block.
        """
        modules = {m.path: m for m in self.modules}
        runs = []
        for run in self.repeats:
            blocks = [modules.get(p) for p in run.paths]
            if all(b is not None for b in blocks) and len(
                    {(b.macs, b.flops, b.bytes, b.params, b.ops) for b in blocks}) == 1:
                runs.append(run)
        return runs
