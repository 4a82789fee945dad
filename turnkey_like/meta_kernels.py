"""Rules for running a model on tensors without data (``meta`` tensors and FakeTensors).

A model built on ``meta`` (or run under ``FakeTensorMode``, whose ops run the meta kernels) has no
values, and a few ops then do something other than what they do on real tensors. Each rule below
replaces what torch does for one op in that case; every other op runs unchanged. The counter
(:mod:`turnkey_like.characterize.counter`, which counts models on ``meta``) and the zoo
(:func:`turnkey_like.zoo.forward`, which runs models built on ``meta`` for discovery) apply the
same rules, from :data:`RULES`, so a model that runs in one runs in the other.

- **A boolean read of a meta tensor's value** (``aten._local_scalar_dense``: ``.item()``,
  ``bool(t)``, ``if (mask == 1).all():``) reads ``True``: meta tensors have no values, and every such
  check seen in transformers' mask utilities asks whether an input is the plain case (an all-ones
  attention mask; one sequence per row, no packed sequences), which is what tk's synthesized inputs
  are. Without it, every decoder model that builds on meta (Llama's 6.6e9-parameter default and the
  like) failed to count (``Tensor.item() cannot be called on meta tensors``). Scalars of other
  dtypes still fail: a size read from data has no plain case. The value is assumed, not computed:
  the counter records no row for it (:attr:`Rule.computes` is ``False``).
- **Grouped matrix multiplication** (``aten._grouped_mm``: ``torch.nn.functional.grouped_mm``,
  ``torch._grouped_mm``) on meta tensors or FakeTensors in float32 or float16 returns the output the
  CPU kernel would (:func:`grouped_mm_output`): torch 2.14's meta kernel (``meta_grouped_mm`` in
  ``torch/_meta_registrations.py``) repeats the CUDA kernel's checks and takes bfloat16 only off a
  GPU (float16 needs cuBLASLt), while the CPU kernel takes float32, bfloat16 and float16.
  transformers 5 runs every Mixture-of-Experts layer's experts through it
  (``transformers/integrations/moe.py``, experts implementation ``grouped_mm``), in float32 on CPU,
  so without it every MoE model built on meta (Qwen3-Next's 8e10-parameter default and the like)
  failed to count (``Expected mat_a to be BFloat16 or supported Float16 matrix, got
  torch.float32``). bfloat16 still goes to torch's meta kernel. The output is the op's result: the
  counter records it as the op's row.
- **Scaled dot-product attention** (``torch.nn.functional.scaled_dot_product_attention``) on meta
  tensors runs the fused kernel the CPU would run (:class:`FusedAttention`). torch picks SDPA's
  backend by a per-device table (``_fused_sdp_choice_stub``) that has no entry for ``meta``, so on
  meta every call took the math backend: ``enable_gqa`` copies K and V out to the query heads
  (``repeat_interleave``), and the scores are written and read back. On a 70B Llama's decode that
  was about 10x the activation bytes of the same call on CPU, where the flash kernel reads K and V
  once, by KV heads. The backend is now chosen by the CPU's own table on size-only stand-ins
  (:func:`fused_attention_choice`), and where that is the flash kernel the call runs
  ``aten._scaled_dot_product_flash_attention_for_cpu`` on the meta tensors, after the boolean-mask
  conversion the CPU path makes, so a model counts the same ops on meta as on CPU. This rule sits
  above ATen (the backend is chosen inside the composite op, before any dispatch mode sees it), so
  it is a function mode rather than an entry of :data:`RULES`.

Running on meta tensors also has a cost of its own: many meta kernels are Python (torch's
elementwise references and their type promotion), about 100 µs an op, and a model's repeated layers
run the same ops on the same sizes again and again. :class:`MetaMemo` keeps each functional op's
output sizes, strides and dtypes by the op and its arguments, and makes the outputs of a repeat
directly: a 70B Llama's 2048-token prefill on meta runs 3,458 ops of which 39 are distinct, and its
forward takes 0.16 s instead of 0.36 s. The counter and :class:`WithoutData` use it.

This module is ground level (it imports only torch): the counter and the zoo sit on one layer and
import it from below; neither imports the other.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

SCALAR_READ = aten._local_scalar_dense.default
"""``Tensor.item()``, ``bool(t)``: the op a data-dependent Python check dispatches."""

GROUPED_MM = getattr(getattr(aten, "_grouped_mm", None), "default", None)
"""``aten._grouped_mm``, the MoE experts' product, whose meta kernel refuses float32 (module doc);
``None`` on a torch without it."""

GROUPED_MM_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
"""The dtypes the CPU ``_grouped_mm`` kernel takes (``_grouped_mm_validate_inputs``)."""


class Rule(NamedTuple):
    """What tk does for one op on tensors without data.

    Attributes:
        applies: ``applies(args)``: whether the rule replaces torch's kernel for these positional
            arguments (otherwise the op runs as usual).
        output: ``output(*args, **kwargs)``: the op's output under the rule.
        computes: ``True`` when the output is what the op computes (the counter records a row for it);
            ``False`` when it is a value assumed for a read of data that does not exist (no row).
    """

    applies: Callable[[tuple], bool]
    output: Callable[..., Any]
    computes: bool


def _reads_boolean_meta(args: tuple) -> bool:
    """Whether a scalar read is of a boolean tensor on ``meta`` (module doc, first rule)."""
    x = args[0]
    return x.is_meta and x.dtype is torch.bool


def _plain_case(*_args, **_kwargs) -> bool:
    """The value a boolean read of a meta tensor takes: ``True``, the plain case (module doc)."""
    return True


def meta_kernel_refuses(args: tuple) -> bool:
    """Whether torch's meta kernel refuses ``_grouped_mm`` with these arguments where the CPU kernel
    would run them: ``mat_a`` (``args[0]``) is a meta tensor or FakeTensor (whose ops run the meta
    kernels) that is not bfloat16."""
    mat_a = args[0]
    if mat_a.dtype is torch.bfloat16:
        return False
    if mat_a.is_meta:
        return True
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(mat_a, FakeTensor)


def grouped_mm_output(mat_a, mat_b, offs=None, bias=None, out_dtype=None) -> torch.Tensor:
    """The output the CPU ``_grouped_mm`` kernel makes for these inputs, made without data.

    Shapes (``characterize.ops.grouped_mm_macs``): ``[M, K] x [G, K, N] -> [M, N]``,
    ``[G, M, K] x [G, K, N] -> [G, M, N]``, ``[M, K] x [K, N] -> [G, M, N]``,
    ``[G, M, K] x [K, N] -> [M, N]``, with ``offs`` ``[G]`` int32; the last dimension's stride padded
    to 16 bytes and dtype ``out_dtype`` or ``mat_a``'s, as ``create_grouped_gemm_output_tensor`` does
    (``aten/src/ATen/native/GroupedMMUtils.h``, torch 2.14). Made by ``mat_a.new_empty_strided``, so
    it is a meta tensor for meta inputs and a FakeTensor for fake ones.

    Raises:
        RuntimeError: where the CPU kernel raises, with its messages (``_grouped_mm_validate_inputs``,
            ``_resolve_grouped_mm_out_dtype``, its ``mm``'s dtype check): a dtype other than
            float32/bfloat16/float16, operands of two dtypes, not 2-D or 3-D, contraction sizes
            that differ, ``offs`` missing with a 2-D operand or given with two 3-D ones, ``offs``
            not 1-D int32, a group count that differs, a ``bias`` (no kernel takes one yet), an
            ``out_dtype`` other than ``mat_a``'s. The 16-byte stride alignment the kernel also
            requires is not checked: sizes, not strides, decide the count.
    """
    check = torch._check
    for name, m in (("mat_a", mat_a), ("mat_b", mat_b)):
        check(m.dtype in GROUPED_MM_DTYPES,
              lambda: f"Expected {name} to be Float32, BFloat16 or Float16 matrix, got {m.dtype}")
        check(m.dim() in (2, 3), lambda: f"{name} has to be 2 or 3d")
    check(mat_a.dtype == mat_b.dtype,
          lambda: f"expected m1 and m2 to have the same dtype, but got: {mat_a.dtype} != {mat_b.dtype}")
    a_2d, b_2d = mat_a.dim() == 2, mat_b.dim() == 2
    if not (a_2d and b_2d):
        check(mat_a.size(-1) == mat_b.size(-2), lambda: "contraction dimension of mat_a and mat_b must match")
    check((offs is not None) == (a_2d or b_2d),
          lambda: "Have to provide offsets if there is a 2d matrix, or no offset if both matrices are 3d")
    if offs is not None:
        check(offs.dim() == 1, lambda: "offs has to be 1D")
        check(offs.dtype == torch.int32, lambda: "Offsets have to be int32")
    check(bias is None, lambda: "Bias not supported yet")
    dtype = out_dtype or mat_a.dtype
    check(dtype == mat_a.dtype, lambda: "Grouped gemm output dtype must match `mat_a` dtype")
    if a_2d and b_2d:
        size = [offs.size(0), mat_a.size(0), mat_b.size(1)]
    elif a_2d or b_2d:
        check(offs.size(0) == (mat_b if a_2d else mat_a).size(0), lambda: "matrix batch sizes have to match")
        size = [mat_a.size(0), mat_b.size(-1)] if a_2d else [mat_a.size(1), mat_b.size(1)]
    else:
        check(mat_a.size(0) == mat_b.size(0), lambda: "batched dimension has to match")
        size = [mat_a.size(0), mat_a.size(1), mat_b.size(-1)]
    align = 16 // dtype.itemsize
    padded = (size[-1] + align - 1) // align * align
    stride = [padded, 1] if len(size) == 2 else [size[1] * padded, padded, 1]
    return mat_a.new_empty_strided(size, stride, dtype=dtype)


RULES: dict[Any, Rule] = {SCALAR_READ: Rule(_reads_boolean_meta, _plain_case, computes=False)}
"""Op overload -> its :class:`Rule` (module doc). The only place rules are listed."""
if GROUPED_MM is not None:
    RULES[GROUPED_MM] = Rule(meta_kernel_refuses, grouped_mm_output, computes=True)


def _memoizable(func) -> bool:
    """Whether ``func`` makes new tensors from its arguments alone: not mutable, and every output a
    tensor that aliases no input (views, in-place and ``out=`` ops, and ops that return scalars or
    lists, are run each time)."""
    schema = func._schema
    return bool(schema.returns) and not schema.is_mutable and all(
        r.alias_info is None and str(r.type) == "Tensor" for r in schema.returns)


def _signature(value):
    """What an op's output sizes can depend on in one argument: a meta tensor's sizes, strides and
    dtype; a list's items; any other value itself.

    Raises:
        _NotMeta: a tensor that is not a plain meta tensor (its op is run, not remembered).
    """
    if isinstance(value, torch.Tensor):
        if not value.is_meta or type(value) not in (torch.Tensor, torch.nn.Parameter):
            raise _NotMeta
        return (tuple(value.shape), value.stride(), value.dtype)
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    return value


class _NotMeta(Exception):
    """An argument that is not a plain meta tensor: the op is run."""


class MetaMemo:
    """The outputs of functional ops on meta tensors, remembered by op and argument signature
    (module doc): ``memo(func, args, kwargs)`` runs ``func`` the first time it sees that op with
    arguments of those sizes, strides, dtypes and values, and later makes outputs of the same sizes,
    strides and dtype (``torch.empty_strided`` on meta) without running it. Ops that alias or mutate
    their inputs, return other than tensors, or take a tensor that is not a plain meta tensor always
    run. Meta tensors hold no values, so an output's sizes, strides and dtype are all there is to
    remember; one memo lives for one model call.
    """

    def __init__(self):
        self.outputs: dict = {}
        self.ops: dict = {}

    def __call__(self, func, args: tuple, kwargs: dict):
        can = self.ops.get(func)
        if can is None:
            can = self.ops[func] = _memoizable(func)
        if not can:
            return func(*args, **kwargs)
        try:
            key = (func, _signature(args), _signature(tuple(kwargs.items())) if kwargs else ())
            known = self.outputs.get(key)
        except (_NotMeta, TypeError):  # a FakeTensor or real tensor; an unhashable argument
            return func(*args, **kwargs)
        if known is None:
            out = func(*args, **kwargs)
            outs = out if isinstance(out, tuple) else (out,)
            if all(type(o) is torch.Tensor and o.is_meta for o in outs):
                self.outputs[key] = ([(o.shape, o.stride(), o.dtype) for o in outs], isinstance(out, tuple))
            return out
        metas, is_tuple = known
        made = tuple(torch.empty_strided(shape, stride, dtype=dtype, device="meta") for shape, stride, dtype in metas)
        return made if is_tuple else made[0]


class WithoutData(TorchDispatchMode):
    """A dispatch mode that applies :data:`RULES` to a call that is not counted (the counter applies
    them itself), and runs the other ops on meta tensors through a :class:`MetaMemo`.

    Inside it, an op with a rule that applies returns the rule's output; every other op runs
    unchanged. For a model on ``meta`` run under ``FakeTensorMode`` (an MoE model's forward in
    float32 fails there as it does on meta): enter it *inside* the ``FakeTensorMode`` block, so that
    it sees each op first. Each op of the call goes through this mode (a Python call per op).
    """

    def __init__(self):
        super().__init__()
        self.memo = MetaMemo()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = RULES.get(func)
        if rule is not None and rule.applies(args):
            return rule.output(*args, **kwargs)
        return self.memo(func, args, kwargs)


SDPA = torch.nn.functional.scaled_dot_product_attention
"""The function :class:`FusedAttention` routes on meta tensors."""

FLASH = int(torch.nn.attention.SDPBackend.FLASH_ATTENTION.value)
"""``aten._fused_sdp_choice``'s answer for the flash kernel (``sdp::SDPBackend::flash_attention``)."""


def _size_only(t: torch.Tensor) -> torch.Tensor:
    """A CPU tensor with ``t``'s sizes, dtype and last-dimension stride, holding one row of storage
    (every other stride 0): what the CPU backend table reads (sizes, dtypes, the last stride),
    without allocating ``t``'s bytes."""
    last = t.stride(-1) if t.dim() else 1
    n = (t.shape[-1] - 1) * last + 1 if t.dim() and t.shape[-1] else 0
    return torch.empty(n, dtype=t.dtype).as_strided(t.shape, (0,) * (t.dim() - 1) + (last,) if t.dim() else ())


def fused_attention_choice(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                           enable_gqa=False) -> int:
    """The SDPA backend the CPU would pick for tensors of these sizes, dtypes and strides:
    ``aten._fused_sdp_choice`` (``sdp::select_sdp_backend_cpp``, torch 2.14) run on
    :func:`_size_only` stand-ins. Returns the ``torch.nn.attention.SDPBackend`` value: :data:`FLASH`
    or 0 (math). Runs with dispatch modes set aside, so a counting mode does not record the
    question."""
    from torch.utils._python_dispatch import _disable_current_modes

    with _disable_current_modes():
        return _choice(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def _choice(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> int:
    """The body of :func:`fused_attention_choice`."""
    mask = _size_only(attn_mask) if isinstance(attn_mask, torch.Tensor) else attn_mask
    return torch.ops.aten._fused_sdp_choice(
        _size_only(query), _size_only(key), _size_only(value), mask, dropout_p, is_causal,
        scale=scale, enable_gqa=enable_gqa)


def flash_attention_for_cpu(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                            enable_gqa=False) -> torch.Tensor:
    """What ``scaled_dot_product_attention`` runs on CPU once it has picked the flash kernel (torch
    2.14, ``aten/src/ATen/native/transformers/attention.cpp``): a boolean mask becomes an additive
    one (``where(mask, 0, -inf)`` in the query's dtype), then
    ``aten._scaled_dot_product_flash_attention_for_cpu`` runs, with GQA native (K and V by KV heads,
    no copies). Output ``[..., L, Ev]``, the query's dtype."""
    if isinstance(attn_mask, torch.Tensor) and attn_mask.dtype is torch.bool:
        neg_inf = torch.scalar_tensor(float("-inf"), dtype=query.dtype, device=query.device)
        zero = torch.scalar_tensor(0.0, dtype=query.dtype, device=query.device)
        attn_mask = torch.where(attn_mask, zero, neg_inf)
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]


_SDPA_PARAMS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


class FusedAttention(TorchFunctionMode):
    """A function mode in which SDPA on meta tensors runs the kernel the CPU would (module doc).

    Every other call, and SDPA on any other device, runs unchanged. One Python call per torch
    function while it is active, so the counter enters it only for a model with meta tensors.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is SDPA and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            bound = dict(zip(_SDPA_PARAMS, args), **kwargs)
            if set(bound) <= set(_SDPA_PARAMS) and fused_attention_choice(**bound) == FLASH:
                return flash_attention_for_cpu(**bound)
        return func(*args, **kwargs)


__all__ = ["RULES", "Rule", "WithoutData", "MetaMemo", "FusedAttention", "fused_attention_choice", "flash_attention_for_cpu", "SCALAR_READ", "GROUPED_MM", "GROUPED_MM_DTYPES",
           "grouped_mm_output", "meta_kernel_refuses"]
