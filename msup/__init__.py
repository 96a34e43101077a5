"""msup: multicoated supermasks and a search for their accuracy/size trade-off."""

from msup.version import __version__

__all__ = ["Study", "__version__"]


def __getattr__(name: str) -> object:
    """``from msup import Study`` (`msup.notebook`), imported only when asked for: the CLI starts without it."""
    if name == "Study":
        from msup.notebook import Study

        return Study
    raise AttributeError(f"module 'msup' has no attribute {name!r}")
