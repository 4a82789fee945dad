"""The one Dask runner: many items at once on a cluster, one task per item, each task's messages read
by the same code that reads a local child.

:class:`DaskRunner` connects to the cluster (tk's embedded ``LocalCluster`` or ``--scheduler``),
submits one task per item (a :class:`~turnkey_like.corpus.worker.TaskCall` of the job's
:class:`~turnkey_like.corpus.worker.WorkerTask`), and for each reads its messages through a
:class:`~turnkey_like.corpus.channel.DaskChannel` in a thread of its own, handing the channel to the
job's ``consume`` (``Pipeline.consume`` for ``tk benchmark`` inputs, ``consume_survey`` for ``tk
discover-models`` models, exactly as for a local :class:`~turnkey_like.launcher.StreamingChild`). A
task whose worker died is read again from its next attempt (Dask retries it once); Ctrl-C stops
every running task. What differs between jobs is the :class:`DaskJob`: the task, what a consumed
item gives, and the progress it reports.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

from turnkey_like.corpus.channel import DaskChannel
from turnkey_like.corpus.cluster import connect_scheduler, has_dashboard, start_local_cluster
from turnkey_like.corpus.worker import TaskCall, WorkerTask
from turnkey_like.errors import TkError
from turnkey_like.launcher import ChildEnded

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class DaskJob(Protocol[Item, Outcome]):
    """What a corpus runs on Dask, one task per item; every method is called on the client.

    :meth:`started` and :meth:`finished` are called from the consuming threads, several at once:
    a job that shares state between items guards it itself.
    """

    def connected(self, client) -> None:
        """The cluster is up (``client``: Dask's): read what the tasks need of it."""

    def task(self, item: Item, name: str) -> WorkerTask:
        """The worker's task for ``item``; its queue is ``f"{name}-q"``, its stop event ``f"{name}-stop"``.
        Raises TkError: ``item`` cannot be sent (e.g. an unreadable script to upload)."""

    def label(self, item: Item) -> str:
        """``item`` as the user named it (messages, and the channel's hint for a worker that died)."""

    def consume(self, index: int, item: Item, channel: DaskChannel) -> Outcome:
        """Read ``channel`` until the item's last message or its end (``ChildEnded`` is the item's
        outcome, never raised); called again with the next attempt's channel after a lost worker."""

    def refused(self, item: Item, error: TkError) -> Outcome:
        """The outcome of an item whose task could not be made (:meth:`task` raised ``error``)."""

    def failed(self, item: Item, ended: ChildEnded) -> Outcome:
        """The outcome of an item whose task failed before its child began (tk not on the worker,
        every worker that took it died)."""

    def interrupted(self, item: Item) -> Outcome:
        """The outcome of an item stopped by Ctrl-C before it ended."""

    def started(self, index: int, item: Item, where: str) -> None:
        """The item's task began (again) on the worker ``where``."""

    def finished(self, index: int, item: Item, outcome: Outcome) -> Outcome:
        """The item ended: report it; return its final outcome."""


class DaskRunner(Generic[Item, Outcome]):
    """Runs a :class:`DaskJob` on a Dask cluster; :meth:`run` returns each item's outcome.

    Args:
        job: what to run.
        workers: start tk's embedded ``LocalCluster`` with this many worker processes, one thread each.
        scheduler: else the address of an existing scheduler (``tcp://host:8786``).
        in_flight: tasks submitted at once (``None``: twice the workers' threads), so a worker never
            waits for the client between items.
        progress_line: ``progress_line(text)`` prints one line of progress (the dashboard's address).
    """

    def __init__(self, job: DaskJob[Item, Outcome], *, workers: int | None = None, scheduler: str | None = None,
                 in_flight: int | None = None, progress_line=None):
        self.job = job
        self.workers, self.scheduler, self.in_flight = workers, scheduler, in_flight
        self.progress_line = progress_line or (lambda text: None)
        self.client = None
        self._stop_cluster = None
        self._lock = threading.Lock()
        self._channels: dict[str, DaskChannel] = {}
        self._futures: list = []

    # -- the cluster ---------------------------------------------------------------------------
    def _connect(self) -> None:
        if self.scheduler:
            self.client = connect_scheduler(self.scheduler)
        else:
            self.client, self._stop_cluster = start_local_cluster(self.workers, dashboard=True)
        if getattr(self.client, "dashboard_link", None) and has_dashboard():
            self.progress_line(f"Dask dashboard: {self.client.dashboard_link}")

    def _close(self) -> None:
        with contextlib.suppress(Exception):  # let finished tasks end before the cluster goes
            from distributed import wait

            wait(self._futures, timeout=10)
        if self._stop_cluster is not None:
            self._stop_cluster()
            self._stop_cluster = None
        elif self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()

    # -- the run -------------------------------------------------------------------------------
    def run(self, items: list[Item]) -> tuple[dict[int, Outcome], bool]:
        """Run every item on the cluster, several at once; never raises for an item's failure.

        Returns ``({index: outcome}, interrupted)``: after Ctrl-C every running task is stopped
        (each job records its item ``interrupted``) and the outcomes so far are returned.

        Raises:
            InputError: Dask's ``distributed`` package is not installed.
            TkError: the cluster could not be started or reached.
        """
        self._connect()
        results: dict[int, Outcome] = {}
        interrupted = False
        try:
            self.job.connected(self.client)
            threads = sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()) or 1
            pool = ThreadPoolExecutor(max_workers=self.in_flight or 2 * threads, thread_name_prefix="tk-corpus")
            futures = {pool.submit(self._one, index, item): index for index, item in enumerate(items)}
            try:
                for future, index in futures.items():
                    results[index] = future.result()
            except KeyboardInterrupt:
                interrupted = True
                pool.shutdown(wait=False, cancel_futures=True)
                with self._lock:
                    for channel in self._channels.values():
                        channel.interrupt()
                for future, index in futures.items():
                    if not future.cancelled():
                        with contextlib.suppress(Exception):
                            results[index] = future.result(timeout=30)
            pool.shutdown(wait=False)
        finally:
            self._close()
        return results, interrupted

    def _one(self, index: int, item: Item) -> Outcome:
        """Submit one item's task and consume its messages (a retry after a lost worker included);
        runs in a thread of its own."""
        from distributed import Event, Queue

        job = self.job
        name = f"tk-{uuid.uuid4().hex}"
        try:
            task = job.task(item, name)
        except TkError as e:
            return job.finished(index, item, job.refused(item, e))
        queue = Queue(f"{name}-q", client=self.client)
        stop = Event(f"{name}-stop", client=self.client)
        future = self.client.submit(pickle.loads, TaskCall.payload(task), key=name, pure=False)
        channel = DaskChannel(future, queue, stop, client_path=job.label(item))
        future.add_done_callback(lambda _f: channel.wake())  # a failed task wakes its waiting consumer
        self._futures.append(future)
        try:
            outcome = self._consume(index, item, name, channel)
        except ChildEnded as ended:  # the task failed before it began (e.g. tk not importable there)
            outcome = job.failed(item, ended)
        except KeyboardInterrupt:
            return job.interrupted(item)
        finally:
            with self._lock:
                self._channels.pop(name, None)
            with contextlib.suppress(Exception):
                queue.close()
        return job.finished(index, item, outcome)

    def _consume(self, index: int, item: Item, name: str, channel: DaskChannel) -> Outcome:
        """Each attempt of the task in turn: wait for it to begin, then the job consumes it."""
        while True:
            with self._lock:
                self._channels[name] = channel
            channel.start()
            self.job.started(index, item, channel.where)
            outcome = self.job.consume(index, item, channel)
            if not channel.retry:
                return outcome
            log.warning("%s: the Dask worker %s died (killed, or out of memory); the input is retried on "
                        "another worker", self.job.label(item), channel.where)
            channel = channel.successor()
