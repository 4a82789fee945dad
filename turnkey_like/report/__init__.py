"""Renderers: turn records into terminal tables and text; they format, never compute."""
