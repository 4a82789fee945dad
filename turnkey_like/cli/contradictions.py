"""Options that make no sense together: a usage error before anything runs (exit 2, docs/exit_codes.md).

argparse sees one option at a time; these checks see the command line whole. Each raises
:class:`UsageError` naming both options (as given) and why, with a hint saying what to do; the CLI
prints it under the command's usage and exits 2. :mod:`turnkey_like.cli.options` calls them first in
each ``parse_<command>``. An option counts as given when its value differs from its command's default
(repeating a default, e.g. ``--iterations 100 --analyze-only``, changes nothing and passes).

The pairs, by command:

- ``tk benchmark``: ``--analyze-only`` with ``--build-only``; ``--analyze-only`` with an option of the
  build (``--opset``, ``--precision``, ``--rebuild``, ``--collect``) or of the benchmark (``--runtime``,
  ``--device``, ``--iterations``, ``--warmup``, ``--threads``, ``--per-layer``, ``--wait-quiet``,
  ``--rebenchmark``, ``--lean-cache``), and ``--build-only`` with one of the benchmark; ``--rebuild
  never`` with ``--opset``/``--precision`` and ``--rebenchmark never`` with ``--runtime``,
  ``--device``, ``--iterations``, ``--warmup``, ``--threads``, ``--per-layer`` (``never`` keeps the
  cached result whatever they say); ``--rebuild always`` with ``--rebenchmark never``; ``--resume``
  with ``--rebuild always`` or ``--rebenchmark always``. (``--workers`` with ``--scheduler`` is refused
  by argparse itself; ``--upload``/``--collect`` without either by ``CorpusOptions.validate``, exit 1.)
- every command that runs inputs: ``--batch-size``, ``--seq-len``, ``--imgsz``, ``--pretrained``,
  ``--model-args``, ``--trust-remote-code``, ``--seed`` without ``--model``; ``--pretrained`` with
  ``--no-weights``.
- ``tk profile``: ``--collapse``/``--no-fold`` without ``--visualize``.
- ``tk discover-models``: ``--test-model`` with ``--family``, ``--skip-patterns``, ``--models``,
  ``--workers``, ``--refresh`` or ``--generate-code``.
"""

from __future__ import annotations

import argparse

from turnkey_like.errors import InputError


class UsageError(InputError):
    """The command line contradicts itself (argparse cannot see it): exit 2 with the command's usage."""



#: the options that shape only the ONNX build, and only the benchmark (flag, argparse dest)
BUILD_FLAGS = (("--opset", "opset"), ("--precision", "precision"), ("--rebuild", "rebuild"))
BENCHMARK_FLAGS = (("--runtime", "runtime"), ("--device", "device"), ("--iterations", "iterations"),
                   ("--warmup", "warmup"), ("--threads", "threads"), ("--per-layer", "per_layer"),
                   ("--wait-quiet", "wait_quiet"), ("--rebenchmark", "rebenchmark"))
#: the options that apply to ``--model`` entries only
NAMED_MODEL_FLAGS = (("--batch-size", "batch_size"), ("--seq-len", "seq_len"), ("--imgsz", "imgsz"),
                     ("--pretrained", "pretrained"), ("--model-args", "model_args"),
                     ("--trust-remote-code", "trust_remote_code"), ("--seed", "seed"))


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


def input_contradictions(args: argparse.Namespace) -> None:
    """Named-model options without ``--model``, and ``--pretrained`` with ``--no-weights``.

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
    for policy, flags, stage in (("--rebuild", BUILD_FLAGS[:2], "build"), ("--rebenchmark", BENCHMARK_FLAGS[:6], "benchmark")):
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
    """``tk profile``: picture options without ``--visualize``.

    Raises:
        UsageError: the first contradiction found.
    """
    for flag, dest in (("--collapse", "collapse"), ("--no-fold", "no_fold")):
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
