"""Dask's preload hook for the workers of tk's own ``LocalCluster`` (``--workers N``; named in
:data:`~turnkey_like.corpus.cluster.LOCAL_CLUSTER_CONFIG`).

Each worker process first leaves tk's process group for one of its own: a terminal's Ctrl-C goes to
the whole foreground process group, and would otherwise reach every worker (each printing its own
``KeyboardInterrupt`` traceback and dying mid-task) as well as tk, which alone should get it, stop
the run and close the cluster. Then it prepares as every tk worker does
(:func:`~turnkey_like.corpus.worker.prepare_worker`: torch imported before the first task). Workers
you start yourself (``dask worker ADDRESS --preload turnkey_like.corpus``) keep their group.
"""

from __future__ import annotations

import contextlib
import os


def dask_setup(worker) -> None:
    """Run as each worker of tk's ``LocalCluster`` starts (and restarts): its own process group,
    then :func:`~turnkey_like.corpus.worker.prepare_worker`."""
    from turnkey_like.corpus.worker import prepare_worker

    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    prepare_worker()
