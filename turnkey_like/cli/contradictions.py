"""Options that make no sense together: a usage error before anything runs (exit 2, docs/exit_codes.md).

argparse sees one option at a time; these checks see the command line whole. Each raises
:class:`UsageError` naming both options (as given) and why, with a hint saying what to do; the CLI
prints it under the command's usage and exits 2. :mod:`turnkey_like.cli.options` calls them first in
each ``parse_<command>``. An option counts as given when its value differs from its command's default
(repeating a default, e.g. ``--iterations 100 --analyze-only``, changes nothing and passes).

The pairs, by command:

- ``tk benchmark``: ``--analyze-only`` with ``--build-only``; ``--analyze-only`` with an option of the
  build (``--opset``, ``--precision``, ``--collect``) or of the benchmark (``--runtime``,
  ``--device``, ``--iterations``, ``--warmup``, ``--threads``, ``--per-layer``, ``--wait-quiet``,
  ``--rebenchmark``, ``--lean-cache``), and ``--build-only`` with one of the benchmark; ``--rebuild
  never`` with ``--opset``/``--precision`` and ``--rebenchmark never`` with ``--runtime``,
  ``--device``, ``--iterations``, ``--warmup``, ``--threads``, ``--per-layer`` (``never`` keeps the
  cached result whatever they say); ``--rebuild always`` with ``--rebenchmark never``; ``--resume``
  with ``--rebuild always`` or ``--rebenchmark always``. (``--workers`` with ``--scheduler`` is refused
  by argparse itself; ``--upload``/``--collect`` without either by ``CorpusOptions.validate``, exit 1.)
- every command that runs inputs: ``--batch-size``, ``--seq-len``, ``--imgsz``, ``--pretrained``,
  ``--model-args``, ``--trust-remote-code``, ``--seed``, ``--dtype`` without ``--model`` (``tk
  compare`` too); ``--pretrained`` with ``--no-weights``; ``--script-args``/``--labels`` without a
  script; ``--input-shape`` without ``--model`` or an ``.onnx`` input; several ``--hardware``
  profiles without ``--roofline``/``--html`` or an option of a generation (``--generate``, the
  what-if options: each profile gets its what-ifs) (``tk explore``/``tk view``: at all).
- ``tk profile``: ``--collapse``/``--color-by`` without ``--visualize``.
- ``tk discover-models``: ``--test-model`` with ``--family``, ``--skip-patterns``, ``--models``,
  ``--workers``, ``--refresh`` or ``--generate-code``.
"""

from __future__ import annotations

import argparse

from turnkey_like.errors import InputError


class UsageError(InputError):
    """The command line contradicts itself (argparse cannot see it): exit 2 with the command's usage."""



#: the options that shape only the ONNX build, and only the benchmark (flag, argparse dest)
#: (``--rebuild`` is not among them: ``--rebuild always`` also characterizes afresh, so it means something
#: with ``--analyze-only``)
BUILD_FLAGS = (("--opset", "opset"), ("--precision", "precision"))
BENCHMARK_FLAGS = (("--runtime", "runtime"), ("--device", "device"), ("--iterations", "iterations"),
                   ("--warmup", "warmup"), ("--threads", "threads"), ("--per-layer", "per_layer"),
                   ("--wait-quiet", "wait_quiet"), ("--rebenchmark", "rebenchmark"))
#: the options that apply to ``--model`` entries only
NAMED_MODEL_FLAGS = (("--batch-size", "batch_size"), ("--seq-len", "seq_len"), ("--imgsz", "imgsz"),
                     ("--pretrained", "pretrained"), ("--model-args", "model_args"),
                     ("--trust-remote-code", "trust_remote_code"), ("--seed", "seed"), ("--dtype", "dtype"))
#: the picture options of ``tk profile``: they shape the ``--visualize`` picture only (the HTML page draws its own)
#: (``--no-fold`` is not among them: it also unfolds the per-module table)
PICTURE_FLAGS = (("--collapse", "collapse"), ("--color-by", "color_by"))


def _given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the command line set ``dest`` to a value other than its command's default."""
    parser = getattr(args, "parser", None)
    default = parser.get_default(dest) if parser is not None else None
    return dest in vars(args) and getattr(args, dest) != default


def _flag(args: argparse.Namespace, flag: str, dest: str) -> str:
    """``flag`` as given: ``--rebuild never``, ``--per-layer``."""
    value = getattr(args, dest)
    if isinstance(value, bool):
        return flag
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return f"{flag} {value}"


def _contradiction(first: str, second: str, why: str, hint: str) -> UsageError:
    return UsageError(f"{first} and {second} contradict each other: {why}", hint=hint)


def named_model_contradictions(args: argparse.Namespace) -> None:
    """Named-model options (sizes, weights, seed, ``--dtype``) without ``--model``, and ``--pretrained``
    with ``--no-weights``.

    Raises:
        UsageError: the first contradiction found.
    """
    if not args.model:
        for flag, dest in NAMED_MODEL_FLAGS:
            if _given(args, dest):
                raise UsageError(f"{_flag(args, flag, dest)} applies to --model entries, and none is given",
                                 hint=f"add --model NAME, or drop {flag} (a script builds its own inputs)")
    if getattr(args, "pretrained", False) and getattr(args, "no_weights", False):
        raise _contradiction("--pretrained", "--no-weights", "--pretrained loads trained weights, --no-weights "
                             "builds the models on meta tensors without any", hint="drop one of them")


def input_contradictions(args: argparse.Namespace) -> None:
    """A command that runs inputs: :func:`named_model_contradictions`; ``--script-args`` and
    ``--labels`` without a script INPUT (a ``--model`` ignores them); ``--input-shape`` without
    ``--model`` or an ``.onnx`` INPUT (a script makes its own inputs).

    Raises:
        UsageError: the first contradiction found.
    """
    named_model_contradictions(args)
    needs = (("--script-args", "script_args", "a script INPUT", bool(args.inputs)),
             ("--labels", "labels", "a script INPUT", bool(args.inputs)),
             ("--input-shape", "input_shape", "--model NAME or an .onnx INPUT",
              bool(args.model) or any(not i.endswith(".py") for i in args.inputs)))
    for flag, dest, need, has in needs:
        if _given(args, dest) and not has:
            raise UsageError(f"{flag} needs {need}", hint=f"add {need}, or drop {flag}")


#: the options of a generation (``--generate`` and the what-ifs' ``--weight-dtype``, ...): generations
#: get their what-ifs on every ``--hardware`` profile
_GENERATION_DESTS = ("generate", "weight_dtype", "act_dtype", "kv_dtype", "tensor_parallel", "memory_reserve",
                     "generation_plot")


def hardware_contradictions(args: argparse.Namespace, *, plots: bool) -> None:
    """``--hardware A,B``: the profiles after the first are drawn on ``--roofline``/``--html`` plots
    and give generations their what-ifs (``turnkey_like.cli.whatif``), so several need one of those
    plots or an option of a generation (``--generate``, ``--weight-dtype``, ...; ``plots``: the
    command has them); a command without them (``tk explore``, ``tk view``) shows one profile.

    Raises:
        UsageError: several profiles where they would be ignored.
    """
    names = [n for n in (args.hardware or "").split(",") if n.strip()]
    if len(names) < 2:
        return
    if not plots:
        raise UsageError(f"--hardware {args.hardware}: this command shows one profile",
                         hint=f"give one, e.g. --hardware {names[0].strip()}")
    if not (args.roofline or args.html or any(_given(args, dest) for dest in _GENERATION_DESTS)):
        raise UsageError(f"--hardware {args.hardware}: the profiles after the first need --roofline PATH or --html PATH",
                         hint="they are drawn on those plots and give generations (--generate) their what-ifs; "
                              "the other tables use the first only")


def stage_contradictions(args: argparse.Namespace) -> None:
    """``tk benchmark``: stages that do not run, and policies that ignore the options given with them.

    Raises:
        UsageError: the first contradiction found.
    """
    if args.analyze_only and args.build_only:
        raise _contradiction("--analyze-only", "--build-only", "--analyze-only stops before the build",
                             hint="give one: --analyze-only (characterize), or --build-only (characterize and build)")
    stop = "--analyze-only" if args.analyze_only else "--build-only" if args.build_only else None
    if stop is not None:
        shaped = [(flag, dest, "ONNX build") for flag, dest in BUILD_FLAGS if args.analyze_only]
        shaped += [(flag, dest, "benchmark") for flag, dest in BENCHMARK_FLAGS]
        shaped += [("--lean-cache", "lean_cache", "benchmark")]
        shaped += [("--collect", "collect", "ONNX build")] if args.analyze_only else []
        for flag, dest, stage in shaped:
            if _given(args, dest):
                raise _contradiction(stop, _flag(args, flag, dest), f"{stop} stops before the {stage}, which "
                                     f"{flag} is for", hint=f"drop {flag}, or {stop}")
    for policy, flags, stage in (("--rebuild", BUILD_FLAGS, "build"), ("--rebenchmark", BENCHMARK_FLAGS[:6], "benchmark")):
        if getattr(args, policy[2:]) != "never":
            continue
        for flag, dest in flags:
            if _given(args, dest):
                raise _contradiction(f"{policy} never", _flag(args, flag, dest), f"{policy} never keeps the "
                                     f"cached {stage} whatever its {flag}", hint=f"drop {policy} never "
                                     f"(if_needed redoes only what differs), or {flag}")
    if args.rebuild == "always" and args.rebenchmark == "never":
        raise _contradiction("--rebuild always", "--rebenchmark never", "every model is built again, and the "
                             "benchmark of its earlier build would be kept", hint="drop --rebenchmark never")
    resume = "--retry-failed" if args.retry_failed else "--resume" if args.resume else None
    for flag in ("--rebuild", "--rebenchmark"):
        if resume and getattr(args, flag[2:]) == "always":
            raise _contradiction(resume, f"{flag} always", f"{resume} skips the inputs complete in the cache, "
                                 f"which {flag} always asks to redo",
                                 hint=f"drop {resume} to redo every input, or {flag} always to continue the corpus")


def view_contradictions(args: argparse.Namespace) -> None:
    """``tk profile``: picture options (:data:`PICTURE_FLAGS`) without ``--visualize``.

    Raises:
        UsageError: the first contradiction found.
    """
    for flag, dest in PICTURE_FLAGS:
        if not args.visualize and _given(args, dest):
            raise UsageError(f"{_flag(args, flag, dest)} shapes --visualize pictures, and no --visualize PATH is given",
                             hint=f"add --visualize graph.svg, or drop {flag}")


def survey_contradictions(args: argparse.Namespace) -> None:
    """``tk discover-models``: ``--test-model`` (one model, afresh) with options that choose or
    survey many models.

    Raises:
        UsageError: the first contradiction found.
    """
    if not args.test_model:
        return
    for flag, dest in (("--family", "family"), ("--skip-patterns", "skip_patterns"), ("--models", "models"),
                       ("--workers", "workers"), ("--refresh", "refresh"), ("--generate-code", "generate_code")):
        if _given(args, dest):
            raise _contradiction("--test-model", _flag(args, flag, dest), f"--test-model surveys the one model "
                                 f"it names, afresh, which {flag} does not apply to",
                                 hint=f"drop {flag}, or --test-model to survey the source's models")
