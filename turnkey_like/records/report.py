"""What the cache stores per invocation (:class:`BuildRecord`), what ``--json`` writes
(:class:`RunReport`), model calls side by side (:class:`Comparison`) and a corpus input's last
outcome (:class:`CorpusInput`); and the one flat row of an evaluation that listings and reports
show (:class:`ReportRow`, computed once by :func:`report_row`).
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec

from turnkey_like.records.base import STAGES, Record
from turnkey_like.records.benchmark import PerLayerResult
from turnkey_like.records.costs import BreakdownEntry
from turnkey_like.records.codec import SCHEMA_VERSION
from turnkey_like.records.discovery import Invocation, ModelInfo, ModelRequest, ScriptResult, TensorSpec
from turnkey_like.records.system import SystemInfo


class BuildRecord(Record):
    """What the cache stores for one invocation (one build folder).

    Attributes:
        build_name: ``<script-stem>[_<author>]_<invocation-hash>``.
        script: absolute path of the script (or .onnx file) the model came from.
        labels: the script's labels pragma.
        model: the model's facts without its invocations/children (``ModelInfo.summary()``).
        invocation: the invocation with its three stage results.
        system: the machine and software versions (``turnkey_like.system.system_record()``), and
            the Dask worker that built it in a corpus run.
        tk_version: version of tk that wrote the record.
        schema_version: :data:`SCHEMA_VERSION` when written.
        model_request: for a named model (``--model``): the source and options that made it
            (``script`` is then the name as given); ``None`` for scripts and ``.onnx`` files.
        created_at, updated_at: ISO-8601 UTC times.
        notes: what tk changed to record a value the schema cannot hold (a tensor as a parameter
            count, a path that is not UTF-8), one line each (``records.sanitise``).
    """

    build_name: str
    script: str
    labels: dict[str, list[str]]
    model: ModelInfo
    invocation: Invocation
    system: SystemInfo = msgspec.field(default_factory=SystemInfo)
    tk_version: str = ""
    schema_version: int = SCHEMA_VERSION
    created_at: str | None = None
    updated_at: str | None = None
    model_request: ModelRequest | None = None
    notes: list[str] = []


class RunReport(Record):
    """What ``--json`` writes for one run: the format's version, the tk that wrote it, every input.

    Attributes:
        schema_version: :data:`SCHEMA_VERSION`; a consumer tells formats apart by it.
        tk_version: version of tk that wrote the file.
        created_at: ISO-8601 UTC time the run finished.
        system: the machine and software versions.
        exit_code: the command's exit code (see ``docs/exit_codes.md``).
        interrupted: True when the run was stopped by Ctrl-C before every input ran.
        results: one :class:`ScriptResult` per input, in command-line order.
        errors: one line per input or selection problem (the same lines the terminal printed).
    """

    schema_version: int = SCHEMA_VERSION
    tk_version: str = ""
    created_at: str | None = None
    system: SystemInfo = msgspec.field(default_factory=SystemInfo)
    exit_code: int = 0
    interrupted: bool = False
    results: list[ScriptResult] = []
    errors: list[str] = []


class ComparisonEntry(Record):
    """One model call in a side-by-side comparison (``tk compare``; ``views.compare``).

    Attributes:
        label: what the user named it by (build name, invocation hash, model name).
        build_name: its cache folder, ``None`` when it was not cached.
        script: the script (or .onnx file) it came from.
        model, class_name: the model's display name and class.
        invocation_hash: the invocation hash; signature: its inputs.
        params, param_bytes: unique parameters and their bytes.
        hardware: the profile its roofline figures are on (``None`` when not characterized).
        macs, flops, bytes, arithmetic_intensity, bound, roofline_time_s: the characterization's totals
            (bytes read + written, unfused; seconds); ``None`` when it was not characterized.
        runtime, device: what the benchmark ran on; latency_ms: its mean latency (ms);
            throughput_ips: inferences/s counting the batch; ``None`` when not benchmarked.
        by_category: the share of roofline time per op category (the record's breakdown).
        statuses: stage name -> status of that stage.
        relative: per quantity (``params``, ``macs``, ``flops``, ``bytes``, ``roofline_time_s``,
            ``latency_ms``, ``throughput_ips``), this entry's value ÷ the first entry's (``None``
            where either is missing or the first is 0).
    """

    label: str
    model: str
    class_name: str
    invocation_hash: str
    build_name: str | None = None
    script: str | None = None
    signature: list[TensorSpec] = []
    params: int = 0
    param_bytes: int = 0
    hardware: str | None = None
    macs: int | None = None
    flops: int | None = None
    bytes: int | None = None
    arithmetic_intensity: float | None = None
    bound: str | None = None
    roofline_time_s: float | None = None
    runtime: str | None = None
    device: str | None = None
    latency_ms: float | None = None
    throughput_ips: float | None = None
    by_category: dict[str, BreakdownEntry] = {}
    statuses: dict[str, str] = {}
    relative: dict[str, float | None] = {}


class Comparison(Record):
    """Model calls side by side (``tk compare``, ``--json``, the HTML report).

    Attributes:
        entries: in the order given; ratios in ``relative`` are to the first.
        categories: every op category in any entry's breakdown, by total roofline time, slowest first.
        notes: caveats, one line each (entries on different hardware profiles, not characterized, ...).
    """

    entries: list[ComparisonEntry] = []
    categories: list[str] = []
    notes: list[str] = []


class CorpusInput(Record):
    """How one input of a corpus last ended, for ``--resume`` (``<cache>/.corpus/inputs/<key>.json``;
    ``turnkey_like.corpus``).

    Attributes:
        key: the input's identity (``corpus.input_key``: path or named model, and selectors).
        entry: the input as the user gave it.
        fingerprint: sha256 of what its outcome depends on (``corpus.input_fingerprint``: the file's
            bytes, script arguments, discovery depth, input shapes, requested stages).
        run_id: the run that ran it; finished_at: ISO-8601 UTC time it ended.
        result: its :class:`ScriptResult` without the stage payloads (those live in the build records).
    """

    key: str
    entry: str
    fingerprint: str
    run_id: str
    finished_at: str
    result: ScriptResult


# --------------------------------------------------------------------------------------------------
# The report row: one flat row per cached evaluation, computed once from its BuildRecord
# --------------------------------------------------------------------------------------------------

#: Latency statistics the row carries, in column order (``latency_<stat>_ms``).
LATENCY_STATS = ("mean", "median", "p90", "p99", "min", "max", "std")
#: How many layers the ``top_layers`` value names.
TOP_LAYERS = 3
#: The ``error`` value is cut to this many characters.
ERROR_EXCERPT_CHARS = 300
#: Version of what :func:`report_row` computes. The cache index stores rows
#: (``turnkey_like.cache_index``) and uses only those of its own format, which includes this number,
#: the tk version and the row's keys: bump it whenever a row's values change for the same record.
ROW_VERSION = 3  # 3: text a spreadsheet would evaluate is neutralised in the CSV line (csv_cell)


class ReportRow(Record):
    """One evaluation (a cached :class:`BuildRecord`) as one flat row: what `tk cache list`, `tk cache
    stats` and `tk report` (CSV, JSON, Markdown) show, computed once by :func:`report_row` and kept in
    the cache index (``turnkey_like.cache_index``).

    Fields are in the report's column order; their encoded names (``class`` for :attr:`class_name`)
    are the CSV header and the JSON keys (:data:`REPORT_KEYS`). Values are read from the record only,
    in base units: counts, FLOPs (1 MAC = 2 FLOPs), FLOPs/byte, milliseconds (``*_ms``), seconds
    (``*_s``), inferences/s counting the batch, fractions 0-1; a value the record lacks is ``None``,
    never a guess. The text values (``labels``, ``input_shapes``, ``top_layers``, ``error``) are
    composed here once, so every renderer shows the same text.

    Attributes:
        build_name, script (file name only), model, class_name, labels (the line-1 pragma's text),
        author, task: what the evaluation is; params: unique parameters.
        model_hash, invocation_hash: the TurnkeyML-compatible hashes; input_shapes: the signature
            as ``name: (d0, d1) dtype; ...``.
        macs, flops, arithmetic_intensity, hardware, bound: the characterization's totals and the
            hardware profile its bound is on.
        runtime ... batch_size: the benchmark's runtime and device, the build's precision (the
            benchmark's when benchmarked), opset and exporter, the batch counted in the throughput.
        latency_<stat>_ms, throughput_ips: the benchmark's figures.
        top_layers: the :data:`TOP_LAYERS` modules with the most own measured time (``--per-layer``),
            ``path 1.05 ms, 22% of roof; ...``; efficiency: roofline ÷ mean latency of the whole
            call; unattributed_share: the per-layer run's time outside any kernel (0-1).
        benchmark_reused, benchmark_run_id: whether this run took the benchmark from the cache, and
            the run that measured it.
        <stage>_status, <stage>_duration_s: each stage's status and wall time (s).
        error: ``stage status: message | last log line`` of the first failed stage, cut to
            :data:`ERROR_EXCERPT_CHARS`.
        tk_version, cpu, os, torch, onnxruntime: the tk and the machine that wrote the record.
        updated_at: when a run last wrote the record (ISO-8601 UTC).
    """

    build_name: str
    script: str | None
    model: str
    class_name: str = msgspec.field(name="class")
    labels: str
    author: str
    task: str
    params: int
    model_hash: str
    invocation_hash: str
    input_shapes: str
    macs: int | None
    flops: int | None
    arithmetic_intensity: float | None
    hardware: str | None
    bound: str | None
    runtime: str | None
    runtime_version: str | None
    execution_provider: str | None
    device: str | None
    device_name: str | None
    precision: str | None
    opset: int | None
    exporter: str | None
    batch_size: int | None
    latency_mean_ms: float | None
    latency_median_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_min_ms: float | None
    latency_max_ms: float | None
    latency_std_ms: float | None
    throughput_ips: float | None
    top_layers: str | None
    efficiency: float | None
    unattributed_share: float | None
    benchmark_reused: bool | None
    benchmark_run_id: str | None
    characterization_status: str
    characterization_duration_s: float | None
    build_status: str
    build_duration_s: float | None
    benchmark_status: str
    benchmark_duration_s: float | None
    error: str | None
    tk_version: str | None
    cpu: str | None
    os: str | None
    torch: str | None
    onnxruntime: str | None
    updated_at: str | None

    def values(self) -> tuple:
        """The row's values in column order (:data:`REPORT_KEYS`)."""
        return msgspec.structs.astuple(self)

    def __getitem__(self, key: str) -> Any:
        """The value of column ``key`` (a name of :data:`REPORT_KEYS`: ``class``, ``latency_mean_ms``,
        ...), for renderers that walk the columns. Raises ``KeyError`` for another name."""
        return getattr(self, _ATTRIBUTE[key])

    __iter__ = None  # not a sequence: __getitem__ takes column keys (walk REPORT_KEYS, or values())


#: The row's keys (CSV header, JSON keys), in column order.
REPORT_KEYS: tuple[str, ...] = ReportRow.__struct_encode_fields__
_ATTRIBUTE = dict(zip(REPORT_KEYS, ReportRow.__struct_fields__))
assert REPORT_KEYS[25:32] == tuple(f"latency_{s}_ms" for s in LATENCY_STATS)


def format_labels(labels: dict[str, list[str]] | None) -> str:
    """Return labels as the line-1 pragma writes them: ``key::v1,v2 key2::v``."""
    return " ".join(f"{k}::{','.join(str(x) for x in (v or []))}" for k, v in (labels or {}).items())


def _format_inputs(signature: list[TensorSpec]) -> str:
    """``name: (d0, d1) dtype; ...`` in signature (hash) order; non-tensors by their type name."""
    parts = []
    for spec in signature:
        if spec.shape is None:
            parts.append(f"{spec.name}: {spec.dtype}")
        else:
            parts.append(f"{spec.name}: ({', '.join(str(d) for d in spec.shape)}) {spec.dtype}")
    return "; ".join(parts)


def _error_excerpt(inv: Invocation) -> str | None:
    """``stage status: message | last log line`` of the first failed stage, cut to
    :data:`ERROR_EXCERPT_CHARS`; ``None`` when no stage failed."""
    for name in STAGES:
        stage = getattr(inv, name)
        if not stage.failed:
            continue
        text = f"{name} {stage.status.value}: {stage.error or ''}".rstrip(": ")
        if stage.log_excerpt:
            last = [ln for ln in stage.log_excerpt.strip().splitlines() if ln.strip()]
            if last and last[-1].strip() not in text:
                text += f" | {last[-1].strip()}"
        text = " ".join(text.split())
        return text if len(text) <= ERROR_EXCERPT_CHARS else text[: ERROR_EXCERPT_CHARS - 3] + "..."
    return None


def _top_layers(per_layer: PerLayerResult | None) -> str | None:
    """``path ms, N% of roof; ...`` of the :data:`TOP_LAYERS` modules with the most own measured time
    (``PerLayerResult.top_measured``); ``(model)`` names the model's own ops."""
    if per_layer is None:
        return None
    from turnkey_like.units import format_ms

    parts = []
    for r in per_layer.top_measured(TOP_LAYERS):
        roof = f", {r.efficiency:.0%} of roof" if r.efficiency is not None else ""
        parts.append(f"{r.name or '(model)'} {format_ms(r.measured_ms)}{roof}")
    return "; ".join(parts)


def report_row(record: BuildRecord) -> ReportRow:
    """Return the :class:`ReportRow` of one :class:`BuildRecord`, read from the record only.

    Works on full records and on the summaries ``Cache.records()`` returns (a summary keeps every
    value a row needs).
    """
    inv = record.invocation
    model = record.model
    labels = record.labels
    charz = inv.characterization.result
    build = inv.build.result
    bench = inv.benchmark.result
    totals = charz.totals if charz is not None else None
    latency = bench.latency_ms if bench is not None else None
    per_layer = bench.per_layer if bench is not None else None
    system = record.system
    stages = [getattr(inv, name) for name in STAGES]
    return ReportRow(
        build_name=record.build_name,
        script=os.path.basename(record.script) if record.script else None,
        model=model.name,
        class_name=model.class_name,
        labels=format_labels(labels),
        author=",".join(labels.get("author") or []),
        task=",".join(labels.get("task") or []),
        params=model.params,
        model_hash=model.model_hash,
        invocation_hash=inv.hash,
        input_shapes=_format_inputs(inv.signature),
        macs=totals.macs if totals else None,
        flops=totals.flops if totals else None,
        arithmetic_intensity=totals.arithmetic_intensity if totals else None,
        hardware=charz.hardware.name if charz else None,
        bound=totals.bound if totals else None,
        runtime=bench.runtime if bench else None,
        runtime_version=bench.runtime_version if bench else None,
        execution_provider=bench.execution_provider if bench else None,
        device=bench.device if bench else None,
        device_name=bench.device_name if bench else None,
        precision=bench.precision if bench else (build.precision if build else None),
        opset=build.opset if build else None,
        exporter=build.exporter if build else None,
        batch_size=bench.batch_size if bench else None,
        **{f"latency_{s}_ms": getattr(latency, s) if latency else None for s in LATENCY_STATS},
        throughput_ips=bench.throughput_ips if bench else None,
        top_layers=_top_layers(per_layer),
        efficiency=per_layer.model_efficiency() if per_layer else None,
        unattributed_share=per_layer.unattributed_share if per_layer else None,
        benchmark_reused=bench.reused if bench else None,
        benchmark_run_id=inv.benchmark.run_id if bench else None,
        characterization_status=stages[0].status.value,
        characterization_duration_s=stages[0].duration_s,
        build_status=stages[1].status.value,
        build_duration_s=stages[1].duration_s,
        benchmark_status=stages[2].status.value,
        benchmark_duration_s=stages[2].duration_s,
        error=_error_excerpt(inv),
        tk_version=record.tk_version or None,
        cpu=system.cpu,
        os=system.os,
        torch=system.torch,
        onnxruntime=system.onnxruntime,
        updated_at=record.updated_at,
    )


#: First characters that make a spreadsheet read a cell as a formula (or, for tab, carriage return and
#: NUL, skip them and read what follows as one): OWASP's CSV Injection page
#: (https://owasp.org/www-community/attacks/CSV_Injection) lists ``= + - @``, tab (0x09) and carriage
#: return (0x0D); OWASP ASVS 5.0 requirement 1.2.10 adds NUL; CWE-1236 names the first four.
FORMULA_TRIGGERS = frozenset("=+-@\t\r\0")
#: A text cell that is exactly a decimal number (``-5``, ``+1.5e3``): a spreadsheet reads it as that
#: number and nothing else, so it is written as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: What makes a CSV cell need quotes (RFC 4180 section 2.6): the delimiter, a double quote, a line break.
_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def csv_cell(value: Any) -> str:
    """One value as a CSV cell: ``None`` empty, numbers and booleans as Python writes them (floats
    round-trip exactly; a negative number stays a number), text quoted where RFC 4180 needs it.

    Text a spreadsheet would evaluate (its first character in :data:`FORMULA_TRIGGERS`: ``=1+2``,
    ``@SUM(A1)``, ``-2+3+cmd|...``) is neutralised as OWASP recommends: a single quote is put in front
    and the cell is quoted (``"'=1+2"``), so Excel, LibreOffice and Google Sheets show the text and run
    nothing. Text that is exactly a plain decimal number (``-5``) is left as it is: no formula can
    hide in it, and a spreadsheet reads it as the number it is.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)  # int, float (repr: round-trips), bool: what csv.writer writes
    if value[:1] in FORMULA_TRIGGERS and not _PLAIN_NUMBER.fullmatch(value):
        return '"\'' + value.replace('"', '""') + '"'
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(row: ReportRow) -> str:
    """The row as one CSV line (``\\n`` included): its values in column order, each a :func:`csv_cell`
    (``None`` empty, numbers as Python writes them, text that a spreadsheet would evaluate
    neutralised); the header is :data:`REPORT_KEYS`.

    The CSV encoding of a row, like :func:`~turnkey_like.records.codec.encode` is its JSON: the cache
    index stores the line with the row so `tk report` writes CSV without encoding rows again, and
    ``report.table`` writes the same lines under the header.
    """
    return ",".join(map(csv_cell, msgspec.structs.astuple(row))) + "\n"
