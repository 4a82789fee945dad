"""The calls of a generation as discovery sees them: a prefill, then decode steps, with the KV cache's
state before each and copies of the few calls characterization counts.

A model called with an empty KV cache starts a generation (the call that fills it is the *prefill*;
a call without a cache whose model then gets a filled one back, ``model(ids, use_cache=True)``,
is the prefill too);
each later call of that model with a non-empty cache is a *decode step*, until the model is called
with an empty cache again. Per step, tk keeps the cache's state before the call and the positions the
call added (:class:`Step`): a few integers per layer, whatever the generation's length.

Which calls are copied (:func:`turnkey_like.kv_cache.snapshot`, taken before the call changes the
cache): a step's cost is a function of the positions each layer holds, and between two steps those
grow by the same amount per layer (one position per full-attention layer, none for a full sliding
window), so the cost of a step is affine in its index along each run of steps with the same per-layer
growth (a *segment*). The first :data:`POINTS_PER_SEGMENT` steps of each segment are copied: two
give the line, the third checks it. A segment starts where the growth changes, and the step in which a
sliding window fills up (its layer then stops growing) is a segment of its own. At most :data:`MAX_SNAPSHOTS` copies are kept per generation;
past that the steps are still recorded, and the figures of later segments are marked estimated.

An encoder-decoder model's prefill takes its encoder's outputs (``encoder_outputs``), computed by a
call of the encoder just before (``generate()`` makes it; so does a script that calls
``model.get_encoder()`` itself): the trace keeps a copy of that call's inputs
(:attr:`GenerationTrace.encoder`), so the encoder's cost joins the prefill's, and the geometry of the
cross-attention K and V the prefill caches (:attr:`GenerationTrace.cross`).

tk's own loop for a named model whose decode figures come from copies of it at two depths
(``generate_loop(decode_steps=1)``) runs one decode step, and the tracker appends the others' cache
states (:attr:`GenerationTrace.counted_elsewhere`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

from turnkey_like.kv_cache import CacheState, LayerKV, cache_state, find_cache, layer_geometry, layer_windows, snapshot

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
        simulated: the last steps tk's own loop did not run (:meth:`GenerationTracker.finish`): their
            cache states follow from the steps that ran, and their costs from the counted ones.
        counted_elsewhere: the loop ran fewer steps than counting them here needs (one): their costs
            come from elsewhere (``characterize.generation_depth``: copies of the model at two
            depths), and this trace gives the prompt, the number of steps and the cache's geometry.
        encoder: an encoder-decoder's encoder call whose outputs the prefill took
            (``encoder_outputs``), as ``(encoder module, args, kwargs)`` copied as they were;
            ``None`` for a decoder-only model, or a prefill that ran its encoder itself.
        cross: the cross-attention K/V geometry of an encoder-decoder cache once the prefill filled
            it (``kv_cache.layer_geometry(cache, cross=True)``: one entry per decoder layer, its
            ``stored`` the encoder positions S); empty for any other cache.
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
    simulated: int = 0
    counted_elsewhere: bool = False
    encoder: tuple | None = None
    cross: list[LayerKV | None] = field(default_factory=list)

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


def _copied(call: tuple | None) -> tuple | None:
    """``(module, args, kwargs)`` with copies of the arguments as they are now (:func:`snapshot`)."""
    return None if call is None else (call[0], snapshot(call[1]), snapshot(call[2]))


class _Live:
    """One generation being traced (``trace``) or one being counted only (a repeat: ``trace`` None)."""

    __slots__ = ("trace", "last_stored", "last_growth", "cache", "windows", "last_new", "alone")

    def __init__(self, trace: GenerationTrace | None, cache):
        self.trace = trace
        self.cache = cache
        self.windows = layer_windows(cache)
        self.last_stored: tuple[int, ...] | None = None
        self.last_growth: tuple[int, ...] | None = None
        self.last_new = 1
        self.alone = False  # the previous step was a segment of its own (a window filled in it)

    def fills_a_window(self, stored: tuple[int, ...]) -> bool:
        """Whether the next call, adding as many positions as the last one, fills a sliding-window
        layer (it then stores its window less one): the step where that layer's cost stops growing,
        whose own cost need not lie on either line (transformers switches mask paths there)."""
        return any(w is not None and n < w - 1 <= n + self.last_new for w, n in zip(self.windows, stored))


_ACTIVE = threading.local()


@contextlib.contextmanager
def tracking(tracker: "GenerationTracker"):
    """Make ``tracker`` the one :func:`generate_loop` consults in this thread (tk's own loops, whose
    steps are known once the first ones ran; a script's loop is the script's and runs every step)."""
    saved = getattr(_ACTIVE, "tracker", None)
    _ACTIVE.tracker = tracker
    try:
        yield tracker
    finally:
        _ACTIVE.tracker = saved


def active_tracker() -> "GenerationTracker | None":
    """The tracker :func:`tracking` set in this thread, else ``None``."""
    return getattr(_ACTIVE, "tracker", None)


class GenerationTracker:
    """Follows the calls that carry a KV cache during one script run (see the module docstring).

    ``before`` runs in discovery's hook before a recorded model call, ``after`` once it returned;
    both cost a few attribute reads per cache layer. :attr:`traces` holds the generations by their
    prefill invocation hash.
    """

    def __init__(self, points_per_segment: int | None = POINTS_PER_SEGMENT, max_snapshots: int | None = MAX_SNAPSHOTS):
        """``points_per_segment``/``max_snapshots``: how many steps of each segment, and of the whole
        generation, are copied (``None``: every one; tests count every step that way)."""
        self.traces: dict[str, GenerationTrace] = {}
        self._live: dict[tuple[str, ...], _Live] = {}  # model path -> its generation in progress
        # model path -> its last call without a cache, and the encoder call whose outputs it took
        self._plain: dict[tuple[str, ...], tuple[str, tuple | None]] = {}
        self._last_call: tuple | None = None  # (module, args, kwargs) of the last outermost call without a cache
        self.points_per_segment = points_per_segment
        self.max_snapshots = max_snapshots

    def before(self, model_path: tuple[str, ...], inv_hash: str, args: tuple, kwargs: dict, module=None):
        """Note a model call; return a token for :meth:`after` (``None`` when it carries no cache).

        ``module``: the module called, given for an outermost call (not one inside another model's
        call): an encoder-decoder's prefill finds its encoder's call among them (:meth:`_encoder_of`).
        """
        found = find_cache(args, kwargs)
        if found is None:  # maybe a prefill whose cache the model makes itself (use_cache=True)
            self._plain[model_path] = inv_hash, self._encoder_of(module, kwargs)
            self._live.pop(model_path, None)
            if module is not None:
                self._last_call = module, args, kwargs
            return None
        name, cache = found
        state = cache_state(cache)
        if state.empty:  # a prefill: a new generation of this model
            live = self._start(model_path, inv_hash, name, cache)
            if live.trace is not None:
                live.trace.encoder = _copied(self._encoder_of(module, kwargs))
            return live, state, None
        live = self._live.get(model_path)
        if live is None and model_path in self._plain:  # the last call without a cache filled this one
            prefill, encoder = self._plain.pop(model_path)
            live = self._start(model_path, prefill, name, cache)
            if live.trace is not None:
                live.trace.prompt_tokens = state.context
                live.trace.encoder, live.trace.cross = _copied(encoder), layer_geometry(cache, cross=True)
        if live is None or live.trace is None:  # a cache from elsewhere, or a repeat: not traced
            return None
        trace = live.trace
        k = len(trace.steps)
        if trace.decode is None:
            trace.decode = inv_hash
        growth = None if live.last_stored is None else tuple(a - b for a, b in zip(state.stored, live.last_stored))
        alone = live.fills_a_window(state.stored)
        if k > 0 and (alone or live.alone or (k >= 2 and growth != live.last_growth)) and trace.segments[-1] != k:
            trace.segments.append(k)
        live.last_stored, live.last_growth, live.alone = state.stored, growth, alone
        first = trace.segments[-1]
        if self.points_per_segment is None or k - first < self.points_per_segment:
            if self.max_snapshots is None or len(trace.snapshots) < self.max_snapshots:
                trace.snapshots[k] = (snapshot(args), snapshot(kwargs))
            else:
                trace.truncated = True
        step = Step(state)
        trace.steps.append(step)
        return live, state, step

    def _encoder_of(self, module, kwargs: dict) -> tuple | None:
        """The encoder call whose outputs a call of ``module`` takes (``encoder_outputs``):
        ``(encoder, args, kwargs)`` when the last outermost call without a cache was of
        ``module.get_encoder()`` (transformers' encoder-decoder models), else ``None``."""
        last = self._last_call
        if module is None or last is None or kwargs.get("encoder_outputs") is None:
            return None
        get_encoder = getattr(module, "get_encoder", None)
        try:
            encoder = get_encoder() if callable(get_encoder) else None
        except Exception:  # noqa: BLE001 - a model whose get_encoder needs arguments or fails: none found
            return None
        return last if encoder is not None and last[0] is encoder else None

    def _start(self, model_path: tuple[str, ...], prefill: str, cache_arg: str, cache) -> _Live:
        """A new generation of the model at ``model_path`` whose prefill is invocation ``prefill``
        (a repeat of a traced prefill is counted in ``repeats`` and not traced again)."""
        repeat = prefill in self.traces
        if repeat:
            self.traces[prefill].repeats += 1
        trace = None if repeat else self.traces.setdefault(prefill, GenerationTrace(prefill=prefill, cache_arg=cache_arg))
        live = self._live[model_path] = _Live(trace, cache)
        return live

    def finish(self, cache, remaining: int, *, counted_elsewhere: bool = False) -> bool:
        """Append the ``remaining`` decode steps of the generation extending ``cache`` without running
        them, when they follow from the steps that ran; ``True`` when done (the caller stops).

        They follow when the current segment holds :data:`POINTS_PER_SEGMENT` counted steps and no
        later step would start a new one: each layer keeps growing as it did in the last step (a
        sliding-window layer up to its window less one, as transformers' dynamic sliding-window
        layer stores), one position per step, and no window fills on the way (a step that fills one
        must run: it is counted). Only tk's own loops ask (:func:`generate_loop`); ``False`` leaves
        the loop running every step.

        ``counted_elsewhere``: no step is counted from this trace (see
        :attr:`GenerationTrace.counted_elsewhere`, which it sets), so one step that ran is enough and
        a window may fill on the way: the steps' cache states follow the same rule.
        """
        live = next((v for v in self._live.values() if v.cache is cache), None)
        if live is None or live.trace is None or live.last_new != 1 or not live.trace.steps:
            return False
        trace = live.trace
        if not counted_elsewhere and (live.last_growth is None or live.alone or len(trace.steps) - trace.segments[-1]
                                      < (self.points_per_segment or 1 << 30)):
            return False
        stored, seen = list(trace.final.stored), list(trace.final.seen)
        windows = live.windows or (None,) * len(stored)
        growth = tuple(b - a for a, b in zip(trace.steps[-1].state.seen, trace.final.seen))
        steps = []
        for _ in range(remaining):
            if not counted_elsewhere and any(w is not None and n < w - 1 <= n + 1 for w, n in zip(windows, stored)):
                return False  # a window fills ahead: that step must run
            steps.append(Step(CacheState(tuple(stored), tuple(seen)), new=1))
            stored = [min(n + g, w - 1) if w else n + g for n, g, w in zip(stored, growth, windows)]
            seen = [n + g for n, g in zip(seen, growth)]
        trace.steps += steps
        trace.final = CacheState(tuple(stored), tuple(seen), trace.final.cross)
        trace.simulated = len(steps)
        trace.counted_elsewhere = counted_elsewhere
        return True

    def after(self, token) -> None:
        """The call of ``token`` returned: note the positions it added."""
        live, before, step = token
        after = cache_state(live.cache)
        added = after.context - before.context
        if live.trace is None:
            return
        if step is None:  # the prefill
            live.trace.prompt_tokens = added
            live.trace.cross = layer_geometry(live.cache, cross=True)
            live.last_stored = None
        else:
            step.new = live.last_new = added
        live.trace.final = after


def empty_cache(model):
    """An empty KV cache of the kind ``generate()`` gives ``model``: transformers' ``DynamicCache``
    built from the model's config (sliding-window layers where the config has them), wrapped in an
    ``EncoderDecoderCache`` for encoder-decoder models.

    Raises:
        ImportError: transformers is not installed.
    """
    from transformers import DynamicCache, EncoderDecoderCache

    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        decoder = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        return EncoderDecoderCache(DynamicCache(config=decoder), DynamicCache(config=decoder))
    return DynamicCache(config=config)


def generate_loop(model, inputs: dict, new_tokens: int, *, call=None, decode_steps: int | None = None) -> None:
    """Run what ``generate(**inputs, max_new_tokens=new_tokens)`` runs, greedily, without its sampling
    machinery: a prefill of the prompt into an empty cache (:func:`empty_cache`), then
    ``new_tokens - 1`` decode steps of one token each, the logits kept for the last position only
    (``logits_to_keep=1`` where the model takes it, as ``generate()`` passes it), and, for a
    decoder-only model whose forward takes ``position_ids``, the positions of the new tokens (as
    ``generate()`` passes them: ``GenerationMixin._prepare_position_ids_for_generation``, then one
    position a step; without them the model computes them itself, 1 FLOP a token that
    ``generate()`` does not run).

    ``inputs``: the prompt, as the model takes it (``input_ids`` [B, P]; an encoder-decoder model's
    encoder inputs, ``input_ids`` or ``input_features``: its encoder runs once, as ``generate()``
    runs it, then the decoder starts from ``decoder_start_token_id``). ``call(fn, **kwargs)`` makes
    each model call (default: ``fn(**kwargs)``; :func:`characterize_generation` passes one that
    traces it). On meta tensors the next token is token 0 (there are no logits to read).

    When a tracker is active (:func:`tracking`: tk's own loops), the loop stops once the steps left
    follow from those that ran (:meth:`GenerationTracker.finish`), so a long generation of a large
    model on meta costs a few steps, not N. ``decode_steps=1``: the decode steps' costs are counted
    elsewhere (:func:`turnkey_like.zoo.forward`: on copies of the model at two depths), so the loop
    stops after one decode step, whatever lies ahead, and the tracker appends the rest's cache states.
    """
    import inspect

    import torch

    call = call or (lambda fn, **kw: fn(**kw))
    config = getattr(model, "config", None)
    params = inspect.signature(model.forward).parameters
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    cache = empty_cache(model)
    ids_name = "input_ids"
    kwargs = dict(inputs)
    first = next(iter(inputs.values()))
    batch = int(first.shape[0])
    if getattr(config, "is_encoder_decoder", False):
        encoder = model.get_encoder()
        encoded = call(encoder, **inputs)
        start = getattr(config, "decoder_start_token_id", None) or 0
        kwargs = {"encoder_outputs": encoded,
                  "decoder_input_ids": torch.full((batch, 1), start, dtype=torch.long, device=first.device)}
        ids_name = "decoder_input_ids"
    positions = "position_ids" in params and ids_name == "input_ids"
    prompt = int(first.shape[1]) if positions else 0
    if positions:
        kwargs["position_ids"] = torch.arange(prompt, device=first.device).expand(batch, prompt)
    tracker = active_tracker()
    with torch.no_grad():
        out = call(model, **kwargs, past_key_values=cache, use_cache=True, **extra)
        run = POINTS_PER_SEGMENT if decode_steps is None else decode_steps
        for step in range(new_tokens - 1):
            if step >= run and tracker is not None and tracker.finish(cache, new_tokens - 1 - step,
                                                                      counted_elsewhere=decode_steps is not None):
                break
            logits = getattr(out, "logits", None)
            if logits is None or logits.is_meta:
                token = torch.zeros((batch, 1), dtype=torch.long, device=first.device)
            else:
                token = logits[:, -1:].argmax(-1)
            kwargs[ids_name] = token
            kwargs.pop("input_features", None)
            if ids_name == "input_ids":
                kwargs = {"input_ids": token}
                if positions:
                    kwargs["position_ids"] = torch.full((batch, 1), prompt + step, device=first.device)
            out = call(model, **kwargs, past_key_values=out.past_key_values if getattr(out, "past_key_values", None)
                       is not None else cache, use_cache=True, **extra)
