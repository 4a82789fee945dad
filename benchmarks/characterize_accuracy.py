"""Accuracy of tk's op counting against published figures.

For every torchvision classification model (``torchvision.models.list_models(module=
torchvision.models)``, 80 in torchvision 0.29) the script builds the architecture its DEFAULT
weights use, with ``weights=None`` (nothing is downloaded), counts one call at the input size of
the weights' transforms (``crop_size``) and compares:

- parameters with ``weights.meta["num_params"]`` (must be exact);
- conv+matmul MACs (categories conv, matmul, attention; 1 MAC = 2 FLOPs) with
  ``weights.meta["_ops"]`` (GMACs, published with 3 decimals). Pass when the relative error is
  within 0.1%, or, for small models, within the published rounding (0.0005 GMACs).

Then YOLOv8n at 640x640 (conv+matmul FLOPs = 2 x MACs against Ultralytics' 8.7 GFLOPs, within 1%)
and BERT-base at sequence length 128 against the analytic count derived in :func:`bert_base_macs`.

Models are built and counted on the ``meta`` device by default (no memory for weights, no
arithmetic: the formulas need shapes only), falling back to CPU where a model cannot run on meta.

Usage::

    python benchmarks/characterize_accuracy.py            # all 80 + YOLOv8n + BERT-base
    python benchmarks/characterize_accuracy.py --quick    # a handful
    python benchmarks/characterize_accuracy.py --models resnet50,vit_b_16 --device cpu
    python benchmarks/characterize_accuracy.py --overhead [--threads 1]   # counting cost vs eager
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from turnkey_like.characterize.counter import count_model  # noqa: E402

QUICK = ["resnet50", "mobilenet_v3_small", "vit_b_16", "googlenet", "inception_v3", "swin_t",
         "efficientnet_b0", "convnext_tiny"]
REL_TOL = 1e-3  # 0.1 %
ROUNDING_GMACS = 0.0005  # _ops is published with 3 decimals


def tv_arch_kwargs(name: str, weights) -> dict:
    """The builder arguments the DEFAULT weights imply (torchvision's ``_ovewrite_named_param`` calls).

    - every model: ``num_classes = len(meta["categories"])``;
    - ViT: ``image_size = meta["min_size"][0]``; MaxViT: ``input_size = meta["min_size"]``;
    - GoogLeNet, Inception v3: ``transform_input=True`` and ``init_weights=False``. The auxiliary
      heads run only in training, so they never change eval MACs; they are kept where the published
      weights keep them (Inception v3's checkpoint holds ``AuxLogits`` and its ``num_params``
      counts them: ``aux_logits=True``) and dropped where the checkpoint drops them (GoogLeNet:
      ``aux_logits=False``), so the parameter count is comparable.
    """
    kw = {"num_classes": len(weights.meta["categories"])}
    if name.startswith("vit_"):
        kw["image_size"] = weights.meta["min_size"][0]
    if name.startswith("maxvit"):
        kw["input_size"] = weights.meta["min_size"]
    if name in ("googlenet", "inception_v3"):
        kw.update(transform_input=True, aux_logits=name == "inception_v3", init_weights=False)
    return kw


@contextlib.contextmanager
def _build_on(device: str):
    """Build modules on ``device``. ``meta-weights`` builds on CPU but moves every parameter and
    buffer to ``meta`` as it is registered (for builders that compute on tensors, e.g. RegNet's
    width schedule, and so cannot run under ``torch.device("meta")``)."""
    if device != "meta-weights":
        with torch.device(device):
            yield
        return
    nn = torch.nn
    orig_p, orig_b = nn.Module.register_parameter, nn.Module.register_buffer

    def reg_p(self, name, param):
        if param is not None and not isinstance(param, nn.parameter.UninitializedTensorMixin):
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        return orig_p(self, name, param)

    def reg_b(self, name, tensor, persistent=True):
        if tensor is not None:
            tensor = tensor.to("meta")
        return orig_b(self, name, tensor, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = reg_p, reg_b
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = orig_p, orig_b


def _devices(device: str) -> list[str]:
    """The devices to try in order: the one asked for, then meta-weights (for meta), then CPU."""
    if device == "cpu":
        return ["cpu"]
    return [device, "meta-weights", "cpu"] if device == "meta" else [device, "cpu"]


def _params(model) -> int:
    """Parameters, shared ones once (``Module.parameters`` deduplicates)."""
    return sum(p.numel() for p in model.parameters())


def count_torchvision(name: str, device: str):
    """Return ``(params, macs, ref_params, ref_gmacs, device_used, seconds)`` for one model."""
    import torchvision
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    size = weights.transforms().crop_size[0]
    kw = tv_arch_kwargs(name, weights)
    t0 = time.perf_counter()
    for dev in _devices(device):
        try:
            with _build_on(dev):
                model = get_model(name, weights=None, **kw).eval()
            x = torch.zeros(1, 3, size, size, device="meta" if dev == "meta-weights" else dev)
            with torch.no_grad():
                res = count_model(model, (x,))
            break
        except Exception as exc:  # meta not supported by some op: retry on CPU
            if dev == "cpu":
                raise
            print(f"  ({name}: {dev} failed with {type(exc).__name__}: {str(exc)[:80]}; retrying)")
    del torchvision
    return (_params(model), res.total_macs(), weights.meta["num_params"], weights.meta["_ops"], dev,
            time.perf_counter() - t0, res)


def bert_base_macs(seq: int = 128, hidden: int = 768, layers: int = 12, ffn: int = 3072) -> int:
    """Analytic conv+matmul MACs of BERT-base (batch 1) at sequence length ``seq``.

    Embeddings: 0 (lookups). Per layer: Q, K, V projections 3*L*H*H; attention scores L*L*H and
    weighted sum L*L*H (all heads together span H); output projection L*H*H; feed-forward 2*L*H*F.
    Times 12 layers, plus the pooler H*H (first token only). Source: Devlin et al. 2018 and
    Vaswani et al. 2017 (layer structure).
    """
    per_layer = 3 * seq * hidden * hidden + 2 * seq * seq * hidden + seq * hidden * hidden \
        + 2 * seq * hidden * ffn
    return layers * per_layer + hidden * hidden


def count_bert(device: str):
    from transformers import BertConfig, BertModel

    cfg = BertConfig()
    for dev in _devices(device):
        try:
            with _build_on(dev):
                model = BertModel(cfg).eval()
            ids = torch.ones(1, 128, dtype=torch.long, device="meta" if dev == "meta-weights" else dev)
            with torch.no_grad():
                res = count_model(model, (ids,))
            return res, dev
        except Exception as exc:
            if dev == "cpu":
                raise
            print(f"  (bert: {dev} failed with {type(exc).__name__}: {str(exc)[:80]}; retrying)")


def count_yolov8n():
    """YOLOv8n from its yaml (no weights) at 640x640, counted on CPU (the model is small)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml").model.eval()
    x = torch.zeros(1, 3, 640, 640)
    with torch.no_grad():
        res = count_model(model, (x,))
    return res, _params(model)


def measure_overhead(pairs: int = 10, threads: int | None = None) -> None:
    """Print the cost of :func:`count_model` against a plain eager forward of ResNet-50 (batch 1,
    224x224, CPU, ``no_grad``): the median of ``pairs`` interleaved pairs (``benchmarks/pairs.py``)
    after a warm-up pair, with the min and max pair and the load average. The whole
    ``characterize`` against eager and FlopCounterMode is ``benchmarks/characterize_speed.py``."""
    import torchvision

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pairs import interleaved_pairs, print_pairs

    if threads:
        torch.set_num_threads(threads)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        stats = interleaved_pairs(lambda: model(x), lambda: count_model(model, (x,)), pairs=pairs, warmup=2)
    print_pairs(f"overhead resnet50 b1 224, {torch.get_num_threads()} threads: count_model / eager forward",
                stats, unit="ms", scale=1e3)


def _line(name, params, ref_params, macs, ref_macs, rel, ok):
    rp = f"{ref_params:>12,}" if ref_params is not None else f"{'-':>12}"
    return (f"{name:<22} {params:>12,} {rp} {macs / 1e9:>10.4f} {ref_macs / 1e9:>10.4f} "
            f"{rel * 100:>8.4f}% {'OK' if ok else 'FAIL'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated torchvision model names (default: all 80)")
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--device", default="meta", help="meta (default, no arithmetic) or cpu")
    ap.add_argument("--no-extra", action="store_true", help="skip YOLOv8n and BERT-base")
    ap.add_argument("--overhead", action="store_true",
                    help="only measure count_model against a plain ResNet-50 forward")
    ap.add_argument("--threads", type=int, help="torch threads for --overhead")
    args = ap.parse_args(argv)
    if args.overhead:
        measure_overhead(threads=args.threads)
        return 0

    import torchvision

    all_names = torchvision.models.list_models(module=torchvision.models)
    names = args.models.split(",") if args.models else (QUICK if args.quick else all_names)
    print("conv+matmul MACs (categories conv, matmul, attention; 1 MAC = 2 FLOPs), batch 1")
    print(f"{'model':<22} {'params':>12} {'ref params':>12} {'GMACs':>10} {'ref GMACs':>10} "
          f"{'rel err':>9} status")
    n_ok = n_strict = 0
    t_all = time.perf_counter()
    for name in names:
        try:
            params, macs, ref_params, ref_gmacs, dev, secs, res = count_torchvision(name, args.device)
        except Exception as exc:
            print(f"{name:<22} ERROR {type(exc).__name__}: {str(exc)[:120]}")
            continue
        ref = ref_gmacs * 1e9
        rel = abs(macs - ref) / ref if ref else float("inf")
        ok = params == ref_params and (rel <= REL_TOL or abs(macs - ref) <= ROUNDING_GMACS * 1e9)
        n_ok += ok
        n_strict += ok and rel <= REL_TOL
        extra = f"  uncounted: {res.uncounted}" if res.uncounted else ""
        print(_line(name, params, ref_params, macs, ref, rel, ok) + f"  [{dev}, {secs:.1f}s]{extra}", flush=True)
    print(f"SUMMARY torchvision: {n_ok}/{len(names)} within 0.1% (or the 0.0005 GMACs rounding of "
          f"_ops) with exact params ({n_strict} within 0.1% outright, {n_ok - n_strict} only within "
          f"the rounding); {time.perf_counter() - t_all:.0f}s")

    if args.no_extra:
        return 0 if n_ok == len(names) else 1
    extra_ok = True
    try:
        res, params = count_yolov8n()
        flops = 2 * res.total_macs()
        ref = 8.7e9
        rel = abs(flops - ref) / ref
        ok = rel <= 0.01
        extra_ok &= ok
        print(f"{'yolov8n (GFLOPs)':<22} {params:>12,} {'-':>12} {flops / 1e9:>10.4f} {ref / 1e9:>10.4f} "
              f"{rel * 100:>8.4f}% {'OK' if ok else 'FAIL'}  [within 1% of Ultralytics' 8.7 GFLOPs]")
    except Exception as exc:
        extra_ok = False
        print(f"yolov8n ERROR {type(exc).__name__}: {str(exc)[:160]}")
    try:
        res, dev = count_bert(args.device)
        macs = res.total_macs()
        ref = bert_base_macs()
        rel = abs(macs - ref) / ref
        ok = rel <= REL_TOL
        extra_ok &= ok
        print(f"{'bert-base seq128':<22} {'-':>12} {'-':>12} {macs / 1e9:>10.4f} {ref / 1e9:>10.4f} "
              f"{rel * 100:>8.4f}% {'OK' if ok else 'FAIL'}  [{dev}; analytic count]")
    except Exception as exc:
        extra_ok = False
        print(f"bert-base ERROR {type(exc).__name__}: {str(exc)[:160]}")
    return 0 if (n_ok == len(names) and extra_ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
