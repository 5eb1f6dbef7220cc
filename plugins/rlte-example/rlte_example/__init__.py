"""rlte-example: a template plugin for rlte-plugins."""

__version__ = "0.1.0"
