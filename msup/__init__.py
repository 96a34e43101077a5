"""msup: multicoated supermasks and a search for their accuracy/size trade-off."""

__version__ = "0.1.0"
