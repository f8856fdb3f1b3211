"""The package version, in a module of its own: every stage reads it from here, never from the
``tvexport`` facade (which imports every stage: importing it back would close a cycle)."""

__version__ = "0.1.0"
