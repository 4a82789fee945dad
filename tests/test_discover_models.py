"""`tk discover-models`: the real CLI in a child process, real torchvision models built offline.

Expected numbers come from outside tk: parameter counts from the torchvision models built here, MACs
from torchvision's own weight metadata (``weights.meta["_ops"]``: GFLOPS in torchvision's wording,
counted as multiply-accumulates, which is what tk calls MACs), and a tiny factory model whose count
is derived by hand.
"""

from __future__ import annotations

import textwrap

import pytest
from conftest import run_tk

from turnkey_like.records import LADDER, ModelSurvey, Status, SurveyReport, decode, survey_counts

FX, NONSTRICT, STRICT = LADDER


def _ok(out) -> None:
    assert out.returncode == 0, f"tk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"


def _torchvision_facts(name: str) -> tuple[int, float]:
    """(parameters of the model built here, torchvision's published GMACs for it)."""
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return sum(p.numel() for p in model.parameters()), weights.meta["_ops"]


def test_test_model_prints_every_rung(tmp_path):
    out = run_tk("discover-models", "--test-model", "resnet18", "--cache-dir", str(tmp_path),
                 "--json", str(tmp_path / "resnet18.json"))
    _ok(out)
    for step in ("build", "run (counted call)", *LADDER):
        line = next((ln for ln in out.stdout.splitlines() if ln.strip().startswith(step)), None)
        assert line is not None and " ok " in line, f"no ok line for {step}:\n{out.stdout}"
    assert "resnet18: traced by fx.symbolic_trace" in out.stdout
    survey = decode((tmp_path / "resnet18.json").read_bytes(), ModelSurvey)
    assert [a.method for a in survey.attempts] == list(LADDER)  # --test-model tries every rung
    assert all(a.ok for a in survey.attempts)
    assert survey.trace_method == FX and survey.node_count > 0
    params, gmacs = _torchvision_facts("resnet18")
    assert survey.params == params
    assert survey.macs == pytest.approx(gmacs * 1e9, rel=0.01)
    assert survey.inputs["args[0]"].shape == [1, 3, 224, 224]


@pytest.fixture(scope="module")
def squeezenet_cache(tmp_path_factory):
    """A cache after one real survey of torchvision's squeezenet family, with --export and 2 workers;
    returns (cache folder, the --json report, the run's stdout)."""
    cache = tmp_path_factory.mktemp("discover")
    report_path = cache / "first.json"
    out = run_tk("discover-models", "--family", "squeezenet", "--workers", "2", "--export",
                 "--cache-dir", str(cache), "--json", str(report_path))
    _ok(out)
    return cache, decode(report_path.read_bytes(), SurveyReport), out.stdout


def test_family_subset_records(squeezenet_cache):
    _, report, stdout = squeezenet_cache
    assert [m.name for m in report.models] == ["squeezenet1_0", "squeezenet1_1"]
    assert report.available > 100 and report.skipped == []
    for m in report.models:
        params, gmacs = _torchvision_facts(m.name)
        assert (m.status, m.family, m.cached) == (Status.SUCCESSFUL, "squeezenet", False)
        assert m.params == params
        assert m.macs == pytest.approx(gmacs * 1e9, rel=0.01)
        assert m.trace_method == FX and [a.method for a in m.attempts] == [FX]
        assert m.export is not None and m.export.status is Status.SUCCESSFUL and m.export.faithful
        assert m.duration_s > 0 and set(m.durations) == {"build", "run", "trace", "export"}
    assert report.counts == survey_counts(report.models, report.skipped)
    assert report.counts["traced"] == report.counts[FX] == report.counts["exported"] == 2
    for text in ("Models by family", "squeezenet1_0", "squeezenet1_1", "Skipped: none"):
        assert text in stdout


def test_second_run_is_served_from_the_cache_and_refresh_redoes_it(squeezenet_cache):
    cache, first, _ = squeezenet_cache
    out = run_tk("discover-models", "--family", "squeezenet", "--cache-dir", str(cache),
                 "--json", str(cache / "second.json"), "--skip-patterns", "1_1",
                 env={"PYTHONPROFILEIMPORTTIME": "1"})  # every import, on stderr
    _ok(out)
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "turnkey_like.cli" in imported  # the listing is real
    assert not {m for m in imported if m.startswith("torchvision.models")}  # no model built or loaded
    second = decode((cache / "second.json").read_bytes(), SurveyReport)
    assert [m.name for m in second.models] == ["squeezenet1_0"]
    assert [(s.name, s.reason) for s in second.skipped] == [("squeezenet1_1", "matches --skip-patterns '1_1'")]
    assert "Skipped (1)" in out.stdout and "matches --skip-patterns" in out.stdout
    cached = second.models[0]
    assert cached.cached and cached.surveyed_at == first.models[0].surveyed_at
    assert second.counts["cached"] == 1

    out = run_tk("discover-models", "--family", "squeezenet1_0", "--refresh", "--cache-dir", str(cache),
                 "--json", str(cache / "third.json"))
    _ok(out)
    third = decode((cache / "third.json").read_bytes(), SurveyReport)
    redone = third.models[0]
    assert third.counts["cached"] == 0 and not redone.cached
    assert redone.surveyed_at >= cached.surveyed_at and redone.duration_s != cached.duration_s
    assert redone.export is None  # --refresh without --export: surveyed again, not exported


def test_generate_code_compiles_and_builds(squeezenet_cache):
    import torch

    cache, report, _ = squeezenet_cache
    out = run_tk("discover-models", "--family", "squeezenet", "--generate-code", "--cache-dir", str(cache))
    _ok(out)
    code = compile(out.stdout, "registry.py", "exec")
    namespace: dict = {}
    exec(code, namespace)
    registry = namespace["MODEL_REGISTRY"]
    assert list(registry) == [m.name for m in report.models if m.traced]
    assert "    # squeezenet" in out.stdout
    for m in report.models:
        model = registry[m.name]()
        assert isinstance(model, torch.nn.Module) and type(model).__name__ == m.model_class
        assert sum(p.numel() for p in model.parameters()) == m.params


FACTORIES = textwrap.dedent('''
    import os
    import signal
    import time

    import torch


    def tiny():
        """Linear(8, 4) then ReLU on [2, 8]: 2*8*4 = 64 MACs, 8*4 + 4 = 36 parameters."""
        return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()), (torch.randn(2, 8),)


    def crashes():
        os.kill(os.getpid(), signal.SIGSEGV)


    class HangsWhenTraced(torch.nn.Sequential):
        """Runs eagerly; hangs when torch.fx traces it (its input is then a Proxy)."""

        def forward(self, x):
            if isinstance(x, torch.fx.Proxy):
                time.sleep(3600)
            return super().forward(x)


    def hangs_when_traced():
        return HangsWhenTraced(torch.nn.Linear(8, 4)), (torch.randn(2, 8),)


    class HangsWhenExported(torch.nn.Sequential):
        """Runs eagerly and under torch.fx; hangs when torch.export traces it."""

        def forward(self, x):
            if torch.compiler.is_exporting():
                time.sleep(3600)
            return super().forward(x)


    def hangs_when_exported():
        return HangsWhenExported(torch.nn.Linear(8, 4)), (torch.randn(2, 8),)


    class Raises(torch.nn.Module):
        def forward(self, x):
            raise ValueError("no forward for you")


    def raises():
        return Raises(), (torch.randn(2, 8),)
''')


def test_crash_hang_and_failures_are_recorded_and_the_rest_go_on(tmp_path):
    factories = tmp_path / "factories.py"
    factories.write_text(FACTORIES)
    names = [f"{factories}:{n}" for n in ("crashes", "hangs_when_traced", "tiny", "raises", "missing")]
    out = run_tk("discover-models", "--source", "factory", "--models", *names, "--timeout", "20", "--workers", "2",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "r.json"))
    _ok(out)
    report = decode((tmp_path / "r.json").read_bytes(), SurveyReport)
    by = {m.name.rsplit(":", 1)[1]: m for m in report.models}
    assert by["crashes"].status is Status.KILLED and "SIGSEGV" in by["crashes"].error
    hangs = by["hangs_when_traced"]  # what the child found before it hung is kept, and where it hung
    assert (hangs.status, hangs.failed_step, hangs.macs, hangs.params) == (Status.TIMEOUT, FX, 64, 36)
    assert hangs.error == "timed out after 20 s (child killed) during fx.symbolic_trace" and hangs.duration_s >= 20
    assert hangs.trace_method == "not traced" and hangs.attempts == []
    assert (by["tiny"].status, by["tiny"].trace_method, by["tiny"].macs, by["tiny"].params) == (
        Status.SUCCESSFUL, FX, 64, 36)
    raises = by["raises"]
    assert (raises.status, raises.failed_step) == (Status.ERROR, "run")
    assert "no forward for you" in raises.error
    assert raises.trace_method == "none" and len(raises.attempts) == len(LADDER)  # the ladder was still walked
    assert (by["missing"].status, by["missing"].failed_step) == (Status.ERROR, "build")
    assert "no attribute missing" in by["missing"].error
    counts = report.counts
    assert (counts["killed"], counts["timeout"], counts["run_failed"], counts["build_failed"], counts["traced"]) == (
        1, 1, 1, 1, 1)
    assert "Failures (4)" in out.stdout and "SIGSEGV" in out.stdout


def test_test_model_that_traced_exits_0_when_a_later_rung_hangs(tmp_path):
    """``--test-model`` tries every rung. A model that FX traces and whose ``torch.export`` then hangs
    (as mamba's strict export ran past the limit) built, ran and traced: exit 0, the hung rung is
    reported as that rung's failure, and the rungs after it as not tried. A model that hangs before
    any rung traced is the model's failure (exit 1)."""
    factories = tmp_path / "factories.py"
    factories.write_text(FACTORIES)
    out = run_tk("discover-models", "--source", "factory", "--test-model", f"{factories}:hangs_when_exported",
                 "--timeout", "10", "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "s.json"))
    _ok(out)
    survey = decode((tmp_path / "s.json").read_bytes(), ModelSurvey)
    assert (survey.status, survey.trace_method, survey.macs, survey.params) == (Status.SUCCESSFUL, FX, 64, 36)
    assert [(a.method, a.ok) for a in survey.attempts] == [(FX, True), (NONSTRICT, False)]
    assert survey.attempts[1].error == "timeout: timed out after 10 s (child killed)"
    assert survey.failed_step is None and survey.error is None
    assert any(note.startswith(f"{NONSTRICT} did not end (timed out after 10 s") for note in survey.notes)
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip().startswith(LADDER)}
    assert " ok " in rows[FX] and "timed out after 10 s" in rows[NONSTRICT] and "not tried" in rows[STRICT]
    assert f"{factories}:hangs_when_exported: traced by {FX}" in out.stdout

    out = run_tk("discover-models", "--source", "factory", "--test-model", f"{factories}:hangs_when_traced",
                 "--timeout", "10", "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "h.json"))
    assert out.returncode == 1, out.stderr
    hung = decode((tmp_path / "h.json").read_bytes(), ModelSurvey)
    assert (hung.status, hung.failed_step, hung.trace_method) == (Status.TIMEOUT, FX, "not traced")


def test_unknown_family_or_model_is_one_line_error(tmp_path):
    out = run_tk("discover-models", "--family", "resnett", "--cache-dir", str(tmp_path))
    assert out.returncode == 1
    assert "error: no torchvision model's name or family contains 'resnett'" in out.stderr
    assert "hint:" in out.stderr and "Traceback" not in out.stderr
    out = run_tk("discover-models", "--test-model", "resnett", "--cache-dir", str(tmp_path))
    assert out.returncode == 1 and out.stdout == ""
    assert "error: unknown torchvision model 'resnett'" in out.stderr and "resnet18" in out.stderr


@pytest.mark.slow
def test_every_torchvision_kind_builds_runs_and_is_recorded(tmp_path):
    """One detection, segmentation, video, optical-flow and quantized model: each builds and runs,
    and whichever rungs fail say why."""
    names = ["fasterrcnn_mobilenet_v3_large_320_fpn", "lraspp_mobilenet_v3_large", "r3d_18", "raft_small",
             "quantized_mobilenet_v3_large"]
    out = run_tk("discover-models", "--models", *names, "--workers", "2", "--timeout", "300",
                 "--cache-dir", str(tmp_path), "--json", str(tmp_path / "r.json"))
    _ok(out)
    report = decode((tmp_path / "r.json").read_bytes(), SurveyReport)
    for m in report.models:
        assert m.status is Status.SUCCESSFUL, (m.name, m.error)
        assert m.macs and m.macs > 0 or m.uncounted_ops, m.name
        for attempt in m.attempts:
            assert attempt.ok or ":" in (attempt.error or ""), (m.name, attempt)  # "Type: first line"
    assert {m.family for m in report.models} == {"detection.faster_rcnn", "segmentation.lraspp", "video.resnet",
                                                 "optical_flow.raft", "quantization.mobilenetv3"}


# --------------------------------------------------------------------------------------------------
# Shallow copies of models built on meta (transformers default configs)
# --------------------------------------------------------------------------------------------------

def _meta(name: str):
    from turnkey_like.records import ModelRequest
    from turnkey_like.zoo import load

    return load(ModelRequest(name=name, no_weights=True))


def test_shallow_copy_keeps_every_kind_of_layer():
    """Each cut is derived from the config's own layer pattern: Gemma 3 interleaves sliding and
    full attention (the first full-attention layer ends the prefix), DeepSeek-V3 has
    ``first_k_dense_replace`` dense layers before its mixture-of-experts layers, Llama has one kind."""
    from turnkey_like.zoo import shallow

    gemma = _meta("gemma3_text")
    types = gemma.model.config.layer_types
    copy, cuts = shallow(gemma)
    kept = types.index("full_attention") + 1
    assert 1 < kept < len(types) and cuts == {"num_hidden_layers": (kept, len(types))}
    assert copy.model.config.layer_types == types[:kept] and len(copy.model.layers) == kept
    assert copy.on_meta and {k: v.shape for k, v in copy.kwargs.items()} == {k: v.shape for k, v in gemma.kwargs.items()}

    deepseek = _meta("deepseek_v3")
    dense = deepseek.model.config.first_k_dense_replace
    copy, cuts = shallow(deepseek)
    assert cuts == {"num_hidden_layers": (dense + 1, deepseek.model.config.num_hidden_layers)}
    kinds = [type(layer.mlp).__name__ for layer in copy.model.layers]
    assert kinds[:dense] == [type(deepseek.model.layers[0].mlp).__name__] * dense
    assert kinds[dense] == type(deepseek.model.layers[-1].mlp).__name__ != kinds[0]

    llama = _meta("llama")
    assert shallow(llama)[1] == {"num_hidden_layers": (2, llama.model.config.num_hidden_layers)}

    # Mistral Large 4: a dense layer then MoE, RoPE left out every 4th layer, and kv_source_layers,
    # a map from each layer to the layer whose keys and values it reads (its own, [0, 1, 2, ...])
    mistral = _meta("mistral_large4_text")
    c = mistral.model.config
    assert c.kv_source_layers == list(range(c.num_hidden_layers))
    kept = max(c.mlp_layer_types.index("sparse"), c.no_rope_layers.index(0)) + 1
    copy, cuts = shallow(mistral)
    assert cuts == {"num_hidden_layers": (kept, c.num_hidden_layers)} and kept < c.num_hidden_layers
    assert copy.model.config.kv_source_layers == list(range(kept))


def test_survey_traces_a_shallow_copy_and_counts_the_whole_model():
    """Llama's default (6.6e9 parameters, built on meta): the ladder walks a 2-layer copy; the MACs
    and parameters are the full model's, and the full-depth graph grows by the same node count for
    each of the 30 identical layers the copy left out."""
    from turnkey_like.pipeline.survey import survey_model
    from turnkey_like.zoo.survey import reusable

    cut = survey_model("llama", "transformers")
    full = survey_model("llama", "transformers", full_depth=True)
    assert cut.on_meta and cut.traced_depth == {"num_hidden_layers": (2, 32)} and not full.traced_depth
    assert cut.trace_method == full.trace_method == NONSTRICT
    assert cut.macs == full.macs and cut.params == full.params > 6e9
    per_layer, rest = divmod(full.node_count - cut.node_count, 30)
    assert per_layer > 0 and rest == 0
    assert any(n.startswith("traced a shallow copy (num_hidden_layers 2 of 32") for n in cut.notes)
    assert reusable(cut, export=False, timeout_s=300) and not reusable(cut, export=False, timeout_s=300, full_depth=True)
    assert reusable(full, export=False, timeout_s=300, full_depth=True)


def test_shallow_copy_keeps_a_shared_layer_twice():
    """Zamba's hybrid layers share one transformer block (tied to the first hybrid layer): a copy
    with one hybrid layer does not build, so each kind is kept twice, up to the second hybrid layer."""
    from turnkey_like.zoo import shallow

    zamba = _meta("zamba")
    types = zamba.model.config.layers_block_type
    second_hybrid = [i for i, t in enumerate(types) if t == "hybrid"][1]
    copy, cuts = shallow(zamba)
    assert cuts == {"num_hidden_layers": (second_hybrid + 1, len(types))}
    assert copy.model.config.layers_block_type == types[:second_hybrid + 1]


def test_a_source_registered_in_process_is_surveyed_and_its_code_generated(monkeypatch, tmp_path):
    """``tests/linear_source.py`` (``linear-IxO`` = ``torch.nn.Linear(I, O)``), registered with one
    registry line and no other edit: the survey lists it, surveys each model in its own child, counts
    them as derived by hand (on ``x`` [1, I]: I * O MACs, I * O + O parameters), writes constructors
    that build them, and refuses a name outside its closed list at once."""
    import torch

    from turnkey_like.corpus import survey as dm
    from turnkey_like.errors import InputError
    from turnkey_like.zoo import sources
    from turnkey_like.zoo.survey import generate_code

    monkeypatch.setitem(sources.SOURCES, "linear", "linear_source")
    report = dm.discover("linear", cache_dir=tmp_path, timeout_s=120)
    assert [m.name for m in report.models] == ["linear-16x8", "linear-4x2", "linear-8x4"] and report.available == 3
    for m in report.models:
        i, o = (int(d) for d in m.name.removeprefix("linear-").split("x"))
        assert (m.status, m.source, m.family, m.trace_method) == (Status.SUCCESSFUL, "linear", "linear", FX), m.error
        assert (m.macs, m.params) == (i * o, i * o + o)
        assert (m.constructor, m.imports) == (f"lambda: torch.nn.Linear({i}, {o})", ["import torch"])
    namespace: dict = {}
    exec(compile(generate_code(report), "registry.py", "exec"), namespace)
    built = namespace["MODEL_REGISTRY"]["linear-8x4"]()
    assert isinstance(built, torch.nn.Linear) and (built.in_features, built.out_features) == (8, 4)
    with pytest.raises(InputError, match="unknown linear model 'linear-3x3'"):
        dm.try_model("linear-3x3", "linear", cache_dir=tmp_path)
