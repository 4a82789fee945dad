"""``python -m turnkey_like`` runs ``tk``."""

from turnkey_like.cli import entry_point

entry_point()
