"""The one storage seam: every SQL statement of smithers lives in this package.

``Store`` (reads, transactions, output tables) and ``Tx`` (the writes of one transaction) name
what the engine and the verbs do to the database; the connection (``sqlite3``, or the PostgreSQL
adapter of :mod:`smithers.storage.postgres`) is private. This
package imports nothing from smithers but :mod:`smithers.errors` and :mod:`smithers.states`.
"""

from .store import Store, Tx, add_commit_observer, default_db_path, default_db_target


def open_store(target: object, **options: object) -> Store:
    """``Store.open(target)``: a SQLite path or a ``postgresql://`` URL."""
    return Store.open(target, **options)  # type: ignore[arg-type]


__all__ = ["Store", "Tx", "add_commit_observer", "default_db_path", "default_db_target", "open_store"]
