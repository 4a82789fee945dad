"""Discovery: run a user's script unchanged and record every model it calls, with which inputs.

The script runs as ``__main__`` in this process (``runpy``), with ``sys.argv = [script] +
shlex.split(script_args)`` and its folder first on ``sys.path``, while ``torch.nn.Module.__call__`` is
replaced by :meth:`_Recorder.call`. For every *model* call (a module with parameters) that is not nested
deeper than ``max_depth`` inside another model call, the recorder notes the model, its input signature,
the invocation hash, the call count and the time spent. Calls nested deeper go straight to PyTorch
with one flag test of overhead (measured by ``benchmarks/discovery_overhead.py``).

From the command line each script runs in a child process of its own (``pipeline.Pipeline`` with
``isolate``), so nothing the script changes (default dtype, threads, streams, signal handlers, alarms,
grad mode, warnings filters, environment, working folder) outlives it. In-process
(``isolate=False``) only ``sys.argv``, ``sys.path``, the working directory, ``sys.modules['__main__']``
and the hook are restored afterwards.

The live model objects and each invocation's first inputs are kept in :class:`Discovery.live` for the
later stages (characterize, build, benchmark); they are never written to disk.
"""

from __future__ import annotations

import ast
import collections.abc
import functools
import importlib.abc
import importlib.util
import inspect
import os
import shlex
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnkey_like.collector import existing_frozen
from turnkey_like.errors import ScriptError, TkError
from turnkey_like.generation_trace import GenerationTrace, GenerationTracker, tracking
from turnkey_like.hashing import describe_inputs, invocation_hash, model_hash
from turnkey_like.kv_cache import snapshot
from turnkey_like.inputs import InputSpec
from turnkey_like.records import Invocation, ModelInfo, ScriptResult, Status, sanitise


@dataclass
class LiveInvocation:
    """The live objects behind one invocation: the model and its first call's inputs (not serialised).

    The inputs are copies taken when the call was made (:func:`turnkey_like.kv_cache.snapshot`), so
    a cache the call extended, or a tensor the script changed in place afterwards, is replayed as it
    was.

    Attributes:
        generation: for a prefill call (a KV cache that was empty), the generation it started: its
            decode steps and the copies of the steps characterization counts.
        replay_problem: why the later stages cannot replay the call (``called with a generator: tk
            cannot replay it``), ``None`` when they can. An input the call consumed (a generator or
            another iterator) is kept as a :class:`OneShotInput`, which raises when iterated.
    """

    model: Any
    args: tuple
    kwargs: dict
    grad_enabled: bool
    inference_mode: bool
    replay_problem: str | None = None
    generation: GenerationTrace | None = None


class NotReplayable(TkError):
    """A later stage iterated an input that the script's call already consumed (a generator)."""


class OneShotInput:
    """Stands in, among the inputs kept for the later stages, for one the script's call consumed (a
    generator or another iterator): it cannot be iterated again, so a replay raises
    :class:`NotReplayable` rather than run the model on nothing (a 0-MAC "success")."""

    def __init__(self, reason: str):
        self.reason = reason

    def __iter__(self):
        raise NotReplayable(self.reason, hint="pass the model a list or a tensor to have it characterized, "
                                              "built and benchmarked")

    __next__ = __iter__

    def __repr__(self) -> str:
        return f"<input consumed by the script's call: {self.reason}>"


def _one_shot(value: Any, name: str, found: list[str], depth: int = 0) -> Any:
    """``value`` with every iterator in it (a generator, ``iter(list)``, ``map``, ``zip``; inside lists,
    tuples and dicts, two levels down as ``hashing`` walks them) replaced by a :class:`OneShotInput`;
    each one's name and kind appended to ``found``. Iterators are detected by type, never iterated."""
    if isinstance(value, collections.abc.Iterator) and not hasattr(value, "shape"):
        kind = "a generator" if inspect.isgenerator(value) else f"an iterator ({type(value).__name__})"
        found.append(f"{kind} as {name}")
        return OneShotInput(f"called with {kind} as {name}: tk cannot replay it")
    if depth >= 2:
        return value
    if isinstance(value, (list, tuple)) and not hasattr(value, "shape"):
        items = [_one_shot(v, f"{name}[{i}]", found, depth + 1) for i, v in enumerate(value)]
        if all(a is b for a, b in zip(items, value)):
            return value
        return items if isinstance(value, list) else (
            type(value)(*items) if hasattr(value, "_fields") else tuple(items))
    if isinstance(value, dict):
        items = {k: _one_shot(v, f"{name}[{k!r}]", found, depth + 1) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    return value


#: types whose values are never iterators (checked by exact type: a subclass may add ``__next__``);
#: :func:`discover` adds torch's tensor and parameter
_NOT_ITERATORS: set[type] = {type(None), bool, int, float, complex, str, bytes}


def replayable_inputs(args: tuple, kwargs: dict) -> tuple[tuple, dict, str | None]:
    """The inputs a later stage may replay, and why it cannot when it cannot.

    Returns ``(args, kwargs, problem)``: the call's inputs with every iterator replaced by a
    :class:`OneShotInput` (the same objects when there is none), and ``called with a generator as
    Positional Arg 1: tk cannot replay it`` (``None`` when every input can be used again).
    """
    if all(type(a) in _NOT_ITERATORS for a in args) and all(type(v) in _NOT_ITERATORS for v in kwargs.values()):
        return args, kwargs, None  # the common call: tensors and numbers only
    found: list[str] = []
    new_args = tuple(_one_shot(a, f"Positional Arg {i}", found) for i, a in enumerate(args, start=1))
    new_kwargs = {k: _one_shot(v, k, found) for k, v in kwargs.items()}
    if not found:
        return args, kwargs, None
    return new_args, new_kwargs, f"called with {', '.join(found)}: tk cannot replay it"


@dataclass
class Discovery:
    """What one script run produced: the record, and the live objects keyed by invocation hash
    (a prefill's :attr:`LiveInvocation.generation` holds its generation)."""

    result: ScriptResult
    live: dict[str, LiveInvocation] = field(default_factory=dict)


class _ModelEntry:
    """Bookkeeping for one model (architecture) while the script runs; ``path`` is the model hashes
    from the top-level model down to this one (how a streamed invocation names its model)."""

    __slots__ = ("info", "invocations", "children", "module", "path")

    def __init__(self, info: ModelInfo, module, path: tuple[str, ...]):
        self.info = info
        self.module = module
        self.path = path
        self.invocations: dict[tuple, Invocation] = {}
        self.children: dict[tuple, _ModelEntry] = {}


class _ThreadState(threading.local):
    """Per-thread call state: each thread of a script has its own stack of models being called.

    Attributes:
        stack: the (model entry, invocation) of every recorded call this thread is inside.
        suppress: True inside a model at ``--max-depth`` (or a compiled one): nested calls pass
            straight through.
        generating: True inside a model call that carries a KV cache: the generation is traced at
            that call, not again at the submodules it passes the cache to.
    """

    def __init__(self):
        self.stack: list[tuple[_ModelEntry, Invocation]] = []
        self.suppress = False
        self.generating = False


class _Recorder:
    """State of the ``Module.__call__`` hook for one script run.

    Calls from several threads are attributed per thread (:class:`_ThreadState`), and the shared
    tables and counters are updated under one lock, so counts stay exact and a call made by one
    thread is never taken as a submodule call of another thread's model.
    """

    def __init__(self, script: Path, max_depth: int, original_call, result: ScriptResult | None = None,
                 on_found=None):
        self.script = script
        self.result = result if result is not None else ScriptResult(path=str(script))
        self.on_found = on_found
        self.max_depth = max_depth
        self.original_call = original_call
        self.state = _ThreadState()
        self.lock = threading.Lock()
        self.top: dict[str, _ModelEntry] = {}
        self.live: dict[str, LiveInvocation] = {}
        self.generations = GenerationTracker()
        self._module_facts: dict[int, tuple] = {}  # id(module) -> (module, is_model, hash)
        #: the frame that runs the script (:func:`discover`'s): frame walks for the script stop there
        self.caller_frame = None
        #: the ``::HASH`` selectors (invocation or model hashes; ``None``: every invocation is selected)
        self.selectors = frozenset(self.result.selectors) or None
        self.unkept: set[str] = set()  # hashes of invocations whose inputs were not kept (not selected)
        self._torch = sys.modules["torch"]

    # -- the hook ---------------------------------------------------------------------------
    def call(self, module, args, kwargs):
        facts = self._module_facts.get(id(module))
        if facts is None or facts[0] is not module:
            facts = self._facts(module)
        if not facts[1]:  # parameter-less modules and bare activations are not models
            return self.original_call(module, *args, **kwargs)
        target, compiled = facts[3], facts[4]
        state = self.state
        depth = len(state.stack)
        if not depth and _inside_module_constructor(self._torch.nn.Module, self.caller_frame):
            # e.g. ultralytics runs each layer once in DetectionModel.__init__ to find its strides:
            # construction-time calls are not calls the script makes.
            saved_suppress, state.suppress = state.suppress, True
            try:
                return self.original_call(module, *args, **kwargs)
            finally:
                state.suppress = saved_suppress
        parent_entry, parent_inv = state.stack[-1] if state.stack else (None, None)
        specs = describe_inputs(args, kwargs)
        sig_key = tuple((s.name, s.kind, s.shape, s.dtype) for s in specs)
        parent_hash = parent_inv.hash if parent_inv is not None else None
        with self.lock:
            entry, new_model = self._entry(target, facts[2], parent_entry, compiled)
            inv = entry.invocations.get((parent_hash, sig_key))
            is_new = inv is None
            if is_new:
                h, note = invocation_hash(entry.info.model_hash, parent_hash, specs)
                inv = Invocation(hash=h, parent_hash=parent_hash, signature=specs, hash_note=note,
                                 training=bool(target.training))
                entry.invocations[(parent_hash, sig_key)] = inv
                entry.info.invocations.append(inv)
                kept_args, kept_kwargs, problem = replayable_inputs(args, kwargs)
                if problem is not None and h not in self.live and h not in self.unkept:
                    self.result.notes.append(f"{entry.info.name} ({h}): {problem}")
                if self.selectors is None or h in self.selectors or entry.info.model_hash in self.selectors:
                    torch = self._torch
                    self.live.setdefault(h, LiveInvocation(
                        model=target, args=snapshot(kept_args), kwargs=snapshot(kept_kwargs),
                        grad_enabled=torch.is_grad_enabled(), inference_mode=torch.is_inference_mode_enabled(),
                        replay_problem=problem,
                    ))
                else:  # the ::HASH selection leaves it out: no stage replays it, so no copy of its inputs
                    self.unkept.add(h)
            inv.executed += 1
            if is_new and self.on_found is not None:  # stream it now: a crash later loses nothing
                self.on_found(self.result, entry.path, entry.info if new_model else None, inv)
            # the outermost call that carries a KV cache is a prefill or a decode step of a generation
            # (an outermost call's module lets an encoder-decoder's prefill find its encoder's call)
            token = None if state.generating else self.generations.before(entry.path, inv.hash, args, kwargs,
                                                                          None if depth else target)
            trace = token[0].trace if token is not None else None
            if trace is not None and trace.prefill in self.live and self.live[trace.prefill].generation is None:
                self.live[trace.prefill].generation = trace  # its prefill's invocation carries the generation
        state.stack.append((entry, inv))
        saved = state.suppress, state.generating
        state.suppress = compiled or depth >= self.max_depth
        state.generating = saved[1] or token is not None
        start = time.perf_counter()
        try:
            return self.original_call(module, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            with self.lock:
                inv.time_s += elapsed
                if token is not None:
                    self.generations.after(token)
            state.suppress, state.generating = saved
            state.stack.pop()

    # -- helpers (first call of a module only) -----------------------------------------------
    def _facts(self, module) -> tuple:
        target, compiled = module, False
        orig = getattr(module, "_orig_mod", None)  # torch.compile(model) -> OptimizedModule
        if orig is not None and isinstance(orig, self._torch.nn.Module):
            target, compiled = orig, True
        elif getattr(module, "_compiled_call_impl", None) is not None:  # model.compile()
            compiled = True
        is_model = next(iter(target.parameters()), None) is not None or bool(_packed_parameters(target))
        facts = (module, is_model, model_hash(target) if is_model else None, target, compiled)
        self._module_facts[id(module)] = facts
        return facts

    def _entry(self, module, mhash: str, parent: _ModelEntry | None, compiled: bool) -> tuple[_ModelEntry, bool]:
        """The model's entry (made on its first call: then ``True``). Instances of one architecture
        are one model (per parent): their invocations merge."""
        table = parent.children if parent is not None else self.top
        key = mhash
        entry = table.get(key)
        created = entry is None
        if created:
            entry = _ModelEntry(self._describe(module, mhash, parent), module,
                                (parent.path if parent is not None else ()) + (mhash,))
            table[key] = entry
            if parent is not None:
                parent.info.children.append(entry.info)
            else:
                self.result.models.append(entry.info)
        if compiled:
            entry.info.compiled = True
        return entry, created

    def _describe(self, module, mhash: str, parent: _ModelEntry | None) -> ModelInfo:
        cls = type(module)
        module_name = cls.__module__
        if module_name in ("__main__", "__mp_main__"):
            module_name = self.script.stem
        params = list(module.parameters()) or _packed_parameters(module)  # shared ones are yielded once
        info = ModelInfo(
            name=cls.__name__,
            class_name=cls.__name__,
            qualified_class=f"{module_name}.{cls.__qualname__}",
            model_hash=mhash,
            params=sum(p.numel() for p in params),
            param_bytes=sum(p.numel() * p.element_size() for p in params),
        )
        if parent is not None:
            info.depth = parent.info.depth + 1
            info.parent_hash = parent.info.model_hash
            path = _attribute_path(parent.module, module)
            info.name = f"{parent.info.name}.{path}" if path else cls.__name__
            created = _self_assignment(type(parent.module), path.split(".")[0]) if path else None
            if created is not None:
                info.source_file, info.source_line = created
                info.location_kind = "created"
            else:  # e.g. built in a loop and appended: point at the class definition instead
                info.source_file, info.source_line = _class_location(cls)
                info.location_kind = "class"
            return self._sanitised(info)
        frame = _caller_frame()
        name, frame_found = _find_variable(frame, module)
        if name:
            info.name = name
        call_frame = frame_found or frame
        if call_frame is not None:
            info.source_file = call_frame.f_code.co_filename
            info.source_line = call_frame.f_lineno
            info.location_kind = "first_call"
            if name:
                created = _assignment_line(call_frame.f_code.co_filename, name, call_frame.f_lineno)
                if created is not None:
                    info.source_line = created
                    info.location_kind = "created"
        return self._sanitised(info)

    def _sanitised(self, info: ModelInfo) -> ModelInfo:
        """``info`` holding only what a record can (``records.sanitise``: a parameter count that is a
        tensor while ``torch.jit.trace`` runs becomes its number), each change noted in the script's
        record."""
        try:
            notes = sanitise(info)
        except Exception as e:  # noqa: BLE001 - never break the script's call; the cache sanitises again
            notes = [f"could not check its facts ({type(e).__name__})"]
        self.result.notes.extend(f"model {info.name}: {note}" for note in notes)
        return info


def _inside_module_constructor(module_cls, stop=None) -> bool:
    """True when some ``nn.Module.__init__`` is running further up the stack (a construction-time call).

    Walks frames by code name first (cheap); reads ``self`` only in ``__init__`` frames. The walk
    ends at ``stop`` (:func:`discover`'s own frame): what called discovery is not the script, and
    reading the locals of the ``__init__`` frames there (tk's child runs inside two) cost each
    top-level call of a sweep 30-40 µs.
    """
    frame = sys._getframe(3)
    while frame is not None and frame is not stop:
        if frame.f_code.co_name == "__init__" and isinstance(frame.f_locals.get("self"), module_cls):
            return True
        frame = frame.f_back
    return False


def _packed_parameters(module) -> list:
    """The weights of a module without ``nn.Parameter`` s that keeps them packed (a converted
    quantized model: ``torch.ao.nn.quantized``), so that it is a model like its float original;
    ``[]`` for every other parameterless module (activations, containers of them). The one
    definition of a model's parameters: :func:`turnkey_like.weights.model_parameters`."""
    from turnkey_like.weights import model_parameters

    return [t for _, t in model_parameters(module)]


def _attribute_path(parent, child) -> str:
    """Dotted attribute path of ``child`` inside ``parent`` (``''`` when it is not a submodule)."""
    for name, sub in parent.named_modules():
        if sub is child:
            return name
    return ""


def _class_location(cls) -> tuple[str | None, int | None]:
    """File and line where a class is defined (``(None, None)`` for builtins)."""
    try:
        return inspect.getsourcefile(cls), inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return None, None


def _self_assignment(parent_cls, attribute: str) -> tuple[str, int] | None:
    """Where ``parent_cls`` (or a base class) assigns ``self.<attribute> = ...``: ``(file, line)``."""
    for klass in parent_cls.__mro__:
        try:
            filename = inspect.getsourcefile(klass)
        except TypeError:
            continue
        tree = _parse(filename) if filename else None
        if tree is None:
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ClassDef) and node.name == klass.__name__):
                continue
            for inner in ast.walk(node):
                targets = inner.targets if isinstance(inner, ast.Assign) else (
                    [inner.target] if isinstance(inner, ast.AnnAssign) else [])
                for target in targets:
                    if (isinstance(target, ast.Attribute) and target.attr == attribute
                            and isinstance(target.value, ast.Name) and target.value.id == "self"):
                        return filename, inner.lineno
    return None


_TK_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_MARKERS = (os.sep + "torch" + os.sep,)


def _caller_frame():
    """The first frame outside tk and torch.nn (the code that called the model)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_TK_DIR) and not any(m in filename for m in _TORCH_MARKERS):
            return frame
        frame = frame.f_back
    return None


def _find_variable(frame, obj) -> tuple[str | None, Any]:
    """Search the calling frames outward for a name bound to ``obj``; return ``(name, frame)``.

    First a plain variable (``model``), then a module-level one seen from a function (a worker
    thread's target), then one attribute down (``self.encoder``, ``pipe.model``), so models held by a
    class or a pipeline object still get a readable name.
    """
    frames = []
    f = frame
    while f is not None:
        frames.append(f)
        f = f.f_back
    for f in frames:
        for name, value in f.f_locals.items():
            if value is obj and not name.startswith("__") and name != "self":
                return name, f
    for f in frames:  # a module-level model called from a function (a worker thread, a helper)
        if f.f_globals is not f.f_locals:
            for name, value in f.f_globals.items():
                if value is obj and not name.startswith("__"):
                    return name, f
    for f in frames:
        for name, value in list(f.f_locals.items()):
            attrs = getattr(value, "__dict__", None)
            if not isinstance(attrs, dict) or name.startswith("__") or isinstance(value, type):
                continue
            candidates = dict(attrs)
            candidates.update(attrs.get("_modules") or {})
            for attr, inner in candidates.items():
                if inner is obj and not attr.startswith("_"):
                    return f"{name}.{attr}", f
    return None, None


@functools.lru_cache(maxsize=256)
def _parse(filename: str):
    try:
        with open(filename, encoding="utf-8") as f:
            return ast.parse(f.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return None


def _assignment_line(filename: str, name: str, before_line: int) -> int | None:
    """Line of the last statement at or before ``before_line`` that assigns ``name`` in ``filename``."""
    tree = _parse(filename)
    if tree is None:
        return None
    best = None
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.For)):
            targets = [getattr(node, "target", None)] if isinstance(node, ast.For) else [
                item.optional_vars for item in node.items if item.optional_vars is not None]
        for target in targets:
            for leaf in ast.walk(target) if target is not None else ():
                if isinstance(leaf, ast.Name) and leaf.id == name and node.lineno <= before_line:
                    if best is None or node.lineno > best:
                        best = node.lineno
    return best


class _TurnkeymlShim(importlib.abc.MetaPathFinder):
    """Serve ``turnkeyml`` / ``turnkeyml.parser`` from :mod:`turnkey_like.turnkeyml_shim` when TurnkeyML is absent."""

    used = False  #: set when the script imported turnkeyml.parser through this shim

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "turnkeyml":
            spec = importlib.util.spec_from_loader(fullname, loader=None, is_package=True)
            spec.submodule_search_locations = []
            return spec
        if fullname == "turnkeyml.parser":
            self.used = True
            return importlib.util.find_spec("turnkey_like.turnkeyml_shim")
        return None


def _turnkeyml_installed() -> bool:
    try:
        return importlib.util.find_spec("turnkeyml") is not None
    except (ImportError, ValueError):
        return False


def _script_error(exc: BaseException, script: Path) -> str:
    """One line naming the exception and the innermost line of the script it came from."""
    if isinstance(exc, SyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.msg}"
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.abspath(frame.filename) == str(script):
            where = f" (line {frame.lineno})"
            break
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{where}: {message}" if message else f"{type(exc).__name__}{where}"


TRACEBACK_FRAMES = 8


def _script_traceback(exc: BaseException) -> str:
    """The last :data:`TRACEBACK_FRAMES` frames of a script's traceback, tk's own frames left out."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(_TK_DIR) and "runpy" not in f.filename]
    lines = traceback.format_list(frames[-TRACEBACK_FRAMES:])
    return "Traceback (most recent call last):\n" + "".join(lines) + "".join(
        traceback.format_exception_only(type(exc), exc))


def discover(spec: InputSpec, *, max_depth: int = 0, script_args: str = "", on_found=None, call=None) -> Discovery:
    """Run one script with the discovery hook and return what it called.

    Args:
        spec: the resolved script (path, selectors, labels).
        max_depth: 0 records the models the script calls; N also records submodules N levels down.
        script_args: the script's command-line arguments, split like a shell (``shlex``).
        on_found: ``on_found(result, path, model, invocation)`` each time a new invocation is found,
            from the thread that called the model, under the recorder's lock: ``result`` is the
            script's :class:`ScriptResult` so far (the live object), ``path`` the model hashes from
            the top-level model down to the invocation's model, ``model`` that :class:`ModelInfo`
            when this is its first invocation (else ``None``), ``invocation`` the new one. An input's
            child process streams ``(path, model, invocation)`` to tk, so models found before a
            crash are kept, at a cost that does not grow with what was found before.
        call: run this instead of the script (a named model's forward call, :func:`discover_named`).

    Returns:
        A :class:`Discovery`. ``result.status`` is ``error`` when the script failed (syntax error,
        exception, non-zero ``sys.exit``); the models found before the failure are kept.

    Raises:
        ScriptError: ``script_args`` cannot be split (unbalanced quotes).
    """
    import torch

    try:
        argv = [str(spec.path)] + shlex.split(script_args or "")
    except ValueError as e:
        raise ScriptError(f"--script-args {script_args!r}: {e}", hint="balance the quotes in --script-args") from e
    result = ScriptResult(path=str(spec.path), labels=spec.labels, selectors=list(spec.selectors))
    _NOT_ITERATORS.update((torch.Tensor, torch.nn.Parameter))
    module_cls = torch.nn.Module
    original_call = module_cls.__call__
    recorder = _Recorder(spec.path, max_depth, original_call, result, on_found)
    recorder.caller_frame = sys._getframe()

    def hooked_call(self, *args, **kwargs):
        if recorder.state.suppress:
            return original_call(self, *args, **kwargs)
        return recorder.call(self, args, kwargs)

    saved_argv, saved_path, saved_cwd = sys.argv[:], sys.path[:], os.getcwd()
    saved_main = sys.modules.get("__main__")
    shim = None if _turnkeyml_installed() else _TurnkeymlShim()
    sys.argv = argv
    sys.path.insert(0, str(spec.path.parent))
    if shim is not None:
        sys.meta_path.insert(0, shim)
    module_cls.__call__ = hooked_call
    children = _ChildCounter()
    start = time.perf_counter()
    try:
        import runpy

        # torch's ~300k objects are moved out of the collector's view for the script's run: tk's own
        # allocations would otherwise trigger full collections over them (benchmarks/discovery_overhead.py)
        with children, existing_frozen():
            if call is None:
                runpy.run_path(str(spec.path), run_name="__main__")
            else:  # tk's own call (a named model): its generation loop may stop early (see generate_loop)
                with tracking(recorder.generations):
                    call()
        result.status = Status.SUCCESSFUL
    except SystemExit as e:
        code = e.code
        result.exit_code = code if isinstance(code, int) else (0 if code is None else 1)
        if result.exit_code == 0:
            result.status = Status.SUCCESSFUL
        else:
            result.status = Status.ERROR
            detail = f": {code}" if isinstance(code, str) else ""
            result.error = f"script exited with code {result.exit_code}{detail}"
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - any failure of the user's script is recorded, not raised
        result.status = Status.ERROR
        result.error = _script_error(e, spec.path)
        result.traceback = _script_traceback(e)
    finally:
        module_cls.__call__ = original_call
        result.duration_s = time.perf_counter() - start
        result.child_processes = children.count
        result.uses_turnkeyml_parser = shim is not None and shim.used
        if shim is not None and shim in sys.meta_path:
            sys.meta_path.remove(shim)
            for name in ("turnkeyml.parser", "turnkeyml"):
                sys.modules.pop(name, None)
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
        try:
            os.chdir(saved_cwd)
        except OSError:
            pass
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        recorder.state.stack.clear()
        recorder.caller_frame = None  # no cycle through this frame's locals (the live models)
    sanitise(result)  # e.g. an exception message holding a file name that is not UTF-8: noted in notes
    return Discovery(result=result, live=recorder.live)


class _ChildCounter:
    """Counts the child processes a script starts while it runs (``multiprocessing``, ``os.fork``).

    Models called in those processes are not seen (the hook lives in this process only); the
    report says so when the count is not zero. ``multiprocessing``'s ``Process.start`` is wrapped
    for the run; raw forks are counted by one ``os.register_at_fork`` hook installed once.
    """

    active: _ChildCounter | None = None
    _hook_installed = False

    def __init__(self):
        self.count = 0
        self._starting = threading.local()

    def __enter__(self):
        import multiprocessing.process as mp_process

        if not _ChildCounter._hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_parent=_ChildCounter._forked)
            _ChildCounter._hook_installed = True
        self._mp = mp_process.BaseProcess
        self._original_start = self._mp.start
        counter = self

        def start(process_self):
            counter._starting.on = True
            try:
                return counter._original_start(process_self)
            finally:
                counter._starting.on = False
                counter.count += 1

        self._mp.start = start
        _ChildCounter.active = self
        return self

    def __exit__(self, *exc):
        self._mp.start = self._original_start
        _ChildCounter.active = None

    @staticmethod
    def _forked():
        counter = _ChildCounter.active
        if counter is not None and not getattr(counter._starting, "on", False):
            counter.count += 1
