"""The Dask cluster a corpus runs on: tk's embedded ``LocalCluster`` (``--workers N``, also ``tk
discover-models --workers N``) or an existing one (``--scheduler ADDRESS``)."""

from __future__ import annotations

import contextlib
import signal

from turnkey_like.errors import InputError, TkError, one_line

#: Dask configuration of an embedded LocalCluster: tk's isolation forks children, which a daemonic
#: process may not; a task whose worker dies fails at once with ``KilledWorker`` (tk retries it
#: itself, charging only the input that was running: ``corpus.dask_runner``); and the
#: workers get this process's environment unchanged (Dask's nanny otherwise sets OMP_NUM_THREADS=1 and
#: MALLOC_TRIM_THRESHOLD_, which change torch's threads and the allocator under a benchmark: measured
#: 1.2x the serial ORT latency with them)
LOCAL_CLUSTER_CONFIG = {"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": 0,
                        "distributed.nanny.pre-spawn-environ": {},
                        # quiet servers: each worker's statistical profiler samples every thread's stack
                        # every 10 ms, every server's event loop ticks every 20 ms and polls psutil
                        # twice a second, memory monitors every 100 ms: on a small host each wake-up
                        # takes a core from the benchmark that has the host to itself
                        "distributed.worker.profile.enabled": False,
                        "distributed.admin.system-monitor.interval": "10s",
                        "distributed.admin.tick.interval": "1s",
                        "distributed.worker.memory.monitor-interval": "1s",
                        # each worker leaves tk's process group (a terminal's Ctrl-C is tk's alone), and
                        # imports torch and torch._dynamo as it starts, not in its first task
                        "distributed.worker.preload": ["turnkey_like.corpus.local_worker"]}


@contextlib.contextmanager
def signals_blocked(signals: set[int]):
    """Block ``signals`` in this thread while it starts threads, which inherit the mask.

    Dask's threads (its event loop's, the client's) and tk's own helper threads start this way, so
    the kernel delivers SIGINT and SIGTERM to tk's main thread, whose Python handler acts at once,
    rather than to a thread that does nothing with them. A signal that arrives meanwhile waits, and
    is delivered here when the block ends. (Processes spawned by those threads, such as Dask's
    workers, start with a clean mask: their own process group keeps Ctrl-C away from them, see
    :mod:`turnkey_like.corpus.local_worker`.) A no-op where threads have no signal masks.
    """
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def has_dashboard() -> bool:
    """Whether Dask can serve its dashboard here (``bokeh`` is installed)."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def import_distributed():
    """Dask's ``distributed`` module.

    Raises:
        InputError: it is not installed (with the ``pip install`` that adds it).
    """
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError:
        raise InputError("--workers and --scheduler need Dask's `distributed` package",
                         hint='pip install "turnkey_like[dask]"') from None
    return distributed


def connect_scheduler(address: str):
    """A Dask ``Client`` of the existing cluster at ``address`` (``tcp://host:8786``).

    Raises:
        InputError: Dask's ``distributed`` package is not installed.
        TkError: the scheduler cannot be reached within 30 s.
    """
    distributed = import_distributed()
    try:
        with signals_blocked({signal.SIGINT, signal.SIGTERM}):  # the client's threads: signals go to tk's main
            return distributed.Client(address, timeout=30)
    except (OSError, TimeoutError, RuntimeError) as e:
        raise TkError(f"cannot reach the Dask scheduler at {address}: {one_line(e)}",
                      hint="start one with `dask scheduler` and `dask worker ADDRESS` (see docs/corpus.md)") from None


def start_local_cluster(workers: int, *, dashboard: bool = False):
    """Start tk's embedded Dask ``LocalCluster``: ``workers`` worker processes of one thread each,
    configured by :data:`LOCAL_CLUSTER_CONFIG` (non-daemonic, one retry, quiet servers, torch
    preloaded). Used by ``tk benchmark --workers N`` and ``tk discover-models --workers N``.

    Args:
        dashboard: serve Dask's dashboard on a free port when ``bokeh`` is installed.

    Returns:
        ``(client, stop)``: ``stop(timeout=30)`` closes the client and the cluster (its workers exit,
        killed after ``timeout`` seconds) and puts Dask's configuration back; it never raises.

    Raises:
        InputError: Dask's ``distributed`` package is not installed.
        TkError: the cluster could not start.
    """
    import dask

    distributed = import_distributed()
    # held until the cluster closes: a nanny restarting a dead worker reads it again
    config = dask.config.set(LOCAL_CLUSTER_CONFIG)
    cluster = client = None

    def stop(timeout: float = 30) -> None:
        for thing in (client, cluster):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close(timeout=timeout)
        config.__exit__(None, None, None)

    try:
        with signals_blocked({signal.SIGINT, signal.SIGTERM}):  # Dask's threads: signals go to tk's main thread
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=":0" if dashboard and has_dashboard() else None)
            client = distributed.Client(cluster)
    except (OSError, TimeoutError, RuntimeError) as e:
        stop()
        raise TkError(f"cannot start a Dask LocalCluster of {workers} workers: {one_line(e)}",
                      hint="run without --workers, or see docs/corpus.md") from None
    return client, stop
