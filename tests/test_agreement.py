"""Output agreement: the pass rule and the error measures, on hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from turnkey_like.agreement import TOLERANCES, compare_outputs, max_errors, tolerance_for
from turnkey_like.records import OutputAgreement, decode, encode

FP32 = TOLERANCES["fp32"]


def test_compare_outputs_hand_numbers():
    expected = [np.array([1.0, 2.0, -4.0], dtype=np.float32)]
    actual = [np.array([1.0, 2.001, -4.0], dtype=np.float32)]
    report, ok = compare_outputs(actual, expected, ["y"], FP32)
    # |2.001 - 2| = 1e-3 <= 1e-4 + 1e-3 * 2 = 2.1e-3 -> passes
    assert ok and report["y"].passed and report["y"].max_abs_err == pytest.approx(1e-3, rel=1e-3)
    assert report["y"].max_rel_err == pytest.approx(1e-3 / 4, rel=1e-3)  # relative to max|e| = 4
    assert report["y"].shape == [3] and report["y"].error is None
    report, ok = compare_outputs([np.array([1.0, 2.01, -4.0])], expected, ["y"], FP32)
    assert not ok and not report["y"].passed  # 0.01 > 2.1e-3
    report, ok = compare_outputs([np.array([1, 2])], [np.array([1, 3])], ["ids"], TOLERANCES["fp16"])
    assert not ok and report["ids"].max_abs_err == 1.0  # integers must match exactly
    nan = float("nan")
    report, ok = compare_outputs([np.array([nan, 1.0])], [np.array([nan, 1.0])], ["y"], FP32)
    assert ok and report["y"].max_abs_err == 0.0  # NaN in the same place on both sides agrees
    report, ok = compare_outputs([np.array([nan, 1.0])], [np.array([0.0, 1.0])], ["y"], FP32)
    assert not ok and report["y"].max_abs_err == float("inf")  # NaN on one side only
    # an infinite error is written as null (JSON has no infinity) and read back as None
    assert decode(encode(report["y"]), OutputAgreement).max_abs_err is None


def test_fp16_tolerance_is_looser():
    expected = [np.array([10.0, -10.0])]
    actual = [np.array([10.05, -10.0])]  # 0.05 <= 1e-2 + 5e-2 * 10 = 0.51 for fp16, > 1.01e-2 for fp32
    assert compare_outputs(actual, expected, ["y"], TOLERANCES["fp16"])[1] is True
    assert compare_outputs(actual, expected, ["y"], FP32)[1] is False
    assert tolerance_for("fp64") == FP32 and tolerance_for("bf16") == TOLERANCES["bf16"]


def test_mismatched_outputs_are_named_not_dropped():
    e = np.zeros((2, 3))
    report, ok = compare_outputs([np.zeros((3, 2))], [e], ["y"], FP32)
    assert not ok and report["y"].error == "shape [3, 2] vs reference [2, 3]" and report["y"].passed is False
    report, ok = compare_outputs([e], [e, e], ["a"], FP32)
    assert not ok
    assert report["a"].passed and report["output_1"].passed is False
    assert "the candidate has no output 1" in report["output_1"].error


def test_max_errors_summary():
    expected = [np.array([1.0, 2.0]), np.array([100.0])]
    actual = [np.array([1.5, 2.0]), np.array([101.0])]
    report, _ = compare_outputs(actual, expected, ["a", "b"], FP32)
    # a: abs 0.5, rel 0.5 / 2 = 0.25; b: abs 1.0, rel 1 / 100 = 0.01 -> worst abs 1.0, worst rel 0.25
    assert max_errors(report) == (pytest.approx(1.0), pytest.approx(0.25))
    assert max_errors({}) == (None, None)
    shape_only, _ = compare_outputs([np.zeros(3)], [np.zeros(2)], ["a"], FP32)
    assert max_errors(shape_only) == (None, None)
