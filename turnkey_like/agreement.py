"""Output agreement: how closely a built or benchmarked model's outputs match eager PyTorch.

Per output, with ``a`` the candidate (ONNX Runtime, torch.compile, an fp16 model) and ``e`` the
reference (eager PyTorch, or the fp32 file for an ``.onnx`` input):

- ``max_abs_err = max |a - e|``;
- ``max_rel_err = max |a - e| / max |e|`` (relative to the output's largest finite magnitude, so
  elements near zero do not blow it up);
- ``passed`` when every element satisfies ``|a - e| <= abs + rel * |e|`` (numpy.allclose's rule) with
  the precision's :data:`TOLERANCES`. Integer and bool outputs must match exactly. NaN in the same
  place on both sides agrees (as do equal infinities); a NaN on one side only is an infinite error.

The records are :class:`turnkey_like.records.OutputAgreement` (one per output) and
:class:`turnkey_like.records.Tolerance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from turnkey_like.records import OutputAgreement, Tolerance

if TYPE_CHECKING:
    import numpy as np

#: Tolerances per precision: an element passes when ``|a - e| <= abs + rel * |e|``.
#:
#: - fp32: exporter rewrites (fused kernels, a different summation order) move results by ~1e-6
#:   relative per op; 1e-4 / 1e-3 leaves room for deep networks while catching real mistakes (a wrong
#:   constant, a dropped op, dropout left on).
#: - fp16: a 10-bit mantissa gives a unit roundoff of 2^-11 ~ 4.9e-4 per op (IEEE 754 binary16),
#:   accumulating over layers; 1e-2 / 5e-2 is the usual bar for fp16 inference (ONNX Runtime's own
#:   float16 tests use 1e-2..1e-1).
#: - bf16 (torch runtimes on a bfloat16 model): a 7-bit mantissa gives a unit roundoff of
#:   2^-8 ~ 3.9e-3, 8x fp16's (torch.testing.assert_close's per-op defaults are rtol 1.6e-2 for
#:   bfloat16 vs 1e-3 for float16); 5e-2 / 1e-1 is fp16's bar doubled, a whole-network bar.
#: fp64 is held to the fp32 bar (:func:`tolerance_for`).
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(abs=1e-4, rel=1e-3),
    "fp16": Tolerance(abs=1e-2, rel=5e-2),
    "bf16": Tolerance(abs=5e-2, rel=1e-1),
}


def tolerance_for(precision: str) -> Tolerance:
    """The :data:`TOLERANCES` entry for a precision name (``fp32``, ``fp16``, ``bf16``); any other
    (``fp64``, integer models) is held to fp32's."""
    return TOLERANCES.get(precision, TOLERANCES["fp32"])


def compare_outputs(actual: Sequence[np.ndarray], expected: Sequence[np.ndarray], names: Sequence[str],
                    tolerance: Tolerance) -> tuple[dict[str, OutputAgreement], bool]:
    """Each output's agreement of ``actual`` with ``expected`` (numpy arrays, same order), and whether all pass.

    Args:
        actual: the candidate's outputs.
        expected: the reference outputs.
        names: one name per output (the candidate's output names); missing names become ``output_<i>``.
        tolerance: the pass rule's ``abs`` and ``rel`` (:data:`TOLERANCES`).

    Returns:
        ``({name: OutputAgreement}, all_passed)``. An output present on one side only, or with another
        shape, gets ``passed=False`` and ``error`` saying why. ``max_abs_err``/``max_rel_err`` may be
        ``inf`` (a NaN on one side only; infinite errors encode as JSON ``null``).
    """
    import numpy as np

    report: dict[str, OutputAgreement] = {}
    ok = len(actual) == len(expected)
    count = max(len(actual), len(expected))
    labels = [names[i] if i < len(names) else f"output_{i}" for i in range(count)]
    for i, name in enumerate(labels):
        if i >= len(actual) or i >= len(expected):
            side = "the reference" if i >= len(expected) else "the candidate"
            report[name] = OutputAgreement(
                passed=False,
                error=f"{len(actual)} outputs vs {len(expected)} in the reference: {side} has no output {i}")
            continue
        a = np.asarray(actual[i])
        e = np.asarray(expected[i])
        if a.shape != e.shape:
            report[name] = OutputAgreement(passed=False, shape=list(e.shape),
                                           error=f"shape {list(a.shape)} vs reference {list(e.shape)}")
            ok = False
            continue
        exact = not (np.issubdtype(e.dtype, np.floating) or np.issubdtype(e.dtype, np.complexfloating))
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        same = (a64 == e64) | (np.isnan(a64) & np.isnan(e64))  # equal infinities and NaN positions agree
        with np.errstate(invalid="ignore"):
            diff = np.where(same, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN on one side only is an infinite error
        max_abs = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(e64[np.isfinite(e64)]).max()) if np.isfinite(e64).any() else 0.0
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        if exact:
            passed = bool(max_abs == 0)
        else:
            with np.errstate(invalid="ignore"):
                passed = bool(np.all(same | (diff <= tolerance.abs + tolerance.rel * np.abs(e64))))
        report[name] = OutputAgreement(max_abs_err=max_abs, max_rel_err=max_rel, passed=passed, shape=list(e.shape))
        ok = ok and passed
    return report, ok


def max_errors(report: dict[str, OutputAgreement]) -> tuple[float | None, float | None]:
    """The largest ``max_abs_err`` and ``max_rel_err`` over a :func:`compare_outputs` report.

    ``(None, None)`` when no output could be compared (an empty report, or every output has an ``error``).
    """
    compared = [r for r in report.values() if r.error is None and r.max_abs_err is not None]
    if not compared:
        return None, None
    max_abs = max(r.max_abs_err for r in compared if r.max_abs_err is not None)
    rels = [r.max_rel_err for r in compared if r.max_rel_err is not None]
    return max_abs, (max(rels) if rels else None)
