"""Generation benchmarks: TTFT and TPOT measured on torch eager and ONNX Runtime, beside the prediction.

``tk benchmark`` on a generation (a script that generates, or ``--model NAME --generate P:N``) runs,
after the plain benchmark of the prefill call, :func:`measure_generation`: the same generation the
prediction covers (:class:`~turnkey_like.records.Generation`: a prefill of the P-token prompt, then
N − 1 greedy decode steps), timed on

- ``torch-eager``: the live model, through :func:`turnkey_like.generation_trace.generate_loop` (what
  ``generate()`` runs: an empty ``DynamicCache``, ``logits_to_keep=1``, ``position_ids``) under
  ``torch.inference_mode()``; only the model calls are timed (the argmax between them is not), on
  CUDA each between two ``torch.cuda.synchronize()``;
- ``ort``: ONNX Runtime on the prefill and decode-step graphs
  (:func:`turnkey_like.generation_export.export_generation`: the cache is their input and output),
  each step feeding the last one's ``present`` tensors back as ``past_key_values``; only the
  ``session.run`` calls are timed. The arrays are host arrays, so on CUDA each call includes the
  copies of the cache to and from the device, as the plain ORT benchmark includes its inputs'.

on ``cpu`` and, where the runtime sees one, ``cuda`` (a model that lives on CUDA: ``cuda`` only).
Each (runtime, device) runs in its own child (:func:`turnkey_like.launcher.run_isolated`), so a crash,
an export that fails or a timeout is that entry's ``error``, and the others are measured.

The figures (:class:`~turnkey_like.records.MeasuredGeneration`): ``warmup`` generations untimed, then
``repeats`` timed ones (:func:`repeats_and_warmup`); TTFT is the median over them of the prefill
call's time, TPOT the median over them of the mean decode step (the N − 1 steps of each). Ratios are
measured ÷ predicted; one below :data:`PROFILE_ERROR_RATIO` is flagged (:func:`profile_flags`).
"""

from __future__ import annotations

import inspect
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import msgspec

from turnkey_like.errors import BenchmarkError, one_line
from turnkey_like.records import Generation, MachineLoad, MeasuredGeneration, Status

if TYPE_CHECKING:
    import numpy as np
    import torch

    from turnkey_like.generation_export import GenerationGraphs
    from turnkey_like.runtimes.harness import BenchmarkOptions

#: A measured time below this fraction of the roofline prediction is a profile error. A roofline time
#: is a lower bound: max(FLOPs ÷ peak, bytes ÷ bandwidth) per op, so a run can only beat it when the
#: profile's peaks are below what the machine does (or the count is above what it runs). 0.8 leaves
#: 20% for noise on both sides: the `local` profile's peaks are medians whose repeats spread by 10-25%
#: (interquartile range) on a shared machine, and a generation's timed medians by about 10%; a
#: measurement more than 20% under the roofline is beyond both, so it is a wrong profile, not noise.
PROFILE_ERROR_RATIO = 0.8
#: generations timed at most (each is N calls; ``--iterations`` asks for fewer)
MAX_REPEATS = 5
#: generations run before the timed ones, untimed, unless ``--warmup`` says otherwise
DEFAULT_WARMUP = 1
#: the runtimes a generation is measured on, in the order of the record's entries
GENERATION_RUNTIMES = ("torch-eager", "ort")
GENERATION_LOG = "generation.log"
#: the folder, inside the invocation's build folder, that holds the exported graphs
GRAPHS_FOLDER = "generation"


@dataclass
class GenerationTimes:
    """What one runtime measured: per timed generation, the prefill's time and the mean decode step.

    Attributes:
        prefill_s: the prefill call's time in each timed generation, seconds.
        step_mean_s: the mean decode step of each timed generation, seconds (empty when N = 1).
        decode_steps: decode steps per generation (N − 1).
        warmup: generations run untimed before them.
        runtime_version, device_name, threads: what ran them.
        load: how busy the machine was during the timed generations.
    """

    prefill_s: list[float]
    step_mean_s: list[float]
    decode_steps: int
    warmup: int
    runtime_version: str
    device_name: str
    threads: int | None
    load: MachineLoad | None = None


def repeats_and_warmup(options: BenchmarkOptions) -> tuple[int, int]:
    """``(timed generations, warm-up generations)`` for ``options``: ``--iterations`` capped at
    :data:`MAX_REPEATS` (a generation is N calls, not one), ``--warmup`` (capped the same) or
    :data:`DEFAULT_WARMUP`."""
    warmup = DEFAULT_WARMUP if options.warmup is None else min(options.warmup, MAX_REPEATS)
    return max(1, min(options.iterations, MAX_REPEATS)), warmup


def prompt_ids(model, args: tuple, kwargs: dict) -> torch.Tensor:
    """The prompt of a prefill call: its ``input_ids`` ([B, P] token ids), by name or position.

    Raises:
        BenchmarkError: the call has no 2-D ``input_ids`` (e.g. ``inputs_embeds`` only).
    """
    try:
        ids = inspect.signature(model.forward).bind_partial(*args, **kwargs).arguments.get("input_ids")
    except (TypeError, ValueError):
        ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None or getattr(ids, "dim", lambda: 0)() != 2:
        raise BenchmarkError("measuring a generation needs a decoder-only model's prompt, the prefill's input_ids "
                             "[batch, prompt]; this call has none (an encoder-decoder's decoder, or inputs_embeds)")
    return ids


def _timed(run_one: Callable[[], tuple[float, list[float]]], repeats: int, warmup: int,
           threads: int | None) -> tuple[list[float], list[float], MachineLoad]:
    """Run ``warmup`` generations, then ``repeats`` timed ones (``run_one`` returns the prefill time
    and every decode step's); returns the prefill times, each generation's mean step and the load."""
    from turnkey_like.system import cpu_sample, machine_load

    for _ in range(warmup):
        run_one()
    start = cpu_sample()
    prefill, steps = [], []
    for _ in range(repeats):
        first, rest = run_one()
        prefill.append(first)
        if rest:
            steps.append(sum(rest) / len(rest))
    return prefill, steps, machine_load(start, cpu_sample(), threads=threads, window="timed generations")


def time_torch_generation(model: torch.nn.Module, input_ids: torch.Tensor, new_tokens: int, *, device: str = "cpu",
                          repeats: int = MAX_REPEATS, warmup: int = DEFAULT_WARMUP,
                          threads: int | None = None) -> GenerationTimes:
    """Time ``model`` generating ``new_tokens`` greedily from ``input_ids`` [B, P] on torch eager (module doc).

    The model and prompt are moved to ``device`` for the runs and the model moved back after;
    ``threads`` sets ``torch.set_num_threads`` for them (restored after).
    """
    import torch

    from turnkey_like.generation_trace import generate_loop
    from turnkey_like.system import cpu_name

    clock = time.perf_counter
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    saved_threads = torch.get_num_threads()
    prompt = {"input_ids": input_ids.to(device)}

    def run_one() -> tuple[float, list[float]]:
        times: list[float] = []

        def call(fn, **kwargs):
            sync()
            start = clock()
            out = fn(**kwargs)
            sync()
            times.append(clock() - start)
            return out

        with torch.inference_mode():
            generate_loop(model, prompt, new_tokens, call=call)
        return times[0], times[1:]

    try:
        if threads:
            torch.set_num_threads(threads)
        model.to(device)
        prefill, steps, load = _timed(run_one, repeats, warmup, torch.get_num_threads())
        name = torch.cuda.get_device_name(0) if device == "cuda" else cpu_name()
        return GenerationTimes(prefill, steps, new_tokens - 1, warmup, str(torch.__version__), name,
                               torch.get_num_threads(), load)
    finally:
        model.to(home)
        torch.set_num_threads(saved_threads)


def time_ort_generation(graphs: GenerationGraphs, input_ids: np.ndarray, new_tokens: int, *, device: str = "cpu",
                        repeats: int = MAX_REPEATS, warmup: int = DEFAULT_WARMUP,
                        threads: int | None = None) -> GenerationTimes:
    """Time the exported ``graphs`` generating ``new_tokens`` greedily from ``input_ids`` [B, P]
    (int64) on ONNX Runtime (module doc), with the plain ORT benchmark's session options.

    Raises:
        RuntimeError: ``cuda`` was asked for but ONNX Runtime did not place the graphs on it.
    """
    import numpy as np
    import onnxruntime as ort

    from turnkey_like.runtimes.ort import OrtRuntime, gpu_name, providers, session_options
    from turnkey_like.system import cpu_name

    sessions = [ort.InferenceSession(path, session_options(threads), providers=providers(device))
                for path in (graphs.prefill_path, graphs.decode_path)]
    if device == "cuda" and any(s.get_providers()[0] != "CUDAExecutionProvider" for s in sessions):
        raise RuntimeError("ONNX Runtime did not place the generation graphs on CUDA")
    prefill, decode = sessions
    takes = [{i.name for i in s.get_inputs()} for s in sessions]
    batch, prompt = input_ids.shape
    ids = np.ascontiguousarray(input_ids, dtype=np.int64)
    positions = np.broadcast_to(np.arange(prompt, dtype=np.int64), (batch, prompt)).copy()
    first_feed = {k: v for k, v in {"input_ids": ids, "position_ids": positions}.items() if k in takes[0]}
    clock = time.perf_counter

    def run_one() -> tuple[float, list[float]]:
        start = clock()
        out = prefill.run(None, first_feed)
        first = clock() - start
        steps = []
        for k in range(new_tokens - 1):
            feed = {"input_ids": out[0][:, -1:].argmax(-1).astype(np.int64),
                    "position_ids": np.full((batch, 1), prompt + k, dtype=np.int64),
                    **dict(zip(graphs.past_inputs, out[1:]))}
            feed = {k: v for k, v in feed.items() if k in takes[1]}
            start = clock()
            out = decode.run(None, feed)
            steps.append(clock() - start)
        return first, steps

    used = threads or OrtRuntime.default_threads()
    prefill_s, steps, load = _timed(run_one, repeats, warmup, used)
    return GenerationTimes(prefill_s, steps, new_tokens - 1, warmup, ort.__version__,
                           gpu_name(0) if device == "cuda" else cpu_name(), used, load)


def profile_flags(ratio_ttft: float | None, ratio_tpot: float | None, hardware: str) -> list[str]:
    """One line per ratio below :data:`PROFILE_ERROR_RATIO` (the run beat the roofline on ``hardware``)."""
    flags = []
    for phase, ratio in (("TTFT (prefill)", ratio_ttft), ("TPOT (decode step)", ratio_tpot)):
        if ratio is not None and ratio < PROFILE_ERROR_RATIO:
            flags.append(f"profile error: measured {phase} is {ratio:.2f}x the roofline prediction on {hardware} "
                         f"(below {PROFILE_ERROR_RATIO}): the run beat the roofline, so the profile's peaks are "
                         "below this machine's, or the count is above what ran")
    return flags


def measured_entry(runtime: str, device: str, times: GenerationTimes, gen: Generation) -> MeasuredGeneration:
    """The record of ``times`` beside ``gen``'s prediction: medians, ratios (measured ÷ predicted), flags."""
    ttft = statistics.median(times.prefill_s)
    tpot = statistics.median(times.step_mean_s) if times.step_mean_s else None
    ratio_ttft = ttft / gen.ttft_s if gen.ttft_s else None
    ratio_tpot = tpot / gen.tpot_s if tpot is not None and gen.tpot_s else None
    return MeasuredGeneration(
        runtime=runtime, device=device, status="successful", measured_ttft_s=ttft, measured_tpot_s=tpot,
        ratio_ttft=ratio_ttft, ratio_tpot=ratio_tpot, repeats=len(times.prefill_s), warmup=times.warmup,
        decode_steps=times.decode_steps, runtime_version=times.runtime_version, device_name=times.device_name,
        threads=times.threads, flags=profile_flags(ratio_ttft, ratio_tpot, gen.hardware), load=times.load)


def _unavailable(runtime: str, device: str) -> str | None:
    """Why ``runtime`` cannot run on ``device`` here (no CUDA device, no CUDA provider), else ``None``."""
    from turnkey_like.runtimes.harness import runtime_class

    try:
        runtime_class(runtime).check_device(device)
    except BenchmarkError as exc:
        return one_line(exc).removeprefix(f"--device {device}: ")
    return None


def _export_child(model, input_ids, folder: str, opset: int) -> GenerationGraphs:
    from turnkey_like.generation_export import export_generation

    return export_generation(model, input_ids, folder, opset=opset)


def measure_generation(model: torch.nn.Module, args: tuple, kwargs: dict, gen: Generation, build_dir: str | Path,
                       options: BenchmarkOptions, *, opset: int = 18,
                       runtimes: tuple[str, ...] = GENERATION_RUNTIMES) -> Generation:
    """``gen`` with :attr:`~turnkey_like.records.Generation.measured` holding one entry per runtime
    (:data:`GENERATION_RUNTIMES`) and device: measured, or ``error``/``skipped`` with the reason.

    Args:
        model: the live model; args, kwargs: its prefill call (the prompt is its ``input_ids``).
        gen: the generation the characterization predicted (``new_tokens`` N, ``ttft_s``, ``tpot_s``).
        build_dir: the invocation's folder: receives ``generation.log`` and the graphs (``generation/``).
        options: the benchmark options (repeats and warm-up: :func:`repeats_and_warmup`; threads,
            time limit per entry).
        opset: the graphs' ONNX opset.
        runtimes: the runtimes to measure on (default :data:`GENERATION_RUNTIMES`, both).

    A runtime, an export or a child that fails is its entry's ``error``, never an exception.

    Raises:
        CacheError: ``generation.log`` cannot be written (a symlink, a full disk), as for every stage's log.
    """
    from turnkey_like.calls import to_numpy, uses_cuda
    from turnkey_like.files import reset_log
    from turnkey_like.launcher import choose_start_method, run_isolated

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    log_path = build_dir / GENERATION_LOG
    reset_log(log_path)
    on_cuda = uses_cuda(model, args, kwargs)
    devices = ("cuda",) if on_cuda else ("cpu", "cuda")
    try:
        ids = prompt_ids(model, args, kwargs)
    except BenchmarkError as exc:
        return msgspec.structs.replace(gen, measured=[
            MeasuredGeneration(runtime=r, device=d, status="skipped", error=one_line(exc))
            for r in runtimes for d in devices])
    repeats, warmup = repeats_and_warmup(options)
    common = dict(repeats=repeats, warmup=warmup, threads=options.threads)
    run = dict(timeout_s=options.timeout_s, log_path=log_path)
    entries: list[MeasuredGeneration] = []
    graphs: GenerationGraphs | str | None = None  # the export, or why it failed
    for runtime in runtimes:
        for device in devices:
            reason = _unavailable(runtime, device)
            if reason is not None:
                entries.append(MeasuredGeneration(runtime=runtime, device=device, status="skipped", error=reason))
                continue
            if runtime == "torch-eager":
                outcome = run_isolated(time_torch_generation, model, ids, gen.new_tokens, device=device, **common, **run,
                                       start_method=choose_start_method(device, on_cuda))
            else:
                if graphs is None:
                    exported = run_isolated(_export_child, model, ids, str(build_dir / GRAPHS_FOLDER), opset, **run,
                                            start_method=choose_start_method("cpu", on_cuda))
                    graphs = exported.value if exported.status is Status.SUCCESSFUL else f"export: {exported.error}"
                if isinstance(graphs, str):
                    entries.append(MeasuredGeneration(runtime=runtime, device=device, status="error", error=graphs))
                    continue
                outcome = run_isolated(time_ort_generation, graphs, to_numpy(ids), gen.new_tokens, device=device,
                                       **common, **run,
                                       start_method=choose_start_method(device, on_cuda, needs_live_model=False))
            entries.append(measured_entry(runtime, device, outcome.value, gen) if outcome.status is Status.SUCCESSFUL
                           else MeasuredGeneration(runtime=runtime, device=device, status="error",
                                                   error=f"{outcome.status.value}: {outcome.error}"))
    return msgspec.structs.replace(gen, measured=entries)
