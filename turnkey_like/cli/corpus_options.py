"""``tk benchmark`` flags for corpus runs: Dask workers, an existing cluster, ``--resume`` (docs/corpus.md)."""

from __future__ import annotations

import argparse


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``corpus`` argument group (``--workers`` ... ``--retry-failed``) to ``parser``."""
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


def corpus_options(args):
    """The :class:`~turnkey_like.corpus.CorpusOptions` of parsed ``args`` (defaults when absent)."""
    from turnkey_like.corpus import CorpusOptions

    return CorpusOptions(workers=getattr(args, "workers", None), scheduler=getattr(args, "scheduler", None),
                         upload=getattr(args, "upload", False), collect=getattr(args, "collect", False),
                         resume=getattr(args, "resume", False), retry_failed=getattr(args, "retry_failed", False))
