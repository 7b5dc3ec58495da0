"""What the engine needs from a calendar provider (its errors: ../errors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..model import Event


@dataclass(frozen=True)
class Listing:
    events: list[Event]
    sync_token: str  # hand back next time to get only what changed
    full: bool  # True: this is the whole calendar, anything not in it is gone


class CalendarProvider(Protocol):
    requests: int
    description_limit: int  # the longest description the calendar takes, in characters

    def changes(self, sync_token: str | None) -> Listing:
        """Everything (sync_token None) or what changed since sync_token."""
        ...

    def get(self, event_id: str) -> Event | None:
        """One event as it is now, or None when it is gone."""
        ...

    def patch(self, event: Event, description: str, location: str) -> Event:
        """Write description and location if `event.etag` is still current; raise Conflict."""
        ...

    def access(self) -> str:
        """Check the calendar can be read and written (without writing); describe the access
        in a few words, or raise CalendarError saying why not."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
