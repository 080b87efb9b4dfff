"""Where the database is: a SQLite file path or a ``postgresql://`` URL, named once for everyone.

Everything above ``storage`` handles a database by its *target* (a string: what ``--db`` and
``SMITHERS_DB`` take, and what a child process is given), prints its *label* (the target with any
password removed) and keeps run logs under its *home* folder. Nothing above ``storage`` treats the
database as a file; the few things only a SQLite file has (a snapshot must not commit the db
file) are asked of this module.

>>> resolve_db_target("postgresql://u:secret@db:5432/smithers")
'postgresql://u:secret@db:5432/smithers'
>>> db_label("postgresql://u:secret@db:5432/smithers")
'postgresql://u:***@db:5432/smithers'
>>> is_db_url("./smithers.db")
False
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from .store import Store

URL_SCHEMES = ("postgresql://", "postgres://")
HOME_ENV = "SMITHERS_HOME"


def is_db_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a PostgreSQL database (a ``postgresql://``/``postgres://`` URL)."""
    return isinstance(target, str) and target.strip().lower().startswith(URL_SCHEMES)


def resolve_db_target(target: str | os.PathLike[str]) -> str:
    """The canonical form of a ``--db`` value: a URL as given, a path made absolute."""
    if is_db_url(target):
        return str(target).strip()
    return str(Path(target).expanduser().resolve())


def default_db_target(start: Path | None = None) -> str:
    """``$SMITHERS_DB`` (a path or URL), else the nearest ``smithers.db`` walking up from
    ``start`` (default: the current folder), else ``start/smithers.db``."""
    from .store import default_db_target as found

    return resolve_db_target(found(start))


def db_target(db: str | os.PathLike[str] | None) -> str:
    """``--db`` if given, else :func:`default_db_target`."""
    return resolve_db_target(db) if db else default_db_target()


def db_label(target: str) -> str:
    """``target`` fit to print: a URL's password is replaced by ``***``; a path is unchanged."""
    if not is_db_url(target):
        return target
    parts = urlsplit(target)
    if parts.password is None:
        return target
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))  # as storage.postgres.redact


def child_db(target: str) -> tuple[list[str], dict[str, str]]:
    """How a child process (``up --detach``, a supervisor's resume, a background run) is told
    the database: ``(argv, env)`` to add. ``--db TARGET``, except for a URL with a password,
    which goes in the child's ``SMITHERS_DB`` instead: every user of the machine can read a
    process's command line (``ps``), not its environment.

    >>> child_db("postgresql://u:pw@db/x")
    ([], {'SMITHERS_DB': 'postgresql://u:pw@db/x'})
    """
    if is_db_url(target) and urlsplit(target).password is not None:
        return [], {"SMITHERS_DB": target}
    return ["--db", target], {}


def db_home(target: str) -> Path:
    """The local folder under which ``.smithers/runs/<id>/`` logs live: a SQLite file's folder;
    for a URL ``$SMITHERS_HOME``, else the current folder."""
    if is_db_url(target):
        return Path(os.environ.get(HOME_ENV) or os.getcwd()).expanduser().resolve()
    return Path(target).parent


def db_exists(target: str) -> bool:
    """Whether there is a database to read: a SQLite file exists; a URL is assumed to (opening
    it says clearly when it cannot connect). Read commands never create a SQLite file."""
    return is_db_url(target) or Path(target).is_file()


def open_existing(target: str) -> Store | None:
    """The store at ``target``, or None when it is a SQLite path with no file: a read command
    never creates a database (pointed at the wrong folder it finds nothing, and says where)."""
    if not db_exists(target):
        return None
    from .store import Store

    return Store.open(target)


def database_files(store: Store | Any) -> list[str | Path]:
    """The local files of a store's database (to keep out of working-tree snapshots): the
    SQLite file; none for PostgreSQL."""
    if getattr(store, "dialect", "sqlite") != "sqlite":
        return []
    return [Path(store.target)]


__all__ = [
    "child_db", "database_files", "db_exists", "db_home", "db_label", "db_target", "default_db_target", "is_db_url",
    "open_existing", "resolve_db_target",
]
