"""tk's MACs for every torchvision model at the zoo's default input, against torchvision's published figure.

For each name of ``torchvision.models.list_models()`` the script loads the model as ``tk --model NAME``
does (``turnkey_like.zoo.load``: random weights, the default input), counts one call with tk's
counter (``turnkey_like.characterize.characterize_call``) and prints its conv+matmul MACs next to
``weights.meta["_ops"]`` of the weights that describe that input
(``turnkey_like.zoo.torchvision_models.published_macs``; G MACs, although torchvision's docs label
them "GFLOPS"), the relative difference and whether it is within :data:`REL_TOL` or the figure's
rounding (:data:`ROUNDING_GMACS`).

Counting is on ``meta`` tensors (shapes only, no arithmetic) wherever the counter can run there:
everything but quantized models (quantized tensors have no meta form) and detection models
(``nonzero`` in their post-processing returns a shape that depends on values). Builders that read
values while building (RegNet's width schedule) are built with real weights and counted on meta.
``tests/test_published_macs.py`` asserts the same comparison, with its exceptions and their reasons.

Usage::

    python benchmarks/published_macs.py                       # every torchvision model (about 3 min here)
    python benchmarks/published_macs.py --kinds video,detection
    python benchmarks/published_macs.py --models swin3d_t,s3d,raft_small
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from turnkey_like.characterize import characterize_call  # noqa: E402
from turnkey_like.errors import InputError  # noqa: E402
from turnkey_like.records import ModelRequest  # noqa: E402
from turnkey_like.zoo import load  # noqa: E402
from turnkey_like.zoo.base import needs_values  # noqa: E402
from turnkey_like.zoo.torchvision_models import PublishedMacs, kind, names, published_macs  # noqa: E402

REL_TOL = 0.005
"""A count agrees with the published figure within 0.5 % ..."""

ROUNDING_GMACS = 0.0005
"""... or within the rounding of ``_ops``, published with 3 decimals (MobileNetV3-Small: 0.05651 G
counted, 0.057 published, 0.9 % apart)."""

COUNTED_ON_REAL_TENSORS = ("quantized", "detection")
"""Kinds the counter cannot run on meta (the module docstring says why)."""


class Count(NamedTuple):
    """One model counted at its default input: the request the loader filled in, tk's conv+matmul MACs,
    the published figure (None where none is published for this input), where it was counted, and
    how long loading and counting took (s)."""

    request: ModelRequest
    macs: int
    published: PublishedMacs | None
    device: str
    seconds: float

    @property
    def relative(self) -> float | None:
        """(tk - published) / published, or None without a published figure."""
        return None if self.published is None else self.macs / (self.published.gmacs * 1e9) - 1

    @property
    def agrees(self) -> bool:
        """Whether tk's count is within :data:`REL_TOL` or :data:`ROUNDING_GMACS` of the published one."""
        if self.published is None:
            return False
        ref = self.published.gmacs * 1e9
        return abs(self.macs - ref) <= max(REL_TOL * ref, ROUNDING_GMACS * 1e9)


def count(name: str, on_meta: bool | None = None) -> Count:
    """Load torchvision model ``name`` at its default input and count one call (see the module docstring).

    ``on_meta``: count on meta tensors (default: unless its kind is in :data:`COUNTED_ON_REAL_TENSORS`);
    ``False`` builds real weights and counts on them.

    Raises:
        InputError: the model does not build; CharacterizationError: the call fails while counting.
    """
    start = time.perf_counter()
    if on_meta is None:
        on_meta = kind(name) not in COUNTED_ON_REAL_TENSORS
    with warnings.catch_warnings():  # torchvision's own deprecation and quantization warnings
        warnings.simplefilter("ignore")
        try:
            loaded = load(ModelRequest(name=name, no_weights=on_meta))
        except InputError as exc:
            if not (on_meta and needs_values(exc)):
                raise
            loaded = load(ModelRequest(name=name, no_weights=False))  # counted on meta all the same
        char = characterize_call(loaded.model, loaded.args, loaded.kwargs, hardware="a100", no_weights=on_meta)
    return Count(loaded.request, char.totals.conv_matmul_macs, published_macs(loaded), char.device,
                 time.perf_counter() - start)


def _input(request: ModelRequest) -> str:
    frames = f"{request.seq_len}x" if request.seq_len else ""
    return f"{frames}{request.imgsz}²"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated torchvision model names (default: all)")
    ap.add_argument("--kinds", help="comma-separated kinds: classification, quantized, video, segmentation, "
                                    "detection, optical_flow (default: all)")
    args = ap.parse_args(argv)
    selected = args.models.split(",") if args.models else names()
    if args.kinds:
        selected = [n for n in selected if kind(n) in args.kinds.split(",")]
    print("conv+matmul MACs (1 MAC = 2 FLOPs), batch 1, the zoo's default input; published = "
          "weights.meta['_ops'] (G MACs)")
    print(f"{'model':<38} {'kind':<14} {'input':>9} {'tk G MACs':>11} {'published':>10} {'rel':>8}  "
          f"{'':<5} {'counted on':<10} {'s':>5}  weights")
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    outside = 0
    for name in selected:
        try:
            c = count(name)
        except Exception as exc:  # noqa: BLE001 - one model that fails is a finding, listed
            outside += 1
            print(f"{name:<38} {kind(name):<14} ERROR {type(exc).__name__}: {str(exc)[:120]}", flush=True)
            continue
        outside += not c.agrees
        ref = f"{c.published.gmacs:>10.3f}" if c.published else f"{'-':>10}"
        rel = f"{c.relative * 100:>+7.2f}%" if c.published else f"{'-':>8}"
        print(f"{name:<38} {kind(name):<14} {_input(c.request):>9} {c.macs / 1e9:>11.3f} {ref} {rel}  "
              f"{'ok' if c.agrees else 'OFF':<5} {c.device:<10} {c.seconds:>5.1f}  "
              f"{c.published.weights if c.published else ''}", flush=True)
    print(f"{len(selected) - outside} of {len(selected)} within {REL_TOL:.1%} (or {ROUNDING_GMACS} G) of the "
          f"published figure; {time.perf_counter() - start:.0f} s, load {load_before:.1f}→{os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
