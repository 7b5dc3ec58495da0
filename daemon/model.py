"""The shared vocabulary: calendar events as every provider hands them to the engine.

Providers translate their own shapes into these; reconcile and the engine see nothing else.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum


class Room(Enum):
    """A PMI's state at its last check (its words for people are in the status text)."""

    SECURE = "secure"  # found secure
    REPAIRED = "repaired"  # made secure, and read back so
    WOULD_REPAIR = "would repair"  # --dry-run: found insecure, not changed
    REFUSED = "refused"  # Zoom refused the repair (a setting locked by the account)
    NOT_SECURE = "not secure"  # a daily limit stopped the repair until it lifts

    @property
    def secure(self) -> bool:
        return self in (Room.SECURE, Room.REPAIRED)

    @property
    def failing(self) -> bool:
        """Said loudly: status's exit code, the failing count, the metrics."""
        return self in (Room.REFUSED, Room.NOT_SECURE)


class Kind(Enum):
    SERIES = "series"  # a recurring event's master, with its RFC 5545 recurrence lines
    EXCEPTION = "exception"  # a modified occurrence of a series
    CANCELLED = "cancelled"  # a cancelled occurrence, or a deleted event
    SINGLE = "single"  # an event that does not recur


@dataclass(frozen=True)
class Event:
    id: str
    kind: Kind
    title: str = ""
    description: str = ""
    location: str = ""
    etag: str = ""
    organizer_self: bool = False
    series_id: str | None = None  # the series of an exception or a cancelled occurrence
    original_start: datetime | date | None = None  # which occurrence an exception replaces
    start: datetime | date | None = None  # aware datetime, or a date for all-day events
    end: datetime | date | None = None
    timezone: str | None = None  # IANA name the event recurs in
    recurrence: tuple[str, ...] = field(default_factory=tuple)
    changed: datetime | None = None  # the vendor's last change to it (the reaction metric)


@dataclass(frozen=True)
class JoinLink:
    """What an instructor's Zoom PMI offers: the join URL and what the template may show."""

    url: str
    meeting_id: str
    passcode: str = ""  # set only when it belongs in the invite (links.include_passcode)

    @property
    def display_id(self) -> str:
        digits = self.meeting_id
        if len(digits) == 10:
            return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
        if len(digits) == 11:
            return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
        return digits


def normalize_title(title: str) -> str:
    """CONTRACT.md's Matching: without Unicode format characters (zero-width spaces...),
    each run of Unicode white space (a no-break space, which editors insert, included) one
    space, trimmed, case-folded."""
    visible = "".join(ch for ch in title if unicodedata.category(ch) != "Cf")
    return " ".join(visible.split()).casefold()


def is_office_hours(title: str, titles: tuple[str, ...]) -> bool:
    """CONTRACT.md's matching: equal to a title, or a title then a non-alphanumeric."""
    candidate = normalize_title(title)
    for wanted in titles:
        prefix = normalize_title(wanted)
        if candidate == prefix:
            return True
        if candidate.startswith(prefix) and not candidate[len(prefix)].isalnum():
            return True
    return False


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class KnownEvent:
    event: Event
    link_hash: str | None
    owned_location_hash: str | None

    def owns_location(self, location: str) -> bool:
        hashes = (self.owned_location_hash or "").split(",")
        return bool(location.strip()) and fingerprint(location) in hashes


_PWD = re.compile(r"(pwd=)[^&#\s\"'<]+")


def same_person(address: str) -> str:
    """An address as compared: NFKC-normalised and case-folded (so a full-width or
    differently cased spelling of one address is one person); an id as written."""
    return unicodedata.normalize("NFKC", address).casefold() if "@" in address else address


def share_of(key: str) -> float:
    """A fraction in [0, 1) fixed by `key`: where an instructor's periodic work falls in its
    period, so that thousands of instructors spread out rather than come due together."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x100000000


def mask_url(text: str) -> str:
    """Join URLs with their `pwd=` part masked, for logs, audit and status."""
    return _PWD.sub(r"\1***", text)


@dataclass(frozen=True)
class Instructor:
    """Someone served: whose calendar (provider, calendar_id) and whose Zoom room."""

    name: str
    email: str
    provider: str  # "google" or "microsoft"
    calendar_id: str
    zoom_user: str

    @property
    def key(self) -> str:
        """Stable identity in the state database: the address as compared (same_person)."""
        return same_person(self.email)
