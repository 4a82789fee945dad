"""``python -m turnkey_like.cli`` runs ``tk``."""

from turnkey_like.cli import entry_point

entry_point()
