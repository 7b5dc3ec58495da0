"""The state of calendar change notifications ([push]), in the SQL both backends speak:
each calendar's subscription, and the calendars notified but not read yet.

Any node receives notifications (behind one load balancer) and only the leader reads
calendars, so what the receiver does goes through the state: it looks a channel up and
queues its calendar `loose`, outside the leader's fence (a standby may do both); the
leader takes the queue and keeps the subscriptions, fenced like every write of its term.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from . import Subscription

_COLUMNS = ("instructor, provider, channel, resource, secret, expires, problem, since, "
            "address, calendar, confirmed")
# a calendar queued twice keeps the weightier reason: Graph's lifecycle events ask for
# more than a read (made again, renewed), and must not be lost behind a change
RANK = {"graph:subscriptionRemoved": 3, "graph:reauthorizationRequired": 2,
        "graph:missed": 1}


def _subscription(row: tuple[Any, ...]) -> Subscription:
    (instructor, provider, channel, resource, secret, expires, problem, since, address,
     calendar, confirmed) = row
    return Subscription(instructor, provider, channel, resource, secret,
                        datetime.fromisoformat(expires), problem,
                        datetime.fromisoformat(since) if since else None, address, calendar,
                        datetime.fromisoformat(confirmed) if confirmed else None)


class PushRows:
    """Mixed into SqlStore: `transaction` and `_rows` are the backend's; `_loose` and
    `_loose_rows` the same outside the fence (PostgreSQL overrides them)."""

    def transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _loose(self) -> AbstractContextManager[Any]:
        return self.transaction()

    def _loose_rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self._rows(sql, *args)

    def subscriptions(self) -> dict[str, Subscription]:
        """Every calendar's subscription (or why it has none), by instructor."""
        return {row[0]: _subscription(row)
                for row in self._loose_rows(f"SELECT {_COLUMNS} FROM push")}

    def subscription_of(self, instructor: str) -> Subscription | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM push WHERE instructor = ?", instructor)
        return _subscription(rows[0]) if rows else None

    def subscription(self, channel: str) -> Subscription | None:
        """The subscription a notification names (any node: loose)."""
        if not channel:
            return None
        rows = self._loose_rows(f"SELECT {_COLUMNS} FROM push WHERE channel = ?", channel)
        return _subscription(rows[0]) if rows else None

    def save_subscription(self, subscription: Subscription) -> None:
        s = subscription
        with self.transaction() as db:
            db.execute(f"INSERT INTO push ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (instructor) DO UPDATE SET provider=excluded.provider, "
                       "channel=excluded.channel, resource=excluded.resource, "
                       "secret=excluded.secret, expires=excluded.expires, "
                       "problem=excluded.problem, since=excluded.since, "
                       "address=excluded.address, calendar=excluded.calendar, "
                       # the same channel keeps the confirmation the receiver wrote
                       "confirmed=CASE WHEN push.channel = excluded.channel THEN "
                       "COALESCE(push.confirmed, excluded.confirmed) ELSE excluded.confirmed "
                       "END",
                       (s.instructor, s.provider, s.channel, s.resource, s.secret,
                        s.expires.isoformat(), s.problem,
                        s.since.isoformat() if s.since else None, s.address, s.calendar,
                        s.confirmed.isoformat() if s.confirmed else None))

    def drop_subscription(self, instructor: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM push WHERE instructor = ?", (instructor,))

    def notified(self, instructor: str, why: str, at: datetime) -> None:
        """Queue a calendar to be read (any node: loose); a calendar queued already stays
        queued once, as first notified, with the weightier reason (RANK)."""
        with self._loose() as db:
            db.execute("INSERT INTO push_queue (instructor, why, rank, at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (instructor) DO UPDATE SET why=excluded.why, "
                       "rank=excluded.rank WHERE excluded.rank > push_queue.rank",
                       (instructor, why, RANK.get(why, 0), at.isoformat()))

    def confirm(self, channel: str, at: datetime) -> None:
        """The vendor reached the receiver through `channel` (any node: loose)."""
        with self._loose() as db:
            db.execute("UPDATE push SET confirmed = ? WHERE channel = ? AND confirmed IS NULL",
                       (at.isoformat(), channel))

    def take_notified(self) -> list[tuple[str, str]]:
        """The calendars queued, oldest first, taken off the queue (the leader)."""
        with self.transaction() as db:
            rows = db.execute("SELECT instructor, why FROM push_queue ORDER BY at").fetchall()
            if rows:
                db.execute("DELETE FROM push_queue WHERE instructor IN "
                           f"({', '.join('?' * len(rows))})", [r[0] for r in rows])
        return [(r[0], r[1]) for r in rows]
