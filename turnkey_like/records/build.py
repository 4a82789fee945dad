"""What the ONNX build of one invocation produced (:class:`BuildResult`) and how its outputs agree
with eager PyTorch.
"""

from __future__ import annotations

from turnkey_like.records.base import Dim, Record
from turnkey_like.records.costs import TraceSummary


class GraphIO(Record):
    """One ONNX graph input: name, shape (ints) and numpy dtype name.

    ``int_high``: for an ``.onnx`` input's integer input used as an index into a weight table (an
    embedding lookup), the table's rows: synthesized values stay below it. ``None`` otherwise.
    """

    name: str
    shape: list[Dim]
    dtype: str
    int_high: int | None = None


class Tolerance(Record):
    """Agreement tolerance: an output passes when ``|a - e| <= abs + rel * |e|`` elementwise."""

    abs: float
    rel: float


class OutputAgreement(Record):
    """How one output of a build or benchmark agrees with eager PyTorch.

    Attributes:
        max_abs_err: largest ``|a - e|``; ``None`` when not comparable (see ``error``) or infinite.
        max_rel_err: ``max|a - e| / max|e|``; ``None`` when not comparable or infinite.
        passed: within the tolerance (integer and bool outputs must match exactly).
        shape: the output's shape.
        error: why the output could not be compared (shape or count mismatch), else ``None``.
    """

    max_abs_err: float | None = None
    max_rel_err: float | None = None
    passed: bool = False
    shape: list[int] | None = None
    error: str | None = None


class BuildResult(Record):
    """What a build produced (``Invocation.build.result``).

    Attributes:
        onnx_path: the model to run (the fp16 file with ``--precision fp16``), absolute path.
        exported_path: the exporter's fp32 output (same as ``onnx_path`` for fp32).
        optimized_path: ONNX Runtime's optimized copy (level *extended*).
        data_files: external-data files that must stay next to ``onnx_path`` (names, same folder).
        size_bytes: bytes of ``onnx_path`` plus its external data.
        external_data: whether weights are stored outside the ``.onnx`` protobuf.
        opset: default-domain opset of the exported model.
        exporter: ``dynamo``, ``torchscript`` or ``file`` (an ``.onnx`` input): what produced it.
        exporter_errors: one-line error per exporter that was tried and failed.
        precision: ``fp32`` or ``fp16``.
        input_names, output_names: graph input/output names, in graph order.
        input_specs: per graph input, its name, shape and numpy dtype name.
        onnx_op_counts: node count per ONNX op type (sub-graphs included), sorted by name.
        durations: seconds per step: ``eager_reference`` (the eager call whose outputs the export is
            checked against), ``trace`` (``torch.export``, once), ``export`` (ONNX from that program,
            or the TorchScript fallback), ``check``, ``fp16``, ``optimize``, ``validate``.
        fingerprint: what the build depends on (``weights``, ``inputs``, ``opset``, ``exporter``,
            ``precision``, ``tk``, ``torch``; see ``turnkey_like.build.fingerprint``).
        faithfulness: per output name, its agreement with eager PyTorch.
        tolerance: the tolerance used for ``faithful`` (``turnkey_like.agreement.TOLERANCES``).
        faithful: True when every output is within tolerance, ``None`` when not measured.
        reused: True when this result was reused from an earlier build.
        stale: fingerprint keys that differ from the current model (``rebuild=never`` reuse only).
        trace: the build's one ``torch.export`` trace (method, attempts with one-line errors,
            seconds): ``not traced`` with ``--exporter torchscript``; ``None`` for ``.onnx`` inputs
            and for records written before builds recorded it.
    """

    onnx_path: str
    optimized_path: str | None
    size_bytes: int
    external_data: bool
    opset: int
    exporter: str
    precision: str = "fp32"
    exported_path: str | None = None
    data_files: list[str] = []
    exporter_errors: dict[str, str] = {}
    input_names: list[str] = []
    output_names: list[str] = []
    input_specs: list[GraphIO] = []
    onnx_op_counts: dict[str, int] = {}
    durations: dict[str, float] = {}
    fingerprint: dict[str, str | int | float | bool | None] = {}
    faithfulness: dict[str, OutputAgreement] = {}
    tolerance: Tolerance | None = None
    faithful: bool | None = None
    reused: bool = False
    stale: list[str] = []
    trace: TraceSummary | None = None
