"""Moved: ``tk explore``'s text is drawn by :mod:`turnkey_like.report.explore` (terminal renderers
live in ``report/``).

Only :class:`NodeRange` is still importable from here, for ``cli/options.py``; once that module
imports it from ``turnkey_like.report.explore``, this one goes.
"""

from turnkey_like.report.explore import NodeRange  # noqa: F401
