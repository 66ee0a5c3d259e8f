"""The version of evo-msa: the one place it is written (pyproject.toml reads it from here)."""
__version__ = "0.3.0"
