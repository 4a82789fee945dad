"""The one Dask runner: many items at once on a cluster, one task per item, each task's messages read
by the same code that reads a local child.

:class:`DaskRunner` connects to the cluster (tk's embedded ``LocalCluster`` or ``--scheduler``),
places one task per item (a :class:`~turnkey_like.corpus.worker.TaskCall` of the job's
:class:`~turnkey_like.corpus.worker.WorkerTask`), and for each reads its messages through a
:class:`~turnkey_like.corpus.channel.DaskChannel` in a thread of its own, handing the channel to the
job's ``consume`` (``Pipeline.consume`` for ``tk benchmark`` inputs, ``consume_survey`` for ``tk
discover-models`` models, exactly as for a local :class:`~turnkey_like.launcher.StreamingChild`).
What differs between jobs is the :class:`DaskJob`: the task, what a consumed item gives, and the
progress it reports.

**tk places every task itself** (:class:`WorkerSlots`): a task is submitted pinned to a worker with a
free thread (``workers=[address]``, no stealing), so no task ever waits on a worker behind another.
Dask's own retry counts a worker's death against *every* task assigned to it, running or queued
(``allowed-failures`` per task), so a script that kills its worker (as an out-of-memory kill does)
used to fail an innocent queued input ("the Dask worker running it died 2 times") that never ran.
Here only the attempt that was running when its worker died is charged, and only when it ran
alone on that worker (a one-thread worker, or a whole worker reserved for it): it is retried alone
on another (or the restarted) worker, and recorded ``killed`` after its second charged death; a task
that had not begun is resubmitted uncharged. A watch thread (:meth:`DaskRunner._watch_workers`)
reads the cluster's workers every :data:`WATCH_S` seconds: it gives the slots new workers (a
restarted one) and ends the attempts of a worker that left, whatever the cluster's
``allowed-failures``.

**Ctrl-C and SIGTERM** stop every running attempt at once (its stage recorded ``interrupted``),
forget the items not begun, and close the cluster without waiting for tasks; the main thread waits
in steps of at most 0.5 s, so the signal is seen at once whichever thread the kernel gave it to.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import pickle
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from turnkey_like.corpus.channel import DaskChannel
from turnkey_like.corpus.cluster import connect_scheduler, has_dashboard, signals_blocked, start_local_cluster
from turnkey_like.corpus.worker import TaskCall, WorkerTask
from turnkey_like.errors import TkError
from turnkey_like.launcher import ChildEnded
from turnkey_like.records import Status

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

#: seconds between two reads of the cluster's workers (new ones, lost ones)
WATCH_S = 1.0
#: seconds the runner waits with no worker in the cluster before the items still waiting fail
NO_WORKER_S = 120.0
#: seconds, at most, that a Ctrl-C waits for the running items to record how they stopped
STOP_WAIT_S = 10.0


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
        no worker left in the cluster)."""

    def interrupted(self, index: int, item: Item) -> Outcome | None:
        """The outcome of an item stopped by Ctrl-C or SIGTERM while it ran (``None``: leave it out)."""

    def started(self, index: int, item: Item, where: str) -> None:
        """The item's task began (again) on the worker ``where``."""

    def finished(self, index: int, item: Item, outcome: Outcome) -> Outcome:
        """The item ended: report it; return its final outcome."""


class _Stopped(Exception):
    """The run is stopping (Ctrl-C, SIGTERM): no more attempts are placed."""


@dataclass(frozen=True)
class Placement:
    """Where one attempt runs: the worker's address, the threads reserved there, and whether nothing
    else runs on that worker meanwhile (a death there is then this attempt's)."""

    address: str
    threads: int
    alone: bool


class WorkerSlots:
    """The cluster's worker threads, and which are taken: tk's own placement of every task.

    :meth:`acquire` waits for a free thread (or, ``alone``, for a worker with every thread free,
    reserved whole; an attempt waiting to run alone goes before the others) and returns its
    :class:`Placement`; :meth:`release` gives it back. :meth:`update` takes the cluster's workers as
    the runner's watch reads them and returns the addresses that left.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._threads: dict[str, int] = {}
        self._taken: dict[str, int] = {}
        self._alone_waiting = 0
        self._stopped = False
        self._empty_since: float | None = time.monotonic()

    def update(self, workers: dict[str, int]) -> set[str]:
        """Set the cluster's workers (address → threads); return the addresses that left."""
        with self._cond:
            lost = set(self._threads) - set(workers)
            self._threads = dict(workers)
            for address in lost:
                self._taken.pop(address, None)
            self._empty_since = None if workers else (self._empty_since or time.monotonic())
            self._cond.notify_all()
        return lost

    def acquire(self, alone: bool = False) -> Placement:
        """A free thread (``alone``: a whole idle worker), waiting as long as needed.

        Raises:
            _Stopped: :meth:`stop` was called.
            ChildEnded: the cluster had no worker for :data:`NO_WORKER_S` seconds.
        """
        with self._cond:
            self._alone_waiting += alone
            try:
                while True:
                    if self._stopped:
                        raise _Stopped()
                    placement = self._free(alone)
                    if placement is not None:
                        self._taken[placement.address] = self._taken.get(placement.address, 0) + placement.threads
                        return placement
                    if self._empty_since is not None and time.monotonic() - self._empty_since > NO_WORKER_S:
                        raise ChildEnded(Status.ERROR, f"no Dask worker was left in the cluster for {NO_WORKER_S:g} s",
                                         hint="check the cluster's workers (their logs say why they left), then rerun "
                                              "the input (--resume skips what is done)")
                    self._cond.wait(timeout=WATCH_S)
            finally:
                self._alone_waiting -= alone

    def _free(self, alone: bool) -> Placement | None:
        """The least busy worker that can take the attempt now, or ``None``."""
        candidates = sorted(self._threads, key=lambda a: (self._taken.get(a, 0), a))
        for address in candidates:
            threads, taken = self._threads[address], self._taken.get(address, 0)
            if alone and taken == 0:
                return Placement(address, threads, True)
            if not alone and not self._alone_waiting and taken < threads:
                return Placement(address, 1, threads == 1)
        return None

    def release(self, placement: Placement) -> None:
        """Give ``placement``'s threads back (nothing when its worker left)."""
        with self._cond:
            if placement.address in self._taken:
                self._taken[placement.address] = max(0, self._taken[placement.address] - placement.threads)
            self._cond.notify_all()

    def stop(self) -> None:
        """Refuse every waiting and later :meth:`acquire` (the run is stopping)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


class DaskRunner(Generic[Item, Outcome]):
    """Runs a :class:`DaskJob` on a Dask cluster; :meth:`run` returns each item's outcome.

    Args:
        job: what to run.
        workers: start tk's embedded ``LocalCluster`` with this many worker processes, one thread each.
        scheduler: else the address of an existing scheduler (``tcp://host:8786``).
        in_flight: items being placed or run at once (``None``: twice the workers' threads); tk
            submits a task only when a worker thread is free for it (:class:`WorkerSlots`).
        progress_line: ``progress_line(text)`` prints one line of progress (the dashboard's address).
    """

    def __init__(self, job: DaskJob[Item, Outcome], *, workers: int | None = None, scheduler: str | None = None,
                 in_flight: int | None = None, progress_line=None):
        self.job = job
        self.workers, self.scheduler, self.in_flight = workers, scheduler, in_flight
        self.progress_line = progress_line or (lambda text: None)
        self.client = None
        self.slots = WorkerSlots()
        self._stop_cluster = None
        self._lock = threading.Lock()
        self._channels: dict[str, DaskChannel] = {}
        self._finishing: set = set()  # futures of attempts consumed, whose tasks end on their workers
        self._done = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- the cluster ---------------------------------------------------------------------------
    def _connect(self) -> None:
        if self.scheduler:
            self.client = connect_scheduler(self.scheduler)
        else:
            self.client, self._stop_cluster = start_local_cluster(self.workers, dashboard=True)
        if getattr(self.client, "dashboard_link", None) and has_dashboard():
            self.progress_line(f"Dask dashboard: {self.client.dashboard_link}")

    def _workers(self) -> dict[str, int]:
        """The cluster's workers now: address → threads."""
        info = self.client.scheduler_info()
        return {address: worker.get("nthreads", 1) for address, worker in info["workers"].items()}

    def _watch_workers(self) -> None:
        """Every :data:`WATCH_S` seconds until the run ends: give the slots the cluster's workers, and
        end the attempts of those that left."""
        while not self._done.wait(WATCH_S):
            try:
                lost = self.slots.update(self._workers())
            except Exception:  # noqa: BLE001 - the scheduler did not answer this time: try again
                continue
            if lost:
                with self._lock:
                    for channel in self._channels.values():
                        if channel.address in lost:
                            channel.lose()

    def _forget(self, future, cancel: bool) -> None:
        """Let Dask forget an attempt's task once it ends (its result is never needed, and a result
        held on a worker that dies would be computed again); a lost attempt's at once."""
        if cancel:
            with contextlib.suppress(Exception):
                future.cancel()
            return
        with self._lock:
            self._finishing.add(future)

        def ended(done) -> None:
            with self._lock:
                self._finishing.discard(done)
            with contextlib.suppress(Exception):
                done.release()

        future.add_done_callback(ended)

    def _close(self, stopping: bool) -> None:
        """Close the cluster (tk's own) or the client; after Ctrl-C without waiting for tasks, else
        once the tasks that sent their last message have ended on their workers (5 s at most)."""
        self._done.set()
        if self._watcher is not None:  # no thread of tk's is inside the client while it closes and tk exits
            self._watcher.join(timeout=WATCH_S + 10)
        if not stopping:
            with self._lock:
                finishing = list(self._finishing)
            with contextlib.suppress(Exception):
                from distributed import wait

                wait(finishing, timeout=5)
        if self._stop_cluster is not None:
            self._stop_cluster(timeout=5 if stopping else 30)
            self._stop_cluster = None
        elif self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=5)

    # -- the run -------------------------------------------------------------------------------
    def run(self, items: list[Item]) -> tuple[dict[int, Outcome], KeyboardInterrupt | None]:
        """Run every item on the cluster, several at once; never raises for an item's failure.

        Returns ``({index: outcome}, stop)``: ``stop`` is the ``KeyboardInterrupt`` (Ctrl-C, or
        ``events.Terminated`` for SIGTERM) that stopped the run, else ``None``. After one, every
        running attempt is stopped (each job records its item as far as it got) and the items not
        begun are left out.

        Raises:
            InputError: Dask's ``distributed`` package is not installed.
            TkError: the cluster could not be started or reached.
        """
        self._connect()
        results: dict[int, Outcome] = {}
        stop: KeyboardInterrupt | None = None
        try:
            self.job.connected(self.client)
            workers = self._workers()
            self.slots.update(workers)
            width = self.in_flight or 2 * max(1, sum(workers.values()))
            pool = ThreadPoolExecutor(max_workers=min(width, max(1, len(items))), thread_name_prefix="tk-corpus")
            with signals_blocked({signal.SIGINT, signal.SIGTERM}):  # they reach the main thread alone
                self._watcher = threading.Thread(target=self._watch_workers, name="tk-corpus-watch", daemon=True)
                self._watcher.start()
                futures = {pool.submit(self._one, index, item): index for index, item in enumerate(items)}
            try:
                self._collect(futures, results)
            except KeyboardInterrupt as e:
                stop = e
                self._stop_all(stop, pool, futures, results)
            pool.shutdown(wait=False)
        finally:
            self._close(stop is not None)
        return results, stop

    @staticmethod
    def _collect(futures: dict, results: dict, timeout: float | None = None) -> None:
        """Wait for the items' threads (in steps of 0.5 s, so a signal is seen at once); keep each
        outcome that is not ``None``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = set(futures)
        while pending and (deadline is None or time.monotonic() < deadline):
            pending = {f for f in pending if not f.cancelled()}  # never "done" for wait() (CANCELLED)
            step = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            done, pending = concurrent.futures.wait(pending, timeout=step,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                outcome = None if future.cancelled() else future.result()  # tk's own failure: raised here
                if outcome is not None:
                    results[futures[future]] = outcome

    def _stop_all(self, stop: KeyboardInterrupt, pool: ThreadPoolExecutor, futures: dict, results: dict) -> None:
        """Ctrl-C or SIGTERM: place nothing more, stop every running attempt, and wait (at most
        :data:`STOP_WAIT_S`) for their items to record how far they got."""
        self.slots.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            channels = list(self._channels.values())
        for channel in channels:
            channel.interrupt(stop)
        self._collect(futures, results, timeout=STOP_WAIT_S)

    def _one(self, index: int, item: Item) -> Outcome | None:
        """Every attempt of one item until one ends (retried alone after a charged worker death,
        resubmitted after an uncharged one); runs in a thread of its own."""
        job = self.job
        deaths, alone = 0, False
        while True:
            try:
                placement = self.slots.acquire(alone)
            except _Stopped:
                return None
            except ChildEnded as ended:
                return job.finished(index, item, job.failed(item, ended))
            try:
                channel, outcome = self._attempt(index, item, placement, deaths)
            except TkError as e:
                return job.finished(index, item, job.refused(item, e))
            except ChildEnded as ended:  # the task failed before it began (e.g. tk not importable there)
                return job.finished(index, item, job.failed(item, ended))
            except KeyboardInterrupt:
                return job.interrupted(index, item)
            finally:
                self.slots.release(placement)
            if channel.lost and channel.retry:
                deaths += channel.charged
                alone = alone or channel.began  # a death with the input running: its retry runs alone
                if channel.began:
                    log.warning("%s: the Dask worker %s died (killed, or out of memory); the input is retried "
                                "alone on another worker", job.label(item), channel.where)
                continue
            return job.finished(index, item, outcome)

    def _attempt(self, index: int, item: Item, placement: Placement, deaths: int) -> tuple[DaskChannel, Outcome]:
        """Submit one attempt of ``item`` pinned to ``placement``'s worker and consume it.

        Returns the attempt's channel (``lost`` set when its worker died) and what the job made of it.

        Raises:
            TkError: the job could not make the task. ChildEnded: it failed before it began (not lost).
            KeyboardInterrupt: the run is stopping.
        """
        from distributed import Event, Queue

        job = self.job
        name = f"tk-{uuid.uuid4().hex}"
        task = job.task(item, name)
        queue = Queue(f"{name}-q", client=self.client)
        stop = Event(f"{name}-stop", client=self.client)
        future = self.client.submit(pickle.loads, TaskCall.payload(task), key=name, pure=False,
                                    workers=[placement.address], allow_other_workers=False)
        channel = DaskChannel(future, queue, stop, client_path=job.label(item), address=placement.address,
                              alone=placement.alone, deaths=deaths)
        future.add_done_callback(lambda _f: channel.wake())  # a failed task wakes its waiting consumer
        with self._lock:
            self._channels[name] = channel
        try:
            try:
                channel.start()
            except ChildEnded:
                if channel.lost:  # lost before it began: resubmitted, never charged
                    return channel, None
                raise
            job.started(index, item, channel.where)
            return channel, job.consume(index, item, channel)
        finally:
            with self._lock:
                self._channels.pop(name, None)
            channel.close()
            self._forget(future, cancel=channel.lost)
