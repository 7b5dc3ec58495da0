"""The program's own state in SQLite: sync tokens, known events, status, audit log.

One transaction per unit of work, WAL so `status` can read while `run` writes. Join
links are stored only as hashes (and masked in the audit log): the pwd= part is a secret.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import StateError
from .files import private
from .migrations import MIGRATIONS, SCHEMA_VERSION
from .sql import Counted, SqlStore, Tx

log = logging.getLogger(__name__)

DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # and their extended codes: a damaged file


def sqlite_problem(err: sqlite3.Error, path: object) -> StateError:
    """An SQLite error as the StateError a caller acts on. Only a damaged file (corrupt,
    not a database) is damage; a full disk, an I/O error or a lock is a moment to wait
    out, with the database left as it is."""
    name = getattr(err, "sqlite_errorname", "") or ""
    if name.startswith(DAMAGE):
        return StateError(f"the state database {path} is damaged ({err})", damaged=True)
    return StateError(f"the state database {path} cannot be used now ({err}); nothing was "
                      "changed, and the next pass tries again", stuck=True)


class State(SqlStore):
    """The embedded default: one SQLite file in service.state_dir, one node."""

    def __init__(self, path: Path | str, read_only: bool = False) -> None:
        self._lock = threading.RLock()
        self._db: sqlite3.Connection
        self._path = path
        self._journal: Path | None = None  # the offboardings, kept outside the database
        target = f"file:{path}?mode=ro" if read_only else str(path)
        try:
            if not read_only and str(path) != ":memory:":
                private(Path(path))  # SQLite gives its -wal and -shm the file's mode
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None,
                                       uri=read_only)
            self._db.execute("PRAGMA busy_timeout = 5000")
            if read_only:
                return
            if str(path) != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.Error as err:
            raise sqlite_problem(err, path) from None

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"the state database has schema {version}, newer than this officehours "
                    f"understands ({SCHEMA_VERSION}): upgrade officehours, or move the state "
                    "directory away to start afresh", unusable=True)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._rows("PRAGMA user_version")[0][0])

    @classmethod
    def open(cls, state_dir: Path) -> State:
        """The state in `state_dir`. A database that fails SQLite's integrity check is set
        aside (never over another copy) and started afresh; anything else that stops it
        (a full disk, an I/O error, a lock) is a StateError with the file left untouched.

        A fresh start loses nothing that matters: the next pass lists every calendar fully
        and finds the program's blocks by their markers, and the offboardings are kept in
        a journal beside the database (OFFBOARDED), which every open takes back in."""
        path = state_dir / "state.sqlite3"
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not os.access(state_dir, os.W_OK | os.X_OK):
                raise PermissionError(f"{state_dir} is not writable by this user")
        except OSError as err:
            raise StateError(f"the state directory {state_dir} (service.state_dir) cannot be "
                             f"used: {err.strerror or err}", unusable=True) from None
        journal = state_dir / OFFBOARDED
        try:
            state = cls(path)
            problem = state._rows("PRAGMA quick_check")[0][0]
            if problem == "ok":
                state.keep_offboardings(journal)
                return state
            state.close()
        except StateError as err:
            if not err.damaged:
                raise
            problem = str(err)
        aside = _set_aside(path)
        log.error("action=rebuild-state problem=%r moved_to=%s outcome=full-resync "
                  "offboardings=kept", problem, aside)
        state = cls(path)
        state.keep_offboardings(journal)
        return state

    @classmethod
    def scratch_copy(cls, state_dir: Path) -> State:
        """An in-memory copy of the state, for --dry-run: nothing reaches the disk."""
        scratch = cls(":memory:")
        path = state_dir / "state.sqlite3"
        if path.exists():
            try:
                source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                with scratch._lock:
                    source.backup(scratch._db)
                source.close()
            except sqlite3.Error as err:
                raise sqlite_problem(err, path) from None
            scratch._migrate()
        return scratch

    @classmethod
    def scratch_from(cls, store: SqlStore) -> State:
        """An in-memory copy of another backend's state (PostgreSQL), for --dry-run."""
        scratch = cls(":memory:")
        scratch.load(store.dump())
        return scratch

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield Counted(self._db, self)
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise sqlite_problem(err, self._path) from None
            self.round_trips += 2

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            self.round_trips += 1
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as err:
                raise sqlite_problem(err, self._path) from None


OFFBOARDED = "offboarded.json"  # beside state.sqlite3: who was offboarded, when, by what



def _set_aside(path: Path) -> Path:
    """Move a damaged database (and its -wal, -shm) to a name no earlier copy has."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for n in range(1000):
        aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
        if not any(Path(f"{aside}{s}").exists() for s in ("", "-wal", "-shm")):
            break
    else:
        raise StateError(f"too many damaged copies beside {path}: remove some", unusable=True)
    for suffix in ("", "-wal", "-shm"):
        damaged = Path(f"{path}{suffix}")
        if damaged.exists():
            damaged.rename(f"{aside}{suffix}")
    return aside
