"""Characterize a model: per-op costs (MACs, FLOPs, bytes), roofline against a hardware profile, fusion.

1 MAC = 2 FLOPs throughout. Public API:

- :func:`characterize` / :func:`characterize_call`: count one model call at the ATen dispatch level
  (``counter``, formulas in ``ops``), trace it with FX/export only when asked (``trace=True``,
  ``turnkey_like.tracing``), and assemble a
  :class:`~turnkey_like.records.Characterization` record (``assemble``) with the roofline
  (``roofline``) on a hardware profile (``hardware``) and fusion groups (``fusion``). The record
  classes themselves live in :mod:`turnkey_like.records`; they are re-exported here.
- :func:`get_profile` / :func:`list_profiles`: hardware profiles (datasheet ones, and ``local``).

Nothing heavy is imported until one of these is used.
"""

_EXPORTS = {
    "characterize": "turnkey_like.characterize.assemble",
    "characterize_call": "turnkey_like.characterize.assemble",
    "Characterization": "turnkey_like.records",
    "ModuleRow": "turnkey_like.records",
    "OpRow": "turnkey_like.records",
    "Totals": "turnkey_like.records",
    "HardwareProfile": "turnkey_like.records",
    "get_profile": "turnkey_like.characterize.hardware",
    "list_profiles": "turnkey_like.characterize.hardware",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'turnkey_like.characterize' has no attribute {name!r}")


class _CallablePackage(__import__("types").ModuleType):
    """Makes ``turnkey_like.characterize(model, x)`` work even after this package was imported.

    ``turnkey_like.characterize`` is both this package and (lazily) the :func:`characterize`
    function; importing the package replaces the attribute on ``turnkey_like`` with the module, so
    the module forwards calls to the function.
    """

    def __call__(self, model, *args, **kwargs):
        return self.characterize(model, *args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallablePackage
