"""What a pipeline run tells its renderer, and what it returns: the :class:`Listener` protocol and the
:class:`RunSummary`.

A ground module (records and errors only), so that renderers (``turnkey_like.report.listener``) and
the pipeline that calls them (``turnkey_like.pipeline``) both import it without either importing
the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from turnkey_like.errors import TkError
from turnkey_like.records import Invocation, ModelInfo, ScriptResult, Status

if TYPE_CHECKING:
    from turnkey_like.inputs import InputSpec


class Listener:
    """Receives pipeline events; the CLI's renderer subclasses it. Every method is optional.

    ``stage`` is a name of ``records.STAGES``; ``index`` counts inputs from 0 in the order run.
    """

    def run_started(self, specs: list[InputSpec]) -> None: ...

    def script_started(self, spec: InputSpec, index: int) -> None: ...

    def stage_started(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...

    def stage_finished(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...

    def script_finished(self, result: ScriptResult, error: TkError | None) -> None: ...


class Terminated(KeyboardInterrupt):
    """tk received SIGTERM: raised in its main thread by the CLI's handler, and handled everywhere as
    Ctrl-C is (the running stages are stopped and recorded ``interrupted``, what was measured is
    kept, ``--json`` and the summary are written); the exit code is 143 instead of 130."""


def stop_reason(stop: BaseException | None) -> str:
    """What stopped a run, for its messages: ``SIGTERM`` for :class:`Terminated`, else ``Ctrl-C``."""
    return "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"


def interrupted_error(stop: BaseException | None) -> str:
    """The one-line error of a stage or input stopped by ``stop``: ``interrupted (Ctrl-C)`` or
    ``interrupted (SIGTERM)``."""
    return f"interrupted ({stop_reason(stop)})"


@dataclass
class RunSummary:
    """What a pipeline run produced: one :class:`ScriptResult` per input, and the failures.

    Attributes:
        results: one record per input, in the order run.
        errors: one error per bad input, failed script or unmatched selector.
        run_id: this run's id (``<started-at>-<pid>``), stamped on every outcome it produced.
        interrupted: the run was stopped by Ctrl-C or SIGTERM; ``results`` holds what was done until
            then (the inputs being run included, as far as they got).
        terminated: it was SIGTERM (:class:`Terminated`), not Ctrl-C.
    """

    results: list[ScriptResult] = field(default_factory=list)
    errors: list[TkError] = field(default_factory=list)
    run_id: str = ""
    interrupted: bool = False
    terminated: bool = False

    def stopped_by(self, stop: BaseException) -> None:
        """Record that ``stop`` (a ``KeyboardInterrupt``: Ctrl-C, or :class:`Terminated`) ended the run."""
        self.interrupted = True
        self.terminated = self.terminated or isinstance(stop, Terminated)

    def stage_failures(self) -> int:
        """Stage outcomes this run produced that failed (``error``/``timeout``/``killed``/
        ``interrupted``), on selected invocations.

        An outcome another run produced does not count (its ``run_id`` is not this run's): a build
        error kept from an earlier run (``kept from an earlier run``, shown in the report) never fails
        an ``--analyze-only`` rerun, which does not build (docs/exit_codes.md: skipped stages are not
        failures). Dask workers stamp the parent's run id, so their outcomes count as this run's.
        """
        return sum(1 for result in self.results for _m, inv in result.invocations() if inv.selected
                   for stage in inv.stages().values() if stage.failed and stage.run_id in (None, self.run_id))

    @property
    def failed(self) -> bool:
        """True when something this run did failed: a bad input, a script that failed, or a stage
        this run attempted (:meth:`stage_failures`); the command then exits non-zero."""
        return bool(self.errors) or any(r.status in (Status.ERROR, Status.OUT_OF_MEMORY) for r in self.results) or self.stage_failures() > 0
