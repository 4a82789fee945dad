"""The registry of per-op cost formulas, keyed by ATen op (``OpOverloadPacket``) or higher-order op.

One registry serves every counting path (see ``turnkey_like.characterize.counter``). Each formula is
a small pure function of the op's arguments with every tensor replaced by its shape (a tuple of
ints), plus ``out_shape`` (the shape of the op's first output, or a list of shapes). It returns a
:class:`Cost`: MACs (``None`` where a multiply-accumulate is not defined) and FLOPs, with
**1 MAC = 2 FLOPs**. Each formula is registered with :func:`register` on the ATen ops it covers,
with a category, and its docstring names its source. Adding an op is one function and one
decorator line, as in PyTorch's ``torch/utils/flop_counter.py``. Op names resolve when this module
is imported; an op registered twice raises, and every name given is kept (:data:`NAMES`) so a test
checks that each exists in the installed torch.

Categories (:data:`CATEGORIES`): ``conv``, ``matmul``, ``attention`` (the three whose MACs are
"conv+matmul MACs", :data:`MAC_CATEGORIES`, the figure torchvision reports as ``_ops``), ``norm``,
``activation``, ``elementwise``, ``pooling``, ``softmax``, ``embedding``, ``interpolation``,
``reduction``, ``data_movement`` (copies, concatenation, padding, indexing, fills: 0 FLOPs, real
bytes) and ``other`` (random-number generation and the like).

Conventions, applied everywhere:

- Matmul-like ops and convolutions count only the multiply-accumulates of the product: the bias
  folded into ``addmm``/``convolution`` and the alpha/beta scalings are not counted (as in
  ``torch.utils.flop_counter`` and fvcore). FLOPs = 2 x MACs for them. Two exceptions: a bias given
  to ``_grouped_mm`` costs 1 FLOP per output element (why: :func:`grouped_mm_cost`), and a
  triangular solve adds its divisions by the diagonal, 1 FLOP each and no MAC
  (:func:`triangular_solve_counts`).
- Element-wise ops cost a fixed number of FLOPs per output element, derived from the op's defining
  formula in the PyTorch documentation, counting each ``+ - * /``, comparison and each
  transcendental (``exp``, ``log``, ``tanh``, ``erf``, ``sqrt``) as 1 FLOP. The per-element counts
  are in :data:`ACTIVATION_FLOPS` and next to each formula.
- View and metadata ops (``view``, ``t``, ``expand``, ``detach``, ...) are not in the registry;
  the counter skips them (see ``counter``). An op with no entry here is reported as *uncounted*.
- Quantized ops (``torch.ops.quantized.*``, the int8 kernels of the quantized engines fbgemm,
  qnnpack and onednn) are a family of their own at the end of this module ("quantized"): their
  MACs are those of the float op (int8 MACs), their weights come packed, and the counter opens the
  packed argument into its tensors (:func:`packed_weights`) before the formula sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

aten = torch.ops.aten

CATEGORIES = (
    "conv",
    "matmul",
    "attention",
    "norm",
    "activation",
    "elementwise",
    "pooling",
    "softmax",
    "embedding",
    "interpolation",
    "reduction",
    "data_movement",
    "other",
)
"""Every category an op can have."""

MAC_CATEGORIES = ("conv", "matmul", "attention")
"""Categories whose MACs add up to "conv+matmul MACs" (torchvision's ``_ops``, in GMACs)."""


class Cost(NamedTuple):
    """The cost of one op call.

    Attributes:
        macs: multiply-accumulates, ``None`` where MACs are not defined (element-wise ops, ...).
        flops: floating-point operations; 2 x ``macs`` for conv/matmul/attention products.
        read_elems: optional per-argument override of how many elements of a tensor argument the
            op really reads, keyed by the position of the argument among the op's tensor
            arguments (e.g. a gather reads only the rows it gathers: :func:`gathered`; a grouped
            product only the groups that have rows: :func:`grouped_mm_reads`). ``None`` means every
            tensor argument is read whole.
    """

    macs: int | None
    flops: int
    read_elems: dict[int, int] | None = None


@dataclass(frozen=True)
class OpFormula:
    """One registry entry: the cost function and the category of the ops it covers.

    ``dtype``: the dtype the op computes in, when it is not the dtype of its first input: ``int8``
    for the quantized engine's int8 products, whose input may be a float tensor that the kernel
    quantizes on the fly (dynamic quantization). The op's row carries it, so the roofline times the
    op at that dtype's peak (``HardwareProfile.peak``). ``None``: the first input's dtype.

    ``values``: ``(position, name)`` in the op's schema of each (small, integer) tensor argument
    whose *values* the formula reads, besides its shape (``_grouped_mm``'s ``offs``: which groups
    have rows). The formula then gets ``data={name: values}`` (:func:`argument_values`): a tuple of
    ints, or ``None`` for a tensor without data (meta, FakeTensor), where it must fall back to a
    rule of shapes. Empty for almost every op: formulas are functions of shapes.
    """

    fn: Callable[..., Cost]
    category: str
    name: str
    dtype: str | None = None
    values: tuple[tuple[int, str], ...] = ()


REGISTRY: dict[Any, OpFormula] = {}
"""Op -> :class:`OpFormula`: ATen ``OpOverloadPacket`` objects, and ``HigherOrderOperator`` objects
for the higher-order ops costed by a formula (``higher_order.flex_attention``)."""

NAMES: dict[str, str] = {}
"""Every op name given to :func:`register` -> the name of its formula, in registration order.
Kept so a test can check that each one exists in the installed torch (:data:`UNRESOLVED`)."""

UNRESOLVED: list[str] = []
"""Names given to :func:`register` that this torch build lacks (skipped, so tk still imports on
other torch versions; on the pinned torch a test requires this to be empty)."""

HIGHER_ORDER_PREFIX = "higher_order."
QUANTIZED_PREFIX = "quantized."


def resolve(name: str):
    """Return the op called ``name`` in this torch build, or ``None`` when it has none.

    ``"mm"`` is ``torch.ops.aten.mm`` (an ``OpOverloadPacket``); ``"higher_order.flex_attention"``
    is ``torch.ops.higher_order.flex_attention`` (a ``HigherOrderOperator``);
    ``"quantized.conv2d"`` is ``torch.ops.quantized.conv2d`` (the quantized engine's packet).
    """
    for prefix, namespace in ((HIGHER_ORDER_PREFIX, "higher_order"), (QUANTIZED_PREFIX, "quantized")):
        if name.startswith(prefix):
            try:
                return getattr(getattr(torch.ops, namespace), name[len(prefix):])
            except (AttributeError, RuntimeError):
                return None
    return getattr(aten, name, None) if hasattr(aten, name) else None


def register(names, category: str, inplace: bool = False, dtype: str | None = None, values: tuple[str, ...] = ()):
    """Register the decorated formula for the ops named in ``names``, resolved now (at import).

    Args:
        names: one op name (``"mm"``) or a list of names; ATen names, ``"higher_order.NAME"``
            for a higher-order op, ``"quantized.NAME"`` for a quantized-engine op. Every name is
            kept in :data:`NAMES`; a name this torch build lacks is skipped and listed in
            :data:`UNRESOLVED`.
        category: one of :data:`CATEGORIES`.
        inplace: also register the in-place variant ``name_`` of each name, where this torch
            build has one (derived names are not kept in :data:`NAMES`).
        dtype: the dtype the ops compute in when it is not their first input's (``OpFormula.dtype``).
        values: names of the tensor arguments whose values the formula reads (``OpFormula.values``);
            their positions are read from the schema of the ops' first overload.

    Raises:
        ValueError: an unknown category, an op that already has a formula (an op is registered
            once; a second registration would silently replace the first cost), or a ``values``
            name that is not an argument of every op named.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown op category {category!r}")
    names = [names] if isinstance(names, str) else list(names)

    def deco(fn):
        ops, missing = [], []
        for n in names:
            if n in NAMES or names.count(n) > 1:
                raise ValueError(f"op {n!r} is registered twice: {NAMES.get(n, fn.__name__)} and {fn.__name__}")
            op = resolve(n)
            if op is None:
                missing.append(n)
                continue
            ops.append(op)
            if inplace:
                variant = resolve(f"{n}_")
                if variant is not None:
                    ops.append(variant)
        for op in ops:
            if op in REGISTRY or ops.count(op) > 1:
                first = REGISTRY[op].name if op in REGISTRY else fn.__name__
                raise ValueError(f"op {op} is registered twice: {first} and {fn.__name__}")
        positions = tuple((_argument_position(ops, name), name) for name in values)
        # Checked: now record (nothing is recorded when registration raises).
        entry = OpFormula(fn=fn, category=category, name=fn.__name__, dtype=dtype, values=positions)
        for n in names:
            NAMES[n] = fn.__name__
        UNRESOLVED.extend(missing)
        for op in ops:
            REGISTRY[op] = entry
        return fn

    return deco


def _argument_position(ops: list, name: str) -> int:
    """The position of argument ``name`` in the schema of the first overload of each of ``ops``
    (the same in all of them).

    Raises:
        ValueError: an op without that argument, or with it at another position.
    """
    found = {next((i for i, a in enumerate(getattr(op, op.overloads()[0])._schema.arguments) if a.name == name), None)
             for op in ops}
    if len(found) != 1 or None in found:
        raise ValueError(f"argument {name!r} is not at one position in {[str(op) for op in ops]}")
    return found.pop()


def argument_values(entry: OpFormula, args: tuple, kwargs: dict | None) -> dict[str, tuple[int, ...] | None]:
    """The values of the arguments ``entry`` reads by value (:attr:`OpFormula.values`), by name: the
    tensor's elements as a flat tuple of ints when it holds data (a real tensor, on any device), else
    ``None`` (a meta tensor or FakeTensor; an argument not given). Small index tensors only: the
    values are copied to the host."""
    found: dict[str, tuple[int, ...] | None] = {}
    for position, name in entry.values:
        t = args[position] if position < len(args) else (kwargs or {}).get(name)
        found[name] = (tuple(int(v) for v in t.reshape(-1).tolist())
                       if type(t) in _PLAIN_TENSORS and not t.is_meta else None)
    return found


def lookup(packet) -> OpFormula | None:
    """Return the registry entry for an ``OpOverloadPacket`` (or ``OpOverload``), or ``None``."""
    packet = getattr(packet, "_overloadpacket", packet)
    return REGISTRY.get(packet)


def category_of(packet) -> str | None:
    """Return the category of an ATen op, or ``None`` when it has no formula."""
    entry = lookup(packet)
    return entry.category if entry else None


# ---------------------------------------------------------------------------------------------
# helpers


def prod(xs) -> int:
    """Product of a sequence of ints (1 for an empty one)."""
    r = 1
    for x in xs:
        r *= int(x)
    return r


def _first(shape):
    """The first shape of an output that may be a shape or a list/tuple of shapes."""
    if shape and isinstance(shape[0], (tuple, list)):
        return shape[0]
    return shape


def _numel(shape) -> int:
    return prod(_first(shape)) if shape is not None else 0


def _elementwise(per_elem: int):
    """A formula costing ``per_elem`` FLOPs per element of the (first) output."""

    def fn(*args, out_shape=None, **kwargs) -> Cost:
        return Cost(None, per_elem * _numel(out_shape))

    fn.__name__ = f"elementwise_{per_elem}_flop"
    return fn


# ---------------------------------------------------------------------------------------------
# matmul


def mm_macs(a_shape, b_shape) -> int:
    """MACs of ``[m, k] @ [k, n]``: m*k*n (standard dense matrix product; each output element is a
    length-k dot product)."""
    m, k = a_shape[-2], a_shape[-1]
    n = b_shape[-1]
    return int(m) * int(k) * int(n)


@register("mm", "matmul")
def mm_cost(a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``mm(a[m,k], b[k,n])``: MACs = m*k*n, FLOPs = 2*MACs (dense matrix product)."""
    macs = mm_macs(a_shape, b_shape)
    return Cost(macs, 2 * macs)


@register(["addmm", "_addmm_activation"], "matmul")
def addmm_cost(bias_shape, a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``addmm(bias, a[m,k], b[k,n])``: MACs = m*k*n; the bias add is not counted (torch
    flop_counter convention)."""
    macs = mm_macs(a_shape, b_shape)
    return Cost(macs, 2 * macs)


@register("bmm", "matmul")
def bmm_cost(a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``bmm(a[b,m,k], b[b,k,n])``: MACs = b*m*k*n (batched dense product)."""
    macs = int(a_shape[0]) * mm_macs(a_shape, b_shape)
    return Cost(macs, 2 * macs)


@register(["baddbmm", "addbmm"], "matmul")
def baddbmm_cost(bias_shape, a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``baddbmm(c, a[b,m,k], b[b,k,n])`` / ``addbmm``: MACs = b*m*k*n; the add is not counted."""
    macs = int(a_shape[0]) * mm_macs(a_shape, b_shape)
    return Cost(macs, 2 * macs)


@register(["dot", "vdot"], "matmul")
def dot_cost(a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``dot(a[n], b[n])``: MACs = n."""
    macs = int(a_shape[0])
    return Cost(macs, 2 * macs)


@register("mv", "matmul")
def mv_cost(a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``mv(a[m,n], v[n])``: MACs = m*n."""
    macs = int(a_shape[0]) * int(a_shape[1])
    return Cost(macs, 2 * macs)


@register("addmv", "matmul")
def addmv_cost(bias_shape, a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``addmv(c, a[m,n], v[n])``: MACs = m*n; the add is not counted."""
    macs = int(a_shape[0]) * int(a_shape[1])
    return Cost(macs, 2 * macs)


@register("addr", "matmul")
def addr_cost(c_shape, a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``addr(c, u[m], v[n])`` (outer product added to c): MACs = m*n."""
    macs = int(a_shape[0]) * int(b_shape[0])
    return Cost(macs, 2 * macs)


@register("linear", "matmul")
def linear_cost(x_shape, w_shape, *_, out_shape=None, **__) -> Cost:
    """``linear(x[..., in], w[out, in])``: MACs = prod(x.shape[:-1]) * in * out (= one mm)."""
    macs = prod(x_shape[:-1]) * int(w_shape[-1]) * int(w_shape[0] if len(w_shape) == 2 else 1)
    return Cost(macs, 2 * macs)


@register("matmul", "matmul")
def matmul_cost(a_shape, b_shape, *_, out_shape=None, **__) -> Cost:
    """``matmul(a, b)`` with broadcasting (torch.matmul semantics): MACs = prod(out) * k, where k is
    the contracted dimension (``a.shape[-1]``)."""
    k = int(a_shape[-1])
    macs = _numel(out_shape) * k
    return Cost(macs, 2 * macs)


def einsum_macs(equation: str, shapes) -> int:
    """MACs of ``torch.einsum(equation, *operands)`` evaluated left to right, two operands at a time.

    For two operands every index letter is a loop, so MACs = product of the sizes of all distinct
    letters (the standard cost of a pairwise tensor contraction). With more operands the
    intermediate keeps the letters still needed by later operands or the output.
    Ellipses are not supported (returns the two-operand count over named letters only).
    """
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        letters = [c for c in term if c.isalpha()]
        for c, s in zip(letters, shape[len(shape) - len(letters):] if "..." in term else shape):
            sizes[c] = int(s)
    if len(terms) == 1:
        return 0
    if not rhs and "->" not in eq:
        counts: dict[str, int] = {}
        for t in terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        rhs = "".join(sorted(c for c, n in counts.items() if n == 1 and c.isalpha()))
    total = 0
    cur = set(c for c in terms[0] if c.isalpha())
    for i, term in enumerate(terms[1:], start=1):
        nxt = set(c for c in term if c.isalpha())
        letters = cur | nxt
        total += prod(sizes[c] for c in letters)
        later = set(rhs) | set("".join(terms[i + 1:]))
        cur = set(c for c in letters if c in later)
    return total


@register("einsum", "matmul")
def einsum_cost(equation, operand_shapes, *_, out_shape=None, **__) -> Cost:
    """``einsum(equation, operands)``: MACs from :func:`einsum_macs`. Only reached when einsum is not
    decomposed (on CPU/CUDA it decomposes to ``bmm`` before the dispatcher sees it)."""
    macs = einsum_macs(equation, operand_shapes)
    return Cost(macs, 2 * macs)


def grouped_mm_macs(a_shape, b_shape) -> int:
    """MACs of ``torch._grouped_mm(mat_a, mat_b, offs=...)``: G independent products, one per group.

    The four layouts (torch 2.14: ``torch.nn.functional.grouped_mm`` docstring; the shapes of
    ``create_grouped_gemm_output_tensor`` and the loops of ``_grouped_mm_fallback`` in
    ``aten/src/ATen/native/GroupedMMUtils.h``), with ``offs`` ``[G]`` the cumulative ends of the
    groups along the split dimension (group g's slice is ``offs[g-1]:offs[g]``, from 0 for g = 0):

    - 2D x 3D, ``[M, K] x [G, K, N] -> [M, N]`` (MoE forward: tokens sorted by expert; ``offs``
      splits the rows M): group g is ``[M_g, K] @ [K, N]``, sum over g of M_g*K*N = M*K*N;
    - 3D x 3D, ``[G, M, K] x [G, K, N] -> [G, M, N]`` (no ``offs``, a bmm): G*M*K*N;
    - 2D x 2D, ``[M, K] x [K, N] -> [G, M, N]`` (``offs`` splits the contraction K, as in the MoE
      weight gradient): group g is ``[M, K_g] @ [K_g, N]``, sum of M*K_g*N = M*K*N;
    - 3D x 2D, ``[G, M, K] x [K, N] -> [M, N]`` (``offs`` splits mat_b's columns N): group g is
      ``[M, K] @ [K, N_g]``, sum of M*K*N_g = M*K*N.

    So MACs = M*K*N with M = ``a_shape[-2]``, K = ``a_shape[-1]``, N = ``b_shape[-1]``, times G when
    both operands are 3D.

    Rows (2D x 3D), contraction slices (2D x 2D) or columns (3D x 2D) beyond ``offs[-1]`` are
    skipped by the kernels ("elements beyond offs[-1] are ignored", the torch docstring), but only
    ``offs``'s values say how many there are, and a formula sees shapes: the whole split dimension is
    counted, as if ``offs[-1]`` covered it. That is exact for transformers' MoE layers
    (``transformers/integrations/moe.py``, ``grouped_mm_experts_forward``: every one of the
    tokens x top_k rows is routed to one expert, so ``offs[-1] == M``), and an upper bound where
    rows are left out (expert-parallel sentinel rows). It is also what ``meta`` tensors allow, whose
    ``offs`` hold no values; so meta and real weights count the same MACs. (Bytes read do use the
    values where there are some: :func:`grouped_mm_reads`.)
    """
    groups = int(a_shape[0]) if len(a_shape) == 3 and len(b_shape) == 3 else 1
    return groups * int(a_shape[-2]) * int(a_shape[-1]) * int(b_shape[-1])


def grouped_mm_reads(a_shape, b_shape, offs=None, ends: tuple[int, ...] | None = None) -> dict[int, int] | None:
    """Elements of the per-group operand a ``_grouped_mm`` reads, as a ``Cost.read_elems`` override
    (``None``: every argument read whole).

    A grouped GEMM kernel reads the weights of the groups that have rows, and no others: the CPU
    fallback loops over the groups and multiplies each one's slice (``_grouped_mm_fallback``,
    ``aten/src/ATen/native/GroupedMMUtils.h``: an empty slice makes an empty product, which touches
    nothing), and the CUDA kernels launch one problem per group. In the two layouts where ``offs``
    splits the *other* operand, the 3D operand's groups are read only where their slice is not empty:

    - 2D x 3D, ``[M, K] x [G, K, N]`` (MoE forward: a token's k rows go to its k experts): mat_b
      (argument 1) reads ``groups × K × N``;
    - 3D x 2D, ``[G, M, K] x [K, N]`` (``offs`` splits mat_b's columns): mat_a (argument 0) reads
      ``groups × M × K``.

    ``groups``: the groups with a non-empty slice, from ``offs``'s values ``ends`` (the cumulative
    ends: group g is ``ends[g-1]:ends[g]``, from 0) when they are known; on meta tensors and
    FakeTensors, which hold none, the most the split dimension can fill, ``min(G, M)`` (``min(G,
    N)``): an upper bound, exact where every group has a row or the rows go to distinct groups (one
    token's k rows to its k distinct experts: one sequence's decode step). 2D x 2D and 3D x 3D read
    every group (``offs`` splits the contraction, or there is none). The 2D operand and ``offs`` are
    read whole.
    """
    if offs is None or len(a_shape) + len(b_shape) != 5:
        return None
    a3 = len(a_shape) == 3
    count = int((a_shape if a3 else b_shape)[0])
    split = int(b_shape[-1] if a3 else a_shape[0])
    if ends is not None:
        groups = sum(1 for start, end in zip((0, *ends[:-1]), ends) if end > start)
    else:
        groups = min(count, split)
    if groups >= count:
        return None
    if a3:
        return {0: groups * int(a_shape[1]) * int(a_shape[2])}
    return {1: groups * int(b_shape[1]) * int(b_shape[2])}


@register("_grouped_mm", "matmul", values=("offs",))
def grouped_mm_cost(a_shape, b_shape, offs=None, bias=None, out_dtype=None, *_, out_shape=None, data=None,
                    **__) -> Cost:
    """``_grouped_mm(mat_a, mat_b, offs, bias, out_dtype)`` (``torch.nn.functional.grouped_mm``,
    ``torch._grouped_mm``; transformers' default MoE experts): MACs from :func:`grouped_mm_macs`,
    FLOPs = 2*MACs, plus 1 FLOP per output element for a ``bias`` (added to every group's output).
    Unlike the bias folded into ``addmm`` (not counted, module conventions), this one is counted: no
    torch 2.14 kernel accepts it ("Bias not supported yet"), so a bias reaches the model as the
    separate element-wise ``add_`` transformers runs after the product (1 FLOP an element), and a
    torch that fuses it keeps the model's FLOPs unchanged. Bytes read: the groups of the per-group
    operand that have rows (:func:`grouped_mm_reads`, from ``offs``'s values in ``data`` where the
    tensor holds them, else a bound of shapes), the other arguments whole."""
    macs = grouped_mm_macs(a_shape, b_shape)
    reads = grouped_mm_reads(a_shape, b_shape, offs, (data or {}).get("offs"))
    return Cost(macs, 2 * macs + (_numel(out_shape) if bias is not None else 0), reads)


# ---------------------------------------------------------------------------------------------
# convolution


def conv_macs(x_shape, w_shape, out_shape, transposed: bool = False) -> int:
    """MACs of an N-d convolution (1d/2d/3d; any stride, padding, dilation, groups).

    Forward: every output element is a dot product over ``Cin/groups * prod(kernel)`` inputs, so
    MACs = N * Cout * prod(out_spatial) * Cin/groups * prod(kernel) = N * prod(out_spatial) *
    numel(weight), with weight ``[Cout, Cin/groups, *kernel]``.

    Transposed: every *input* element is scattered through ``Cout/groups * prod(kernel)`` weights,
    so MACs = N * Cin * prod(in_spatial) * Cout/groups * prod(kernel) = N * prod(in_spatial) *
    numel(weight), with weight ``[Cin, Cout/groups, *kernel]``. (Counting output positions times
    the full kernel would overcount by stride^d, e.g. 4x for a stride-2 2-d transposed conv.)
    Bias is not counted. Source: the direct-convolution loop nest (e.g. Dumoulin & Visin, "A guide
    to convolution arithmetic for deep learning", 2016, sections 2 and 4).
    """
    n = int(x_shape[0])
    spatial = x_shape[2:] if transposed else _first(out_shape)[2:]
    return n * prod(spatial) * prod(w_shape)


@register(
    [
        "convolution",
        "_convolution",
        "convolution_overrideable",
        "cudnn_convolution",
        "mkldnn_convolution",
        "_slow_conv2d_forward",
        "slow_conv3d_forward",
        "_nnpack_spatial_convolution",
        "miopen_convolution",
        "miopen_depthwise_convolution",
        "_conv_depthwise2d",
        "conv_depthwise3d",
        "slow_conv_dilated2d",
        "slow_conv_dilated3d",
    ],
    "conv",
)
def conv_cost(x_shape, w_shape, _bias=None, _stride=None, _padding=None, _dilation=None,
              transposed=False, *_, out_shape=None, **__) -> Cost:
    """``convolution(x, w, bias, stride, padding, dilation, transposed, ...)``: see :func:`conv_macs`."""
    transposed = bool(transposed) if isinstance(transposed, bool) else False
    macs = conv_macs(x_shape, w_shape, out_shape, transposed)
    return Cost(macs, 2 * macs)


@register(["conv1d", "conv2d", "conv3d"], "conv")
def conv_nd_cost(x_shape, w_shape, *_, out_shape=None, **__) -> Cost:
    """``conv{1,2,3}d`` (when not decomposed): see :func:`conv_macs` (forward)."""
    macs = conv_macs(x_shape, w_shape, out_shape, False)
    return Cost(macs, 2 * macs)


@register(
    ["conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "cudnn_convolution_transpose",
     "slow_conv_transpose2d", "slow_conv_transpose3d", "miopen_convolution_transpose"],
    "conv",
)
def conv_transpose_cost(x_shape, w_shape, *_, out_shape=None, **__) -> Cost:
    """Transposed convolution ops: see :func:`conv_macs` (transposed)."""
    macs = conv_macs(x_shape, w_shape, out_shape, True)
    return Cost(macs, 2 * macs)


# ---------------------------------------------------------------------------------------------
# attention


def sdpa_macs(q_shape, k_shape, v_shape) -> int:
    """MACs of scaled dot-product attention ``softmax(Q K^T * scale) V``.

    Q ``[..., Hq, Lq, E]``, K ``[..., Hkv, S, E]``, V ``[..., Hkv, S, Ev]``. MACs = B*Hq*Lq*S*E
    (scores) + B*Hq*Lq*S*Ev (weighted sum), where B is the product of the leading dims.
    Grouped-query attention (Hkv < Hq): K/V heads are broadcast to the query heads, so counting
    is by query heads. Causal masking: the full Lq x S products are counted, as the math backend
    (``torch.nn.functional.scaled_dot_product_attention`` reference implementation) computes them
    before masking; a kernel that skips masked blocks does up to half as many. Source: Vaswani et
    al., "Attention Is All You Need", 2017, eq. 1; torch.utils.flop_counter.sdpa_flop_count.
    """
    *lead, hq, lq, e = q_shape
    s = k_shape[-2]
    ev = v_shape[-1]
    b = prod(lead)
    return b * int(hq) * int(lq) * int(s) * (int(e) + int(ev))


def sdpa_cost_from_shapes(q_shape, k_shape, v_shape) -> Cost:
    """Cost of SDPA: MACs from :func:`sdpa_macs`; FLOPs = 2*MACs (softmax and scaling, O(Lq*S)
    against O(Lq*S*E), are not counted, so fused kernels and the math backend agree on MACs)."""
    macs = sdpa_macs(q_shape, k_shape, v_shape)
    return Cost(macs, 2 * macs)


@register(
    [
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
        "scaled_dot_product_attention",
        "_flash_attention_forward",
        "_efficient_attention_forward",
        "higher_order.flex_attention",
    ],
    "attention",
)
def sdpa_cost(q_shape, k_shape, v_shape, *_, out_shape=None, **__) -> Cost:
    """Every fused SDPA ATen variant (CPU flash, CUDA flash/efficient/cuDNN, overrideable) and the
    ``flex_attention`` higher-order op: see :func:`sdpa_macs`. (Flash/efficient forward on CUDA take
    ``[B, L, H, E]``; the same product results because B, H, L all multiply.) For flex attention the
    full Lq x S products are counted, as its eager (dense) implementation computes them; the FLOPs of
    ``score_mod``/``mask_mod`` and the blocks a block mask skips are not counted, as in
    ``torch.utils.flop_counter`` (its ``flex_attention_forward_flop`` is the SDPA count too)."""
    return sdpa_cost_from_shapes(q_shape, k_shape, v_shape)


def mha_macs(q_shape, k_shape, embed_dim: int, num_heads: int) -> int:
    """MACs of ``nn.MultiheadAttention`` with the in/out projections (no bias adds).

    Query ``[B, Lq, E]``, key/value ``[B, S, E]`` (batch first). Q projection B*Lq*E*E, K and V
    projections 2*B*S*E*E, scores and weighted sum 2*B*Lq*S*E (heads split E), output projection
    B*Lq*E*E. Source: torch.nn.functional.multi_head_attention_forward (the slow path, which does
    exactly these linear/bmm calls).
    """
    if len(q_shape) == 3:
        b, lq, e = q_shape
        s = k_shape[-2]
    else:  # unbatched [L, E]
        b, (lq, e) = 1, q_shape
        s = k_shape[0]
    b, lq, s, e = int(b), int(lq), int(s), int(embed_dim)
    proj = b * lq * e * e + 2 * b * s * e * e + b * lq * e * e
    attn = 2 * b * lq * s * e
    return proj + attn


@register("_native_multi_head_attention", "attention")
def native_mha_cost(q_shape, k_shape, v_shape, embed_dim, num_head, *_, out_shape=None, **__) -> Cost:
    """``_native_multi_head_attention`` (the no-grad fast path of ``nn.MultiheadAttention``):
    see :func:`mha_macs`; equals the slow path's linear + bmm MACs."""
    macs = mha_macs(q_shape, k_shape, embed_dim, num_head)
    return Cost(macs, 2 * macs)


@register("_transformer_encoder_layer_fwd", "attention")
def transformer_encoder_layer_cost(src_shape, embed_dim, num_heads, qkv_w, qkv_b, proj_w, proj_b,
                                   use_gelu, norm_first, eps, nw1, nb1, nw2, nb2, ffn_w1, *rest,
                                   out_shape=None, **__) -> Cost:
    """``_transformer_encoder_layer_fwd`` (fast path of ``nn.TransformerEncoderLayer``):
    self-attention MACs (:func:`mha_macs` with S = L) + feed-forward 2*B*L*E*F (two linears,
    ``ffn_w1`` is ``[F, E]``). Norms/activations are not counted separately here (they are
    O(B*L*E) against O(B*L*E^2)); FLOPs = 2*MACs. Source: torch.nn.TransformerEncoderLayer slow path."""
    macs = mha_macs(src_shape, src_shape, embed_dim, num_heads)
    tokens = prod(src_shape[:-1])
    macs += 2 * tokens * int(ffn_w1[0]) * int(ffn_w1[1])
    return Cost(macs, 2 * macs)


# ---------------------------------------------------------------------------------------------
# recurrent layers (counted as matmul: their cost is the gate matrix products)

@register("mkldnn_rnn_layer", "matmul")
def mkldnn_rnn_layer_cost(x_shape, w0, w1, w2, w3, hx, cx, reverse, batch_sizes, mode, hidden_size,
                          num_layers, has_biases, bidirectional, batch_first, train, *_,
                          out_shape=None, **__) -> Cost:
    """``mkldnn_rnn_layer`` (one layer, one direction of nn.LSTM/GRU/RNN on CPU): MACs = T*B*
    (numel(W_ih) + numel(W_hh)), the input and recurrent gate products each step; FLOPs = 2*MACs +
    per-step gate element-wise work per hidden unit: LSTM 18 (3 sigmoids at 4 FLOPs, 2 tanh at 1,
    3 mul, 1 add), GRU 14 (2 sigmoids at 4, 1 tanh, 3 mul, 2 add), plain RNN 1 (its tanh or ReLU).
    ``mode`` is ATen's RNN mode (``at::native::RNNMode``: 0 ReLU, 1 tanh, 2 LSTM, 3 GRU, the order
    cuDNN's ``cudnnRNNMode_t`` uses). Source: the equations in the torch.nn.LSTM/GRU documentation."""
    t, b = (x_shape[1], x_shape[0]) if batch_first else (x_shape[0], x_shape[1])
    if len(x_shape) == 2:
        t, b = x_shape[0], 1
    steps = int(t) * int(b)
    macs = steps * (prod(w0) + prod(w1))
    gate = {2: 18, 3: 14}.get(int(mode), 1)
    return Cost(macs, 2 * macs + steps * int(hidden_size) * gate)


@register(["lstm", "gru", "rnn_tanh", "rnn_relu"], "matmul")
def rnn_cost(x_shape, hx, params, *_, out_shape=None, **__) -> Cost:
    """``aten.lstm/gru/rnn_*`` (when not lowered to mkldnn/cuDNN): MACs = T*B*sum(numel of every
    2-d weight in ``params``) (each weight matrix multiplies one vector per step and batch row; T*B
    is the product of the input's first two dims whether or not ``batch_first``). FLOPs = 2*MACs."""
    steps = int(x_shape[0]) if len(x_shape) == 2 else int(x_shape[0]) * int(x_shape[1])
    macs = steps * sum(prod(p) for p in params if len(p) == 2)
    return Cost(macs, 2 * macs)


# ---------------------------------------------------------------------------------------------
# triangular solves (counted as matmul: xTRSM is a level-3 BLAS product, its cost the products)


def triangular_solve_counts(n: int, rhs: int, unitriangular: bool = False) -> tuple[int, int]:
    """Return (MACs, FLOPs) of one triangular system ``A X = B`` with A ``[n, n]`` and ``rhs``
    right-hand sides (the columns of B ``[n, rhs]``; the rows of B ``[rhs, n]`` for ``X A = B``).

    Forward substitution (lower A; back substitution, for upper A, is the same loop run from the
    last row) solves each right-hand side b on its own: ``x_i = (b_i - sum_{j<i} a_ij x_j) / a_ii``
    for i = 1..n. Row i has i - 1 products ``a_ij * x_j``, each subtracted from the running b_i:
    a multiply-accumulate, so n(n-1)/2 MACs per right-hand side. Then one division by the diagonal
    a_ii: 1 FLOP and no MAC (nothing is accumulated), n per right-hand side, none when
    ``unitriangular`` (the diagonal is taken as 1, not read). ``X A = B`` is ``A^T x = b`` for each
    row of B, the same count. So

        MACs = rhs * n(n-1)/2,  FLOPs = 2 * MACs + rhs * n = rhs * n^2  (unitriangular: rhs * n(n-1)).

    Source: LAPACK's operation counts for the Level 3 BLAS (``DOPBL3`` in LAPACK's timing suite,
    the counts of LAWN 41): xTRSM with B M x N and A applied on the left does N*M(M+1)/2
    multiplications (the M divisions of each column among them) and N*M(M-1)/2 additions, N*M^2 in
    all; on the right, M*N(N+1)/2 and M*N(N-1)/2. That is this count with n = M, rhs = N (left) or
    n = N, rhs = M (right); LAPACK states no unit-diagonal variant, whose count drops the divisions.
    """
    macs = int(rhs) * int(n) * (int(n) - 1) // 2
    return macs, 2 * macs + (0 if unitriangular else int(rhs) * int(n))


def _batch(a_shape, b_shape) -> int:
    """The number of systems of a batched solve: the product of A's and B's leading dims
    (``[..., n, n]``, ``[..., n, k]``) broadcast together, as ``torch.linalg`` broadcasts them."""
    return prod(torch.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))


@register("linalg_solve_triangular", "matmul")
def solve_triangular_cost(a_shape, b_shape, *_, upper=None, left=True, unitriangular=False,
                          out_shape=None, **__) -> Cost:
    """``linalg_solve_triangular(A[..., n, n], B, *, upper, left=True, unitriangular=False)``: X with
    ``A X = B``, B ``[..., n, k]`` (``left``), or ``X A = B``, B ``[..., k, n]`` (``left=False``).
    Per system, :func:`triangular_solve_counts` with rhs = k: MACs = k*n(n-1)/2, FLOPs = k*n^2 (k*n(n-1)
    unitriangular), times the broadcast batch (:func:`_batch`). ``upper`` changes the loop's
    direction, not its count. Bytes read are A and B whole, as for every op whose reads are not
    overridden: the substitution reads only A's triangle (with the diagonal unless unitriangular),
    so A's bytes are an upper bound by its other triangle. transformers' gated-delta-rule reference
    (``torch_chunk_gated_delta_rule``, Qwen3-Next and other linear-attention models) solves a unit
    lower-triangular ``[chunk, chunk]`` system per (batch, head, chunk), twice a layer."""
    n = int(a_shape[-1])
    k = int(b_shape[-1] if left else b_shape[-2])
    macs, flops = triangular_solve_counts(n, k, bool(unitriangular))
    batch = _batch(a_shape, b_shape)
    return Cost(batch * macs, batch * flops)


@register("triangular_solve", "matmul")
def triangular_solve_cost(b_shape, a_shape, upper=True, transpose=False, unitriangular=False, *_,
                          out_shape=None, **__) -> Cost:
    """``triangular_solve(B[..., n, k], A[..., n, n], upper=True, transpose=False,
    unitriangular=False)`` (``torch.triangular_solve``, the deprecated form of
    ``linalg_solve_triangular`` with the operands swapped): ``A X = B`` (``A^T X = B`` when
    ``transpose``, the same count), so as :func:`solve_triangular_cost` with ``left``: MACs =
    batch*k*n(n-1)/2, FLOPs = batch*k*n^2 (batch*k*n(n-1) unitriangular). Its second output, a copy of
    A, is written bytes and no FLOPs."""
    macs, flops = triangular_solve_counts(int(a_shape[-1]), int(b_shape[-1]), bool(unitriangular))
    batch = _batch(a_shape, b_shape)
    return Cost(batch * macs, batch * flops)


# ---------------------------------------------------------------------------------------------
# normalization


@register(["native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_functional",
           "cudnn_batch_norm", "miopen_batch_norm", "batch_norm"], "norm")
def batch_norm_cost(x_shape, *args, out_shape=None, **__) -> Cost:
    """Batch norm ``y = (x - mean) / sqrt(var + eps) * w + b``: 4 FLOPs per element with running
    statistics (sub, mul by 1/std, mul w, add b); in training mode add the batch statistics, mean 1
    and variance 3 (sub, square, add) per element: 8 in all. ``training`` is the first bool argument
    (6th for ``native_batch_norm``). Source: Ioffe & Szegedy, "Batch Normalization", 2015, Alg. 1."""
    training = next((a for a in args if isinstance(a, bool)), False)
    return Cost(None, (8 if training else 4) * prod(x_shape))


@register(["_batch_norm_with_update", "_batch_norm_with_update_functional"], "norm")
def batch_norm_train_cost(x_shape, *_, out_shape=None, **__) -> Cost:
    """Batch norm that updates running statistics (training): 8 FLOPs per element (see
    :func:`batch_norm_cost`)."""
    return Cost(None, 8 * prod(x_shape))


@register(["_native_batch_norm_legit_no_training", "_batch_norm_no_update"], "norm")
def batch_norm_infer_cost(x_shape, *_, out_shape=None, **__) -> Cost:
    """Batch norm with running statistics: 4 FLOPs per element (see :func:`batch_norm_cost`)."""
    return Cost(None, 4 * prod(x_shape))


@register("native_layer_norm", "norm")
def layer_norm_cost(x_shape, normalized_shape, w=None, b=None, *_, out_shape=None, **__) -> Cost:
    """Layer norm: mean 1 + variance 3 (sub, square, add) + normalize 1 (mul by 1/std) FLOPs per
    element, plus 2 (mul w, add b) with the affine parameters: 5 or 7 per element. Source: Ba et al.,
    "Layer Normalization", 2016, eq. 4."""
    per = 5 + (1 if w is not None else 0) + (1 if b is not None else 0)
    return Cost(None, per * prod(x_shape))


@register("native_group_norm", "norm")
def group_norm_cost(x_shape, w=None, b=None, *_, out_shape=None, **__) -> Cost:
    """Group norm: as layer norm over each group, 5 FLOPs per element plus 1 each for weight and bias.
    Source: Wu & He, "Group Normalization", 2018, eq. 1-3."""
    per = 5 + (1 if w is not None else 0) + (1 if b is not None else 0)
    return Cost(None, per * prod(x_shape))


@register(["_fused_rms_norm", "rms_norm"], "norm")
def rms_norm_cost(x_shape, normalized_shape=None, w=None, *_, out_shape=None, **__) -> Cost:
    """RMS norm ``x / sqrt(mean(x^2) + eps) * w``: square 1 + sum 1 + normalize 1 FLOPs per element,
    plus 1 for the weight. Source: Zhang & Sennrich, "Root Mean Square Layer Normalization", 2019, eq. 4."""
    per = 3 + (1 if w is not None else 0)
    return Cost(None, per * prod(x_shape))


# ---------------------------------------------------------------------------------------------
# activations

ACTIVATION_FLOPS = {
    "relu": 1,  # max(0, x)
    "threshold": 1,  # x > t ? x : v
    "hardtanh": 2,  # clamp(x, lo, hi); relu6 is hardtanh(0, 6)
    "leaky_relu": 2,  # x > 0 ? x : a*x
    "rrelu_with_noise": 2,
    "_prelu_kernel": 2,  # x > 0 ? x : w*x
    "prelu": 2,
    "elu": 4,  # x > 0 ? x : a*(exp(x) - 1): cmp, exp, sub, mul
    "celu": 5,  # cmp, div, exp, sub, mul
    "selu": 5,  # elu + scale
    "sigmoid": 4,  # 1 / (1 + exp(-x)): neg, exp, add, div
    "log_sigmoid_forward": 5,
    "tanh": 1,  # transcendental
    "silu": 5,  # x * sigmoid(x)
    "hardsigmoid": 4,  # clamp(x + 3, 0, 6) / 6: add, 2 cmp, div
    "hardswish": 5,  # x * hardsigmoid(x)
    "softplus": 3,  # log(1 + exp(x)): exp, add, log
    "mish": 5,  # x * tanh(softplus(x)): exp, add, log, tanh, mul
    "hardshrink": 2,
    "softshrink": 3,
    "glu": 5,  # a * sigmoid(b), per output element
}
"""FLOPs per output element of each activation, counted from its definition in the torch.nn
documentation (each + - * /, comparison and transcendental = 1 FLOP). ``gelu`` is 5 (erf form:
x * 0.5 * (1 + erf(x / sqrt(2))): mul, erf, add, mul, mul) or 9 (tanh form: 0.5 * x * (1 + tanh(
sqrt(2/pi) * (x + 0.044715 x^3))): 2 mul for x^3, mul, add, mul, tanh, add, mul, mul)."""

for _name, _per in ACTIVATION_FLOPS.items():
    register(_name, "activation", inplace=True)(_elementwise(_per))


@register(["gelu", "gelu_"], "activation")
def gelu_cost(x_shape, *args, out_shape=None, approximate="none", **__) -> Cost:
    """GELU: 5 FLOPs per element (erf form) or 9 (``approximate='tanh'``); see :data:`ACTIVATION_FLOPS`.
    Source: Hendrycks & Gimpel, "Gaussian Error Linear Units", 2016."""
    if args and isinstance(args[0], str):
        approximate = args[0]
    return Cost(None, (9 if approximate == "tanh" else 5) * prod(x_shape))


# ---------------------------------------------------------------------------------------------
# element-wise arithmetic

_ELEMENTWISE_1 = [
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "reciprocal", "sqrt", "rsqrt", "exp", "exp2",
    "expm1", "log", "log2", "log10", "log1p", "pow", "square", "sin", "cos", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "atan2", "erf", "erfc", "erfinv", "floor",
    "ceil", "round", "trunc", "frac", "sign", "sgn", "remainder", "fmod", "floor_divide",
    "maximum", "minimum", "fmax", "fmin", "clamp", "clamp_min", "clamp_max", "eq", "ne", "lt", "le",
    "gt", "ge", "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and",
    "bitwise_or", "bitwise_not", "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift",
    "where", "masked_fill", "isnan", "isinf", "isfinite", "nan_to_num", "copysign", "hypot", "xlogy",
    "sigmoid_backward", "logit", "lgamma", "digamma", "polar", "heaviside", "signbit",
    "isneginf", "isposinf", "conj_physical", "real", "imag", "angle", "i0", "special_i0e",
    "special_i1", "special_i1e", "sinc", "deg2rad", "rad2deg", "float_power", "true_divide",
]
register(_ELEMENTWISE_1, "elementwise", inplace=True)(_elementwise(1))
"""Element-wise ops at 1 FLOP per output element."""

register(["addcmul", "addcdiv", "lerp"], "elementwise", inplace=True)(_elementwise(2))
register(["_weight_norm_interface"], "elementwise")(_elementwise(3))


# ---------------------------------------------------------------------------------------------
# softmax


@register(["_softmax", "_log_softmax", "_safe_softmax", "softmax", "log_softmax"], "softmax")
def softmax_cost(x_shape, *_, out_shape=None, **__) -> Cost:
    """Softmax / log-softmax: 5 FLOPs per element (running max, subtract, exp, sum, divide or log-sub).
    Source: the numerically-stable softmax (Goodfellow et al., Deep Learning, 2016, section 4.1)."""
    return Cost(None, 5 * prod(x_shape))


# ---------------------------------------------------------------------------------------------
# pooling


def _tuple(v, n):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return None
    if isinstance(v, (list, tuple)):
        return tuple(int(x) for x in v) if len(v) == n else tuple(int(v[0]) for _ in range(n))
    return tuple(int(v) for _ in range(n))


def _window_pool(nd: int, what: str):
    """A pooling formula for ``nd`` spatial dims: prod(kernel) FLOPs per output element."""

    def fn(x_shape, kernel_size, *_, out_shape=None, **__) -> Cost:
        return Cost(None, _numel(out_shape) * prod(_tuple(kernel_size, nd)))

    fn.__name__ = f"{what}_pool{nd}d_cost"
    fn.__doc__ = (f"{what.capitalize()} pooling ({nd}-d): prod(kernel) FLOPs per output element "
                  "(K-1 compares for max, K-1 adds + 1 divide for average; rounded to K). Source: "
                  "the direct loop nest in the PyTorch MaxPool/AvgPool documentation.")
    return fn


for _nd in (1, 2, 3):
    # oneDNN has max pooling kernels for 2-d and 3-d only, and no average pooling ATen ops.
    register([f"max_pool{_nd}d_with_indices", f"max_pool{_nd}d"] + ([f"mkldnn_max_pool{_nd}d"] if _nd > 1 else []),
             "pooling")(_window_pool(_nd, "max"))
    register([f"avg_pool{_nd}d"], "pooling")(_window_pool(_nd, "average"))


def adaptive_window_sum(in_size: int, out_size: int) -> int:
    """Sum over the outputs of adaptive pooling of the window length along one dimension.

    Window i spans ``[floor(i*In/Out), ceil((i+1)*In/Out))`` (PyTorch's AdaptiveAvgPool definition,
    aten/src/ATen/native/AdaptiveAveragePooling.cpp ``start_index``/``end_index``).
    """
    total = 0
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)
        total += end - start
    return total


@register(["_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
           "adaptive_avg_pool2d", "adaptive_avg_pool3d"], "pooling")
def adaptive_pool_cost(x_shape, output_size, *_, out_shape=None, **__) -> Cost:
    """Adaptive pooling: per output element its window length (adds+divide, or compares), exactly
    summed with :func:`adaptive_window_sum` over each spatial dimension."""
    out = _first(out_shape)
    nd = len(output_size) if isinstance(output_size, (list, tuple)) else 1
    lead = prod(x_shape[: len(x_shape) - nd])
    total = lead
    for i in range(nd):
        total *= adaptive_window_sum(int(x_shape[len(x_shape) - nd + i]), int(out[len(out) - nd + i]))
    return Cost(None, total)


# ---------------------------------------------------------------------------------------------
# reductions


@register(["sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "nansum",
           "nanmean", "any", "all", "cumsum", "cumprod", "cummax", "cummin", "logcumsumexp",
           "count_nonzero", "aminmax", "median", "nanmedian", "mode", "topk", "kthvalue", "sort",
           "argsort", "msort", "_cdist_forward", "dist", "trace"], "reduction", inplace=True)
def reduction_cost(x_shape, *_, out_shape=None, **__) -> Cost:
    """Reduction (sum, mean, max, cumsum, ...): 1 FLOP per input element (one add/compare each; a
    mean's final divides, one per output, are within the rounding of this count). Sorting/topk are
    counted the same way (a lower bound; comparison count depends on the algorithm)."""
    return Cost(None, prod(x_shape))


@register(["var", "std", "var_mean", "std_mean"], "reduction")
def var_cost(x_shape, *_, out_shape=None, **__) -> Cost:
    """Variance / standard deviation: 4 FLOPs per input element (mean add, subtract, square, add)."""
    return Cost(None, 4 * prod(x_shape))


@register(["linalg_vector_norm", "norm", "frobenius_norm", "logsumexp"], "reduction")
def norm_reduce_cost(x_shape, *_, out_shape=None, **__) -> Cost:
    """Vector norm (|x|^p then sum) or logsumexp (exp then sum): 2 FLOPs per input element."""
    return Cost(None, 2 * prod(x_shape))


HISTOGRAM_FLOPS = {
    "range": 2,  # elt >= left and elt <= right (skips elements outside the range, and NaNs)
    "bin": 4,  # pos = (elt - left) * bins / (right - left), truncated to an int: sub, mul, div, cast
    "local_search": 2,  # upper_bound over the <= 3 edges around pos: at most floor(log2 3) + 1 compares
    "increment": 1,  # hist[pos] += 1 (or += weight)
    "extrema": 2,  # min and max of the input, when the range is taken from the data: 1 compare each
}
"""FLOPs per input element of the steps of ATen's histogram kernels, read off the CPU kernel
``histogramdd_cpu_contiguous`` (``aten/src/ATen/native/cpu/HistogramKernel.cpp``; the CUDA kernel
does the same steps) and the range selection in ``aten/src/ATen/native/Histogram.cpp``
(``histc_select_outer_bin_edges`` / ``select_outer_bin_edges``, which take the input's ``aminmax``
when no range is given). Integer index arithmetic (the rightmost-bin check, the bin's offset) is not
counted, as for the other indexing ops here. Per-bin work (the ``linspace`` of the edges; the
per-thread histograms summed at the end, whose count depends on the thread count) is not counted
either, bins being few against the elements, except for ``density``: the sum, the division by it,
the bin widths (``diff``) and the division by them, 4 FLOPs per bin."""


@register("histc", "reduction")
def histc_cost(x_shape, bins=100, lo=0, hi=0, *_, out_shape=None, **kwargs) -> Cost:
    """``histc(input, bins=100, min=0, max=0)``: the counts of ``bins`` equal-width bins, a reduction
    at 7 FLOPs per input element (:data:`HISTOGRAM_FLOPS`): compare with the range 2, the bin index
    ``(x - min) * bins / (max - min)`` truncated 4, the increment 1. ``histc`` takes the linear
    path without the local search of ``histogram``. With ``min == max`` (the defaults) the range is
    the input's min and max, 2 FLOPs more per element: 9. MACs: none (no product accumulated).
    transformers' MoE layers (``transformers/integrations/moe.py``, ``grouped_mm_experts_forward``)
    count the tokens x top_k rows routed to each expert with it, one call per MoE layer."""
    lo, hi = kwargs.get("min", lo), kwargs.get("max", hi)
    per = HISTOGRAM_FLOPS["range"] + HISTOGRAM_FLOPS["bin"] + HISTOGRAM_FLOPS["increment"]
    if lo == hi:
        per += HISTOGRAM_FLOPS["extrema"]
    return Cost(None, per * prod(x_shape))


@register("histogram", "reduction")
def histogram_cost(x_shape, bins=100, *_, weight=None, density=False, out_shape=None, **kwargs) -> Cost:
    """``histogram(input, bins, *, range=None, weight=None, density=False)`` (``torch.histogram``;
    both overloads), per input element (:data:`HISTOGRAM_FLOPS`):

    - ``bins`` an int (overload ``bin_ct``): equal-width bins, the linear path with its local
      search: range 2 + bin index 4 + local search 2 + increment 1 = 9 FLOPs, plus 2 when ``range``
      is ``None`` (the input's min and max): 11;
    - ``bins`` a tensor of E edges (overload ``bins_tensor``): a binary search over the edges,
      ``std::upper_bound``, at most floor(log2 E) + 1 compares (``E.bit_length()``): range 2 +
      search + increment 1.

    A ``weight`` adds the element's weight instead of 1: the same FLOP. ``density`` adds 4 FLOPs per
    bin. MACs: none. No meta kernel (torch 2.14): on meta the op fails before it is counted."""
    n = prod(x_shape)
    inc = HISTOGRAM_FLOPS["increment"]
    if isinstance(bins, (tuple, list)):  # the shape of the edges tensor
        edges = prod(bins)
        nbins = max(edges - 1, 0)
        flops = n * (HISTOGRAM_FLOPS["range"] + edges.bit_length() + inc)
    else:
        nbins = int(bins)
        per = HISTOGRAM_FLOPS["range"] + HISTOGRAM_FLOPS["bin"] + HISTOGRAM_FLOPS["local_search"] + inc
        flops = n * (per + (HISTOGRAM_FLOPS["extrema"] if kwargs.get("range") is None else 0))
    return Cost(None, flops + (4 * nbins if density else 0))


@register("bincount", "reduction")
def bincount_cost(x_shape, *_, out_shape=None, **__) -> Cost:
    """``bincount(input[n], weights=None, minlength=0)``: the count (or weight sum) of each
    non-negative integer, 3 FLOPs per input element: its min (to refuse negatives) and its max (the
    number of bins, ``max + 1``), 1 compare each, then the increment (``+= 1`` or ``+= weight``).
    Source: ``_bincount_cpu_template`` in ``aten/src/ATen/native/SummaryOps.cpp``. MACs: none. The
    output's size depends on the values, so there is no meta kernel: on meta the op fails before it
    is counted."""
    return Cost(None, (HISTOGRAM_FLOPS["extrema"] + HISTOGRAM_FLOPS["increment"]) * prod(x_shape))


# ---------------------------------------------------------------------------------------------
# embedding


def gathered(source_shape, elements: int, flops: int = 0) -> Cost:
    """The cost of a gather that reads ``elements`` elements of its source (the op's first tensor
    argument, shaped ``source_shape``): a ``Cost.read_elems`` override of argument 0, at most the
    source's own size; ``flops`` FLOPs. The index tensors are read whole (no override).

    A gather kernel reads the rows its indices name, not the table they are taken from: an
    ``embedding`` of 6 ids reads 6 rows of a 1000-row table. An index that names a row twice reads
    it twice, except that no gather reads more than the whole source (an index larger than its table,
    as a token-type embedding of 2 rows or a nearest-neighbour upsampling by ``_unsafe_index``, reads
    each element once and finds it in cache after): the bound is exact when no row is named twice
    or every row is."""
    return Cost(None, flops, {0: min(int(elements), prod(source_shape))})


@register("embedding", "embedding")
def embedding_cost(w_shape, idx_shape, *_, out_shape=None, **__) -> Cost:
    """Embedding lookup: 0 FLOPs. Reads the gathered rows of the table, numel(indices) * dim
    elements (:func:`gathered`), not the whole table, and the indices."""
    return gathered(w_shape, prod(idx_shape) * int(w_shape[-1]))


@register("_embedding_bag", "embedding")
def embedding_bag_cost(w_shape, idx_shape, *_, out_shape=None, **__) -> Cost:
    """Embedding bag: gathers numel(indices) rows (:func:`gathered`) and sums them, 1 FLOP per
    gathered element."""
    n = prod(idx_shape) * int(w_shape[-1])
    return gathered(w_shape, n, n)


@register(["index", "_unsafe_index", "index_select", "gather", "take"], "data_movement")
def gather_cost(source_shape, *_, out_shape=None, **__) -> Cost:
    """Gathers by index: 0 FLOPs; each output element is one element of the source, so the source's
    read is the output's size (:func:`gathered`), and the index tensors are read whole.

    - ``index(self, indices)`` (``x[idx]``, ``weight[position_ids]``; a boolean mask selects the
      output's elements too) and ``_unsafe_index`` (its decompositions' form): output
      ``broadcast(indices) + the dimensions not indexed``;
    - ``index_select(self, dim, index)``, ``gather(self, dim, index)``, ``take(self, index)``: the
      output has one element per element taken.

    Source: the ops' definitions in the PyTorch documentation (``torch.index_select``,
    ``torch.gather``, ``torch.take``, "Indexing" in ``torch.Tensor``)."""
    return gathered(source_shape, _numel(out_shape))


# ---------------------------------------------------------------------------------------------
# interpolation


@register(["upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
           "_upsample_nearest_exact2d", "_upsample_nearest_exact3d"], "interpolation")
def upsample_nearest_cost(*_, out_shape=None, **__) -> Cost:
    """Nearest-neighbour upsampling: 0 FLOPs (a gather; index arithmetic is not counted)."""
    return Cost(None, 0)


@register(["upsample_linear1d"], "interpolation")
def upsample_linear_cost(*_, out_shape=None, **__) -> Cost:
    """Linear interpolation: one lerp ``a + (b - a) * t`` = 3 FLOPs per output element."""
    return Cost(None, 3 * _numel(out_shape))


@register(["upsample_bilinear2d", "_upsample_bilinear2d_aa", "grid_sampler_2d"], "interpolation")
def upsample_bilinear_cost(*_, out_shape=None, **__) -> Cost:
    """Bilinear interpolation: 3 lerps (2 along x, 1 along y) x 3 FLOPs = 9 FLOPs per output element.
    (The anti-aliased variant uses wider windows; counted the same, a lower bound.)"""
    return Cost(None, 9 * _numel(out_shape))


@register(["upsample_trilinear3d", "grid_sampler_3d"], "interpolation")
def upsample_trilinear_cost(*_, out_shape=None, **__) -> Cost:
    """Trilinear interpolation: 7 lerps x 3 FLOPs = 21 FLOPs per output element."""
    return Cost(None, 21 * _numel(out_shape))


@register(["upsample_bicubic2d", "_upsample_bicubic2d_aa"], "interpolation")
def upsample_bicubic_cost(*_, out_shape=None, **__) -> Cost:
    """Bicubic interpolation: 5 one-dimensional 4-tap interpolations (4 rows, then the column), each
    4 mul + 3 add = 7 FLOPs: 35 FLOPs per output element (weight computation not counted).
    Source: Keys, "Cubic convolution interpolation for digital image processing", 1981."""
    return Cost(None, 35 * _numel(out_shape))


# ---------------------------------------------------------------------------------------------
# data movement (0 FLOPs, bytes are real) and other


_DATA_MOVEMENT = [
    "clone", "copy", "copy_", "_to_copy", "_copy_from", "_copy_from_and_resize", "cat", "stack",
    "hstack", "vstack", "scatter", "scatter_", "index_put",
    "index_put_", "_index_put_impl_", "index_copy", "index_copy_", "index_fill", "index_fill_",
    "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
    "replication_pad1d", "replication_pad2d", "replication_pad3d", "_pad_circular", "pad", "repeat",
    "repeat_interleave", "roll", "flip", "tile", "narrow_copy", "pixel_shuffle", "pixel_unshuffle",
    "channel_shuffle", "native_channel_shuffle", "fill", "fill_", "zero_", "zeros", "ones", "full",
    "zeros_like", "ones_like", "full_like", "arange", "linspace", "scalar_tensor", "tril", "triu",
    "tril_", "triu_", "masked_select", "nonzero", "_local_scalar_dense", "lift_fresh_copy",
    "slice_scatter", "select_scatter", "diagonal_scatter", "as_strided_scatter", "new_zeros",
    "new_ones", "new_full", "eye", "masked_scatter", "masked_scatter_", "im2col", "col2im", "tensor",
    "split_with_sizes_copy", "unbind_copy", "split_copy", "_reshape_copy", "contiguous",
    "_unique2", "unique_dim", "unique_consecutive", "one_hot", "bucketize", "searchsorted",
    "put", "put_", "_unsafe_masked_index", "diag_embed", "diag", "block_diag", "meshgrid", "_foreach_copy_",
    "_assert_async", "_pin_memory", "to_dense", "_to_dense",
]
register(_DATA_MOVEMENT, "data_movement")(_elementwise(0))
"""Data movement: copies, concatenation, padding, indexing, fills. 0 FLOPs; bytes read/written are
the tensors they touch (gathers by index read the elements they take: :func:`gather_cost`)."""


@register(["scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_", "index_add",
           "index_add_", "index_reduce", "_unsafe_index_put"], "elementwise")
def scatter_add_cost(x_shape, *args, out_shape=None, **__) -> Cost:
    """Scatter-add / index-add: 1 FLOP per source element (the last tensor argument's size is used
    when shapes are given; otherwise per output element)."""
    shapes = [a for a in args if isinstance(a, tuple)]
    return Cost(None, prod(shapes[-1]) if shapes else _numel(out_shape))


# ``exponential``/``exponential_`` fill a tensor with samples of the exponential distribution
# (``Tensor.exponential_``, used e.g. by Gumbel sampling); they are not ``exp``. They used to be
# registered twice, as 1-FLOP element-wise arithmetic and here, and the second silently won; they
# belong here, with the other random-number generators.
register(["bernoulli", "bernoulli_", "uniform", "uniform_", "normal", "normal_", "rand", "randn",
          "randint", "rand_like", "randn_like", "randint_like", "randperm", "multinomial",
          "random_", "exponential", "exponential_", "geometric_", "cauchy_", "log_normal_"],
         "other")(_elementwise(0))
"""Random-number generation: 0 FLOPs (not floating-point arithmetic on data)."""

register(["native_dropout"], "other")(_elementwise(2))
"""Dropout: draw a mask and scale, 2 FLOPs per element (mask multiply, 1/(1-p) scale)."""


# ---------------------------------------------------------------------------------------------
# quantized: the int8 kernels of the quantized engines (fbgemm, qnnpack, onednn)
#
# What a model converted by ``torch.ao.quantization`` (eager mode, as torchvision's quantized
# models are) dispatches, seen on torchvision's quantized resnet18, mobilenet_v2/v3, shufflenet_v2
# and googlenet: ``aten.quantize_per_tensor`` (the QuantStub), ``quantized.conv2d`` /
# ``quantized.conv2d_relu`` (overload ``new``), ``quantized.linear``, ``quantized.add`` /
# ``add_relu`` / ``mul`` / ``cat`` (the FloatFunctional ops), ``quantized.hardswish``,
# ``aten.quantized_max_pool2d``, ``aten._adaptive_avg_pool2d`` / ``aten.mean`` / ``aten.hardsigmoid``
# on quantized tensors (costed by their float formulas above), and ``aten.dequantize`` (the
# DeQuantStub). Quantized tensors have dtype ``quint8`` (activations) or ``qint8`` (weights), 1 byte
# an element; their rows say ``int8`` (:func:`dtype_name`), so the roofline uses the profile's int8
# peak.
#
# Weights come packed: the conv/linear ops take a ``Conv2dPackedParamsBase`` /
# ``Conv3dPackedParamsBase`` / ``LinearPackedParamsBase`` script object instead of weight tensors.
# The counter opens it with :func:`packed_weights` and hands the formula, in its place, the shapes of
# ``PackedWeights.tensors``: the weight first, then the bias (when there is one) and a per-channel
# weight's scales and zero points; the bytes the op reads are those tensors at their real dtypes.

from turnkey_like.weights import PACKED_PARAMS_TYPES, PackedWeights, is_packed, packed_weights  # noqa: E402,F401 - re-exported

FLOAT16_PACKED_OPS = ("quantized.linear_dynamic_fp16", "quantized.linear_relu_dynamic_fp16")
"""Ops whose packed weights are float16 (``torch.ao.nn.quantized.dynamic.Linear(dtype=float16)``);
their ``unpack()`` widens them to float32, so :func:`packed_weights` narrows them back."""

QUANTIZED_DTYPE_NAMES = {torch.quint8: "int8", torch.qint8: "int8", torch.qint32: "int32"}
"""Quantized dtypes -> the integer dtype their arithmetic runs in (the name a hardware profile's
``peak_flops`` is keyed by): ``quint8`` activations and ``qint8`` weights are 8-bit integers."""


def dtype_name(dtype: torch.dtype) -> str:
    """The name of ``dtype`` in records: ``torch.float32`` -> ``"float32"``; the quantized dtypes
    ``quint8``/``qint8`` -> ``"int8"`` and ``qint32`` -> ``"int32"`` (:data:`QUANTIZED_DTYPE_NAMES`)."""
    return QUANTIZED_DTYPE_NAMES.get(dtype) or str(dtype).replace("torch.", "")


def _quantized_conv(transposed: bool, extra_per_out: int, what: str):
    """A formula for a quantized convolution ``op(qx, packed, ...)``: :func:`conv_macs` of the
    packed weight (int8 MACs), FLOPs = 2*MACs + ``extra_per_out`` per output element (a fused ReLU
    or add)."""

    def fn(x_shape, packed, *_, out_shape=None, **__) -> Cost:
        macs = conv_macs(x_shape, packed[0], out_shape, transposed)
        return Cost(macs, 2 * macs + extra_per_out * _numel(out_shape))

    fn.__name__ = f"quantized_{what}_cost"
    fn.__doc__ = (f"Quantized {what.replace('_', ' ')} ``op(qx, packed_weight, ...)``: MACs = "
                  f":func:`conv_macs` of the packed weight ({'transposed' if transposed else 'forward'}"
                  f"), the float formula counted as int8 MACs; FLOPs = 2*MACs + {extra_per_out} per output "
                  "element (the fused ReLU/add). Bias and the requantization of each output (scale, "
                  "round, zero point) are not counted, as the bias of the float conv is not.")
    return fn


register(["quantized.conv1d", "quantized.conv2d", "quantized.conv3d", "quantized.conv1d_dynamic",
          "quantized.conv2d_dynamic", "quantized.conv3d_dynamic"], "conv",
         dtype="int8")(_quantized_conv(False, 0, "conv"))
register(["quantized.conv1d_relu", "quantized.conv2d_relu", "quantized.conv3d_relu"], "conv",
         dtype="int8")(_quantized_conv(False, ACTIVATION_FLOPS["relu"], "conv_relu"))
register(["quantized.conv_transpose1d", "quantized.conv_transpose2d", "quantized.conv_transpose3d",
          "quantized.conv_transpose1d_dynamic", "quantized.conv_transpose2d_dynamic",
          "quantized.conv_transpose3d_dynamic"], "conv", dtype="int8")(_quantized_conv(True, 0, "conv_transpose"))


@register(["quantized.conv2d_add", "quantized.conv2d_add_relu"], "conv", dtype="int8")
def quantized_conv_add_cost(x_shape, accum_shape, packed, *_, out_shape=None, **__) -> Cost:
    """``conv2d_add(qx, qaccum, packed_weight, ...)`` (onednn; ``_relu`` variant too): conv MACs
    (:func:`conv_macs`), FLOPs = 2*MACs + 1 per output element for the add (the fused ReLU of the
    ``_relu`` variant, 1 more per element, is within that rounding and not counted)."""
    macs = conv_macs(x_shape, packed[0], out_shape, False)
    return Cost(macs, 2 * macs + _numel(out_shape))


def _quantized_linear(extra_per_out: int, what: str):
    """A formula for a quantized linear ``op(x[..., in], packed)``: the float linear's MACs with
    the packed weight ``[out, in]``, FLOPs = 2*MACs + ``extra_per_out`` per output element."""

    def fn(x_shape, packed, *_, out_shape=None, **__) -> Cost:
        w = packed[0]
        macs = prod(x_shape[:-1]) * int(w[0]) * int(w[-1])
        return Cost(macs, 2 * macs + extra_per_out * _numel(out_shape))

    fn.__name__ = f"quantized_{what}_cost"
    fn.__doc__ = (f"Quantized {what.replace('_', ' ')} ``op(x[..., in], packed_weight[out, in], ...)``: "
                  "MACs = prod(x.shape[:-1]) * in * out (the float linear's, :func:`linear_cost`); "
                  f"FLOPs = 2*MACs + {extra_per_out} per output element (its fused activation, "
                  ":data:`ACTIVATION_FLOPS`). Bias and requantization are not counted.")
    return fn


register(["quantized.linear", "quantized.linear_dynamic"], "matmul",
         dtype="int8")(_quantized_linear(0, "linear"))
register(["quantized.linear_relu", "quantized.linear_relu_dynamic"], "matmul",
         dtype="int8")(_quantized_linear(ACTIVATION_FLOPS["relu"], "linear_relu"))
register(["quantized.linear_leaky_relu"], "matmul",
         dtype="int8")(_quantized_linear(ACTIVATION_FLOPS["leaky_relu"], "linear_leaky_relu"))
register(["quantized.linear_tanh"], "matmul", dtype="int8")(_quantized_linear(ACTIVATION_FLOPS["tanh"], "linear_tanh"))
# float16 weights, float32 products (fbgemm's fp16 GEMM widens the weights): the input's dtype
register(FLOAT16_PACKED_OPS[:1], "matmul")(_quantized_linear(0, "linear_fp16"))
register(FLOAT16_PACKED_OPS[1:], "matmul")(_quantized_linear(ACTIVATION_FLOPS["relu"], "linear_relu_fp16"))
register(["quantized.matmul"], "matmul", dtype="int8")(matmul_cost)
"""``quantized.matmul(qa, qb, scale, zero_point)``: the float :func:`matmul_cost`, in int8 MACs."""

register(["quantized.add", "quantized.add_out", "quantized.add_scalar", "quantized.add_scalar_out",
          "quantized.mul", "quantized.mul_out", "quantized.mul_scalar", "quantized.mul_scalar_out"],
         "elementwise")(_elementwise(1))
"""Quantized add/mul (``FloatFunctional``/``QFunctional``): 1 FLOP per output element, as their float
ops; the dequantize/requantize arithmetic inside the kernel is not counted."""
register(["quantized.add_relu", "quantized.add_relu_out", "quantized.add_scalar_relu",
          "quantized.add_scalar_relu_out", "quantized.mul_relu", "quantized.mul_relu_out",
          "quantized.mul_scalar_relu", "quantized.mul_scalar_relu_out"], "elementwise")(_elementwise(2))
"""Quantized add/mul with a fused ReLU: 2 FLOPs per output element (the op, the ReLU)."""

for _name in ("hardswish", "sigmoid", "leaky_relu", "elu", "celu", "threshold", "prelu"):
    register(f"quantized.{_name}", "activation")(_elementwise(ACTIVATION_FLOPS[_name]))
register("quantized.relu6", "activation")(_elementwise(ACTIVATION_FLOPS["hardtanh"]))
register("quantized.clamp", "elementwise")(_elementwise(1))
register("quantized.softmax", "softmax")(softmax_cost)
register(["quantized.cat", "quantized.cat_out"], "data_movement")(_elementwise(0))
register(["quantized.cat_relu", "quantized.cat_relu_out"], "activation")(_elementwise(ACTIVATION_FLOPS["relu"]))
"""Quantized activations, softmax and concatenation: their float formulas (:data:`ACTIVATION_FLOPS`,
:func:`softmax_cost`); ``relu6`` is ``hardtanh(0, 6)``."""

register(["quantized.batch_norm", "quantized.batch_norm1d", "quantized.batch_norm2d",
          "quantized.batch_norm3d", "quantized_batch_norm"], "norm")(batch_norm_infer_cost)
register(["quantized.batch_norm_relu", "quantized.batch_norm1d_relu", "quantized.batch_norm2d_relu",
          "quantized.batch_norm3d_relu"], "norm")(_elementwise(4 + ACTIVATION_FLOPS["relu"]))
"""Quantized batch norm (running statistics): 4 FLOPs per element (:func:`batch_norm_cost`), 5
with the fused ReLU."""
register("quantized.layer_norm", "norm")(layer_norm_cost)
register("quantized.instance_norm", "norm")(group_norm_cost)


@register("quantized.group_norm", "norm")
def quantized_group_norm_cost(x_shape, num_groups=None, w=None, b=None, *_, out_shape=None, **__) -> Cost:
    """``quantized.group_norm(x, num_groups, weight, bias, ...)``: as :func:`group_norm_cost`, 5
    FLOPs per element plus 1 each for weight and bias."""
    return group_norm_cost(x_shape, w, b)


for _nd in (1, 2):
    register(f"quantized.max_pool{_nd}d", "pooling")(_window_pool(_nd, "max"))
for _nd in (1, 2, 3):
    register(f"quantized_max_pool{_nd}d", "pooling")(_window_pool(_nd, "max"))

register(["quantize_per_tensor", "quantize_per_channel"], "elementwise")(_elementwise(4))
"""Quantize ``q = clamp(round(x / scale) + zero_point, qmin, qmax)``: divide, round, add, clamp =
4 FLOPs per element (the definition in the ``torch.quantize_per_tensor`` documentation)."""
register("quantize_per_tensor_dynamic", "elementwise")(_elementwise(6))
"""Dynamic quantize: the tensor's min and max (1 compare per element each), then quantize (4)."""
register("dequantize", "elementwise")(_elementwise(2))
"""Dequantize ``x = (q - zero_point) * scale``: 2 FLOPs per element (``torch.dequantize``)."""
register(["int_repr", "_make_per_tensor_quantized_tensor", "_make_per_channel_quantized_tensor"],
         "data_movement")(_elementwise(0))
"""The integers of a quantized tensor, or a quantized tensor made from integers: a copy, 0 FLOPs."""


def is_mac_category(category: str) -> bool:
    """Return whether ``category`` counts towards conv+matmul MACs (:data:`MAC_CATEGORIES`)."""
    return category in MAC_CATEGORIES


def size_hint(v):
    """An int for a size: ``v`` itself, or a symbolic size's example value (its hint).

    Symbolic sizes (``SymInt`` from fake tensors with dynamic shapes) are read through
    ``torch.fx.experimental.symbolic_shapes.optimization_hint``, which adds no guard: calling
    ``int()`` on them would specialise the shape to its example value for the rest of the run.
    """
    if type(v) is int or not isinstance(v, torch.SymInt):
        return v
    try:
        from torch.fx.experimental.symbolic_shapes import optimization_hint

        return int(optimization_hint(v))
    except (ImportError, TypeError, ValueError, RuntimeError):  # older torch, or no hint
        return int(v)


def _shape(t: torch.Tensor) -> tuple:
    """A tensor's shape as plain ints (symbolic sizes at their hints, see :func:`size_hint`)."""
    shape = tuple(t.shape)
    if type(t) is torch.Tensor or type(t) is torch.nn.Parameter:  # real and meta: always ints
        return shape
    return tuple(size_hint(d) for d in shape)


# Argument types passed to formulas unchanged (checked by exact type first: the counter's hot path).
_KEPT_TYPES = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout,
                         torch.memory_format})
_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def _shape_of(x):
    """Tensor -> shape tuple of ints; SymInt -> its hint; lists/tuples mapped; others kept."""
    tx = type(x)
    if tx in _KEPT_TYPES:
        return x
    if tx in _PLAIN_TENSORS:  # real and meta tensors: sizes are ints
        return tuple(x.shape)
    if isinstance(x, torch.Tensor):
        return _shape(x)
    if tx is list or tx is tuple or isinstance(x, (list, tuple)):
        for e in x:
            if type(e) not in _KEPT_TYPES and isinstance(e, (torch.Tensor, torch.SymInt)):
                return [_shape_of(e) for e in x]
        return x
    if isinstance(x, torch.SymInt):
        return size_hint(x)
    return x


def op_cost(func, args: tuple, kwargs: dict, out) -> Cost | None:
    """Return the :class:`Cost` of one ATen call, or ``None`` when the op has no formula.

    Args:
        func: the ``OpOverload`` (or packet) called.
        args, kwargs: its arguments as passed (tensors are reduced to shapes here).
        out: its result (a tensor or tuple/list of tensors); ``out_shape`` given to the formula is
            the first output's shape.
    """
    entry = lookup(func)
    if entry is None:
        return None
    return entry_cost(entry, args, kwargs, out)


def entry_cost(entry: OpFormula, args: tuple, kwargs: dict, out) -> Cost:
    """Return the :class:`Cost` of one call by the formula ``entry`` (what :func:`op_cost` does once
    the formula is found; the counter keeps each op's formula and calls this)."""
    data = argument_values(entry, args, kwargs) if entry.values else None
    return shaped_cost(entry, [_shape_of(a) for a in args], kwargs, _out_shape(out), data)


def shaped_cost(entry: OpFormula, shaped_args: list, kwargs: dict | None, out_shape, data: dict | None = None) -> Cost:
    """Return the :class:`Cost` of one call whose positional arguments are reduced to shapes already.

    What :func:`entry_cost` computes when ``shaped_args`` is ``[_shape_of(a) for a in args]`` and
    ``out_shape`` is :func:`out_shape_of` ``(out)``: the counter reduces the tensor arguments of real
    and meta tensors itself, from the positions the op's schema gives, while it reads their shapes
    for the row (one read of each shape, no call per argument). ``data``: what
    :func:`argument_values` read of the call, for a formula that reads values (``entry.values``).
    """
    kw = {k: _shape_of(v) for k, v in kwargs.items()} if kwargs else {}
    if data is not None:
        kw["data"] = data
    return entry.fn(*shaped_args, out_shape=out_shape, **kw)


def out_shape_of(out):
    """The ``out_shape`` a formula is given for an op's result ``out``: the shape of the result, or of
    its first tensor (list/tuple results), as plain ints; ``None`` when it holds no tensor."""
    return _out_shape(out)


def _out_shape(out):
    if type(out) in _PLAIN_TENSORS:
        return tuple(out.shape)
    if isinstance(out, torch.Tensor):
        return _shape(out)
    if isinstance(out, (list, tuple)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return _shape(o)
    return None


__all__ = [
    "CATEGORIES",
    "MAC_CATEGORIES",
    "ACTIVATION_FLOPS",
    "Cost",
    "OpFormula",
    "REGISTRY",
    "NAMES",
    "UNRESOLVED",
    "HIGHER_ORDER_PREFIX",
    "resolve",
    "register",
    "lookup",
    "category_of",
    "op_cost",
    "argument_values",
    "entry_cost",
    "shaped_cost",
    "out_shape_of",
    "size_hint",
    "is_mac_category",
    "conv_macs",
    "mm_macs",
    "sdpa_macs",
    "mha_macs",
    "einsum_macs",
    "grouped_mm_macs",
    "grouped_mm_reads",
    "gathered",
    "triangular_solve_counts",
    "HISTOGRAM_FLOPS",
    "adaptive_window_sum",
    "prod",
    "QUANTIZED_PREFIX",
    "PACKED_PARAMS_TYPES",
    "FLOAT16_PACKED_OPS",
    "QUANTIZED_DTYPE_NAMES",
    "PackedWeights",
    "dtype_name",
    "is_packed",
    "packed_weights",
]
