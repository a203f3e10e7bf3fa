"""Package version (kept in its own module so the compile cache can key on it without imports)."""

__version__ = "0.1.0"
