"""The exit code reflects this run only (docs/exit_codes.md): a failure kept from an earlier run is
shown, never a failure of a rerun that did not attempt that stage. Real ``tk`` processes on a real
script whose ONNX export always fails."""

from __future__ import annotations

from conftest import run_tk
from turnkey_like.records import RunReport, Status, decode

#: Runs eagerly (characterization counts it); refuses every way tk exports it (fake tensors under
#: torch.export, tracing for the TorchScript exporter, compiling), so its build always ends ``error``.
NO_EXPORT = """\
import torch
from torch._subclasses.fake_tensor import FakeTensor


class NoExport(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if isinstance(x, FakeTensor) or torch.jit.is_tracing() or torch.compiler.is_compiling():
            raise RuntimeError("this model refuses ONNX export")
        return self.fc(x)


model = NoExport()
model(torch.rand(1, 4))
"""


def _run(tmp_path, *flags: str):
    out_json = tmp_path / "run.json"
    run = run_tk("benchmark", str(tmp_path / "no_export.py"), *flags, "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(out_json))
    report = decode(out_json.read_bytes(), RunReport)
    (model,) = report.results[0].models
    return run, report, model.invocations[0]


def test_a_kept_earlier_failure_does_not_fail_a_rerun_that_skips_its_stage(tmp_path):
    """Before: the ``--analyze-only`` rerun exited 1 because of the kept build error, forever."""
    (tmp_path / "no_export.py").write_text(NO_EXPORT)

    run, report, inv = _run(tmp_path, "--build-only")
    assert run.returncode == 1 == report.exit_code, run.stdout  # this run's build failed
    assert inv.build.status == Status.ERROR and "refuses ONNX export" in inv.build.error
    failed_run = inv.build.run_id

    run, report, inv = _run(tmp_path, "--analyze-only")
    assert run.returncode == 0 == report.exit_code, run.stdout + run.stderr
    assert inv.characterization.status == Status.SUCCESSFUL
    assert inv.build.status == Status.ERROR and inv.build.reason == "kept from an earlier run"
    assert inv.build.run_id == failed_run  # shown, with the run it came from
    assert "refuses ONNX export" in run.stdout  # the report still shows it

    run, report, inv = _run(tmp_path, "--build-only")  # attempted again by this run: a failure again
    assert run.returncode == 1 == report.exit_code
    assert inv.build.status == Status.ERROR and inv.build.run_id != failed_run
