"""The schema both backends keep, as the steps that made it (postgres.py adds its own
tables at the versions named there)."""

from __future__ import annotations

# Each entry brings the database from the previous version to the next; applied on open,
# in one transaction, so an upgrade is just a restart. Never edit a released entry.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE sync_tokens (
        instructor TEXT NOT NULL, calendar TEXT NOT NULL, token TEXT NOT NULL,
        PRIMARY KEY (instructor, calendar));
    CREATE TABLE events (
        instructor TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,
        series_id TEXT, body TEXT NOT NULL,
        link_hash TEXT,            -- hash of the join URL the event offers, as last written/seen
        owned_location_hash TEXT,  -- hash of the location the program wrote there, if it did
        PRIMARY KEY (instructor, event_id));
    CREATE TABLE instructors (
        instructor TEXT PRIMARY KEY, name TEXT NOT NULL, last_pass TEXT, last_error TEXT,
        zoom_state TEXT, zoom_checked TEXT, next_session TEXT);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, instructor TEXT NOT NULL,
        target TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
    """,
    # 2: for which session an instructor's failure was last logged at error level
    """
    ALTER TABLE instructors ADD COLUMN error_logged_for TEXT;
    """,
    # 3: what a student meets at the PMI at its last check (JSON), judged by the PMI
    # meeting itself; NULL until the first check under that rule, so an upgrade re-checks.
    # And when the next session ends, so that status can tell one under way.
    """
    ALTER TABLE instructors ADD COLUMN pmi TEXT;
    ALTER TABLE instructors ADD COLUMN next_session_end TEXT;
    """,
    # 4: instructors taken out by remove-links (the service serves them no more until
    # reinstated), and how each instructor is served, so that remove-links works for an
    # address the configuration no longer lists
    """
    CREATE TABLE offboarded (instructor TEXT PRIMARY KEY, at TEXT NOT NULL);
    ALTER TABLE instructors ADD COLUMN served_as TEXT;
    """,
    # 5: the roster as last applied (who, how served, since when gone), a held read, and
    # who offboarded whom (the roster brings back only those it offboarded itself)
    """
    CREATE TABLE roster (instructor TEXT PRIMARY KEY, served_as TEXT NOT NULL, left_at TEXT);
    CREATE TABLE roster_hold (id INTEGER PRIMARY KEY CHECK (id = 1), reason TEXT NOT NULL,
                              at TEXT NOT NULL);
    ALTER TABLE offboarded ADD COLUMN by TEXT;
    """,
    # 6: the epoch each audit line was written under (two or more nodes: postgres.py adds
    # its lease table at this version; a database SQLite made at 6 before has one too,
    # unused)
    """
    ALTER TABLE audit ADD COLUMN epoch BIGINT;
    """,
    # 7: nothing both backends keep (postgres.py: the nodes' heartbeats, the renewal time)
    "",
    # 8: the room's state at the last check as a value (model.Room), beside its text; the
    # rows of earlier versions get theirs from the text
    """
    ALTER TABLE instructors ADD COLUMN room TEXT;
    UPDATE instructors SET room = CASE
        WHEN substr(zoom_state, 1, 7) = 'refused' THEN 'refused'
        WHEN substr(zoom_state, 1, 10) = 'NOT secure' THEN 'not secure'
        WHEN substr(zoom_state, 1, 8) = 'repaired' THEN 'repaired'
        WHEN substr(zoom_state, 1, 6) = 'secure' THEN 'secure' END;
    """,
    # 9: Zoom's event stream as the leading node last saw it ([zoom] events): up or down,
    # since when (status and the metrics read it; not copied by `state migrate`); and the
    # ids Zoom's events name each instructor's room by (the user's id, the PMI)
    """
    ALTER TABLE instructors ADD COLUMN zoom_ids TEXT;
    CREATE TABLE zoom_events (id INTEGER PRIMARY KEY CHECK (id = 1), up INTEGER NOT NULL,
                              since TEXT NOT NULL);
    """,
    # 10: calendar change notifications ([push]): each served calendar's subscription (a
    # Google channel, a Graph subscription), with the secret the vendor echoes, so that a
    # restart or a failover keeps them; and the calendars notified and not yet read (any
    # node receives, the leader reads)
    """
    CREATE TABLE push (
        instructor TEXT PRIMARY KEY, provider TEXT NOT NULL,
        channel TEXT NOT NULL,     -- Google's channel id, Graph's subscription id ('': none)
        resource TEXT NOT NULL,    -- Google's resourceId (Graph: '')
        secret TEXT NOT NULL,      -- the channel token, the clientState
        address TEXT NOT NULL,     -- where the vendor sends (public_url's path for it)
        calendar TEXT NOT NULL,    -- the calendar it watches (calendar_id)
        confirmed TEXT,            -- when the vendor first reached us through it
        expires TEXT NOT NULL,     -- ISO 8601, UTC
        problem TEXT,              -- why there is none (polled at the usual interval then)
        since TEXT);
    CREATE INDEX push_channel ON push (channel);
    CREATE TABLE push_queue (instructor TEXT PRIMARY KEY, why TEXT NOT NULL,
                             rank INTEGER NOT NULL, at TEXT NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# what `state migrate` copies: the tables both backends keep (the lease and the
# heartbeats belong to each database: its epoch never goes back)
TABLES = ("sync_tokens", "events", "instructors", "audit", "offboarded", "roster",
          "roster_hold", "push")
