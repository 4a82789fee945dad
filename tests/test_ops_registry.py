"""The op registry itself: every name resolves, an op is registered once, the skip list is real."""

from __future__ import annotations

import pytest
import torch

from turnkey_like.characterize import ops
from turnkey_like.characterize.counter import SKIP_NAMES, count_model

aten = torch.ops.aten


def test_every_registered_name_exists_in_this_torch():
    # Names are resolved at import; one this torch lacks is skipped there and listed here.
    assert ops.UNRESOLVED == []
    missing = [n for n in ops.NAMES if ops.resolve(n) is None]
    assert missing == []
    # every registered ATen name maps to the formula it was given with
    for name, formula in ops.NAMES.items():
        assert ops.lookup(ops.resolve(name)).name == formula, name


def test_every_skipped_view_or_metadata_name_exists():
    assert [n for n in SKIP_NAMES if not hasattr(aten, n)] == []
    assert len(set(SKIP_NAMES)) == len(SKIP_NAMES)
    # none of them also has a formula (a formula would make the counter record it)
    assert [n for n in SKIP_NAMES if getattr(aten, n) in ops.REGISTRY] == []


def test_registering_an_op_twice_raises_and_changes_nothing():
    before = (dict(ops.REGISTRY), dict(ops.NAMES), list(ops.UNRESOLVED))

    def again(*_, out_shape=None, **__):
        return ops.Cost(None, 0)

    with pytest.raises(ValueError, match="registered twice"):
        ops.register("mm", "matmul")(again)  # a name given before
    with pytest.raises(ValueError, match="registered twice"):
        ops.register("relu_", "activation")(again)  # registered as relu's in-place variant
    with pytest.raises(ValueError, match="registered twice"):
        ops.register(["not_an_op_xyz", "not_an_op_xyz"], "other")(again)  # twice in one call
    assert (dict(ops.REGISTRY), dict(ops.NAMES), list(ops.UNRESOLVED)) == before


def test_unknown_category_raises():
    with pytest.raises(ValueError, match="category"):
        ops.register("mm", "arithmetic")


def test_exponential_is_random_generation_not_exp():
    # Tensor.exponential_ draws samples (used by Gumbel sampling): category other, 0 FLOPs.
    assert ops.category_of(aten.exponential_) == ops.category_of(aten.exponential) == "other"
    assert ops.category_of(aten.exp) == "elementwise"
    res = count_model(lambda x: x.exponential_(), (torch.empty(4, 5),))
    (row,) = res.rows
    assert (row.op, row.category, row.flops, row.counted) == ("aten.exponential_.default", "other", 0, True)


def test_higher_order_names_resolve_to_higher_order_ops():
    flex = ops.resolve("higher_order.flex_attention")
    assert isinstance(flex, torch._ops.HigherOrderOperator)
    assert ops.category_of(flex) == "attention"
    assert ops.resolve("higher_order.no_such_op") is None
    assert ops.resolve("no_such_aten_op") is None


def test_a_formula_registered_at_run_time_is_used_by_the_next_count():
    # The counter keeps what it decided per op for the process; a registration must still count.
    def det_model(x):
        return torch.linalg.det(x)

    x = torch.randn(3, 4, 4)
    before = count_model(det_model, (x,))
    assert before.uncounted == {"aten._linalg_det.default": 1}
    saved = (dict(ops.REGISTRY), dict(ops.NAMES))

    def det_cost(x_shape, *_, out_shape=None, **__):
        # LU factorisation: about n^3 / 3 MACs per n x n matrix (hand-derived here: 3 x 64 / 3 = 64)
        n = x_shape[-1]
        return ops.Cost(macs=ops.prod(x_shape[:-2]) * n**3 // 3, flops=2 * ops.prod(x_shape[:-2]) * n**3 // 3)

    try:
        ops.register("_linalg_det", "other")(det_cost)
        after = count_model(det_model, (x,))
    finally:
        ops.REGISTRY.clear()
        ops.REGISTRY.update(saved[0])
        ops.NAMES.clear()
        ops.NAMES.update(saved[1])
    (row,) = [r for r in after.rows if r.op == "aten._linalg_det.default"]
    assert after.uncounted == {} and row.counted and row.macs == 64
    # and forgotten again once the formula is gone
    assert count_model(det_model, (x,)).uncounted == {"aten._linalg_det.default": 1}
