"""The name tk 0.3 and earlier gave :mod:`turnkey_like.turnkeyml_shim` (TurnkeyML's ``parser.parse`` for
scripts run by tk), kept so that scripts which import ``turnkey_like.parser`` still run. Not the
command-line parser (that is :mod:`turnkey_like.cli`)."""

from turnkey_like.turnkeyml_shim import *  # noqa: F401,F403
from turnkey_like.turnkeyml_shim import parse  # noqa: F401
