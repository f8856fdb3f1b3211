"""The package version, written here only (pyproject.toml reads it, see ``[tool.setuptools.dynamic]``),
in a module of its own: every stage reads it from here, never from the ``tvexport`` facade (which
imports every stage: importing it back would close a cycle)."""

__version__ = "0.1.0"
