"""The zoo loader: real models built offline from names, their synthesized inputs, and the errors.

Every model is built for real (random weights, no network) at its smallest variant or a 1-2 layer
config, with small inputs, and runs forward on the inputs the loader made.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_tk

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest, RunReport, decode, encode
from turnkey_like.zoo import (
    META_THRESHOLD_PARAMS,
    Source,
    closest_names,
    expand_sweep,
    forward,
    list_names,
    load,
    model_source,
    source_names,
    source_packages,
    stem,
)
from turnkey_like.zoo import sources as zoo_sources
from turnkey_like.calls import tensor_leaves


def run(request: ModelRequest):
    """Load ``request`` and run it; ``(loaded, outputs)``."""
    loaded = load(request)
    return loaded, forward(loaded)


def leaves(loaded):
    return tensor_leaves((loaded.args, loaded.kwargs))


# --------------------------------------------------------------------------------------------------
# Names and sources
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, source", [
    ("resnet50", "torchvision"),
    ("raft_small", "torchvision"),
    ("bert", "transformers"),
    ("llama", "transformers"),
    ("bert-base-uncased", "transformers"),
    ("facebook/detr-resnet-50", "transformers"),
    ("timm/resnet18", "timm"),
    ("yolov8n.yaml", "ultralytics"),
    ("weights/best.pt", "ultralytics"),
    ("mypkg.models:build", "factory"),
    ("models/net.py:build", "factory"),
])
def test_model_source_rules(name, source):
    assert model_source(name) == source


def test_a_folder_with_config_json_is_transformers(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert model_source(str(tmp_path)) == "transformers"
    assert model_source(str(tmp_path / "missing")) == "transformers"  # then read as a hub name


def test_list_names_of_every_source():
    assert "fasterrcnn_mobilenet_v3_large_320_fpn" in list_names("torchvision")
    types = list_names("transformers")
    assert {"bert", "gpt2", "t5", "whisper", "vit", "detr", "clip", "llama"} <= set(types)
    yolo = list_names("ultralytics")
    assert {"yolov8n.yaml", "yolo11n-seg.yaml", "yolov10b.yaml", "rtdetr-l.yaml"} <= set(yolo)
    assert "yolov10bb.yaml" not in yolo
    assert "timm/resnet18" in list_names("timm")
    assert list_names("factory") == []
    with pytest.raises(InputError, match="unknown model source"):
        list_names("keras")


def test_every_ultralytics_name_is_a_definition_ultralytics_reads():
    from ultralytics.nn.tasks import yaml_model_load

    for name in list_names("ultralytics"):
        assert yaml_model_load(name)["backbone"], name


def test_unknown_name_gets_the_closest_names(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as info:
        load(ModelRequest(name="resnet5"))
    assert "unknown model 'resnet5'" in str(info.value)
    assert "resnet50" in info.value.hint.split(": ", 1)[1].split(", ")
    with pytest.raises(InputError) as info:
        load(ModelRequest(name="yolov8z.yaml"))
    assert "yolov8n.yaml" in info.value.hint
    with pytest.raises(InputError) as info:
        load(ModelRequest(name="timm/resnett18"))
    assert "timm/resnet18" in info.value.hint


# --------------------------------------------------------------------------------------------------
# Sources are plug-ins: one module and one registry line
# --------------------------------------------------------------------------------------------------

_METHODS = {"names": 0, "claims": 1, "load": 1, "family": 1, "constructor": 2, "stem": 1}
"""The protocol's functions and how many arguments each takes."""


def test_every_registered_source_implements_the_protocol():
    import inspect

    for key in zoo_sources.SOURCES:
        source = zoo_sources.get(key)
        assert isinstance(source, Source), f"{key}: {zoo_sources.SOURCES[key]} misses a protocol member"
        assert source.name == key
        assert isinstance(source.listed, bool) and isinstance(source.closed_list, bool), key
        assert source.package is None or isinstance(source.package, str), key
        assert isinstance(source.priority, int) and isinstance(source.prefix, str), key
        assert source.input_axes and source.input_axes <= zoo_sources.AXES, key
        for method, arity in _METHODS.items():
            assert len(inspect.signature(getattr(source, method)).parameters) == arity, (key, method)
    priorities = [source.priority for source in zoo_sources.registered()]
    assert len(set(priorities)) == len(priorities)  # the claim order is never a tie
    assert zoo_sources.FALLBACK in zoo_sources.SOURCES
    assert [s.name for s in zoo_sources.by_priority()] == ["factory", "timm", "ultralytics", "transformers",
                                                           "torchvision"]  # the documented order


def test_every_source_appears_where_users_see_sources():
    """``--source`` choices and the unknown-source hint, ``tk version``'s packages, and ``--model``
    suggestions: each registered source is in each (its first listed name suggested for itself)."""
    with pytest.raises(InputError) as info:
        load(ModelRequest(name="x", source="keras"))
    for source in zoo_sources.registered():
        assert source.name in source_names() and source.name in info.value.hint
        if source.package:
            assert source.package in source_packages()
        assert (source.name in zoo_sources.listed_names()) == source.listed
        try:
            listed = source.names()
        except InputError:  # its package is not installed
            continue
        assert listed == sorted(listed) and (listed or not source.listed), source.name
        if listed:
            assert listed[0] in closest_names(listed[0]), source.name


def test_walking_the_registry_imports_no_torch_nor_any_source_library():
    """What ``tk version``, the ``--source`` choices and a cached survey read imports none of them."""
    import subprocess
    import sys

    code = ("import sys; from turnkey_like import zoo; from turnkey_like.zoo import sources, survey; "
            "[s.listed for s in sources.registered()]; zoo.source_packages(); survey.library_versions(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'transformers', 'timm', 'ultralytics') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture
def linear_source(monkeypatch):
    """``tests/linear_source.py`` registered as source ``linear`` for one test (one registry line)."""
    monkeypatch.setitem(zoo_sources.SOURCES, "linear", "linear_source")
    return zoo_sources.get("linear")


def test_a_source_registered_in_process_is_used_everywhere(linear_source):
    assert isinstance(linear_source, Source)
    assert model_source("linear-8x4") == "linear"
    assert (model_source("resnet50"), model_source("linear")) == ("torchvision", "transformers")  # others as before
    loaded, out = run(ModelRequest(name="linear-8x4", batch_size=3))
    assert isinstance(loaded.model, torch.nn.Linear)
    assert (loaded.model.in_features, loaded.model.out_features) == (8, 4)
    assert loaded.request.source == "linear" and tuple(out.shape) == (3, 4)
    assert stem(ModelRequest(name="linear-8x4")) == "fc8x4_linear"
    assert list_names("linear") == ["linear-16x8", "linear-4x2", "linear-8x4"]
    assert closest_names("linear-8x5")[0] == "linear-8x4"
    points = expand_sweep(ModelRequest(name="linear-8x4"), [1, 2], [128, 512], [224, 320])
    assert [(p.batch_size, p.seq_len, p.imgsz) for p in points] == [(1, None, None), (2, None, None)]
    assert "linear" in source_names() and "linear" in zoo_sources.listed_names()
    assert source_packages() == ["torchvision", "transformers", "ultralytics", "timm"]  # it names no package
    with pytest.raises(InputError) as info:
        load(ModelRequest(name="x", source="keras"))
    assert info.value.hint.endswith("factory, linear")


def test_tk_version_prints_every_installed_source_package():
    from turnkey_like.system import package_version

    lines = run_tk("version").stdout.splitlines()
    for package in source_packages():
        version = package_version(package)
        assert version is None or f"  {package} {version}" in lines, package


def test_discover_models_source_choices_follow_the_registry(monkeypatch):
    from turnkey_like.cli import build_parser

    build_parser()  # every module the CLI reads is imported before the source is registered
    monkeypatch.setitem(zoo_sources.SOURCES, "linear", "linear_source")
    assert build_parser().parse_args(["discover-models", "--source", "linear"]).source == "linear"


class _NetworkLog:
    """The network calls this process makes while active, seen through Python's audit events
    (``socket.connect`` and ``socket.getaddrinfo``, PEP 578): what was attempted, not how long it
    took. Audit hooks cannot be removed, so one hook is installed for the session and records only
    while a ``with`` block is open."""

    calls: list | None = None
    _installed = False

    def __enter__(self) -> list:
        if not _NetworkLog._installed:
            import sys

            def hook(event, args):
                if _NetworkLog.calls is not None and event in ("socket.connect", "socket.getaddrinfo"):
                    _NetworkLog.calls.append((event, args[1] if event == "socket.connect" else args[:2]))

            sys.addaudithook(hook)
            _NetworkLog._installed = True
        _NetworkLog.calls = []
        return _NetworkLog.calls

    def __exit__(self, *exc) -> None:
        _NetworkLog.calls = None


def test_offline_hub_name_fails_at_once(monkeypatch, tmp_path):
    """Offline, an uncached hub name fails on its first look, before any network call or retry."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty hub cache
    with _NetworkLog() as calls, pytest.raises(InputError, match="offline") as info:
        load(ModelRequest(name="tk-tests/no-such-model"))
    assert calls == []
    assert "\n" not in str(info.value)


def test_unreachable_hub_fails_at_once_without_retries(monkeypatch):
    """An unreachable hub costs one probe (one lookup, one connect), never huggingface_hub's retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with _NetworkLog() as calls, pytest.raises(InputError, match="unreachable"):
        load(ModelRequest(name="tk-tests/no-such-model"))
    connects = [address for event, address in calls if event == "socket.connect"]
    assert connects == [("127.0.0.1", 9)], calls


# --------------------------------------------------------------------------------------------------
# The front door, offline: a hub name from the local hub cache (real `tk` processes)
# --------------------------------------------------------------------------------------------------

HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _offline_hub(tmp_path: Path) -> dict:
    """A real hub-cache layout under ``tmp_path/hf`` holding one repository, tk-tests/tiny-bert:
    ``hub/models--tk-tests--tiny-bert/refs/main`` names a commit whose snapshot holds the config.json
    transformers' own ``save_pretrained`` writes. Returns the environment of an offline child."""
    from transformers import BertConfig

    hub = tmp_path / "hf" / "hub"
    repo = hub / "models--tk-tests--tiny-bert"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(HUB_COMMIT)
    BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=37).save_pretrained(repo / "snapshots" / HUB_COMMIT)
    return {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}


def test_hub_name_is_read_from_the_local_hub_cache_offline(tmp_path):
    from transformers import BertConfig, BertModel

    env = _offline_hub(tmp_path)
    report = tmp_path / "run.json"
    out = run_tk("profile", "--model", "tk-tests/tiny-bert", "--seq-len", "8", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    (result,) = decode(report.read_bytes(), RunReport).results
    request = result.model_request
    assert (request.name, request.source, request.seq_len) == ("tk-tests/tiny-bert", "transformers", 8)
    (model,) = result.models
    char = model.invocations[0].characterization.result
    # the cached config, not a default BERT: the same parameters as a BertModel built from it
    config = BertConfig.from_pretrained(tmp_path / "hf" / "hub" / "models--tk-tests--tiny-bert" / "snapshots"
                                        / HUB_COMMIT)
    assert char.totals.params == sum(p.numel() for p in BertModel(config).parameters())
    assert "named model from transformers" in out.stdout


def test_uncached_hub_name_fails_at_once_offline(tmp_path):
    """A real ``tk`` offline: one error line, no connection to the hub, no model built or recorded.

    ``HF_ENDPOINT`` points at a socket this test listens on; it must see no connection (a retry
    loop or a download would knock there first)."""
    import socket

    env = _offline_hub(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as hub:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.getsockname()[1]}"
        out = run_tk("profile", "--model", "tk-tests/not-cached", "--hardware", "a100",
                     "--cache-dir", str(tmp_path / "cache"), env=env, timeout=300)  # hang guard: 10x a loaded run
        hub.setblocking(False)
        with pytest.raises(BlockingIOError):
            hub.accept()  # nobody knocked
    assert out.returncode != 0
    errors = [line for line in (out.stdout + out.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1 and "offline" in errors[0] and "tk-tests/not-cached" in errors[0], out.stdout + out.stderr
    assert list((tmp_path / "cache").glob("*not-cached*")) == []  # no build folder: no model was built


def test_stem_is_a_safe_folder_prefix():
    assert stem(ModelRequest(name="resnet50")) == "resnet50_torchvision"
    assert stem(ModelRequest(name="facebook/detr-resnet-50")) == "facebook-detr-resnet-50_transformers"
    assert stem(ModelRequest(name="timm/resnet18")) == "resnet18_timm"
    assert stem(ModelRequest(name="cfg/yolov8n.yaml")) == "yolov8n_ultralytics"
    assert stem(ModelRequest(name="pkg.mod:make")) == "pkg.mod-make_factory"


# --------------------------------------------------------------------------------------------------
# Sweeps and the request record
# --------------------------------------------------------------------------------------------------

def test_expand_sweep_covers_every_combination_in_order():
    points = expand_sweep(ModelRequest(name="bert"), [1, 8], [128, 512], [])
    assert [(p.batch_size, p.seq_len, p.imgsz) for p in points] == [
        (1, 128, None), (1, 512, None), (8, 128, None), (8, 512, None)]
    assert all(p.name == "bert" for p in points)


def test_expand_sweep_drops_an_axis_the_source_never_uses():
    points = expand_sweep(ModelRequest(name="timm/resnet18"), [1, 2], [128, 512], [224, 320])
    assert [(p.batch_size, p.seq_len, p.imgsz) for p in points] == [
        (1, None, 224), (1, None, 320), (2, None, 224), (2, None, 320)]


def test_request_round_trips_through_the_codec():
    request = ModelRequest(name="bert", source="transformers", batch_size=2, seq_len=64,
                           input_shapes={"input_ids": [2, 64]}, model_args={"num_hidden_layers": 2})
    assert decode(encode(request), ModelRequest) == request


# --------------------------------------------------------------------------------------------------
# torchvision: one model of each kind
# --------------------------------------------------------------------------------------------------

def test_detection_takes_a_list_of_images():
    loaded, out = run(ModelRequest(name="fasterrcnn_mobilenet_v3_large_320_fpn", batch_size=2))
    (images,) = loaded.args
    assert isinstance(images, list) and [tuple(i.shape) for i in images] == [(3, 320, 320)] * 2
    assert loaded.request.imgsz == 320  # the model's own resize target
    assert isinstance(out, list) and len(out) == 2 and {"boxes", "labels", "scores"} <= set(out[0])


def test_segmentation_default_size_comes_from_the_weights():
    loaded = load(ModelRequest(name="lraspp_mobilenet_v3_large"))
    assert loaded.request.imgsz == 520 and tuple(loaded.args[0].shape) == (1, 3, 520, 520)
    small, out = run(ModelRequest(name="lraspp_mobilenet_v3_large", imgsz=64))
    assert tuple(out["out"].shape) == (1, 21, 64, 64)


def test_segmentation_builds_the_auxiliary_head_of_the_published_weights():
    """FCN and DeepLabV3 weights carry an auxiliary head that eval runs (an ``aux`` output); a build
    without weights has it too, unless ``model_args`` say ``aux_loss: false``."""
    loaded, out = run(ModelRequest(name="fcn_resnet50", imgsz=64))
    assert set(out) == {"out", "aux"} and loaded.model.aux_classifier is not None
    assert "aux_loss=True: the auxiliary head of the published weights, which eval runs" in loaded.notes
    plain = load(ModelRequest(name="fcn_resnet50", no_weights=True, model_args={"aux_loss": False}))
    assert plain.model.aux_classifier is None and not any("aux_loss" in note for note in plain.notes)
    lraspp = load(ModelRequest(name="lraspp_mobilenet_v3_large", no_weights=True))  # has no auxiliary head
    assert not any("aux_loss" in note for note in lraspp.notes)


def test_video_takes_a_5d_clip():
    loaded, out = run(ModelRequest(name="r3d_18", imgsz=32, seq_len=4))
    assert tuple(loaded.args[0].shape) == (1, 3, 4, 32, 32)
    assert tuple(out.shape) == (1, 400)


@pytest.mark.parametrize("name, minimum", [("swin3d_t", 1), ("s3d", 14), ("mvit_v2_s", 16), ("r3d_18", None)])
def test_video_clips_are_16_frames_by_default(name, minimum):
    """16 frames whatever the weights' minimum clip (``min_temporal_size``) says, as the published figures."""
    from torchvision import models

    assert models.get_model_weights(name).DEFAULT.meta.get("min_temporal_size") == minimum
    loaded = load(ModelRequest(name=name, no_weights=True))
    assert loaded.request.seq_len == 16 and loaded.args[0].shape[2] == 16


def test_a_clip_below_the_weights_minimum_is_refused():
    with pytest.raises(InputError, match="--seq-len 8 is below the model's minimum 14 frames") as info:
        load(ModelRequest(name="s3d", seq_len=8, no_weights=True))
    assert info.value.hint == "use --seq-len 14 or more"
    assert load(ModelRequest(name="s3d", seq_len=14, no_weights=True)).args[0].shape[2] == 14


def test_detection_default_is_the_eval_resize():
    """Keypoint R-CNN trains on sides 640...800 and resizes to 800 in eval: the default input is 800."""
    loaded = load(ModelRequest(name="keypointrcnn_resnet50_fpn", no_weights=True))
    assert loaded.model.transform.min_size == (640, 672, 704, 736, 768, 800)
    assert loaded.request.imgsz == 800 and tuple(loaded.args[0][0].shape) == (3, 800, 800)
    assert load(ModelRequest(name="ssd300_vgg16", no_weights=True)).request.imgsz == 300  # fixed_size


def test_raft_takes_an_image_pair():
    loaded, out = run(ModelRequest(name="raft_small", imgsz=128))
    assert [tuple(a.shape) for a in loaded.args] == [(1, 3, 128, 128)] * 2
    assert tuple(out[-1].shape) == (1, 2, 128, 128)
    assert load(ModelRequest(name="raft_small", no_weights=True)).request.imgsz == 512  # the published figure's
    with pytest.raises(InputError, match="below the model's minimum 128"):
        load(ModelRequest(name="raft_small", imgsz=64))


def test_quantized_model_runs_on_its_engine():
    loaded, out = run(ModelRequest(name="quantized_mobilenet_v3_large", imgsz=64))
    assert any(n.startswith("quantized engine: ") for n in loaded.notes)
    assert torch.backends.quantized.engine in loaded.notes[-1]
    assert tuple(out.shape) == (1, 1000)


def test_classification_default_size_and_builder_args():
    loaded = load(ModelRequest(name="inception_v3", no_weights=True))
    assert loaded.request.imgsz == 299 and loaded.on_meta
    small, out = run(ModelRequest(name="resnet18", imgsz=32, model_args={"num_classes": 10}))
    assert tuple(out.shape) == (1, 10)


def test_unknown_input_name_lists_the_inputs():
    with pytest.raises(InputError, match="takes no input y") as info:
        load(ModelRequest(name="resnet18", input_shapes={"y": [1, 3, 32, 32]}))
    assert "x" in info.value.hint


# --------------------------------------------------------------------------------------------------
# transformers
# --------------------------------------------------------------------------------------------------

TWO_LAYERS = {"num_hidden_layers": 2}


def test_bert_ids_inside_the_vocabulary():
    loaded, out = run(ModelRequest(name="bert", seq_len=16, batch_size=2, model_args=TWO_LAYERS))
    ids = loaded.kwargs["input_ids"]
    assert tuple(ids.shape) == (2, 16) and 0 <= int(ids.min()) and int(ids.max()) < loaded.model.config.vocab_size
    assert torch.equal(loaded.kwargs["attention_mask"], torch.ones(2, 16, dtype=torch.int64))
    assert tuple(out.last_hidden_state.shape) == (2, 16, 768)
    assert "Bert: use_cache=False (no key/value cache outputs)" in loaded.notes


def test_gpt2_seq_len_default_and_cap():
    loaded, out = run(ModelRequest(name="gpt2", seq_len=8, model_args={"n_layer": 2}))
    assert tuple(out.last_hidden_state.shape) == (1, 8, 768)
    assert loaded.request.seq_len == 8 and loaded.request.imgsz is None
    with pytest.raises(InputError, match="above the model's limit 1024"):
        load(ModelRequest(name="gpt2", seq_len=2048, model_args={"n_layer": 1}))


def test_t5_gets_decoder_inputs():
    loaded, out = run(ModelRequest(name="t5", seq_len=8, model_args={"num_layers": 1, "num_decoder_layers": 1}))
    assert set(loaded.kwargs) == {"input_ids", "attention_mask", "decoder_input_ids"}
    assert tuple(out.last_hidden_state.shape) == (1, 8, 512)


def test_whisper_gets_input_features_at_the_encoder_length():
    args = {"encoder_layers": 1, "decoder_layers": 1, "max_source_positions": 50}
    loaded, out = run(ModelRequest(name="whisper", seq_len=4, model_args=args))
    assert tuple(loaded.kwargs["input_features"].shape) == (1, 80, 100)
    assert tuple(loaded.kwargs["decoder_input_ids"].shape) == (1, 4)
    assert tuple(out.last_hidden_state.shape) == (1, 4, 384)


def test_wav2vec2_bert_input_features_take_the_feature_projection_dim():
    # Wav2Vec2-BERT projects each frame with LayerNorm(160) + Linear(160, hidden): its frames are
    # 80 mel bins x 2 stacked (the config's feature_projection_input_dim); 80 would not run.
    args = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
            "output_hidden_size": 64}
    loaded, out = run(ModelRequest(name="wav2vec2-bert", seq_len=32, model_args=args))
    assert loaded.model.config.feature_projection_input_dim == 160
    assert set(loaded.kwargs) == {"input_features"}
    assert tuple(loaded.kwargs["input_features"].shape) == (1, 32, 160)
    assert tuple(out.last_hidden_state.shape) == (1, 32, 64)
    assert loaded.request.seq_len == 32


def test_input_features_shape_follows_the_config_never_the_name():
    from transformers import PretrainedConfig, Speech2TextConfig, Wav2Vec2BertConfig, WhisperConfig

    from turnkey_like.zoo.transformers_models import input_features_shape

    def shape(config):
        return input_features_shape(config, 2, lambda: 16)[0]

    assert shape(Wav2Vec2BertConfig(feature_projection_input_dim=96)) == [2, 16, 96]
    assert shape(WhisperConfig(num_mel_bins=128, max_source_positions=30)) == [2, 128, 60]
    assert shape(Speech2TextConfig(input_feat_per_channel=40, input_channels=2)) == [2, 16, 80]
    # attributes decide, whatever the config class: any config with only mel bins, only a feature size,
    # or neither
    assert shape(PretrainedConfig(num_mel_bins=64)) == [2, 16, 64]
    assert shape(PretrainedConfig(feature_size=40)) == [2, 16, 40]
    assert shape(PretrainedConfig()) == [2, 16, 80]


def test_detr_config_builds_without_a_backbone_download():
    args = {"encoder_layers": 1, "decoder_layers": 1, "num_queries": 5}
    loaded, out = run(ModelRequest(name="detr", imgsz=64, model_args=args))
    assert set(loaded.kwargs) == {"pixel_values"} and tuple(loaded.kwargs["pixel_values"].shape) == (1, 3, 64, 64)
    assert tuple(out.last_hidden_state.shape) == (1, 5, 256)
    backbone = loaded.model.config.backbone_config
    assert getattr(backbone, "use_pretrained_backbone", False) is False


def test_vit_pixel_values_at_the_configured_size():
    loaded = load(ModelRequest(name="vit", model_args=TWO_LAYERS, no_weights=True))
    assert tuple(loaded.kwargs["pixel_values"].shape) == (1, 3, 224, 224) and loaded.request.seq_len is None
    small, out = run(ModelRequest(name="vit", imgsz=32, model_args=TWO_LAYERS))
    assert "ViT: image_size=32 (--imgsz; was 224)" in small.notes
    assert tuple(out.last_hidden_state.shape) == (1, 5, 768)  # (32/16)^2 patches + CLS


def test_dotted_model_args_reach_a_nested_config():
    loaded = load(ModelRequest(name="clip", no_weights=True, model_args={"text_config.num_hidden_layers": 1}))
    assert len(loaded.model.text_model.encoder.layers) == 1
    assert len(loaded.model.vision_model.encoder.layers) == loaded.model.config.vision_config.num_hidden_layers > 1
    with pytest.raises(InputError, match="its config has no attribute 'text_config.nope'"):
        load(ModelRequest(name="clip", no_weights=True, model_args={"text_config.nope": 1}))


def test_patchified_vision_encoder_gets_flattened_patches_and_their_grid():
    """Qwen3-VL's vision tower takes what its processor makes: each image cut into P x P patches,
    T frames stacked, flattened to [h * w, C * T * P * P], with grid_thw [[1, h, w]]; tokens are
    merged in squares of spatial_merge_size, so 64 px at P = 16 gives 4 x 4 patches and 2 x 2 merged."""
    loaded, out = run(ModelRequest(name="qwen3_vl_vision", imgsz=64, model_args={"depth": 1}))
    c = loaded.model.config
    cells = 64 // c.patch_size
    assert tuple(loaded.kwargs["hidden_states"].shape) == (
        cells * cells, c.in_channels * c.temporal_patch_size * c.patch_size ** 2)
    assert loaded.kwargs["grid_thw"].tolist() == [[1, cells, cells]] and loaded.request.imgsz == 64
    assert tuple(out.last_hidden_state.shape) == (cells * cells, c.hidden_size)
    assert tuple(out.pooler_output.shape) == (cells * cells // c.spatial_merge_size ** 2, c.out_hidden_size)


def test_audio_codec_gets_channels_first_samples():
    """EnCodec's config has audio_channels: input_values [B, channels, samples]; it encodes one code
    per hop (the product of its upsampling ratios) and decodes back to the same samples."""
    loaded, out = run(ModelRequest(name="encodec", seq_len=4800))
    c = loaded.model.config
    assert tuple(loaded.kwargs["input_values"].shape) == (1, c.audio_channels, 4800)
    hop = 1
    for ratio in c.upsampling_ratios:
        hop *= ratio
    assert out.audio_codes.shape[-1] == 4800 // hop and tuple(out.audio_values.shape) == (1, c.audio_channels, 4800)


def test_clip_gets_text_and_image():
    loaded = load(ModelRequest(name="clip", seq_len=8, imgsz=32, no_weights=True))
    assert {"input_ids", "pixel_values", "attention_mask"} == set(loaded.kwargs)
    assert loaded.request.seq_len == 8 and loaded.request.imgsz == 32


def test_multi_billion_default_builds_on_meta_and_runs():
    loaded, out = run(ModelRequest(name="llama", seq_len=8))
    assert loaded.on_meta and loaded.request.no_weights is True
    assert any(n.startswith("meta tensors: 6.6") for n in loaded.notes)
    assert sum(p.numel() for p in loaded.model.parameters()) > META_THRESHOLD_PARAMS
    assert tuple(out.last_hidden_state.shape) == (1, 8, 4096)


def test_a_builder_that_fails_on_meta_for_its_own_reason_is_not_built_again():
    from turnkey_like.zoo.base import build_module

    calls = []

    def broken_config():  # a default config that leaves a value unset, as transformers' emu3 does
        calls.append(torch.get_default_device().type)
        layers = None
        return torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(len(layers))])

    def reads_values():  # fine on real tensors, impossible on meta
        calls.append(torch.get_default_device().type)
        return torch.nn.Linear(int(torch.arange(9).sum().item()), 2)

    with pytest.raises(InputError, match="cannot build the model: TypeError: object of type 'NoneType'"):
        build_module(broken_config, ModelRequest(name="broken"), [])
    assert calls == ["meta"]  # its error at once, no second build on real weights
    model, on_meta = build_module(reads_values, ModelRequest(name="reads"), [])
    assert calls[1:] == ["meta", "cpu"] and not on_meta and model.in_features == 36


def test_a_broken_transformers_default_config_fails_at_the_meta_build():
    with pytest.raises(InputError, match="emu3: cannot build the model: AttributeError"):
        load(ModelRequest(name="emu3"))


def test_local_folder_with_config_json(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=37).save_pretrained(tmp_path)
    loaded, out = run(ModelRequest(name=str(tmp_path), seq_len=12))
    assert loaded.request.source == "transformers"
    assert int(loaded.kwargs["input_ids"].max()) < 100
    assert tuple(out.last_hidden_state.shape) == (1, 12, 32)


def test_pretrained_with_no_weights_is_refused():
    with pytest.raises(InputError, match="exclude each other"):
        load(ModelRequest(name="resnet18", pretrained=True, no_weights=True))


# --------------------------------------------------------------------------------------------------
# ultralytics, timm, factories
# --------------------------------------------------------------------------------------------------

def test_yolov8n_from_yaml():
    loaded, out = run(ModelRequest(name="yolov8n.yaml", imgsz=64))
    assert tuple(loaded.args[0].shape) == (1, 3, 64, 64) and loaded.request.seq_len is None
    assert tuple(out[0].shape) == (1, 84, 84)  # 80 classes + 4 box coords; 8x8 + 4x4 + 2x2 anchors
    assert load(ModelRequest(name="yolov8n.yaml", no_weights=False)).request.imgsz == 640


def test_missing_pt_file_is_not_downloaded(tmp_path):
    with pytest.raises(InputError, match="does not download"):
        load(ModelRequest(name=str(tmp_path / "yolov8n.pt")))


def test_pt_file_saved_by_ultralytics_counts_like_its_yaml(tmp_path):
    from ultralytics import YOLO

    checkpoint = tmp_path / "tiny_yolov8n.pt"
    YOLO("yolov8n.yaml", verbose=False).save(checkpoint)  # ultralytics' own checkpoint format
    report = tmp_path / "run.json"
    out = run_tk("profile", "--model", str(checkpoint), "--model", "yolov8n.yaml", "--imgsz", "64",
                 "--hardware", "a100", "--cache-dir", str(tmp_path / "cache"), "--json", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    from_pt, from_yaml = decode(report.read_bytes(), RunReport).results
    assert from_pt.model_request.source == from_yaml.model_request.source == "ultralytics"
    pt_char, yaml_char = (r.models[0].invocations[0].characterization.result for r in (from_pt, from_yaml))
    assert pt_char.totals.macs == yaml_char.totals.macs > 0
    assert pt_char.totals.params == yaml_char.totals.params
    # saved as float16, loaded as float32 (ultralytics' loader), like the yaml build
    assert pt_char.dtype == yaml_char.dtype == "float32"


class _WritesAFile:
    """Unpickling it opens (creates) ``path``: the harmless stand-in for a pickle that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_pt_file_is_unpickled_only_through_ultralytics_allow_list(tmp_path):
    marker = tmp_path / "ran"
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": _WritesAFile(marker)}, checkpoint)
    with pytest.raises(InputError, match="cannot load the checkpoint") as info:
        load(ModelRequest(name=str(checkpoint)))
    assert "\n" not in str(info.value)
    assert not marker.exists()  # ultralytics' default (unrestricted) loading would have created it


def test_timm_input_from_the_pretrained_config():
    loaded, out = run(ModelRequest(name="timm/test_vit"))
    assert tuple(loaded.args[0].shape) == (1, 3, 160, 160)  # test_vit's pretrained_cfg input_size
    small, out = run(ModelRequest(name="timm/resnet18", imgsz=32, batch_size=2))
    assert tuple(out.shape) == (2, 1000)


FACTORY = textwrap.dedent('''
    import torch

    def mlp(width=8):
        return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))

    def with_inputs():
        return mlp(), (torch.zeros(3, 4),)
''')


def test_module_factory(tmp_path, monkeypatch):
    (tmp_path / "tk_zoo_factory.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    loaded, out = run(ModelRequest(name="tk_zoo_factory:mlp", model_args={"width": 16},
                                   input_shapes={"input": [5, 4]}))
    assert loaded.request.source == "factory" and loaded.model[0].out_features == 16
    assert tuple(out.shape) == (5, 2)
    loaded, out = run(ModelRequest(name="tk_zoo_factory:with_inputs"))
    assert tuple(out.shape) == (3, 2)
    with pytest.raises(InputError, match="without example inputs"):
        load(ModelRequest(name="tk_zoo_factory:mlp"))
    with pytest.raises(InputError, match="has no attribute nope"):
        load(ModelRequest(name="tk_zoo_factory:nope"))
    loaded, out = run(ModelRequest(name=f"{tmp_path / 'tk_zoo_factory.py'}:with_inputs"))
    assert tuple(out.shape) == (3, 2)


# --------------------------------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("request_", [
    ModelRequest(name="bert", seq_len=8, model_args={"num_hidden_layers": 1}),
    ModelRequest(name="raft_small", imgsz=128),
], ids=["bert", "raft_small"])
def test_same_seed_same_inputs_and_outputs(request_):
    first, second = load(request_), load(request_)
    assert all(torch.equal(a, b) for a, b in zip(leaves(first), leaves(second), strict=True))
    out1, out2 = tensor_leaves(forward(first)), tensor_leaves(forward(second))
    assert all(torch.equal(a, b) for a, b in zip(out1, out2, strict=True))
    import msgspec

    other = load(msgspec.structs.replace(request_, seed=1))
    assert not all(torch.equal(a, b) for a, b in zip(leaves(first), leaves(other)))


def test_seeding_leaves_the_global_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load(ModelRequest(name="resnet18", imgsz=32))
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------------------------------
# Heavier defaults
# --------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["whisper", "clip", "fasterrcnn_mobilenet_v3_large_320_fpn", "yolov8n.yaml"])
def test_default_sizes_run(name):
    loaded, out = run(ModelRequest(name=name))
    assert tensor_leaves(out)


def test_video_config_gets_clips():
    """A config with ``num_frames`` (VideoMAE's default: 16) takes clips [B, T, C, H, W]; they count."""
    from turnkey_like.characterize import characterize_call

    loaded = load(ModelRequest(name="videomae", imgsz=32, no_weights=True))
    frames = loaded.model.config.num_frames
    assert tuple(loaded.kwargs["pixel_values"].shape) == (1, frames, 3, 32, 32)
    char = characterize_call(loaded.model, loaded.args, loaded.kwargs, hardware="a100", no_weights=True)
    # the patch embedding: a Conv3d over tubelets of 2 frames x 16 x 16 pixels, 768 channels
    config = loaded.model.config
    tubelets = (frames // config.tubelet_size) * (32 // config.patch_size) ** 2
    conv = next(r for r in char.rows if r.category == "conv")
    assert conv.macs == tubelets * config.hidden_size * 3 * config.tubelet_size * config.patch_size ** 2
