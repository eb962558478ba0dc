"""kitaru's local flavors, the first plugin: found through the same entry points as any other."""

__version__ = "0.1.0"
