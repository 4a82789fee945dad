"""The calls of a generation as discovery sees them: a prefill, then decode steps, with the KV cache's
state before each and copies of the few calls characterization counts.

A model called with an empty KV cache starts a generation (the call that fills it is the *prefill*);
each later call of that model with a non-empty cache is a *decode step*, until the model is called
with an empty cache again. Per step, tk keeps the cache's state before the call and the positions the
call added (:class:`Step`): a few integers per layer, whatever the generation's length.

Which calls are copied (:func:`turnkey_like.kv_cache.snapshot`, taken before the call changes the
cache): a step's cost is a function of the positions each layer holds, and between two steps those
grow by the same amount per layer (one position per full-attention layer, none for a full sliding
window), so the cost of a step is affine in its index along each run of steps with the same per-layer
growth (a *segment*). The first :data:`POINTS_PER_SEGMENT` steps of each segment are copied: two
give the line, the third checks it. A segment starts where the growth changes (the step after the
prefill, a sliding window filling up). At most :data:`MAX_SNAPSHOTS` copies are kept per generation;
past that the steps are still recorded, and the figures of later segments are marked estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from turnkey_like.kv_cache import CacheState, cache_state, find_cache, snapshot

POINTS_PER_SEGMENT = 3
MAX_SNAPSHOTS = 48


@dataclass
class Step:
    """One decode call: the cache before it, and how many positions it added (its new tokens)."""

    state: CacheState
    new: int = 0


@dataclass
class GenerationTrace:
    """One generation of one model, as the script ran it.

    Attributes:
        prefill: the invocation hash of the prefill call (the call with an empty cache).
        cache_arg: the argument that carried the cache (``past_key_values``, ``Positional Arg 3``).
        prompt_tokens: positions the prefill added (the prompt length P).
        steps: the decode calls in order.
        decode: the invocation hash of the first decode call (``None`` when no decode call followed).
        segments: the index of each segment's first step (``[0]`` for a plain generation).
        snapshots: step index -> the call's ``(args, kwargs)`` as they were when it was made.
        final: the cache after the last call.
        repeats: how many generations with this prefill invocation ran (the first is traced).
        truncated: more copies were wanted than :data:`MAX_SNAPSHOTS`.
    """

    prefill: str
    cache_arg: str
    prompt_tokens: int = 0
    steps: list[Step] = field(default_factory=list)
    decode: str | None = None
    segments: list[int] = field(default_factory=lambda: [0])
    snapshots: dict[int, tuple[tuple, dict]] = field(default_factory=dict)
    final: CacheState | None = None
    repeats: int = 1
    truncated: bool = False

    @property
    def new_tokens(self) -> int:
        """Tokens the generation produced: one from the prefill, one from each decode step."""
        return len(self.steps) + 1

    def segment_of(self, k: int) -> tuple[int, int]:
        """``(first, last)`` step index of the segment holding step ``k``."""
        starts = self.segments
        i = max(j for j, s in enumerate(starts) if s <= k)
        last = (starts[i + 1] - 1) if i + 1 < len(starts) else len(self.steps) - 1
        return starts[i], last


class _Live:
    """One generation being traced (``trace``) or one being counted only (a repeat: ``trace`` None)."""

    __slots__ = ("trace", "last_stored", "last_growth", "cache")

    def __init__(self, trace: GenerationTrace | None, cache):
        self.trace = trace
        self.cache = cache
        self.last_stored: tuple[int, ...] | None = None
        self.last_growth: tuple[int, ...] | None = None


class GenerationTracker:
    """Follows the calls that carry a KV cache during one script run (see the module docstring).

    ``before`` runs in discovery's hook before a recorded model call, ``after`` once it returned;
    both cost a few attribute reads per cache layer. :attr:`traces` holds the generations by their
    prefill invocation hash.
    """

    def __init__(self):
        self.traces: dict[str, GenerationTrace] = {}
        self._live: dict[tuple[str, ...], _Live] = {}  # model path -> its generation in progress

    def before(self, model_path: tuple[str, ...], inv_hash: str, args: tuple, kwargs: dict):
        """Note a model call; return a token for :meth:`after` (``None`` when it carries no cache)."""
        found = find_cache(args, kwargs)
        if found is None:
            return None
        name, cache = found
        state = cache_state(cache)
        if state.empty:  # a prefill: a new generation of this model
            repeat = inv_hash in self.traces
            if repeat:
                self.traces[inv_hash].repeats += 1
            trace = None if repeat else self.traces.setdefault(inv_hash, GenerationTrace(prefill=inv_hash, cache_arg=name))
            live = self._live[model_path] = _Live(trace, cache)
            return live, state, None
        live = self._live.get(model_path)
        if live is None or live.trace is None:  # a cache from elsewhere, or a repeat: not traced
            return None
        trace = live.trace
        k = len(trace.steps)
        if trace.decode is None:
            trace.decode = inv_hash
        growth = None if live.last_stored is None else tuple(a - b for a, b in zip(state.stored, live.last_stored))
        if k >= 2 and growth != live.last_growth:
            trace.segments.append(k)
        live.last_stored, live.last_growth = state.stored, growth
        first = trace.segments[-1]
        if k - first < POINTS_PER_SEGMENT:
            if len(trace.snapshots) < MAX_SNAPSHOTS:
                trace.snapshots[k] = (snapshot(args), snapshot(kwargs))
            else:
                trace.truncated = True
        step = Step(state)
        trace.steps.append(step)
        return live, state, step

    def after(self, token) -> None:
        """The call of ``token`` returned: note the positions it added."""
        live, before, step = token
        after = cache_state(live.cache)
        added = after.context - before.context
        if live.trace is None:
            return
        if step is None:  # the prefill
            live.trace.prompt_tokens = added
            live.last_stored = None
        else:
            step.new = added
        live.trace.final = after
