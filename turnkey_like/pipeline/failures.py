"""How an input failed, in one line with a hint that says what to do: ``::HASH`` selectors that matched
nothing (:func:`apply_selection`), a script's own failure (:func:`script_failure`), a failure of the
run rather than the script (:func:`run_failure`), and the one rule that picks an input's error
(:func:`input_error`), serial and Dask runs alike.
"""

from __future__ import annotations

import os
import re

from turnkey_like.errors import ScriptError, SelectionError, TkError
from turnkey_like.records import ScriptResult, Status


def apply_selection(result: ScriptResult) -> SelectionError | None:
    """Mark invocations selected by ``result.selectors`` (invocation or model hashes).

    Returns a :class:`SelectionError` naming the selectors that matched nothing (with the hashes that
    were found), or ``None``. Unmatched selectors never un-select the invocations others matched.
    """
    if not result.selectors:
        return None
    selectors = set(result.selectors)
    found: list[str] = []
    matched: set[str] = set()
    for model, inv in result.invocations():
        inv.selected = inv.hash in selectors or model.model_hash in selectors
        matched.update({inv.hash, model.model_hash} & selectors)
        found.append(f"{inv.hash} ({model.name}, model {model.model_hash})")
    missing = sorted(selectors - matched)
    if not missing:
        return None
    name = _given_path(result)
    listing = "; ".join(found) if found else "none (the script called no model)"
    return SelectionError(
        f"{name}::{','.join(missing)}: no model or invocation has this hash",
        hint=f"the hashes found in {name} are: {listing}",
    )


def _given_path(result: ScriptResult) -> str:
    """The input's path as the user gave it (without ``::HASH``), else relative to the working folder."""
    if result.entry:
        return result.entry.split("::", 1)[0]
    try:
        return os.path.relpath(result.path)
    except ValueError:
        return result.path


def script_failure(result: ScriptResult, script_args: str = "") -> ScriptError:
    """The one-line error, with a hint that says what to do, for a script that failed.

    The hint names the script as the user gave it and suggests a command that works: ``python
    SCRIPT`` only where the script runs without tk (not for TurnkeyML scripts, whose
    ``turnkeyml.parser`` exists only inside tk). It says that the models which ran are reported
    above only when some did.
    """
    name = _given_path(result)
    error = result.error or "failed (no reason was recorded)"
    if result.model_request is not None:  # a named model (--model): no script to run by hand
        return ScriptError(f"{name}: {error}", hint=f"rerun with --traceback to see where {name} failed; "
                                                    "its options (--imgsz, --batch-size, --seq-len, "
                                                    "--input-shape) may not suit it")
    ran = f"the models that {name} ran before it failed are reported above; " if result.models else ""
    debug = (f"rerun with `tk benchmark {name} --analyze-only --traceback` to see where it failed"
             if result.uses_turnkeyml_parser else
             f"run `python {name}` (or rerun tk with --traceback) to see where it failed")
    if error.startswith("syntax error"):
        hint = f"fix the syntax error in {name}, then rerun"
    elif "longer than --timeout" in error:
        hint = f"{ran}raise --timeout if {name} needs longer"
    elif result.status == Status.OUT_OF_MEMORY:
        hint = (f"{ran}raise --memory-limit if {name} needs more (it caps the resident memory of the script's "
                f"process and of what it starts), or run `python {name}` and watch its memory")
    elif "killed by SIGKILL" in error:
        hint = (f"{ran}a SIGKILL (from outside, or the out-of-memory killer) leaves no Python stack: "
                f"run `python {name}` and watch its memory")
    elif "process killed by" in error or "before tk finished" in error:
        hint = f"{ran}rerun with --traceback for the Python stack where it ended, or run `python {name}`"
    elif result.exit_code == 2 and script_args:
        hint = f"{name} rejected --script-args {script_args!r}: pass arguments that it accepts"
    elif result.exit_code is not None:
        hint = f"{ran}{name} called sys.exit({result.exit_code})"
    else:
        hint = f"{ran}{debug}"
    return ScriptError(f"{name}: {error}", hint=hint)


def run_failure(result: ScriptResult, hint: str) -> TkError:
    """The error of an input that the run, not the script, failed (tk itself failed, a Dask worker
    could not run it): the input as the user gave it, the record's one-line reason, and ``hint``."""
    return TkError(f"{_given_path(result)}: {result.error}", hint=hint)


def input_error(result: ScriptResult, error: TkError | None, script_args: str = "") -> TkError | None:
    """The error to report for an input that ended: ``error`` when the run gave one (a ``::HASH`` that
    matched nothing, a problem with the input, a worker that could not run it), else the script's
    own failure (:func:`script_failure`) when it failed, else ``None``. Serial and Dask runs alike."""
    if error is None and result.status in (Status.ERROR, Status.OUT_OF_MEMORY):
        return script_failure(result, script_args)
    return error


def script_line(fault_dump: str | None, script: str) -> str:
    """`` at line N`` of ``script`` in a faulthandler dump (innermost frame of the script), else ``""``."""
    if not fault_dump:
        return ""
    lines = re.findall(r'File "([^"]+)", line (\d+)', fault_dump)
    for filename, line in lines:  # faulthandler lists the innermost frame first
        if os.path.abspath(filename) == os.path.abspath(script):
            return f" at line {line}"
    return ""

