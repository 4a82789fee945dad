"""The argument groups that several ``tk`` commands share, written once (argparse only).

Nothing here reads a parsed namespace: :mod:`turnkey_like.cli.options` turns what these groups
parse into typed option records and checks their values. Command modules import these helpers,
never each other.
"""

from __future__ import annotations

import argparse
import difflib
import re

CACHE_DIR_HELP = "cache root (default: $TK_CACHE_DIR or ~/.cache/turnkey_like)"


def common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command accepts, before or after its name (a parent parser).

    With ``suppress`` the defaults are left unset, so a value given before the command is not
    overwritten by the subcommand's default.
    """
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("output")
    group.add_argument("--traceback", action="store_true", default=default(False),
                       help="show the full Python traceback on errors (and a failing script's traceback)")
    group.add_argument("-q", "--quiet", action="store_true", default=default(False),
                       help="no progress display and no per-stage lines on stderr; the report still prints")
    group.add_argument("-v", "--verbose", action="count", default=default(0),
                       help="log what tk does on stderr (-vv for debug detail)")
    return parser


def size_list(text: str) -> list[int]:
    """``--batch-size 1,8,32`` → ``[1, 8, 32]`` (argparse type; a sweep when more than one).

    Raises:
        argparse.ArgumentTypeError: not whole numbers of at least 1 (argparse exits 2 with it).
    """
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 1,8,32") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes of at least 1, e.g. 1,8,32")
    return values


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``inputs`` (INPUT..., ``--labels``, ``--script-args``), named-model and ``discovery``
    (``--max-depth``, ``--timeout``) groups: what a command that runs the pipeline on inputs takes."""
    group = parser.add_argument_group("inputs")
    group.add_argument("inputs", nargs="*", metavar="INPUT",
                       help="scripts (.py), ONNX files (.onnx), input lists (.txt), globs; "
                            "append ::HASH[,HASH] to select invocations or models by hash")
    group.add_argument("--labels", action="append", metavar="KEY::V[,V]",
                       help="keep scripts whose line-1 labels pragma has KEY with at least one of the values; "
                            "repeat for several keys (all must match)")
    group.add_argument("--script-args", default="", metavar='"ARGS"',
                       help="arguments passed to every script as its sys.argv[1:]")
    add_named_model_arguments(parser)
    group = parser.add_argument_group("discovery")
    group.add_argument("--max-depth", type=int, default=0, metavar="N",
                       help="also discover submodules down to depth N (default 0: the models the script calls)")
    group.add_argument("--timeout", type=float, default=3600, metavar="SECONDS",
                       help="time limit in seconds for each script's run (discovery), and for each invocation's "
                            "characterization, ONNX build and benchmark; each runs in a child process that is "
                            "killed at the limit, and the other inputs go on (default 3600)")
    add_memory_limit_argument(group)


def add_memory_limit_argument(group) -> None:
    """Add ``--memory-limit SIZE`` (the cap on each child's resident memory) to ``group``."""
    group.add_argument("--memory-limit", metavar="SIZE",
                       help="cap on the resident memory of each input's process and of each stage's (with what "
                            "they start): 4G, 512M, 1.5GB (decimal, as tk prints sizes; 4GiB binary), or none; a "
                            "child over it is killed and recorded 'out of memory' with its peak, and the other "
                            "inputs go on (default: 75%% of the memory available when the run starts, divided "
                            "among the inputs run at once on a host; docs/exit_codes.md)")


def generate_list(text: str) -> list[tuple[int, int]]:
    """``--generate 128:128,2048:256`` → ``[(128, 128), (2048, 256)]``: prompt tokens P and new tokens N
    (argparse type; a sweep when more than one).

    Raises:
        argparse.ArgumentTypeError: not ``P:N`` pairs of whole numbers of at least 1.
    """
    pairs = []
    for item in (v.strip() for v in text.split(",") if v.strip()):
        prompt, _, new = item.partition(":")
        try:
            pair = (int(prompt), int(new))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: give PROMPT:NEW pairs, e.g. 128:32 or 128:128,2048:256") from None
        if min(pair) < 1:
            raise argparse.ArgumentTypeError(f"{item!r}: prompt and new tokens must be at least 1")
        pairs.append(pair)
    if not pairs:
        raise argparse.ArgumentTypeError(f"{text!r}: give PROMPT:NEW pairs, e.g. 128:32")
    return pairs


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``generation what-ifs`` group (``tk profile``, ``tk benchmark``): ``--weight-dtype``,
    ``--act-dtype``, ``--kv-dtype``, ``--tensor-parallel``, ``--memory-reserve`` and
    ``--generation-plot`` (values checked by :mod:`turnkey_like.cli.options`)."""
    group = parser.add_argument_group(
        "generation what-ifs (docs/generation.md, \"What-ifs\")",
        "For every generation (--generate, or a script that generates): its prefill and decode on each --hardware "
        "profile at other dtypes and split over devices, and what fits each device's memory, computed from the "
        "counted record (the model does not run again). Lists cross: one row per combination.")
    for flag, what in (("--weight-dtype", "the weights"), ("--act-dtype", "the activations"),
                       ("--kv-dtype", "the KV cache")):
        group.add_argument(flag, metavar="DTYPE[,DTYPE...]",
                           help=f"dtype of {what}: fp32, bf16, fp16, fp8, int8, int4 (default: as counted); "
                                "the math runs at the wider of the weight and activation dtypes")
    group.add_argument("--tensor-parallel", type=size_list, default=[1], metavar="N[,N...]",
                       help="split the model over N devices, Megatron-style: weights and KV heads divided, two "
                            "all-reduces per layer over the profile's NVLink (default 1)")
    group.add_argument("--memory-reserve", metavar="FRACTION", default="0",
                       help="share of each device's memory kept back for activations, workspace and the runtime "
                            "when computing the largest batch that fits (default 0: weights and KV cache only; "
                            "vLLM's default gpu_memory_utilization 0.9 is 0.1)")
    group.add_argument("--generation-plot", metavar="PATH",
                       help="write a plot of decode tokens/s against batch, one line per context length, with "
                            "the memory-bound to compute-bound knee marked (PNG, SVG or PDF, by extension)")


def add_named_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``named models`` group: ``--model NAME`` and the sizes, weights and seed of its inputs."""
    group = parser.add_argument_group(
        "named models (no script needed; see docs/models.md)",
        "--model builds a model from torchvision, transformers, ultralytics, timm or your own factory with "
        "synthesized inputs. List-valued sizes make a sweep: one invocation per combination.")
    group.add_argument("--model", action="append", default=[], metavar="NAME",
                       help="resnet50, bert, bert-base-uncased, facebook/detr-resnet-50, a config folder, yolov8n.yaml, "
                            "model.pt, timm/resnet18, package.module:factory (repeatable; mixes with scripts)")
    group.add_argument("--batch-size", type=size_list, default=[], metavar="N[,N...]",
                       help="batch size of named models' inputs (a list makes a sweep)")
    group.add_argument("--seq-len", type=size_list, default=[], metavar="N[,N...]",
                       help="sequence length for text/speech models, frames for video models (a list makes a sweep)")
    group.add_argument("--generate", type=generate_list, default=[], metavar="P:N[,P:N...]",
                       help="generate N tokens from a P-token prompt (a causal LM with its LM head and KV cache: "
                            "prefill, then N-1 decode steps; docs/generation.md); a list makes a sweep")
    group.add_argument("--imgsz", type=size_list, default=[], metavar="N[,N...]",
                       help="image size for vision models (default: the weights' metadata; 640 for ultralytics)")
    group.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,...",
                       help="exact shape of a named model's input, or a static shape for a dynamic input of "
                            "an .onnx input (repeatable)")
    group.add_argument("--pretrained", action="store_true",
                       help="load trained weights (network or local cache); default: random weights, no download")
    group.add_argument("--model-args", metavar="JSON",
                       help='keyword arguments for the model builder or config, e.g. \'{"num_hidden_layers": 2}\'')
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow a hub model's own Python code to run (transformers trust_remote_code)")
    group.add_argument("--seed", type=int, default=0, metavar="N",
                       help="seed of named models' random weights and synthesized inputs (default 0; recorded)")
    add_dtype_argument(group)


def add_dtype_argument(group) -> None:
    """Add ``--dtype fp32|bf16|fp16`` (a named model's weights and floating-point inputs) to ``group``."""
    group.add_argument("--dtype", choices=("fp32", "bf16", "fp16"),
                       help="put named models' floating-point weights and inputs in this dtype (default: as the "
                            "source builds them, fp32; recorded in the request); bytes follow it, MACs do not")


def add_analysis_arguments(group) -> None:
    """Add ``--hardware NAME[,NAME...]`` and ``--no-weights`` (characterization) to ``group``."""
    from turnkey_like.characterize.hardware import list_profiles

    group.add_argument("--hardware", metavar="NAME[,NAME...]",
                       help=f"hardware profile for the roofline: {', '.join(list_profiles())} "
                            "(default: local, this machine, measured once and cached); a comma list such as "
                            "a100,h100,local draws every profile on --roofline/--html plots and gives a generation "
                            "its what-ifs on each, the first decides the Bound column")
    group.add_argument("--no-weights", action="store_true",
                       help="characterize on meta tensors: no real weights or compute (for models too large for memory)")


def add_output_arguments(group) -> None:
    """Add ``--cache-dir DIR`` and ``--json FILE`` (``tk benchmark``, ``tk profile``) to ``group``."""
    group.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    group.add_argument("--json", metavar="FILE", help="also write the records of this run as JSON")


def add_view_arguments(group) -> None:
    """Add ``--roofline PATH`` and ``--html PATH`` to a ``tk profile`` / ``tk benchmark`` argument group."""
    group.add_argument("--roofline", metavar="PATH",
                       help="write a roofline plot (PNG, SVG or PDF, by extension) of each characterized invocation, "
                            "with each module's and fusion group's measured (achieved) FLOP/s under the roof after "
                            "a per-layer run; "
                            "with several, each file gets _<invocation hash> before its extension. "
                            "--hardware a100,h100,local draws several profiles (the first decides the Bound column)")
    group.add_argument("--html", metavar="PATH",
                       help="write one self-contained HTML report of the run: models, characterization, "
                            "benchmark results, per-layer tables, graph, roofline and comparison")


def add_visualize_arguments(group) -> None:
    """Add ``--visualize PATH``, ``--collapse DEPTH``, ``--no-fold``, ``--color-by`` and ``--runtime``
    (``tk profile``'s pictures and the per-layer run its views show) to ``group``."""
    group.add_argument("--visualize", metavar="PATH",
                       help="draw each characterized invocation's dataflow graph, coloured by bound: .svg, .png, "
                            ".pdf (need Graphviz's dot) or .dot; with several invocations each file gets "
                            "_<invocation hash> before the extension")
    group.add_argument("--collapse", type=int, metavar="DEPTH",
                       help="in --visualize pictures, draw each module at depth DEPTH (1 = the model's children) "
                            "as one node holding everything below it")
    group.add_argument("--no-fold", action="store_true",
                       help="print (in the per-module table) and draw (in --visualize pictures) every block of a "
                            "run of identical blocks, instead of the first one and one row or node marked ×N")
    group.add_argument("--color-by", choices=("bound", "measured"), default="bound",
                       help="fill --visualize nodes by their bound (default) or by their share of the measured "
                            "time of a per-layer run (`tk benchmark --per-layer`)")
    add_measured_run_argument(group)


def add_measured_run_argument(group) -> None:
    """Add ``--runtime KEY`` (``tk profile``, ``tk explore``, ``tk view``): which per-layer run the
    measured figures come from."""
    group.add_argument("--runtime", metavar="KEY",
                       help="show the per-layer run (`tk benchmark --per-layer`) of this runtime: ort, torch-eager, "
                            "torch-compiled, with :cuda for a GPU run (default: the latest; the output names the "
                            "others)")


def add_wait_quiet_argument(group, default: float, before: str, what: str) -> None:
    """Add ``--wait-quiet SECONDS`` (``tk benchmark``, ``tk hardware measure``) to ``group``:
    ``before`` names what waits (``timing``), ``what`` the measurement retried (``timed loop``)."""
    group.add_argument("--wait-quiet", type=float, default=default, metavar="SECONDS",
                       help=f"wait up to SECONDS for other processes to leave the CPU quiet before {before}, "
                            f"and measure again when they disturbed the {what}; the least disturbed one is kept "
                            f"(default {default:g}{': measure at once' if not default else ''}; every result "
                            "records how busy the machine was; docs/hardware.md)")


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``corpus`` argument group (``--workers`` ... ``--retry-failed``; docs/corpus.md) to ``parser``."""
    group = parser.add_argument_group(
        "corpus (many inputs; see docs/corpus.md)",
        "Run inputs several at a time on Dask: each input's discovery and stages run on one worker; records "
        "come back to this cache. A benchmark has its host to itself (a host-wide lock), so latency matches "
        "a serial run's.")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="start a Dask cluster on this machine with N worker processes, one thread each "
                            "(needs `pip install turnkey_like[dask]`); without it inputs run one at a time")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="send the inputs to an existing Dask cluster (tcp://HOST:8786, started with "
                            "`dask scheduler` and `dask worker`); workers need tk installed")
    group.add_argument("--upload", action="store_true",
                       help="ship each script's text to the workers (when they cannot read your files)")
    group.add_argument("--collect", action="store_true",
                       help="copy ONNX files built in a worker's own cache into this cache (else they stay on "
                            "the worker; the record names its host)")
    group.add_argument("--resume", action="store_true",
                       help="skip inputs whose file, --script-args and requested stages are unchanged and whose "
                            "every requested stage has a final outcome in the cache (failures included)")
    group.add_argument("--retry-failed", action="store_true",
                       help="with --resume: also rerun the inputs that failed (script or any stage)")


def unrecognized_message(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """argparse's ``unrecognized arguments: ...`` for ``extras``, with the closest of ``parser``'s
    options for each ``--option`` typo (``difflib``, as ``tk benchmrk`` gets ``tk benchmark``):
    ``unrecognized arguments: --iteratoins 5 (did you mean --iterations?)``.

    The options are read from ``parser.format_usage()``, which lists every option the command takes.
    """
    known = sorted(set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", parser.format_usage())))
    close = []
    for token in extras:
        if token.startswith("--"):
            close += difflib.get_close_matches(token.split("=", 1)[0], known, n=1, cutoff=0.6)
    message = f"unrecognized arguments: {' '.join(extras)}"
    return message + (f" (did you mean {', '.join(dict.fromkeys(close))}?)" if close else "")
