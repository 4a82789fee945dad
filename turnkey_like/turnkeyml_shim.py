"""TurnkeyML's ``turnkeyml.parser.parse``, so TurnkeyML corpus scripts run unchanged under ``tk``.

TurnkeyML's public corpus (about 1,300 scripts) starts with ``from turnkeyml.parser import parse`` and
calls e.g. ``batch_size, max_seq_length = parse(["batch_size", "max_seq_length"])``. When TurnkeyML is
not installed, a script run by ``tk`` that imports ``turnkeyml.parser`` gets this module (see
``discovery._TurnkeymlShim``); scripts can also import it as ``turnkey_like.turnkeyml_shim`` (or, as before, ``turnkey_like.parser``).

The names, types and defaults are TurnkeyML's (``turnkeyml/parser.py``); values come from
``--name value`` flags in the script's ``sys.argv`` (``tk --script-args "--batch_size 8"``).
"""

from __future__ import annotations

import argparse

#: name -> (type, default). ``bool`` entries are on/off flags (present = True).
SUPPORTED_ARGS: dict[str, tuple[type, object]] = {
    "pretrained": (bool, False),
    "batch_size": (int, 1),
    "max_seq_length": (int, 128),
    "max_audio_seq_length": (int, 25600),
    "height": (int, 224),
    "width": (int, 224),
    "num_channels": (int, 3),
    "k": (int, 2),
    "alpha": (float, 2.2),
    "out_channels": (int, 1500),
    "num_layers": (int, 8),
    "in_channels": (int, 1433),
    "model_path": (str, None),
    "kvcache": (bool, False),
}


def parse(valid_args: list[str], argv: list[str] | None = None) -> list:
    """Return the values of ``valid_args`` read from ``--name value`` flags, in the order asked.

    Args:
        valid_args: names from :data:`SUPPORTED_ARGS` (e.g. ``["batch_size", "max_seq_length"]``).
        argv: the flags to read (default: ``sys.argv[1:]``). Flags not asked for are ignored.

    Raises:
        KeyError: a name is not one TurnkeyML supports.
        SystemExit: a flag's value has the wrong type (argparse's usage message, exit code 2).
    """
    parser = argparse.ArgumentParser(description="Arguments of a TurnkeyML-style model script")
    for name in valid_args:
        kind, default = SUPPORTED_ARGS[name]  # KeyError for unknown names, as in TurnkeyML
        if kind is bool:
            parser.add_argument(f"--{name}", dest=name, action="store_true", default=default)
        else:
            parser.add_argument(f"--{name}", dest=name, type=kind, default=default)
    values, _unknown = parser.parse_known_args(argv)
    return [getattr(values, name) for name in valid_args]
