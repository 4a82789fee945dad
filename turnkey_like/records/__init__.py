"""The typed records every stage of the pipeline reads and writes, and their one codec.

Every record is a :class:`msgspec.Struct`. Records are built by the stages, rendered by the reports,
and encoded/decoded only at the boundaries (the cache, ``--json``, a child process's report) by
:func:`encode`, :func:`decode` and :func:`to_builtins` (:mod:`.codec`), which validate every field
against these types.

Hierarchy::

    ScriptResult            one user script (or .onnx file) given on the command line
      └─ ModelInfo          one model architecture (instances with the same repr merge)
           ├─ Invocation    one distinct input signature the model was called with
           │    ├─ characterization: StageResult[Characterization]
           │    ├─ build:            StageResult[BuildResult]
           │    └─ benchmark:        StageResult[BenchmarkResult]
           └─ ModelInfo...  submodules down to --max-depth, each with its own invocations

A :class:`BuildRecord` is what the cache stores for one invocation: the invocation plus the model
and script facts needed to read it alone (see ``turnkey_like.cache``); its :class:`ReportRow` is the
one flat row that listings and reports show (:func:`report_row`, computed once, stored in the cache
index).

The modules, by stage (each imports only the ones above it)::

    sanitise          sanitise: makes any record encodable and valid, noting what it changed
    codec             SCHEMA_VERSION, RecordError, encode/decode/to_builtins/convert/migrate
    base              Record, Status, STAGES, StageResult, now_utc, Dim
    hardware          HardwareProfile (peaks), MachineLoad and Spread (how quiet a measurement was)
    costs             a characterization's parts: op and module rows, totals, breakdown, fusion, trace, roofline chart
    generation        Generation, its phases and steps, MeasuredGeneration, what-ifs (WhatIf, Capacity)
    characterization  Characterization: everything characterize found for one model call
    build             BuildResult, agreement with eager PyTorch
    benchmark         BenchmarkResult, LatencyStats, PerLayerResult and its queries, LayerTime
    discovery         ScriptResult, ModelInfo, Invocation, TensorSpec, ModelRequest
    system            SystemInfo: the machine and software a record was written with
    report            BuildRecord, RunReport, Comparison, CorpusInput, ReportRow and report_row
    survey            ModelSurvey, ExportOutcome, SurveyReport, ... (tk discover-models) and their counts
    messages          the one channel protocol: Message, the tagged union of every child message

Every name is importable from ``turnkey_like.records`` itself, as before the split.

Units everywhere: seconds (``*_s``), milliseconds (``*_ms``), bytes (``*bytes*``), FLOPs with
1 MAC = 2 FLOPs, arithmetic intensity in FLOPs/byte, FLOP/s and bytes/s for hardware peaks.
"""

from __future__ import annotations

from turnkey_like.records.base import (
    FAILURE_STATUSES,
    FINAL_STATUSES,
    STAGES,
    Dim,
    Record,
    StageResult,
    Status,
    T,
    now_utc,
)
from turnkey_like.records.benchmark import (
    UNATTRIBUTED,
    UNMAPPED,
    BenchmarkResult,
    LatencyStats,
    LayerTime,
    PerLayerResult,
)
from turnkey_like.records.build import BuildResult, GraphIO, OutputAgreement, Tolerance
from turnkey_like.records.characterization import Characterization
from turnkey_like.records.costs import (
    FUSION_ENDS,
    Breakdown,
    BreakdownEntry,
    FusionGroup,
    FusionResult,
    FusionSummary,
    InputDesc,
    ModuleRow,
    OpRow,
    RepeatedBlocks,
    RooflineChart,
    RooflinePoint,
    RooflineRoof,
    Totals,
    TraceAttempt,
    TraceSummary,
)
from turnkey_like.records.generation import (
    Capacity,
    EncoderCost,
    Generation,
    GenerationPhase,
    GenerationShape,
    MeasuredGeneration,
    StepCost,
    WhatIf,
    WhatIfPhase,
)
from turnkey_like.records.hardware import HardwareProfile, MachineLoad, Spread
from turnkey_like.records.codec import (
    OLDEST_READABLE_SCHEMA,
    SCHEMA_VERSION,
    R,
    RecordError,
    convert,
    decode,
    encode,
    migrate,
    to_builtins,
)
from turnkey_like.records.discovery import Invocation, ModelInfo, ModelRequest, ScriptResult, TensorSpec
from turnkey_like.records.messages import (
    LAST,
    Attempt,
    Batch,
    Crash,
    Discovered,
    Done,
    Ended,
    FoundCall,
    InputFailed,
    Message,
    Output,
    Save,
    StageFinished,
    StageStarted,
    SurveyDone,
    SurveyStep,
    Tally,
    Tick,
    Wake,
)
from turnkey_like.records.report import (
    REPORT_KEYS,
    ROW_VERSION,
    BuildRecord,
    Comparison,
    ComparisonEntry,
    CorpusInput,
    ReportRow,
    RunReport,
    csv_line,
    format_labels,
    report_row,
)
from turnkey_like.records.survey import (
    DEFAULT_TIMEOUT_S,
    LADDER,
    ExportOutcome,
    ModelSurvey,
    SkippedModel,
    SurveyReport,
    ZooNames,
    failure_types,
    survey_counts,
)
from turnkey_like.records.system import SystemInfo
from turnkey_like.records.sanitise import clean_text, one_line_text, safe_repr, sanitise

__all__ = [
    # codec
    "SCHEMA_VERSION", "OLDEST_READABLE_SCHEMA", "RecordError", "encode", "decode", "to_builtins", "convert",
    "migrate", "R",
    # base
    "Record", "Status", "FINAL_STATUSES", "FAILURE_STATUSES", "STAGES", "StageResult", "T", "now_utc", "Dim",
    # characterization
    "InputDesc", "HardwareProfile", "MachineLoad", "Spread", "TraceAttempt", "TraceSummary", "OpRow", "ModuleRow",
    "Totals",
    "BreakdownEntry", "Breakdown", "FUSION_ENDS", "FusionGroup", "FusionSummary", "FusionResult", "RepeatedBlocks",
    "Characterization", "Generation", "GenerationPhase", "MeasuredGeneration", "StepCost", "RooflineRoof", "RooflinePoint", "RooflineChart",
    "GenerationShape", "WhatIf", "WhatIfPhase", "Capacity", "EncoderCost",
    # build
    "GraphIO", "Tolerance", "OutputAgreement", "BuildResult",
    # benchmark
    "LayerTime", "PerLayerResult", "LatencyStats", "BenchmarkResult", "UNATTRIBUTED", "UNMAPPED",
    # discovery
    "TensorSpec", "Invocation", "ModelRequest", "ModelInfo", "ScriptResult",
    # report
    "BuildRecord", "RunReport", "ComparisonEntry", "Comparison", "CorpusInput", "ReportRow", "REPORT_KEYS",
    "ROW_VERSION", "report_row", "format_labels", "csv_line",
    # system
    "SystemInfo",
    # survey
    "DEFAULT_TIMEOUT_S", "LADDER", "ExportOutcome", "ModelSurvey", "SkippedModel", "SurveyReport", "ZooNames",
    "survey_counts", "failure_types",
    # messages
    "Message", "Batch", "LAST", "FoundCall", "Tally", "Discovered", "Save", "StageStarted", "StageFinished", "Done",
    "InputFailed", "Crash", "SurveyStep", "SurveyDone", "Attempt", "Ended", "Output", "Tick", "Wake",
    # sanitise
    "sanitise", "clean_text", "one_line_text", "safe_repr",
]
