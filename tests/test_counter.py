"""The dispatch-level counter: module attribution, grad modes, meta/fake tensors, dataflow, bytes."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from turnkey_like.characterize.counter import count_model
from turnkey_like.errors import CharacterizationError
from turnkey_like.records import OpRow, decode, encode

try:
    from tests.zoo import ZOO, build, conv_variety_macs
except ImportError:  # tests/ itself on sys.path (pytest rootdir-less import)
    from zoo import ZOO, build, conv_variety_macs


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "train"])
def test_zoo_macs_match_hand_counts(name, mode):
    model, args, kwargs, expected = build(name)
    if mode == "train":
        model.train()
        res = count_model(model, args, kwargs)
    elif mode == "no_grad":
        with torch.no_grad():
            res = count_model(model, args, kwargs)
    else:
        with torch.inference_mode():
            res = count_model(model, args, kwargs)
    assert res.total_macs() == expected
    assert res.uncounted == {}
    assert [r.index for r in res.rows] == list(range(len(res.rows)))
    assert all(r.counted for r in res.rows)


def test_module_attribution_resnet_block_paths():
    # torchvision resnet18 on a small input: the first rows are conv1 -> bn1 -> relu -> maxpool
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        res = count_model(model, (torch.randn(1, 3, 64, 64),))
    first = [(r.op, r.module_path, r.module_class) for r in res.rows[:4]]
    assert first == [
        ("aten.convolution.default", "conv1", "Conv2d"),
        ("aten.native_batch_norm.default", "bn1", "BatchNorm2d"),
        ("aten.relu_.default", "relu", "ReLU"),
        ("aten.max_pool2d_with_indices.default", "maxpool", "MaxPool2d"),
    ]
    # every conv row is attributed to a Conv2d, the residual add to the BasicBlock itself
    convs = [r for r in res.rows if r.category == "conv"]
    assert len(convs) == 20 and all(r.module_class == "Conv2d" for r in convs)
    adds = [r for r in res.rows if r.op == "aten.add_.Tensor"]
    assert {r.module_path for r in adds} == {f"layer{i}.{j}" for i in range(1, 5) for j in range(2)}
    assert res.module_order[:3] == ["", "conv1", "bn1"]
    assert res.module_classes["layer2.0.downsample.0"] == "Conv2d"
    # the flatten and linear head: addmm under "fc"
    assert res.rows[-1].op == "aten.addmm.default" and res.rows[-1].module_path == "fc"


def test_shared_module_called_twice_gets_both_calls():
    model, args, kwargs, _ = build("shared_block")
    res = count_model(model, args, kwargs)
    block = [r for r in res.rows if r.module_path == "block" and r.category == "matmul"]
    assert len(block) == 2 and all(r.macs == 4 * 8 * 8 for r in block)
    assert res.module_order == ["", "block", "head"]  # first-entry order, each path once


def test_module_shared_by_two_parents_takes_the_calling_path():
    model, args, kwargs, _ = build("shared_child")
    res = count_model(model, args, kwargs)
    paths = [r.module_path for r in res.rows if r.category == "matmul"]
    assert paths == ["a.lin", "b.lin"]
    assert res.module_classes["a.lin"] == res.module_classes["b.lin"] == "Linear"


def test_conv_variety_per_module_macs():
    model, args, kwargs, _ = build("conv_variety")
    res = count_model(model, args, kwargs)
    per_module = {r.module_path: r.macs for r in res.rows if r.category == "conv"}
    assert per_module == conv_variety_macs()


def test_weight_bytes_tied_lazy_and_raw():
    # tied: head reads the embedding table as its weight: 50*16*4 = 3200 bytes of parameters
    model, args, kwargs, _ = build("tied_weights")
    res = count_model(model, args, kwargs)
    head = [r for r in res.rows if r.module_path == "head" and r.category == "matmul"][0]
    assert head.weight_bytes == 3200
    # lazy: LazyLinear's weight [16, 10] is created during the call and still counted: 640 + bias 64
    model, args, kwargs, _ = build("lazy_mlp")
    res = count_model(model, args, kwargs)
    fc1 = [r for r in res.rows if r.module_path == "fc1" and r.category == "matmul"][0]
    assert fc1.input_shapes == [[16], [3, 10], [10, 16]]
    assert fc1.weight_bytes == 16 * 10 * 4 + 16 * 4
    # raw F.linear weight made in forward is not a parameter
    model, args, kwargs, _ = build("raw_linear")
    res = count_model(model, args, kwargs)
    mm = [r for r in res.rows if r.category == "matmul"][0]
    assert mm.weight_bytes == 0 and mm.bytes_read == (3 * 6 + 5 * 6) * 4


def test_bytes_follow_dtype():
    # Linear(8, 4) in float16 on [2, 8]: reads bias 4*2 + x 16*2 + w 32*2 = 104 bytes, writes 8*2
    lin = nn.Linear(8, 4).to(torch.bfloat16)
    res = count_model(lin, (torch.randn(2, 8, dtype=torch.bfloat16),))
    (row,) = res.rows
    assert row.dtype == "bfloat16"
    assert row.bytes_read == 104 and row.bytes_written == 16 and row.weight_bytes == 72


def test_producers_follow_dataflow_through_views():
    model, args, kwargs, _ = build("conv_bn_relu")
    res = count_model(model, args, kwargs)
    ops_ = [r.op for r in res.rows]
    assert ops_ == ["aten.convolution.default", "aten.native_batch_norm.default", "aten.relu.default"]
    assert [r.producers for r in res.rows] == [[], [0], [1]]
    # through reshape/flatten/transpose views: the mm reads the relu output via a view
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    res = count_model(model, (torch.randn(1, 1, 2, 2),))
    mm = [r for r in res.rows if r.category == "matmul"][0]
    relu = [r for r in res.rows if r.category == "activation"][0]
    assert mm.producers == [relu.index]


def test_resnet18_dataflow_edges_by_hand():
    """The counted call's rows are the dataflow graph: edges checked by hand on torchvision's
    resnet18 (BasicBlock: conv1-bn1-relu-conv2-bn2, ``out += identity``, relu; in-place ops keep
    the storage, so the next reader's edge goes to the last op that wrote it)."""
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        res = count_model(model, (torch.randn(1, 3, 32, 32),))
    rows = res.rows

    def row(path, op):
        (r,) = [r for r in rows if r.module_path == path and r.op == op]
        return r

    conv = "aten.convolution.default"
    bn = "aten.native_batch_norm.default"
    add = "aten.add_.Tensor"
    # the stem reads only the graph input and the weights: no producer
    assert row("conv1", conv).producers == []
    assert row("bn1", bn).producers == [row("conv1", conv).index]
    maxpool = row("maxpool", "aten.max_pool2d_with_indices.default")
    assert maxpool.producers == [row("relu", "aten.relu_.default").index]
    # layer1.0: the residual add reads bn2's output and the block input (the max-pool output)
    assert row("layer1.0.conv1", conv).producers == [maxpool.index]
    assert row("layer1.0", add).producers == [row("layer1.0.bn2", bn).index, maxpool.index]
    # the block's last relu_ writes in place into the add's output; layer1.1 reads it through that
    (relu_out,) = [r for r in rows if r.module_path == "layer1.0.relu" and r.producers == [row("layer1.0", add).index]]
    assert row("layer1.1.conv1", conv).producers == [relu_out.index]
    assert row("layer1.1", add).producers == [row("layer1.1.bn2", bn).index, relu_out.index]
    # layer2.0: the identity path is the downsample (1x1 conv + bn) of the block input
    block_in = [r for r in rows if r.module_path == "layer1.1.relu"][-1]
    assert row("layer2.0.downsample.0", conv).producers == [block_in.index]
    assert row("layer2.0", add).producers == [row("layer2.0.bn2", bn).index, row("layer2.0.downsample.1", bn).index]
    # the head: flatten is a view, so the linear (addmm) reads the average pool's output directly
    assert row("fc", "aten.addmm.default").producers == [row("avgpool", "aten.mean.dim").index]
    # every edge points backwards, and every row but the stem conv has one
    assert all(p < r.index for r in rows for p in r.producers)
    assert [r.index for r in rows if not r.producers] == [row("conv1", conv).index]


def test_views_are_not_rows_and_uncounted_ops_are_listed():
    class M(nn.Module):
        def forward(self, x):
            y = x.view(2, 6).t().unsqueeze(0).expand(3, 6, 2).contiguous()  # views + 1 copy
            return torch.linalg.det(y[:, :2, :2])  # no formula for det

    res = count_model(M(), (torch.randn(3, 4),))
    ops_ = [r.op for r in res.rows]
    assert not any(op.startswith(("aten.view", "aten.t.", "aten.expand", "aten.unsqueeze")) for op in ops_)
    assert "aten.clone.default" in ops_  # contiguous() of an expanded view copies
    assert res.uncounted and all(v >= 1 for v in res.uncounted.values())
    missing = [r for r in res.rows if not r.counted]
    assert missing and all(r.macs is None and r.flops == 0 and r.category == "other" for r in missing)
    assert {r.op for r in missing} == set(res.uncounted)


def test_meta_device_counts_like_real():
    real = torchvision.models.mobilenet_v3_small(weights=None).eval()
    with torch.device("meta"):
        meta = torchvision.models.mobilenet_v3_small(weights=None).eval()
    with torch.no_grad():
        r = count_model(real, (torch.randn(1, 3, 96, 96),))
        m = count_model(meta, (torch.randn(1, 3, 96, 96, device="meta"),))
    key = lambda res: [(x.op, x.module_path, x.macs, x.flops, x.bytes_read, x.weight_bytes) for x in res.rows]
    assert key(m) == key(r)
    assert m.total_macs() == r.total_macs() > 0


class _Attention(nn.Module):
    """One SDPA call, with the options each case below passes."""

    def __init__(self, **options):
        super().__init__()
        self.options = options

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **self.options)


def _rows(res):
    return [(x.op, x.module_path, x.macs, x.flops, x.bytes_read, x.bytes_written) for x in res.rows]


@pytest.mark.parametrize("case", ["gqa_decode", "gqa_bool_mask", "causal_prefill", "math_dropout_train",
                                  "key_last_dim_strided"])
def test_attention_on_meta_counts_the_kernel_the_cpu_runs(case):
    # torch has no SDPA backend table for meta, so on meta every call took the math backend (GQA's K
    # and V copied out to the query heads, scores materialized). On meta tk now runs the kernel the
    # CPU picks: the rows are the CPU's, op for op and byte for byte, for the flash cases and for the
    # ones where the CPU itself takes math (dropout in training, a key whose last stride is not 1).
    q, k, mask, options, train = (1, 8, 1, 64), (1, 2, 100, 64), None, {"enable_gqa": True}, False
    if case == "gqa_bool_mask":
        q, mask = (1, 8, 3, 64), (1, 1, 3, 100)
    elif case == "causal_prefill":
        q, k, options = (1, 4, 16, 32), (1, 4, 16, 32), {"is_causal": True, "scale": 0.25}
    elif case == "math_dropout_train":
        options, train = {"enable_gqa": True, "dropout_p": 0.5}, True
    counts = {}
    for device in ("cpu", "meta"):
        make = lambda shape: torch.zeros(shape, device=device)
        key = make(k) if case != "key_last_dim_strided" else make(k[:-1] + (2 * k[-1],))[..., ::2]
        m = None if mask is None else torch.ones(mask, dtype=torch.bool, device=device)
        model = _Attention(**options).train(train)
        with torch.no_grad():
            counts[device] = count_model(model, (make(q), key, make(k), m))
    fused = "aten._scaled_dot_product_flash_attention_for_cpu.default"
    expect_fused = case not in ("math_dropout_train", "key_last_dim_strided")
    assert (fused in [r.op for r in counts["cpu"].rows]) == expect_fused
    assert _rows(counts["meta"]) == _rows(counts["cpu"])


def test_llama_gqa_prefill_and_decode_count_alike_on_meta_and_cpu():
    # The case that showed it: a GQA Llama's decode on meta read ~10x its CPU activation bytes.
    import transformers

    cfg = transformers.LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=8, num_key_value_heads=2, vocab_size=500)
    counts = {}
    for device in ("cpu", "meta"):
        with torch.device(device):
            model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
            ids = torch.zeros(1, 12, dtype=torch.long)
        cache = transformers.DynamicCache(config=cfg)
        with torch.no_grad():
            prefill = count_model(model, (ids,), {"past_key_values": cache, "use_cache": True})
            decode = count_model(model, (ids[:, :1],), {"past_key_values": cache, "use_cache": True})
        counts[device] = (_rows(prefill), _rows(decode))
    assert counts["meta"] == counts["cpu"]
    assert sum(op.endswith("flash_attention_for_cpu.default") for op, *_ in counts["meta"][1]) == 2

def test_fake_tensors_count_like_real():
    from torch._subclasses.fake_tensor import FakeTensorMode

    model, args, kwargs, expected = build("conv_bn_relu")
    real = count_model(model, args, kwargs)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake_args = tuple(mode.from_tensor(a) for a in args)
        fake = count_model(model, fake_args, kwargs)
    assert fake.total_macs() == real.total_macs() == expected
    assert [r.op for r in fake.rows] == [r.op for r in real.rows]


def test_failing_forward_raises_characterization_error_and_unhooks():
    model = nn.Linear(4, 3)
    with pytest.raises(CharacterizationError) as err:
        count_model(model, (torch.randn(2, 5),))
    assert "Linear" in str(err.value) and err.value.hint
    # hooks were removed: a later count starts clean
    res = count_model(model, (torch.randn(2, 4),))
    assert res.module_order == [""] and res.total_macs() == 24


def test_rows_are_typed_records_and_round_trip_through_the_codec():
    model, args, kwargs, _ = build("mha")
    res = count_model(model, args, kwargs)
    assert all(isinstance(r, OpRow) for r in res.rows)
    assert decode(encode(res.rows), list[OpRow]) == res.rows


def test_plain_callable_root():
    lin = nn.Linear(4, 2)

    def fn(x):
        return lin(x).relu()

    res = count_model(fn, (torch.randn(3, 4),))
    assert res.module_order[0] == "" and res.module_classes[""] == "function"
    assert [r.module_path for r in res.rows] == ["<Linear>", ""]


@pytest.mark.parametrize("name", ["resnet50", "vit_b_16", "swin_t", "efficientnet_b0", "googlenet"])
def test_conv_matmul_macs_match_torchvision_published_ops(name):
    # torchvision publishes conv+matmul GMACs with 3 decimals as weights.meta["_ops"]; counted on
    # meta (shapes only), the counts must agree within 0.1% and the parameter count exactly.
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    kw = {"transform_input": True, "aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    with torch.device("meta"):
        model = get_model(name, weights=None, **kw).eval()
    size = weights.transforms().crop_size[0]
    with torch.no_grad():
        res = count_model(model, (torch.zeros(1, 3, size, size, device="meta"),))
    ref = weights.meta["_ops"] * 1e9
    assert abs(res.total_macs() - ref) <= 1e-3 * ref
    assert sum(p.numel() for p in model.parameters()) == weights.meta["num_params"]
    assert res.uncounted == {}


@pytest.mark.slow
def test_bert_base_and_yolov8n_match_reference_counts():
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        bert = BertModel(BertConfig()).eval()
    with torch.no_grad():
        res = count_model(bert, (torch.ones(1, 128, dtype=torch.long, device="meta"),))
    # per layer (L=128, H=768, F=3072): QKV 3*L*H*H + scores L*L*H + AV L*L*H + out L*H*H
    # + FFN 2*L*H*F = 226492416 + 25165824 + 75497472 + 603979776 = 931135488; x12 = 11173625856;
    # + pooler 768*768 = 589824 -> 11174215680
    assert res.total_macs() == 11174215680

    from ultralytics import YOLO

    yolo = YOLO("yolov8n.yaml").model.eval()
    with torch.no_grad():
        res = count_model(yolo, (torch.zeros(1, 3, 640, 640),))
    # Ultralytics reports 8.7 GFLOPs for YOLOv8n at 640 (conv MACs x 2)
    assert abs(2 * res.total_macs() - 8.7e9) <= 0.01 * 8.7e9


# --- higher-order ops ------------------------------------------------------------------------------


class CondModel(nn.Module):
    """``torch.cond(x.sum() > 0, lin(x), x + 1)`` with lin = Linear(4, 6, bias=False), x [2, 4].

    True branch: 2*4*6 = 48 MACs; false branch: 0 MACs (one add).
    """

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6, bias=False)

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: self.lin(t), lambda t: torch.cat([t, t[:, :2]], 1) + 1, (x,))


def test_cond_is_counted_through_the_branch_that_ran():
    model = CondModel().eval()
    taken = count_model(model, (torch.ones(2, 4),))
    assert taken.total_macs() == 48 and taken.uncounted == {}
    lin = [r for r in taken.rows if r.category == "matmul"]
    assert len(lin) == 1 and lin[0].module_path == "lin" and lin[0].macs == 48
    other = count_model(model, (-torch.ones(2, 4),))
    assert other.total_macs() == 0 and other.uncounted == {}
    assert "aten.add.Tensor" in [r.op for r in other.rows]  # the false branch's ops are rows
    assert not any(r.op.startswith("higher_order.") for r in taken.rows + other.rows)


def test_cond_on_fake_tensors_is_listed_as_uncounted_not_dropped():
    # the predicate has no value on fake tensors: the branch is unknown, so the cond is one uncounted row
    from torch._subclasses.fake_tensor import FakeTensorMode

    model = CondModel().eval()
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        res = count_model(model, (mode.from_tensor(torch.ones(2, 4)),))
    assert res.uncounted == {"higher_order.cond": 1}
    (row,) = [r for r in res.rows if r.op == "higher_order.cond"]
    assert not row.counted and row.macs is None and row.output_shapes == [[2, 6]]


def test_while_loop_counts_every_iteration():
    from torch._higher_order_ops.while_loop import while_loop

    class Loop(nn.Module):
        def forward(self, x):
            return while_loop(lambda i, t: i < 3, lambda i, t: (i + 1, t @ t), (torch.tensor(0), x))

    # 3 iterations of [4, 4] @ [4, 4] = 3 x 64 = 192 MACs; 4 checks of i < 3
    res = count_model(Loop(), (torch.randn(4, 4),))
    assert res.total_macs() == 192
    assert [r.op for r in res.rows].count("aten.lt.Scalar") == 4
    assert res.uncounted == {}


def test_flex_attention_is_one_attention_row():
    from torch.nn.attention.flex_attention import flex_attention

    class Flex(nn.Module):
        def forward(self, q, k, v):
            return flex_attention(q, k, v)

    # q, k, v [1, 2, 8, 16]: B*H*Lq*S*(E + Ev) = 1*2*8*8*(16+16) = 4096 MACs, as SDPA
    q = torch.randn(1, 2, 8, 16)
    res = count_model(Flex(), (q, q, q))
    (row,) = [r for r in res.rows if r.category == "attention"]
    assert row.op == "higher_order.flex_attention" and row.macs == 4096 and row.flops == 8192
    assert row.output_shapes[0] == [1, 2, 8, 16]
    assert res.total_macs() == 4096 and res.uncounted == {}


def test_invoke_subgraph_is_counted_through_its_subgraph():
    # [3, 5] @ [5, 3] inside the subgraph: 3*5*3 = 45 MACs
    graph = torch.fx.symbolic_trace(lambda a, b: (a @ b,))

    def call(a, b):
        return torch.ops.higher_order.invoke_subgraph(graph, "sub", a, b)[0]

    res = count_model(call, (torch.randn(3, 5), torch.randn(5, 3)))
    assert res.total_macs() == 45 and res.uncounted == {}


# --- agreement with torch.utils.flop_counter -----------------------------------------------------------


def _flop_counter_total(model, args):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops(), counter.get_flop_counts()["Global"]


@pytest.mark.parametrize("name", ["resnet18", "conv_mlp", "causal_sdpa_math"])
def test_conv_matmul_flops_equal_flop_counter_mode(name):
    # FlopCounterMode counts only conv, matmul and attention ops (FLOPs = 2 x MACs); on models made of
    # ops both count, its total must equal our FLOPs of those categories, op by op. (It has no
    # formula for the fused CPU flash-attention kernel, so SDPA is compared on the math backend.)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = contextlib.nullcontext()
    if name == "resnet18":
        model, args = torchvision.models.resnet18(weights=None).eval(), (torch.randn(1, 3, 64, 64),)
    elif name == "conv_mlp":
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.GELU(),
                              nn.Linear(16, 4)).eval()
        args = (torch.randn(2, 3, 8, 8),)
    else:
        model, args, _, _ = build("causal_sdpa")
        backend = sdpa_kernel(SDPBackend.MATH)
    with torch.no_grad(), backend:
        total, per_op = _flop_counter_total(model, args)
        res = count_model(model, args)
    ours = res.total_flops(categories=("conv", "matmul", "attention"))
    assert total > 0 and ours == total
    by_packet: dict[str, int] = {}
    for r in res.rows:
        if r.category in ("conv", "matmul", "attention"):
            packet = r.op.rsplit(".", 1)[0]
            by_packet[packet] = by_packet.get(packet, 0) + r.flops
    assert by_packet == {str(p): n for p, n in per_op.items()}


def test_symbolic_sizes_are_kept_by_name_and_costed_at_their_hints():
    # make_fx(tracing_mode="symbolic") runs the function on fake tensors whose sizes are symbols
    from torch.fx.experimental.proxy_tensor import make_fx

    got = {}

    def f(x, w, b):
        got["res"] = count_model(lambda t: torch.relu(F.linear(t, w, b)), (x,))
        return x

    make_fx(f, tracing_mode="symbolic")(torch.randn(5, 8), torch.randn(4, 8), torch.randn(4))
    res = got["res"]
    addmm = res.rows[0]
    assert addmm.op == "aten.addmm.default"
    assert all(isinstance(d, str) for s in addmm.input_shapes + addmm.output_shapes for d in s)
    # costs at the example sizes, without specialising the symbols: 5*8*4 = 160 MACs
    assert addmm.macs == 160 and type(addmm.macs) is int
    assert addmm.bytes_read == (4 + 5 * 8 + 8 * 4) * 4 and type(addmm.bytes_read) is int
    assert decode(encode(res.rows), list[OpRow]) == res.rows


class _PlainCaseCheck(nn.Module):
    """Reads a boolean out of its mask (``if mask.all():``), as transformers' mask utilities do."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, mask):
        if mask.all():
            x = x * 2
        return self.lin(x)


def test_boolean_read_on_meta_takes_the_plain_case_in_the_counter_and_the_zoo():
    # One rule (meta_kernels.RULES) for both: the counter counting on meta, and a meta model run under
    # FakeTensorMode with meta_kernels.WithoutData inside (what zoo.forward does).
    from torch._subclasses.fake_tensor import FakeTensorMode

    from turnkey_like.meta_kernels import WithoutData

    with torch.device("meta"):
        model = _PlainCaseCheck()
    x, mask = torch.empty(2, 4, device="meta"), torch.empty(2, 4, dtype=torch.bool, device="meta")
    res = count_model(model, (x, mask))
    ops = [r.op for r in res.rows]
    assert "aten.mul.Tensor" in ops  # the branch of the plain case ran
    assert "aten._local_scalar_dense.default" not in ops  # an assumed value, not a computed one
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fx, fmask = mode.from_tensor(x), mode.from_tensor(mask)
    with torch.no_grad(), mode:
        with pytest.raises(Exception, match="_local_scalar_dense"):
            model(fx, fmask)
        with WithoutData():
            out = model(fx, fmask)
    assert list(out.shape) == [2, 3]
    # a value of another dtype has no plain case: it still fails
    with pytest.raises(CharacterizationError, match="meta"):
        count_model(lambda t: t.sum().item(), (x,))


def test_counting_from_any_caller_depth_maps_no_stack_chunks():
    # CPython 3.11/3.12 keep frames in 16 KiB chunks and map/unmap one each time a frame on a chunk
    # boundary is called: from about one caller depth in three, every op's frames did, each new
    # chunk's pages faulted in again (stack_room.call_with_stack_room). A 40-op model counted from
    # depths 0..299: before the fix 60 depths faulted over 20 pages a call (up to 374); now none.
    import resource

    model = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(20)])
    x = torch.randn(2, 8)

    def at_depth(depth):
        return count_model(model, (x,)) if depth == 0 else at_depth(depth - 1)

    with torch.no_grad():
        assert len(at_depth(0).rows) == 40
        faults = []
        for depth in range(300):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            at_depth(depth)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    assert sum(f > 40 for f in faults) <= 3, sorted(faults)[-10:]


def test_meta_memo_makes_repeats_like_the_kernel_and_runs_what_aliases():
    # MetaMemo remembers a functional op's output sizes, strides and dtype by its arguments' and
    # makes a repeat's output without running it; an in-place op or a view always runs (its output
    # is its input), and a real tensor is never remembered.
    from turnkey_like.meta_kernels import MetaMemo

    memo = MetaMemo()
    aten = torch.ops.aten
    a = torch.empty(4, 6, device="meta").t()  # non-contiguous: the output strides follow
    b = torch.empty(6, 4, dtype=torch.float16, device="meta")
    first = memo(aten.add.Tensor, (a, b), {})
    again = memo(aten.add.Tensor, (a, b), {})
    ran = aten.add.Tensor(a, b)
    assert [(t.shape, t.stride(), t.dtype) for t in (first, again)] == [(ran.shape, ran.stride(), ran.dtype)] * 2
    assert again is not first and len(memo.outputs) == 1
    pair = memo(aten.max.dim, (b, 1), {})
    assert [(t.shape, t.dtype) for t in memo(aten.max.dim, (b, 1), {})] == [(t.shape, t.dtype) for t in pair]
    assert memo(aten.add_.Tensor, (a, a), {}) is a and memo(aten.t.default, (b,), {})._base is b
    memo(aten.add.Tensor, (torch.ones(2), torch.ones(2)), {})
    assert len(memo.outputs) == 2  # add and max.dim on meta; nothing for add_, t or real tensors
