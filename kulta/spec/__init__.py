"""From users' YAML files to KULTA's typed models (``kulta.model``), with actionable errors.

``load_paths`` / ``load_text`` are the entry points; see docs/spec.md for the schema.
"""

from kulta.spec.loader import LoadResult, OtherDocument, SpecWarning, find_template, load_paths, load_text

__all__ = ["LoadResult", "OtherDocument", "SpecWarning", "find_template", "load_paths", "load_text"]
