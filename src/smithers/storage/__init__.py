"""The one storage seam: every SQL statement of smithers lives in this package.

``Store`` (reads, transactions, output tables) and ``Tx`` (the writes of one transaction) name
what the engine and the verbs do to the database; the ``sqlite3`` connection is private. This
package imports nothing from smithers but :mod:`smithers.errors` and :mod:`smithers.states`.
"""

from .store import Store, Tx, add_commit_observer, default_db_path
from .target import default_db_target

__all__ = ["Store", "Tx", "add_commit_observer", "default_db_path", "default_db_target"]
