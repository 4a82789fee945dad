"""A zoo of tiny models covering the edge cases of tracing and counting.

Importable by every test module (``from tests.zoo import ...`` or ``from zoo import ...`` with
``tests/`` on the path). Each entry of :data:`ZOO` builds ``(model, args, kwargs)`` on CPU in
float32 in a few milliseconds; the models are deliberately small so hand-derived MAC counts fit in
a comment. Each class docstring gives its conv+matmul MACs for its default inputs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SharedBlock(nn.Module):
    """One Linear(8, 8) called twice in forward, then a head Linear(8, 2).

    Input [4, 8]. MACs: 2 x (4*8*8) + 4*8*2 = 512 + 64 = 576.
    """

    def __init__(self):
        super().__init__()
        self.block = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(torch.relu(self.block(torch.relu(self.block(x)))))


class SharedChild(nn.Module):
    """One Linear(8, 8) instance registered under two parents (``a.lin`` and ``b.lin``).

    Input [2, 8]. MACs: 2 x 2*8*8 = 256.
    """

    def __init__(self):
        super().__init__()
        lin = nn.Linear(8, 8)
        self.a = nn.Sequential()
        self.a.add_module("lin", lin)
        self.b = nn.Sequential()
        self.b.add_module("lin", lin)

    def forward(self, x):
        return self.b(self.a(x))


class TiedWeights(nn.Module):
    """Embedding(50, 16) whose weight is tied to the output projection (a language-model head).

    Input token ids [2, 6]. MACs: mixer 2*6*16*16 = 3072 + head 2*6*16*50 = 9600 = 12672 (the
    embedding lookup is 0 MACs).
    Parameters: 50*16 once (tied) + 16*16 + 16 for the mixer = 800 + 272 = 1072.
    """

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.mix = nn.Linear(16, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.mix(self.emb(ids))))


class DictInputs(nn.Module):
    """Takes a dict ``{"image": [2, 3, 8, 8], "meta": [2, 4]}``.

    MACs: conv N*Hout*Wout*numel(w) = 2*8*8*(4*3*3*3) = 128*108 = 13824; linear 2*4*4 = 32;
    total 13856.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)

    def forward(self, inputs: dict):
        img = self.conv(inputs["image"]).mean(dim=(2, 3))
        return img + self.fc(inputs["meta"])


class LazyMLP(nn.Module):
    """nn.LazyLinear(16) then Linear(16, 4); in_features inferred (10) at the first call.

    Input [3, 10]. MACs: 3*10*16 + 3*16*4 = 480 + 192 = 672.
    """

    def __init__(self):
        super().__init__()
        self.fc1 = nn.LazyLinear(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class ConvVariety(nn.Module):
    """Depthwise, grouped and dilated 2-d convolutions and a 1-d and 3-d one.

    Input x [1, 8, 10, 10] (see :func:`conv_variety_macs` for the hand count).
    - depthwise: Conv2d(8, 8, 3, padding=1, groups=8) -> [1, 8, 10, 10]
    - grouped: Conv2d(8, 16, 3, padding=1, groups=4) -> [1, 16, 10, 10]
    - dilated: Conv2d(16, 8, 3, padding=2, dilation=2, stride=2) -> [1, 8, 5, 5]
    - conv1d on x flattened to [1, 8, 25]: Conv1d(8, 4, 5) -> [1, 4, 21]
    - conv3d on the dilated output reshaped to [1, 1, 8, 5, 5]: Conv3d(1, 2, 3, padding=1)
    """

    def __init__(self):
        super().__init__()
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 16, 3, padding=1, groups=4)
        self.dilated = nn.Conv2d(16, 8, 3, padding=2, dilation=2, stride=2)
        self.conv1d = nn.Conv1d(8, 4, 5)
        self.conv3d = nn.Conv3d(1, 2, 3, padding=1)

    def forward(self, x):
        y = self.dilated(self.grouped(self.depthwise(x)))  # [1, 8, 5, 5]
        z = self.conv1d(y.flatten(2))  # [1, 4, 21]
        w = self.conv3d(y.reshape(1, 1, 8, 5, 5))  # [1, 2, 8, 5, 5]
        return z.sum() + w.sum()


def conv_variety_macs() -> dict[str, int]:
    """Hand count of :class:`ConvVariety` MACs per module: N * prod(out spatial) * numel(weight).

    depthwise: 1*10*10 * (8*1*3*3=72)    = 7200
    grouped:   1*10*10 * (16*2*3*3=288)  = 28800
    dilated:   1*5*5   * (8*16*3*3=1152) = 28800  (out = floor((10 + 4 - 2*2 - 1)/2) + 1 = 5)
    conv1d:    1*21    * (4*8*5=160)     = 3360   (out = 25 - 5 + 1 = 21)
    conv3d:    1*8*5*5 * (2*1*27=54)     = 10800
    """
    return {"depthwise": 7200, "grouped": 28800, "dilated": 28800, "conv1d": 3360, "conv3d": 10800}


class CausalAttention(nn.Module):
    """Causal SDPA on q, k, v [2, 4, 8, 16] (B, H, L, E).

    MACs: B*H*L*S*(E + Ev) = 2*4*8*8*(16+16) = 16384 (full QK^T and AV, as the math backend).
    """

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class GQAAttention(nn.Module):
    """Grouped-query SDPA: q [1, 8, 6, 16], k/v [1, 2, 6, 16] (8 query heads share 2 K/V heads).

    MACs by query heads: 1*8*6*6*(16+16) = 9216.
    """

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


class TinyLSTM(nn.Module):
    """nn.LSTM(4, 8) over a [5, 2, 4] sequence (T=5, B=2) then Linear(8, 3) on the last step.

    MACs: T*B*(numel(W_ih) + numel(W_hh)) = 5*2*(32*4 + 32*8) = 10*384 = 3840; head 2*8*3 = 48;
    total 3888.
    """

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[-1])


class Deconv(nn.Module):
    """ConvTranspose2d(4, 6, kernel 3, stride 2, padding 1, output_padding 1) on [1, 4, 5, 5].

    Output [1, 6, 10, 10]. MACs = N * Cin * prod(in spatial) * Cout/groups * prod(kernel)
    = 1*4*25*6*9 = 5400 (not 1*6*100*4*9 = 21600, which counts stride^2 = 4x too many).
    """

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.up(x)


class TinyMHA(nn.Module):
    """nn.MultiheadAttention(16, 4, batch_first=True) self-attention on [2, 5, 16].

    Called with ``need_weights=False``; in eval mode under ``no_grad`` it takes the fused fast path
    (``aten._native_multi_head_attention``). MACs (B=2, L=S=5, E=16): in-projection
    B*L*E*3E = 2*5*16*48 = 7680; scores + weighted sum 2*B*L*S*E = 2*2*5*5*16 = 1600;
    out-projection B*L*E*E = 2*5*16*16 = 2560; total 11840.
    """

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x):
        out, _ = self.attn(x, x, x, need_weights=False)
        return out


class RawLinear(nn.Module):
    """``F.linear`` with a raw weight tensor made in forward (not a parameter): [3, 6] x [5, 6]^T.

    MACs: 3*6*5 = 90. The weight is not a parameter, so ``weight_bytes`` is 0 for that op.
    """

    def forward(self, x):
        w = torch.ones(5, 6, device=x.device, dtype=x.dtype)
        return F.linear(x, w)


class EinsumNet(nn.Module):
    """``torch.einsum("bij,bjk->bik")`` of a [2, 3, 4] input with a [2, 4, 5] parameter.

    MACs: b*i*j*k = 2*3*4*5 = 120 (einsum decomposes to one bmm).
    """

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 4, 5))

    def forward(self, x):
        return torch.einsum("bij,bjk->bik", x, self.w)


class ConvBNReLU(nn.Module):
    """Conv2d(3, 8, 3, padding=1, bias=False) -> BatchNorm2d(8) -> ReLU on [2, 3, 6, 6].

    MACs: 2*6*6*(8*3*3*3) = 72*216 = 15552. BN: 4 FLOPs per element in eval, 8 in training
    (2*8*6*6 = 576 elements); ReLU 1 per element.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ZOO = {
    "shared_block": (lambda: (SharedBlock(), (torch.randn(4, 8, generator=_g()),), {}), 576),
    "shared_child": (lambda: (SharedChild(), (torch.randn(2, 8, generator=_g()),), {}), 256),
    "tied_weights": (lambda: (TiedWeights(), (torch.randint(0, 50, (2, 6), generator=_g()),), {}), 12672),
    "dict_inputs": (
        lambda: (
            DictInputs(),
            ({"image": torch.randn(2, 3, 8, 8, generator=_g()), "meta": torch.randn(2, 4, generator=_g())},),
            {},
        ),
        13856,
    ),
    "lazy_mlp": (lambda: (LazyMLP(), (torch.randn(3, 10, generator=_g()),), {}), 672),
    "conv_variety": (lambda: (ConvVariety(), (torch.randn(1, 8, 10, 10, generator=_g()),), {}),
                     sum(conv_variety_macs().values())),
    "causal_sdpa": (lambda: (CausalAttention(), tuple(torch.randn(2, 4, 8, 16, generator=_g(i)) for i in range(3)), {}),
                    16384),
    "gqa_sdpa": (
        lambda: (
            GQAAttention(),
            (torch.randn(1, 8, 6, 16, generator=_g()), torch.randn(1, 2, 6, 16, generator=_g(1)),
             torch.randn(1, 2, 6, 16, generator=_g(2))),
            {},
        ),
        9216,
    ),
    "lstm": (lambda: (TinyLSTM(), (torch.randn(5, 2, 4, generator=_g()),), {}), 3888),
    "deconv": (lambda: (Deconv(), (torch.randn(1, 4, 5, 5, generator=_g()),), {}), 5400),
    "mha": (lambda: (TinyMHA(), (torch.randn(2, 5, 16, generator=_g()),), {}), 11840),
    "raw_linear": (lambda: (RawLinear(), (torch.randn(3, 6, generator=_g()),), {}), 90),
    "einsum": (lambda: (EinsumNet(), (torch.randn(2, 3, 4, generator=_g()),), {}), 120),
    "conv_bn_relu": (lambda: (ConvBNReLU(), (torch.randn(2, 3, 6, 6, generator=_g()),), {}), 15552),
}
"""name -> (builder returning ``(model, args, kwargs)``, hand-derived conv+matmul MACs)."""


def build(name: str):
    """Return ``(model, args, kwargs, expected_macs)`` for a zoo entry; the model is in eval mode."""
    builder, macs = ZOO[name]
    model, args, kwargs = builder()
    return model.eval(), args, kwargs, macs
