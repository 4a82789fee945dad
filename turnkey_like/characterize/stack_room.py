"""Call a function with the Python frames of the call in a fresh data-stack chunk (CPython 3.11/3.12).

:func:`call_with_stack_room` is how the counter counts and how ``assemble`` prepares and assembles:
their per-op and per-module Python calls then never cross a chunk boundary, whatever the caller's
depth (the why, and the figures, are in its docstring).
"""

from __future__ import annotations


def call_with_stack_room(fn, args: tuple = (), kwargs: dict | None = None):
    """``fn(*args, **kwargs)``, with the Python frames of the call in a fresh data-stack chunk that has
    room for all of them (so no op of a counted call, no step of its assembly, crosses a chunk
    boundary).

    Why (CPython 3.11 and 3.12): frames live in a per-thread stack of chunks of 16 KiB. A call whose
    frame does not fit in the current chunk allocates a new chunk (``mmap``) and frees it (``munmap``)
    as soon as that frame returns (``_PyThreadState_BumpFramePointerSlow``, ``_PyThreadState_PopFrame``;
    CPython issue gh-142183, fixed in 3.13 and 3.14 by keeping one chunk). The counter runs Python
    frames under every op of the model (the counter's dispatch handler, ``_Counter.record``, the
    formulas), and the assembly a few per module and per row, so when the caller's depth puts one of
    them on a chunk boundary, every op maps, faults in and unmaps a chunk, several times. Which
    depths do that is a matter of luck: characterizing YOLOv8n (64x64, 1 thread) from each caller
    depth 0..299 (``benchmarks/characterize_speed.py --models stack``), 89 depths did, up to 3,023 page
    faults a call, and a call from the worst depths took 40.4 ms of CPU against 19.9 ms from calm ones
    (eager forward 6.8 ms); at 640x640 from two such depths, 1.34x the eager forward against 1.21x
    from calm ones (load 4). This function's frame reserves :data:`_STACK_ROOM` slots of evaluation
    stack (never written, so never faulted in); it cannot fit in a 16 KiB chunk, so CPython allocates
    one of 256 KiB for it (``push_chunk`` doubles 16 KiB until it holds the frame and 1000 slots
    more), and the ~17,000 slots after the frame (136 KiB) take the frames of the whole call: no
    depth over 100 page faults a call, 1.22x at 640x640 from the depths that were 1.34x.
    :func:`~turnkey_like.characterize.counter.count_model` counts through it, and
    ``assemble.characterize_call`` prepares and assembles through it (one after the other, never
    nested: a second reserve inside the first would leave the call little room).
    """
    return fn(*args, **(kwargs or {}))


_STACK_ROOM = 15_400
"""Evaluation-stack slots (8 bytes each) that :func:`call_with_stack_room`'s frame reserves."""
try:
    call_with_stack_room.__code__ = call_with_stack_room.__code__.replace(
        co_stacksize=call_with_stack_room.__code__.co_stacksize + _STACK_ROOM)
except (AttributeError, TypeError, ValueError):  # not CPython: an ordinary call
    pass


__all__ = ["call_with_stack_room"]
