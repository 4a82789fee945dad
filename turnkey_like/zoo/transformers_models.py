"""transformers models by model type, hub name or local folder, with inputs synthesized from ``forward``.

Names:
- a model type (``bert``, ``gpt2``, ``llama``, ``t5``, ``whisper``, ``vit``, ``detr``, ``clip``...):
  the library's default config, built with the hub forced offline, so nothing is downloaded;
- a hub name (``bert-base-uncased``, ``facebook/detr-resnet-50``): the config from the local hub
  cache, else from the network after a reachability probe of a few seconds (one DNS lookup and
  one TCP connect to ``HF_ENDPOINT``); offline (``HF_HUB_OFFLINE=1`` or the probe fails) the error
  comes at once, never through huggingface_hub's retry loop (5 retries, about 23 s);
- a local folder holding ``config.json``.

``model_args`` (``--model-args '{"num_hidden_layers": 2}'``) overrides config attributes before
the build; a dotted key reaches a nested config (``{"text_config.num_hidden_layers": 2}``). The
base model class (``AutoModel``) is built from the config with random weights, seeded;
``pretrained`` loads the checkpoint's weights instead (hub names and folders only).

Overrides, each one listed in ``LoadedModel.notes``:
- ``use_pretrained_backbone=False`` on the config and every sub-config that sets it (DETR-like
  models would otherwise download a timm/torchvision backbone's weights);
- ``use_cache=False``: outputs without key/value caches, so the traced graph is the forward pass;
- ``image_size=imgsz`` on (sub-)configs that have one, when ``imgsz`` is given and weights are
  random (position embeddings are sized from it);
- models above ``META_THRESHOLD_PARAMS`` parameters build on ``meta`` (Llama's default is 6.6e9).

Inputs come from the ``forward`` signature and the config, never from the name; ``B`` = batch
(default 1), ``S`` = seq_len (default 128, capped at the config's position limit):

- ``input_ids`` [B, S] ids in ``[0, vocab_size)`` and ``attention_mask`` [B, S] ones;
- ``pixel_values`` [B, num_channels, H, W] ([B, num_frames, num_channels, H, W] where the config has
  ``num_frames``: video models such as VideoMAE, ViViT, TimeSformer, X-CLIP), H = W = imgsz or the
  config's ``image_size`` (224 where the config has none, e.g. DETR); together with ``input_ids``
  for contrastive models such as CLIP;
  left out where the config has an image token (the ids would have to carry image tokens);
- ``decoder_input_ids`` [B, S] for encoder-decoder models (``config.is_encoder_decoder``);
- ``input_features``, from the first of these config attributes that the config has
  (:func:`input_features_shape`):

  - ``feature_projection_input_dim`` -> [B, S, feature_projection_input_dim]: the models whose
    feature projection is a LayerNorm + Linear over that last dim (Wav2Vec2-BERT, SeamlessM4T and
    v2: 160 = 80 mel bins x 2 stacked frames, their feature extractor's ``stride``);
  - ``num_mel_bins`` and ``max_source_positions`` -> [B, num_mel_bins, 2 * max_source_positions]:
    Whisper and the encoders built like it (a Conv1d over the mel bins, then a stride-2 Conv1d; the
    encoder accepts exactly that many frames);
  - ``input_feat_per_channel`` -> [B, S, input_feat_per_channel * input_channels] (Speech2Text);
  - ``num_mel_bins`` -> [B, S, num_mel_bins], else ``feature_size`` -> [B, S, feature_size], else
    [B, S, 80] (80 mel bins, the common filterbank size);
- ``input_values`` [B, S] raw audio samples, S default 16000 (1 s at 16 kHz); [B, audio_channels,
  S] where the config has ``audio_channels`` (the neural audio codecs: EnCodec, Mimi);
- flattened patches with their grid, for the vision towers of Qwen2-VL and the models built like it
  (``hidden_states`` or ``pixel_values`` beside a required ``grid_thw``): [B * h * w, C * T * P * P]
  and ``grid_thw`` [[1, h, w]] per image, as their processors make them (:func:`_patch_grid`);
- any other input without a default is an error naming ``--input-shape NAME:...``.

optimum's dummy input generators (``optimum.utils.input_generators``) were considered and not used:
in optimum 2.x the mapping from a model type to its generators and normalized config lives in the
separate ``optimum-onnx`` export configs, which cover only the architectures they export; the
generators draw from torch's global random stream (no generator argument), so inputs would not be
reproducible from our recorded seed without seeding global state; and the signature-driven rules
above cover every model type whose ``forward`` takes the common input names.

The :class:`~turnkey_like.zoo.sources.Source` of a folder holding ``config.json`` (priority 40) and
of every name no other source claims (:data:`turnkey_like.zoo.sources.FALLBACK`); transformers and
torch are imported where used.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import msgspec

from turnkey_like.errors import InputError, one_line
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import DEFAULT_BATCH, LoadedModel, build_module, default, file_stem, require
# repeating_layers and shallow_overrides are this source's hooks (turnkey_like.zoo.sources.Source)
from turnkey_like.zoo.transformers_layers import _config_paths, repeating_layers, shallow_overrides  # noqa: F401

if TYPE_CHECKING:
    from turnkey_like.zoo.inputs import Synthesizer

name = "transformers"
package = "transformers"
listed = True
closed_list = False  # hub names and folders too
priority = 40
prefix = ""
input_axes = frozenset({"batch_size", "seq_len", "imgsz"})

DEFAULT_SEQ_LEN = 128
"""Sequence length when the request gives none (capped at the config's position limit)."""

DEFAULT_IMAGE_SIZE = 224
"""Image side for configs without ``image_size`` (DETR's processors resize to 800; we keep CPU runs small)."""

DEFAULT_AUDIO_SAMPLES = 16000
"""Raw-audio samples (``input_values``) when the request gives no seq_len: 1 s at 16 kHz."""

PROBE_TIMEOUT_S = 3.0
"""Seconds allowed for each of the DNS lookup and the TCP connect of the hub reachability probe."""

_TEXT_INPUTS = ("input_ids",)
_POSITION_LIMITS = ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx")


def _require():
    """Import transformers, or raise the InputError that says how to install it."""
    return require("transformers", "transformers")


def preload(requests: list[ModelRequest]) -> None:
    """Import transformers, the auto classes :func:`load` builds with, and the modeling module of
    each request that names a model type (``llama``: its config is built, offline, and its class
    looked up, which imports ``modeling_llama``); about 1.6 s and 0.2 s a module on a 2-core
    machine (:func:`turnkey_like.zoo.preload`). Hub names and folders are left to the children.

    Raises:
        InputError: transformers is not installed.
    """
    _require()
    from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM,  # noqa: F401
                              AutoModelForSpeechSeq2Seq)

    for request in requests:
        if is_model_type(request.name) and not os.path.isdir(request.name):
            with contextlib.suppress(Exception):  # the child reports it, with its hint
                config, _ = _config(request)
                auto = _generating_class(config, request.name) if request.new_tokens else AutoModel
                auto._model_mapping[type(config)]  # noqa: B018 - the lookup imports the modeling module


def names() -> list[str]:
    """Model types with a base model class (``AutoModel``) and a config class, sorted."""
    _require()
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    return sorted(set(MODEL_MAPPING_NAMES) & set(CONFIG_MAPPING_NAMES))


def claims(name: str) -> bool:
    """Whether ``name`` is a folder holding ``config.json``; names no source claims come here too
    (:data:`turnkey_like.zoo.sources.FALLBACK`), as a model type or a hub name."""
    return (Path(name) / "config.json").is_file()


def family(name: str) -> str:
    """The model type itself (``bert``)."""
    return name


def constructor(name: str, model) -> tuple[str | None, list[str]]:
    """``lambda: transformers.<ModelClass>(transformers.<ConfigClass>(**overrides))`` and its import,
    where ``overrides`` are the loader's changes to the default config that are Python literals;
    ``(None, [])`` for a model without a config."""
    import ast

    config = getattr(model, "config", None)
    if config is None:
        return None, []
    defaults = type(config)().to_dict()
    overrides = []
    for key, value in config.to_dict().items():
        if key.startswith("_") or key in ("transformers_version", "architectures", "dtype", "torch_dtype"):
            continue
        if key in defaults and defaults[key] == value:
            continue
        try:
            if ast.literal_eval(repr(value)) != value:
                continue
        except (ValueError, SyntaxError):
            continue
        overrides.append(f"{key}={value!r}")
    return (f"lambda: transformers.{type(model).__name__}(transformers.{type(config).__name__}"
            f"({', '.join(overrides)}))"), ["import transformers"]


def stem(request: ModelRequest) -> str:
    """A folder's last component (``ckpt/bert/`` -> ``bert``), else the name (``facebook/detr-resnet-50``)."""
    return file_stem(request.name) if Path(request.name).is_dir() else request.name


def is_model_type(name: str) -> bool:
    """Whether ``name`` is a transformers model type with a base model class."""
    try:
        return name in names()
    except InputError:
        return False


# --------------------------------------------------------------------------------------------------
# Network: offline detection without retry loops
# --------------------------------------------------------------------------------------------------

def _env_offline() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    """The hub URL: ``HF_ENDPOINT`` or ``https://huggingface.co``."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_unreachable(timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached (``"HF_HUB_OFFLINE=1"``, ``"huggingface.co: DNS failed"``), or None.

    At most one DNS lookup (in a daemon thread, abandoned after ``timeout_s``: ``getaddrinfo`` has
    no timeout of its own) and one TCP connect with ``timeout_s``; nothing is sent.
    """
    if _env_offline():
        return "HF_HUB_OFFLINE=1"
    url = urlparse(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    found: list = []

    def lookup():
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not found:
        return f"{host}: DNS lookup timed out after {timeout_s:g} s"
    if isinstance(found[0], OSError):
        return f"{host}: DNS lookup failed ({found[0].strerror or found[0]})"
    family, kind, proto, _, address = found[0][0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout_s)
            sock.connect(address)
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc.strerror or type(exc).__name__})"
    return None


@contextlib.contextmanager
def hub_offline():
    """Force huggingface_hub and transformers offline inside the block (default-config builds).

    Sets ``HF_HUB_OFFLINE=1`` and huggingface_hub's already-read constant, restoring both after.
    """
    old_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as constants
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        constants = None
    old_const = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
        if constants is not None:
            constants.HF_HUB_OFFLINE = old_const


def _from_hub(call, name: str, what: str):
    """``call(local_files_only)`` from the local hub cache, else from the network when reachable.

    Raises:
        InputError: offline (at once) or the name is unknown on the hub (with closest names).
    """
    try:
        with hub_offline():
            return call(True)
    except (OSError, ValueError) as exc:
        cached_error = exc
    if _is_remote_code_error(cached_error):
        raise _remote_code_error(name, cached_error)
    why = hub_unreachable()
    if why:
        from turnkey_like.zoo import unknown_name
        from turnkey_like.zoo.sources import listed_phrase

        error = unknown_name(name, f"not a {listed_phrase()} name, and "
                                   f"as a hub name its {what} is not in the local hub cache and the "
                                   f"hub is offline ({why})")
        if not error.hint.startswith("closest"):
            error.hint = "run once with network to fill the hub cache, or pass a local folder with config.json"
        raise error
    try:
        return call(False)
    except Exception as exc:  # repository missing, gated, network error: one line, no retry
        if _is_remote_code_error(exc):
            raise _remote_code_error(name, exc) from exc
        from turnkey_like.zoo import unknown_name

        raise unknown_name(name, f"hub: {one_line(exc)}") from exc


def _is_remote_code_error(exc: BaseException) -> bool:
    return "trust_remote_code" in str(exc)


def _remote_code_error(name: str, exc: BaseException) -> InputError:
    return InputError(f"{name} needs its own code from the hub ({one_line(exc, 120)})",
                      hint="run it only if you trust the repository: add --trust-remote-code")


# --------------------------------------------------------------------------------------------------
# Config and model
# --------------------------------------------------------------------------------------------------

def _config(request: ModelRequest):
    """``(config, origin)`` for the request's name; origin is ``type``, ``folder`` or ``hub``."""
    _require()
    from transformers import AutoConfig

    name = request.name
    trust = request.trust_remote_code
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise InputError(f"folder {name} holds no config.json",
                             hint="a transformers model folder holds config.json (save_pretrained)")
        try:
            with hub_offline():
                return AutoConfig.from_pretrained(name, trust_remote_code=trust), "folder"
        except Exception as exc:
            if _is_remote_code_error(exc):
                raise _remote_code_error(name, exc) from exc
            raise InputError(f"{name}/config.json: {one_line(exc)}",
                             hint="check the folder's config.json") from exc
    if is_model_type(name) and not request.pretrained:
        try:
            with hub_offline():
                return AutoConfig.for_model(name), "type"
        except Exception as exc:
            raise InputError(f"transformers model type {name!r} has no default config: {one_line(exc)}",
                             hint="name a hub checkpoint or a folder with config.json instead") from exc
    config = _from_hub(lambda local: AutoConfig.from_pretrained(
        name, trust_remote_code=trust, local_files_only=local), name, "config.json")
    return config, "hub"


def _sub_configs(config):
    """``config`` and every config nested in it, each once (:func:`_config_paths` without paths)."""
    return [cfg for _, cfg in _config_paths(config)]


def _set_config(config, key: str, value, name: str) -> None:
    """Set attribute ``key`` of ``config``; a dotted key (``text_config.num_hidden_layers``) walks
    nested configs first. Raises InputError (``--model-args``) when an attribute is missing."""
    *path, last = key.split(".")
    target = config
    for part in path + [last]:
        if not hasattr(target, part):
            raise InputError(f"{name}: its config has no attribute {key!r} (--model-args)",
                             hint=f"attributes include: {', '.join(sorted(target.to_diff_dict())[:12])}")
        if part != last:
            target = getattr(target, part)
    setattr(target, last, value)


def _override(config, notes: list[str], *, keep_cache: bool = False) -> None:
    """Turn off backbone downloads and (unless ``keep_cache``: a generation uses it) KV caches on
    ``config`` and its sub-configs; note each change."""
    label = type(config).__name__.removesuffix("Config")
    for cfg in _sub_configs(config):
        if getattr(cfg, "use_pretrained_backbone", False):
            cfg.use_pretrained_backbone = False
            notes.append(f"{label}: use_pretrained_backbone=False (no backbone download)")
        if getattr(cfg, "use_cache", False) and not keep_cache:
            cfg.use_cache = False
            if not any(n.startswith(f"{label}: use_cache") for n in notes):
                notes.append(f"{label}: use_cache=False (no key/value cache outputs)")


def _set_image_size(config, imgsz: int, notes: list[str]) -> None:
    """Set ``image_size`` to ``imgsz`` on every (sub-)config that has one, so position embeddings match."""
    for cfg in _sub_configs(config):
        size = getattr(cfg, "image_size", None)
        if isinstance(size, int) and size != imgsz:
            cfg.image_size = imgsz
            notes.append(f"{type(cfg).__name__.removesuffix('Config')}: image_size={imgsz} (--imgsz; was {size})")
        elif isinstance(size, (list, tuple)) and list(size) != [imgsz, imgsz]:
            cfg.image_size = [imgsz, imgsz]
            notes.append(f"{type(cfg).__name__.removesuffix('Config')}: image_size={imgsz} (--imgsz; was {size})")


#: The inputs a generation's prompt is given (``generate(input_ids)``; an encoder-decoder's encoder input).
_PROMPT_INPUTS = ("input_ids", "input_features", "input_values")


def _generating_class(config, name: str):
    """The auto class that builds ``config``'s model with its LM head, as ``generate()`` needs it:
    ``AutoModelForCausalLM``, or ``AutoModelForSeq2SeqLM`` / ``AutoModelForSpeechSeq2Seq`` for an
    encoder-decoder model.

    Raises:
        InputError: the config has no generating head in transformers' auto mappings.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSpeechSeq2Seq

    kinds = ((AutoModelForSeq2SeqLM, AutoModelForSpeechSeq2Seq) if getattr(config, "is_encoder_decoder", False)
             else (AutoModelForCausalLM,))
    for auto in kinds:
        if type(config) in auto._model_mapping:
            return auto
    raise InputError(f"{name}: {type(config).__name__} has no causal-LM or seq2seq head in transformers",
                     hint="--generate needs a model that generates text (e.g. llama, gpt2, mistral, t5)")


def load(request: ModelRequest) -> LoadedModel:
    """Build a transformers model and its inputs (see the module docstring).

    With ``request.new_tokens`` (``--generate P:N``) the model is built with its LM head
    (:func:`_generating_class`) and its inputs are the prompt alone (``input_ids`` [B, P]).

    Raises:
        InputError: unknown name (closest names), offline hub name not cached, remote code without
            ``trust_remote_code``, ``pretrained`` on a model type, or an input that cannot be synthesized.
    """
    notes: list[str] = []
    config, origin = _config(request)
    for key, value in (request.model_args or {}).items():
        _set_config(config, key, value, request.name)
    _override(config, notes, keep_cache=bool(request.new_tokens))
    if request.imgsz is not None and not request.pretrained:
        _set_image_size(config, request.imgsz, notes)
    auto = _generating_class(config, request.name) if request.new_tokens else None
    if auto is None:
        from transformers import AutoModel as auto

    name = request.name
    trust = request.trust_remote_code

    def make():
        with hub_offline():
            return auto.from_config(config, trust_remote_code=trust)

    if request.pretrained:
        if request.no_weights:
            build_module(make, request, notes)  # raises the pretrained/no-weights error
        model = _from_hub(lambda local: auto.from_pretrained(
            name, config=config, trust_remote_code=trust, local_files_only=local), name, "weights")
        model.eval()
        on_meta = False
    else:
        model, on_meta = build_module(make, request, notes, hint="try a smaller config or --no-weights")
    from turnkey_like.zoo.inputs import Synthesizer

    synth = Synthesizer(request.seed, on_meta)
    kwargs, batch, seq_len, imgsz = synthesize(model, config, request, synth, notes)
    if request.new_tokens:  # the prompt only, as generate() is given it
        kwargs = {k: v for k, v in kwargs.items() if k in _PROMPT_INPUTS}
    filled = msgspec.structs.replace(request, source="transformers", batch_size=batch,
                                     seq_len=seq_len, imgsz=imgsz, no_weights=on_meta)
    return LoadedModel(model=model, args=(), kwargs=kwargs, request=filled, notes=notes, on_meta=on_meta)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

def _get(configs, *attrs):
    """The first non-None value of any of ``attrs`` on the first config that has one."""
    for cfg in configs:
        for attr in attrs:
            value = getattr(cfg, attr, None)
            if value is not None:
                return value
    return None


def _side(value) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


DEFAULT_FEATURE_DIM = 80
"""Feature size of ``input_features`` when the config names none: 80 mel bins (the filterbank of
Whisper, Speech2Text and Wav2Vec2-BERT's feature extractors)."""


def input_features_shape(config, batch: int, seq) -> tuple[list[int], str | None]:
    """The shape of ``input_features`` for ``config``, from its attributes alone (never the name), and
    a note for ``LoadedModel.notes`` when the length is the config's, not ``--seq-len``'s.

    ``seq()`` gives the sequence length S (called only for the layouts that have one). Rules, the
    first that applies (see the module docstring): ``feature_projection_input_dim`` -> [B, S, dim];
    ``num_mel_bins`` with ``max_source_positions`` -> [B, mel, 2 * max_source_positions];
    ``input_feat_per_channel`` -> [B, S, per_channel * input_channels]; ``num_mel_bins`` ->
    [B, S, mel]; ``feature_size`` -> [B, S, feature_size]; else [B, S, 80].
    """
    projected = _get([config], "feature_projection_input_dim")
    if projected:
        return [batch, seq(), projected], None
    mel = _get([config], "num_mel_bins")
    frames = _get([config], "max_source_positions")
    if mel and frames:
        return [batch, mel, 2 * frames], f"input_features: {2 * frames} frames (the encoder's fixed input length)"
    per_channel = _get([config], "input_feat_per_channel")
    if per_channel:
        return [batch, seq(), per_channel * (_get([config], "input_channels") or 1)], None
    return [batch, seq(), mel or _get([config], "feature_size") or DEFAULT_FEATURE_DIM], None


_GRID_INPUTS = ("grid_thw", "image_grid_thw")
"""Inputs giving each image's patch grid (temporal, height, width), beside its flattened patches."""


def _patch_grid(kwargs: dict, patches: str, grid: str, visions, batch: int, imgsz: int | None,
                synth: Synthesizer, notes: list[str]) -> int:
    """Fill ``kwargs`` with flattened patches and their grid for the vision encoders of Qwen2-VL and
    the models built like it (GLM-4V, Qwen3-VL, Exaone 4.5...); return the image side used.

    Their processors cut each image into P x P patches (``patch_size``), stack
    ``temporal_patch_size`` frames (an image is repeated), and flatten: ``patches`` [B * h * w,
    C * T * P * P] with ``grid`` [[1, h, w]] per image (``transformers`` ``Qwen2VLImageProcessor``),
    h = w = side // P rounded down to a multiple of ``spatial_merge_size`` (patches are merged
    in squares of that side). side = ``imgsz``, else the config's ``image_size``, else 224.
    """
    patch = _side(_get(visions, "patch_size"))
    temporal = _get(visions, "temporal_patch_size") or 1
    channels = _get(visions, "in_channels", "num_channels", "in_chans") or 3
    merge = _get(visions, "spatial_merge_size", "merge_size") or 1
    side = imgsz or _get(visions, "image_size") or DEFAULT_IMAGE_SIZE
    cells = max(merge, _side(side) // patch // merge * merge)
    kwargs[patches] = synth.floats([batch * cells * cells, channels * temporal * patch * patch])
    kwargs[grid] = synth.constant([[1, cells, cells]] * batch)
    notes.append(f"{patches}: {batch} image(s) of {cells * patch}x{cells * patch} as {cells}x{cells} flattened "
                 f"{patch}x{patch} patches ({temporal} frame(s)), with {grid}")
    return cells * patch


def _primary_inputs(names_: list[str], required: list[str], vocab, image_token, notes: list[str]) -> list[str]:
    """The main inputs to synthesize: the required ones among ids, pixels, features and values; when
    none is required, text and image together (ids alone when the model expects image tokens in
    ``input_ids``), else the one the model takes."""
    wanted = [n for n in required if n in ("input_ids", "pixel_values", "input_features", "input_values")]
    if wanted:
        return wanted
    has_text = "input_ids" in names_ and vocab is not None
    has_image = "pixel_values" in names_
    if has_text and has_image:
        if image_token is not None:
            notes.append("pixel_values left out: the model expects image tokens in input_ids")
            return ["input_ids"]
        return ["input_ids", "pixel_values"]
    if has_image:
        return ["pixel_values"]
    if has_text:
        return ["input_ids"]
    return [n for n in ("input_features", "input_values") if n in names_][:1]


def synthesize(model, config, request: ModelRequest, synth: Synthesizer, notes: list[str]):
    """Example keyword inputs for ``model.forward``: ``(kwargs, batch, seq_len, imgsz)``.

    ``seq_len``/``imgsz`` are the values used, ``None`` where no input has that dimension. The
    rules are the module docstring's.

    Raises:
        InputError: a required input with no rule and no ``--input-shape``, or a shape for an input
            the model does not take.
    """
    params = inspect.signature(model.forward).parameters
    names_ = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    required = [n for n in names_ if params[n].default is inspect.Parameter.empty]
    shapes = {k: list(v) for k, v in request.input_shapes.items()}
    unknown = sorted(set(shapes) - set(names_))
    if unknown:
        raise InputError(f"{request.name} takes no input {', '.join(unknown)}",
                         hint=f"its inputs are: {', '.join(names_)}")

    text_cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    vision_cfg = getattr(config, "vision_config", None)
    texts = [text_cfg, config]
    visions = [c for c in (vision_cfg, config) if c is not None]
    vocab = _get(texts, "vocab_size")
    batch = default(request.batch_size, DEFAULT_BATCH)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))

    wanted = _primary_inputs(names_, required, vocab, _get([config], "image_token_id", "image_token_index"), notes)
    wanted += [n for n in shapes if n not in wanted]
    kwargs: dict = {}
    seq_used = img_used = None

    def seq_limit(*attrs) -> int | None:
        return _get(texts, *attrs)

    def seq(limit_attrs=_POSITION_LIMITS) -> int:
        nonlocal seq_used
        value = default(request.seq_len, DEFAULT_SEQ_LEN)
        limit = seq_limit(*limit_attrs)
        if isinstance(limit, int) and 0 < limit < value:
            if request.seq_len is not None:
                raise InputError(f"{request.name}: --seq-len {value} is above the model's limit {limit}",
                                 hint=f"use --seq-len {limit} or less")
            notes.append(f"seq_len {limit} (the config's position limit; default {value})")
            value = limit
        seq_used = value
        return value

    grid = next((n for n in _GRID_INPUTS if n in required and n not in shapes), None)
    patches = next((n for n in ("hidden_states", "pixel_values") if n in required and n not in shapes), None)
    if grid and patches and _get(visions, "patch_size"):
        img_used = _patch_grid(kwargs, patches, grid, visions, batch, request.imgsz, synth, notes)
        wanted = [n for n in wanted if n != patches]
    for name in wanted:
        if name in shapes:
            kwargs[name] = synth.like_name(name, shapes[name], vocab)
        elif name == "input_ids":
            kwargs[name] = synth.ids([batch, seq()], vocab)
        elif name == "pixel_values":
            size = request.imgsz or _get(visions, "image_size") or DEFAULT_IMAGE_SIZE
            img_used = _side(size)
            channels = _get(visions, "num_channels") or 3
            frames = _get(visions, "num_frames")  # a video model: clips [B, T, C, H, W]
            kwargs[name] = synth.floats([batch, frames, channels, img_used, img_used] if frames else
                                        [batch, channels, img_used, img_used])
        elif name == "input_features":
            shape, note = input_features_shape(config, batch, lambda: seq(("max_source_positions",)))
            if note:
                notes.append(note)
            kwargs[name] = synth.floats(shape)
        elif name == "input_values":
            samples = default(request.seq_len, DEFAULT_AUDIO_SAMPLES)
            seq_used = samples
            channels = _get([config], "audio_channels")  # codecs (EnCodec, Mimi): [B, channels, samples]
            kwargs[name] = synth.floats([batch, channels, samples] if channels else [batch, samples])
    if "input_ids" in kwargs and "attention_mask" in names_ and "attention_mask" not in kwargs:
        kwargs["attention_mask"] = synth.ones(list(kwargs["input_ids"].shape))
    if encoder_decoder and "decoder_input_ids" in names_ and "decoder_input_ids" not in kwargs:
        decoder_cfg = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        dec_vocab = getattr(decoder_cfg, "vocab_size", None) or vocab or 2
        length = seq(("max_target_positions",) + _POSITION_LIMITS)
        kwargs["decoder_input_ids"] = synth.ids([batch, length], dec_vocab)
    missing = [n for n in required if n not in kwargs]
    if missing:
        raise InputError(f"{request.name}: cannot synthesize input {', '.join(missing)}",
                         hint=f"give its shape with --input-shape {missing[0]}:D0,D1,...")
    return kwargs, batch, seq_used, img_used
