"""Synthesized example inputs: random tensors drawn from one seeded ``torch.Generator``.

One :class:`Synthesizer` per loaded model draws every tensor in a fixed order from a generator
seeded with the request's ``seed``, so the same request gives equal tensors on every run (the
seed is recorded in the request). On ``meta`` it makes empty meta tensors of the same shapes and
dtypes (meta tensors hold no values).
"""

from __future__ import annotations

from typing import Sequence

import torch


class Synthesizer:
    """Makes example tensors reproducibly from ``seed``; see the module docstring.

    Args:
        seed: seed of the ``torch.Generator`` every tensor is drawn from.
        on_meta: make ``meta`` tensors instead (shapes and dtypes only).
    """

    def __init__(self, seed: int, on_meta: bool = False):
        self.on_meta = on_meta
        self.generator = torch.Generator().manual_seed(seed)

    def _empty(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(tuple(shape), dtype=dtype, device="meta")

    def floats(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard-normal floats of ``shape``."""
        if self.on_meta:
            return self._empty(shape, dtype)
        return torch.randn(tuple(shape), generator=self.generator, dtype=dtype)

    def unit(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniform floats in [0, 1) of ``shape`` (images a model expects already scaled)."""
        if self.on_meta:
            return self._empty(shape, dtype)
        return torch.rand(tuple(shape), generator=self.generator, dtype=dtype)

    def ids(self, shape: Sequence[int], high: int, low: int = 0) -> torch.Tensor:
        """int64 ids uniform in ``[low, high)`` of ``shape`` (token ids inside a vocabulary)."""
        if self.on_meta:
            return self._empty(shape, torch.int64)
        return torch.randint(low, max(high, low + 1), tuple(shape), generator=self.generator,
                             dtype=torch.int64)

    def ones(self, shape: Sequence[int], dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """All-ones ``shape`` (attention masks: every position attended)."""
        if self.on_meta:
            return self._empty(shape, dtype)
        return torch.ones(tuple(shape), dtype=dtype)

    def constant(self, values: Sequence, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """A tensor holding ``values`` (nested lists: a grid of patch counts), drawing nothing."""
        if self.on_meta:
            return self._empty(torch.tensor(values).shape, dtype)
        return torch.tensor(values, dtype=dtype)

    def like_name(self, name: str, shape: Sequence[int], vocab: int | None = None) -> torch.Tensor:
        """A tensor for an input known only by name and shape (``--input-shape NAME:...``).

        ``*_ids`` -> ids inside ``vocab`` (or [0, 2) without one), ``*mask`` -> ones, anything else
        -> standard-normal floats.
        """
        if name.endswith("ids"):
            return self.ids(shape, vocab or 2)
        if name.endswith("mask"):
            return self.ones(shape)
        return self.floats(shape)
