"""What the program keeps between passes, as an interface: sync tokens, what it knows and
wrote of each event, each instructor's status, offboarding, and the audit log.

sql.py holds the SQL both backends speak, sqlite.py the embedded default, postgres.py the
store shared by two or more nodes (with its lease table); each passes
tests/store_contract.py. Every method is one transaction: a kill -9 between two calls
leaves a state that the next pass converges from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..model import Event, KnownEvent, Room


class StateError(Exception):
    """The state database cannot be used; the message says what to do.

    `unusable`: no restart can help (a directory that cannot be written, a database from a
    newer version): the service exits 78 so that systemd stops restarting it."""

    def __init__(self, message: str, unusable: bool = False, damaged: bool = False,
                 stuck: bool = False) -> None:
        super().__init__(message)
        self.unusable = unusable
        self.damaged = damaged  # the file failed SQLite's integrity check: set aside
        # the database cannot be used now (full disk, I/O error, lock, damage): a command
        # stops with 78, the service holds its pass and tries again
        self.stuck = stuck or damaged


class Fenced(Exception):
    """A write refused: another node took the lead (a newer epoch), or this node's lease
    ran out. Nothing more is written to the state, the calendars or Zoom."""


class Fence(Protocol):
    """A node's right to write: the `epoch` it writes under (None: no epoch, one node on
    SQLite); `check` raises Fenced once its lead can no longer be trusted."""

    @property
    def epoch(self) -> int | None: ...

    def check(self) -> None: ...

    def revoke(self) -> None: ...  # a newer epoch was seen: refuse everything from now on


@dataclass(frozen=True)
class Subscription:
    """A served calendar's change notifications ([push]): a Google channel or a Graph
    subscription, the secret the vendor echoes with each notification, and when it ends.
    `channel` "" with a `problem`: none could be made (the calendar is polled as usual)."""

    instructor: str
    provider: str
    channel: str
    resource: str  # Google's resourceId (channels.stop needs it); Graph: ""
    secret: str = field(repr=False)
    expires: datetime
    problem: str | None = None
    since: datetime | None = None  # when it was made, or last failed
    address: str = ""  # where the vendor sends ({public_url}/google or /graph)
    calendar: str = ""  # the calendar it watches
    # when the vendor first reached the receiver through it (Google's "sync" message;
    # Graph's validation before it made it): until then it is not trusted to notify
    confirmed: datetime | None = None

    def healthy(self, now: datetime) -> bool:
        return bool(self.channel) and self.problem is None and now < self.expires and \
            self.confirmed is not None


@dataclass(frozen=True)
class InstructorStatus:
    instructor: str
    name: str
    last_pass: str | None
    last_error: str | None
    zoom_state: str | None
    zoom_checked: str | None
    next_session: str | None
    pmi: dict[str, bool] | None  # what a student meets, as Engine.enforce recorded it
    next_session_end: str | None
    room: Room | None = None  # the room at the last check; None: not checked yet


class Store(Protocol):
    # --- sync tokens ---
    def sync_token(self, instructor: str, calendar: str) -> str | None: ...
    def save_sync_token(self, instructor: str, calendar: str, token: str) -> None: ...

    # --- events: the office-hours events known, what was written to them ---
    def known_events(self, instructor: str) -> dict[str, KnownEvent]: ...
    def known_event(self, instructor: str, event_id: str) -> KnownEvent | None: ...
    def replace_events(self, instructor: str, events: list[Event], full: bool,
                       gone: list[str]) -> None: ...
    def mark_link(self, instructor: str, event_id: str, url: str | None,
                  owned_location: str | None) -> None: ...
    def add_pending_location(self, instructor: str, event_id: str, location: str) -> None: ...
    def forget_instructor_events(self, instructor: str) -> None: ...

    # --- each instructor's status ---
    def record_status(self, instructor: str, name: str, **fields: str | None) -> None: ...
    def error_logged_for(self, instructor: str) -> str | None: ...
    def served_as(self, instructor: str) -> dict[str, str] | None: ...
    def pmi_checked(self, instructor: str) -> bool: ...
    def statuses(self) -> dict[str, InstructorStatus]: ...
    def zoom_ids(self) -> dict[str, tuple[str, str]]: ...

    # --- offboarding (remove-links) ---
    def offboard(self, instructor: str, at: datetime, by: str = "remove-links") -> None: ...
    def reinstate(self, instructor: str | None) -> list[str]: ...
    def offboarded(self) -> dict[str, str]: ...
    def is_offboarded(self, instructor: str) -> bool: ...

    # --- roster ---
    def roster(self) -> dict[str, tuple[dict[str, str], str | None]]: ...
    def apply_roster(self, members: list[dict[str, str]], at: datetime) -> None: ...
    def hold(self, reason: str | None, at: datetime) -> None: ...
    def held(self) -> tuple[str, str] | None: ...

    # --- Zoom's event stream ---
    def record_stream(self, up: bool | None, since: datetime) -> None: ...
    def stream(self) -> tuple[bool, str] | None: ...

    # --- calendar change notifications ([push]; store/push.py) ---
    def subscriptions(self) -> dict[str, Subscription]: ...
    def subscription(self, channel: str) -> Subscription | None: ...
    def subscription_of(self, instructor: str) -> Subscription | None: ...
    def save_subscription(self, subscription: Subscription) -> None: ...
    def drop_subscription(self, instructor: str) -> None: ...
    def notified(self, instructor: str, why: str, at: datetime) -> None: ...
    def confirm(self, channel: str, at: datetime) -> None: ...
    def take_notified(self) -> list[tuple[str, str]]: ...

    # --- audit ---
    def audit(self, at: datetime, instructor: str, target: str, action: str,
              detail: dict[str, Any]) -> int: ...
    def settle_audit(self, entry: int, done: bool) -> None: ...
    def audit_log(self, instructor: str | None = None, since: datetime | None = None,
                  ) -> list[tuple[str, str, str, str, dict[str, Any]]]: ...

    def abort(self, stuck_for: float | None = None) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Lead:
    """The lease row of a shared store: `live` while its lease holds; `quiet`: seconds
    since it was renewed (a leader renews every lease/5 seconds)."""

    node: str
    epoch: int
    since: str | None
    live: bool
    quiet: float


@runtime_checkable
class Shared(Protocol):
    """A store two or more nodes share: who leads, and every node's heartbeat."""

    def leader(self) -> Lead | None: ...
    def nodes(self) -> list[tuple[str, str, float]]: ...
