"""The kitaru server: a REST API over a kitaru registry, with service accounts and API keys."""

__version__ = "0.1.0"
