"""The version of msup: one place, read by the package, the model files it writes and its build."""

__version__ = "0.1.0"
