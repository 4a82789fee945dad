"""Views: pictures, explorers and pages drawn from the typed records (never computed here).

- :mod:`turnkey_like.views.graph`: the dataflow graph as DOT/SVG/PNG/PDF (``--visualize``).
- :mod:`turnkey_like.views.model_explorer`: the graph in Google's Model Explorer (``tk view``).
- :mod:`turnkey_like.views.roofline_plot`: the roofline plot (``--roofline``).
- :mod:`turnkey_like.views.html`: the HTML report (``--html``); :mod:`turnkey_like.views.compare`
  computes the comparison it and ``tk compare`` show.

Terminal text (``tk explore``, ``tk compare``'s table, ...) is drawn in :mod:`turnkey_like.report`;
views may use its shared rows (``report.breakdown``, ``report.compare``, ``report.text``).

Heavy packages (graphviz, matplotlib, model_explorer) are imported by the module that uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from turnkey_like.records import Characterization, Invocation, ModelInfo, ScriptResult, Status


def output_path_for(path: str | Path, inv_hash: str, several: bool) -> Path:
    """The file one invocation's view is written to: ``path`` itself, or with several invocations in
    the run, ``path`` with ``_<invocation hash>`` before its extension.

    ``output_path_for("out/graph.svg", "c69b7dea", True) == Path("out/graph_c69b7dea.svg")``; the same
    rule names the files of ``--visualize``, ``--roofline`` and ``--html``.
    """
    path = Path(path)
    if not several:
        return path
    return path.with_name(f"{path.stem}_{inv_hash}{path.suffix}")


def call_label(model_name: str, class_name: str, script: str, inv_hash: str) -> str:
    """``name (Class) script.py::hash``: the title of one invocation's graph, in ``--visualize``
    pictures and in the HTML report alike (so both draw the same DOT source); ``script`` is the
    input's path (its file name is shown) or a ``--model`` name."""
    return f"{model_name} ({class_name}) {Path(script).name}::{inv_hash}"


class CharacterizedCall(NamedTuple):
    """One invocation of a run whose characterization succeeded, with what names it.

    Attributes:
        script: the input's record; model: the model's; inv: the invocation's.
        char: ``inv.characterization.result``.
    """

    script: ScriptResult
    model: ModelInfo
    inv: Invocation
    char: Characterization

    @property
    def label(self) -> str:
        """``name (Class) script.py::hash`` (:func:`call_label`): what a picture's title and a listing show."""
        return call_label(self.model.name, self.model.class_name, self.script.path, self.inv.hash)


def characterized(results: list[ScriptResult]) -> list[CharacterizedCall]:
    """Every invocation in ``results`` with a successful characterization, in run order (each
    script's models depth first, as ``ScriptResult.invocations`` walks them)."""
    return [CharacterizedCall(script, model, inv, inv.characterization.result)
            for script in results for model, inv in script.invocations()
            if inv.characterization.status == Status.SUCCESSFUL and inv.characterization.result is not None]
