"""Renderers: turn records into terminal tables and text; they format, never compute.

One module per view (``docs/report.md``, "Terminal renderers"): ``status`` and ``listener`` (a run's
report and progress), ``characterization`` (``tk profile``), ``sweep``, ``explore``, ``compare``,
``cache_listing`` (``tk cache ...``), ``survey`` (``tk discover-models``) and ``table`` (CSV, JSON,
Markdown). Rows more than one view shows are built once: ``breakdown`` (the bottleneck breakdown)
and ``text`` (op names). ``views/`` may import from here; nothing here imports ``views/``.
"""
