"""The Store in the SQL that SQLite and PostgreSQL both speak (`?` placeholders, ON
CONFLICT upserts), and the migrations both apply. Join links are stored only as hashes
(and masked in the audit log): the pwd= part is a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from ..model import Event, Kind, KnownEvent, Room, fingerprint, same_person
from . import InstructorStatus, StateError
from .audit import AuditRows
from .files import write_atomically
from .migrations import TABLES
from .push import PushRows

log = logging.getLogger(__name__)


def _encode(event: Event) -> str:
    def when(value: datetime | date | None) -> str | None:
        return None if value is None else value.isoformat()

    return json.dumps({
        "title": event.title, "organizer_self": event.organizer_self,
        "original_start": when(event.original_start), "start": when(event.start),
        "end": when(event.end), "timezone": event.timezone, "recurrence": event.recurrence,
    })


def _decode(event_id: str, kind: str, series_id: str | None, body: str) -> Event:
    data = json.loads(body)

    def when(value: str | None) -> datetime | date | None:
        if value is None:
            return None
        return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)

    return Event(id=event_id, kind=Kind(kind), series_id=series_id, title=data["title"],
                 organizer_self=data["organizer_self"],
                 original_start=when(data["original_start"]), start=when(data["start"]),
                 end=when(data["end"]), timezone=data["timezone"],
                 recurrence=tuple(data["recurrence"]))


class Tx(Protocol):
    """What a transaction offers: sqlite3's `execute`, which the PostgreSQL store mirrors."""

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Any: ...


class Counted:
    """A transaction that counts its statements (SqlStore.round_trips)."""

    def __init__(self, db: Tx, store: SqlStore) -> None:
        self._db, self._store = db, store

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> Any:
        self._store.round_trips += 1
        return self._db.execute(sql, args)


class SqlStore(PushRows, AuditRows):
    """The Store in that SQL; a backend gives `transaction`, `_rows` and `epoch`."""

    @property
    def epoch(self) -> int | None:
        """Written beside each audit line: the fencing epoch (PostgreSQL)."""
        return None

    # statements sent to the database (on PostgreSQL, each one a round trip: autocommit,
    # no pipelining); `make failover` prints them per instructor for both backends
    round_trips = 0

    def transaction(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self, stuck_for: float | None = None) -> None:
        """From another thread: end a call blocked on a database gone silent (PostgreSQL);
        with `stuck_for`, only a call under way that long."""

    # --- the whole state, for `state migrate` and --dry-run's scratch copy ---

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table; columns in migration order, the same on each backend."""
        return {table: self._rows(f"SELECT * FROM {table}") for table in TABLES}

    def load(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """Replace everything with `rows` (a dump), in one transaction."""
        with self.transaction() as db:
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")
                for row in rows[table]:
                    marks = ", ".join("?" * len(row))
                    db.execute(f"INSERT INTO {table} VALUES ({marks})", tuple(
                        v.isoformat() if isinstance(v, datetime) else v for v in row))
            self._after_load(db)

    def _after_load(self, db: Tx) -> None:
        pass

    # --- sync tokens ---

    def sync_token(self, instructor: str, calendar: str) -> str | None:
        rows = self._rows("SELECT token FROM sync_tokens WHERE instructor=? AND calendar=?",
                          instructor, calendar)
        return rows[0][0] if rows else None

    def save_sync_token(self, instructor: str, calendar: str, token: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO sync_tokens (instructor, calendar, token) VALUES (?, ?, ?) "
                       "ON CONFLICT (instructor, calendar) DO UPDATE SET token=excluded.token",
                       (instructor, calendar, token))

    # --- known events ---

    _KNOWN = ("SELECT event_id, kind, series_id, body, link_hash, owned_location_hash "
              "FROM events WHERE instructor=?")

    def known_events(self, instructor: str) -> dict[str, KnownEvent]:
        rows = self._rows(self._KNOWN, instructor)
        return {r[0]: KnownEvent(_decode(*r[:4]), r[4], r[5]) for r in rows}

    def known_event(self, instructor: str, event_id: str) -> KnownEvent | None:
        """One event's record: what a write needs, without decoding all the others."""
        rows = self._rows(self._KNOWN + " AND event_id=?", instructor, event_id)
        return KnownEvent(_decode(*rows[0][:4]), rows[0][4], rows[0][5]) if rows else None

    def replace_events(self, instructor: str, events: list[Event], full: bool,
                       gone: list[str]) -> None:
        """Store what a listing said: upsert `events`, drop `gone` (all others when full)."""
        with self.transaction() as db:
            if full:
                keep = {e.id for e in events}
                for (event_id,) in db.execute(
                        "SELECT event_id FROM events WHERE instructor=?", (instructor,)).fetchall():
                    if event_id not in keep:
                        db.execute("DELETE FROM events WHERE instructor=? AND event_id=?",
                                   (instructor, event_id))
            for event_id in gone:
                db.execute("DELETE FROM events WHERE instructor=? AND (event_id=? OR "
                           "series_id=?)", (instructor, event_id, event_id))
            for event in events:
                db.execute(
                    "INSERT INTO events (instructor, event_id, kind, series_id, body) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (instructor, event_id) DO UPDATE "
                    "SET kind=excluded.kind, series_id=excluded.series_id, body=excluded.body",
                    (instructor, event.id, event.kind.value, event.series_id, _encode(event)))

    def mark_link(self, instructor: str, event_id: str, url: str | None,
                  owned_location: str | None) -> None:
        """Remember which link an event offers and which location is the program's."""
        with self.transaction() as db:
            db.execute("UPDATE events SET link_hash=?, owned_location_hash=? "
                       "WHERE instructor=? AND event_id=?",
                       (fingerprint(url) if url else None,
                        fingerprint(owned_location) if owned_location else None,
                        instructor, event_id))

    def add_pending_location(self, instructor: str, event_id: str, location: str) -> None:
        """Before a write: the location about to be written is the program's too.

        Kept beside the previous one until the write is confirmed, so a crash or a failed
        write never makes the program forget a location it owns."""
        with self.transaction() as db:
            db.execute("UPDATE events SET owned_location_hash = "
                       "COALESCE(owned_location_hash || ',', '') || ? "
                       "WHERE instructor=? AND event_id=?",
                       (fingerprint(location), instructor, event_id))

    def forget_instructor_events(self, instructor: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM events WHERE instructor=?", (instructor,))
            db.execute("DELETE FROM sync_tokens WHERE instructor=?", (instructor,))

    # --- status and audit ---

    def record_status(self, instructor: str, name: str, **fields: str | None) -> None:
        columns = ("last_pass", "last_error", "zoom_state", "zoom_checked", "next_session",
                   "error_logged_for", "pmi", "next_session_end", "served_as", "room",
                   "zoom_ids")
        unknown = set(fields) - set(columns)
        if unknown:
            raise ValueError(f"unknown status fields {unknown}")
        names = ("name", *fields)  # one statement: a round trip on PostgreSQL
        with self.transaction() as db:
            db.execute(f"INSERT INTO instructors (instructor, {', '.join(names)}) VALUES "
                       f"(?, {', '.join('?' * len(names))}) ON CONFLICT (instructor) DO UPDATE "
                       f"SET {', '.join(f'{n}=excluded.{n}' for n in names)}",
                       (instructor, name, *fields.values()))

    def error_logged_for(self, instructor: str) -> str | None:
        rows = self._rows("SELECT error_logged_for FROM instructors WHERE instructor=?",
                          instructor)
        return rows[0][0] if rows else None

    _STATUS = ("SELECT instructor, name, last_pass, last_error, zoom_state, zoom_checked, "
               "next_session, pmi, next_session_end, room FROM instructors")

    def statuses(self) -> dict[str, InstructorStatus]:
        return {r[0]: InstructorStatus(r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                                       json.loads(r[7]) if r[7] else None, r[8],
                                       Room(r[9]) if r[9] else None)
                for r in self._rows(self._STATUS)}

    def zoom_ids(self) -> dict[str, tuple[str, str]]:
        """Each instructor's room as Zoom's events name it: (the user's id, the PMI)."""
        found = {}
        for key, ids in self._rows("SELECT instructor, zoom_ids FROM instructors "
                                   "WHERE zoom_ids IS NOT NULL"):
            user, pmi = json.loads(ids)
            found[key] = (str(user), str(pmi))
        return found

    def served_as(self, instructor: str) -> dict[str, str] | None:
        """The instructor's settings at their last pass (name, email, provider, ...)."""
        rows = self._rows("SELECT served_as FROM instructors WHERE instructor=?", instructor)
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    # --- offboarding ---

    def offboard(self, instructor: str, at: datetime, by: str = "remove-links") -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO offboarded (instructor, at, by) VALUES (?, ?, ?) "
                       "ON CONFLICT DO NOTHING", (instructor, at.isoformat(), by))
        self._write_journal()

    # --- offboardings, also kept outside the database (OFFBOARDED) ---

    _journal: Path | None = None

    def keep_offboardings(self, journal: Path, merge: bool = True) -> None:
        """Keep `journal` from now on: every offboarding and reinstatement rewrites it. With
        `merge`, take its offboardings back first (a rebuilt, restored or lost database
        would otherwise serve again who was taken out)."""
        self._journal = journal
        try:
            kept = json.loads(journal.read_text()) if journal.exists() else {}
            entries = [(same_person(key), str(at), str(by)) for key, (at, by) in kept.items()]
        except (OSError, ValueError, TypeError, AttributeError) as err:
            raise StateError(f"{journal} cannot be read ({err}): it keeps who was "
                             "offboarded; restore it or remove it knowingly") from None
        self.rekey()
        if merge and entries:
            with self.transaction() as db:
                for key, at, by in entries:
                    db.execute("INSERT INTO offboarded (instructor, at, by) VALUES (?, ?, ?) "
                               "ON CONFLICT DO NOTHING", (key, at, by))
        self._write_journal()

    KEYED = ("sync_tokens", "events", "instructors", "audit", "offboarded", "roster",)

    def rekey(self) -> None:
        """Instructors kept under a key of an earlier version (lower() rather than NFKC
        and case folding, model.same_person) moved to today's key, in every table; an
        address whose new key another already holds stays as it was, and is named."""
        old = {r[0] for table in ("instructors", "offboarded", "roster", "sync_tokens")
               for r in self._rows(f"SELECT DISTINCT instructor FROM {table}")}
        for key in sorted(k for k in old if same_person(k) != k):
            new = same_person(key)
            if new in old:
                log.error("action=rekey instructor=%s problem=%r", key,
                          f"{new} is kept too: both stay, as two people")
                continue
            with self.transaction() as db:
                for table in self.KEYED:
                    db.execute(f"UPDATE {table} SET instructor=? WHERE instructor=?",
                               (new, key))

    def is_empty(self) -> bool:
        """No instructor, offboarding or roster known: a new database, or one lost."""
        return not any(self._rows(f"SELECT 1 FROM {table} LIMIT 1")
                       for table in ("instructors", "offboarded", "roster"))

    def _write_journal(self) -> None:
        """The journal after a change of the offboardings. A journal that cannot be written
        does not stop the change (the database has it): it is said, and written again at
        the next change or open."""
        if self._journal is None:
            return
        rows = self._rows("SELECT instructor, at, by FROM offboarded ORDER BY instructor")
        try:
            write_atomically(self._journal, json.dumps({r[0]: [r[1], r[2]] for r in rows},
                                                       indent=1))
        except OSError as err:
            log.error("action=write-journal journal=%s problem=%r outcome=kept-in-the-"
                      "database-only", self._journal, err.strerror or str(err))

    # --- roster ---

    def roster(self) -> dict[str, tuple[dict[str, str], str | None]]:
        """The roster as last applied: member -> (how served, when they left or None)."""
        return {r[0]: (json.loads(r[1]), r[2])
                for r in self._rows("SELECT instructor, served_as, left_at FROM roster")}

    def apply_roster(self, members: list[dict[str, str]], at: datetime) -> None:
        """A read applied: new members join, absent ones are marked left (once), members
        back are kept; those the roster had offboarded are served again."""
        keys = {same_person(m["email"]): m for m in members}
        back = {r[0] for r in self._rows("SELECT instructor FROM offboarded WHERE by=?",
                                         "roster")} & set(keys)
        with self.transaction() as db:
            for key, served in keys.items():
                db.execute("INSERT INTO roster (instructor, served_as, left_at) "
                           "VALUES (?, ?, NULL) ON CONFLICT (instructor) "
                           "DO UPDATE SET served_as=excluded.served_as, left_at=NULL",
                           (key, json.dumps(served)))
            for key in back:
                db.execute("DELETE FROM offboarded WHERE instructor=? AND by=?", (key, "roster"))
            for (key,) in db.execute("SELECT instructor FROM roster WHERE left_at IS NULL"
                                     ).fetchall():
                if key not in keys:
                    db.execute("UPDATE roster SET left_at=? WHERE instructor=?",
                               (at.isoformat(), key))
        if back:
            self._write_journal()

    def hold(self, reason: str | None, at: datetime) -> None:
        """A roster read not applied, and why (None: the hold is over); held for the same
        reason again, it keeps the moment it began."""
        with self.transaction() as db:
            if reason is None:
                db.execute("DELETE FROM roster_hold")
                return
            db.execute("INSERT INTO roster_hold (id, reason, at) VALUES (1, ?, ?) "
                       "ON CONFLICT (id) DO UPDATE "
                       "SET reason=excluded.reason, at=excluded.at WHERE roster_hold.reason != "
                       "excluded.reason", (reason, at.isoformat()))

    def held(self) -> tuple[str, str] | None:
        rows = self._rows("SELECT reason, at FROM roster_hold")
        return (rows[0][0], rows[0][1]) if rows else None

    def record_stream(self, up: bool | None, since: datetime) -> None:
        """Zoom's event stream up or down since `since`, as the leader sees it (None: no
        stream any more: events off, or the service stopped)."""
        with self.transaction() as db:
            if up is None:
                db.execute("DELETE FROM zoom_events")
                return
            db.execute("INSERT INTO zoom_events (id, up, since) VALUES (1, ?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET up=excluded.up, since=excluded.since",
                       (int(up), since.isoformat()))

    def stream(self) -> tuple[bool, str] | None:
        rows = self._rows("SELECT up, since FROM zoom_events")
        return (bool(rows[0][0]), rows[0][1]) if rows else None

    def reinstate(self, instructor: str | None) -> list[str]:
        """Serve again one instructor taken out by remove-links (None: all); who it was."""
        which, args = ("", ()) if instructor is None else (" WHERE instructor=?", (instructor,))
        with self.transaction() as db:
            rows = db.execute("SELECT instructor FROM offboarded" + which, args).fetchall()
            db.execute("DELETE FROM offboarded" + which, args)
        self._write_journal()
        return [r[0] for r in rows]

    def offboarded(self) -> dict[str, str]:
        """Instructors taken out by remove-links, with when."""
        return {r[0]: r[1] for r in self._rows("SELECT instructor, at FROM offboarded")}

    def is_offboarded(self, instructor: str) -> bool:
        return bool(self._rows("SELECT 1 FROM offboarded WHERE instructor=?", instructor))

    def pmi_checked(self, instructor: str) -> bool:
        """Whether the instructor's PMI was ever checked (secured or found refused)."""
        return bool(self._rows("SELECT 1 FROM instructors WHERE instructor=? AND pmi "
                               "IS NOT NULL", instructor))
