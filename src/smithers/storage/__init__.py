"""The only package that writes SQL. ``Store`` names the verbs the engine and the CLI use."""

from .store import Store, default_db_path

__all__ = ["Store", "default_db_path"]
