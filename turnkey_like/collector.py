"""Python's cyclic garbage collector kept off the objects that already exist, while tk makes many new ones.

torch and what it imports hold about 300k objects that live as long as the process. Every full
collection walks all of them (tens of ms on this 2-core machine), and the collector starts one after
enough new objects: a script's run, or the 10,000 invocation records of a shape sweep being encoded,
sent, decoded and mirrored, then pays for torch's objects over and over. :func:`existing_frozen`
moves the objects that exist into the collector's permanent generation (``gc.freeze``) for a block
and back after it: new objects are collected as usual. ``gc.freeze`` and ``gc.unfreeze`` move whole
lists, whatever their length. :func:`collector_paused` pauses the collector altogether instead,
around decoding records, which hold no cycles (``records.decode``, ``cache.stored.bulk_load``).
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def collector_paused():
    """The collector off inside the block and back as it was after (a context): for decoding records,
    which make many objects and no cycles (a 70B model's record: some 40,000 objects; a full
    collection on the way would walk every object of a process holding torch, 0.2 s against a 10 ms
    decode)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextlib.contextmanager
def existing_frozen():
    """Leave every object that exists now out of the collector's passes inside the block (a context).

    Nested uses, or a block entered while something else froze objects, leave the unfreezing to the
    outermost (``gc.unfreeze`` releases every frozen object at once).
    """
    outermost = gc.get_freeze_count() == 0
    gc.freeze()
    try:
        yield
    finally:
        if outermost:
            gc.unfreeze()
