"""Generation what-ifs on the command line: every finished input's generations get theirs
(``--weight-dtype``, ``--act-dtype``, ``--kv-dtype``, ``--tensor-parallel``, ``--memory-reserve``, on
each ``--hardware`` profile) before the input's report is printed, so the terminal, ``--json``, the
sweep table, ``--generation-plot`` and ``--html`` all show the same records.

The what-ifs are computed from the records alone
(:func:`turnkey_like.characterize.generation_whatif.add_whatifs`), for this run's options: a
characterization reused from the cache gets them too, and the cache keeps the counted record.
"""

from __future__ import annotations

from turnkey_like.report.listener import ConsoleListener


class WhatIfListener(ConsoleListener):
    """A :class:`~turnkey_like.report.listener.ConsoleListener` that first gives each finished input's
    generations their what-ifs.

    Args:
        whatif: the what-if options (``WhatIfOptions``); ``None``: none are added.
        hardware: the ``--hardware`` names; each generation gets its own profile's what-ifs, then those
            of the others (``local`` is this machine's cached profile).
        cache_dir: the cache root holding the ``local`` profile.
        kwargs: the :class:`ConsoleListener`'s.
    """

    def __init__(self, console, *, whatif=None, hardware: tuple[str, ...] = (), cache_dir: str | None = None, **kwargs):
        super().__init__(console, **kwargs)
        self.whatif, self.hardware, self.cache_dir = whatif, hardware, cache_dir
        self._profiles = None

    def profiles(self) -> list:
        """The ``--hardware`` profiles, resolved once (on the first generation that needs them)."""
        if self._profiles is None:
            from turnkey_like.characterize.hardware import get_profile

            self._profiles = [get_profile(name, cache_dir=self.cache_dir) for name in self.hardware]
        return self._profiles

    def script_finished(self, result, error) -> None:
        if self.whatif is not None and any(inv.characterization.result is not None
                                           and inv.characterization.result.generation is not None
                                           for _m, inv in result.invocations()):
            from turnkey_like.characterize.generation_whatif import add_whatifs

            add_whatifs(result, self.profiles(), self.whatif)
        super().script_finished(result, error)
