"""A calendar held in memory that keeps the providers' contract (tests/provider_contract.py):
ETags that refuse a stale write, sync tokens that expire, deletions seen as cancelled.

For fast engine and plan tests, as vdirsyncer's memory storage is for its own.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from daemon.calendars.base import Listing
from daemon.errors import Conflict, Gone, SyncExpired
from daemon.model import Event, Kind


class MemoryCalendar:
    """A CalendarProvider over a dict; `add`, `edit` and `delete` act as the instructor."""

    description_limit = 8_000

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self._changed: dict[str, int] = {}  # event id -> the version that last touched it
        self._versions = itertools.count(1)
        self._version = 0
        self._epoch = 0  # tokens of an earlier epoch are expired
        self.requests = 0

    def _touch(self, event: Event) -> Event:
        self._version = next(self._versions)
        event = replace(event, etag=f'"{self._version}"')
        self.events[event.id] = event
        self._changed[event.id] = self._version
        return event

    # --- the instructor ---

    def add(self, event: Event) -> Event:
        return self._touch(event)

    def edit(self, event_id: str, **changes: Any) -> Event:
        return self._touch(replace(self.events[event_id], **changes))

    def delete(self, event_id: str) -> None:
        self._touch(Event(event_id, Kind.CANCELLED))

    def expire_sync_state(self) -> None:
        self._epoch += 1

    # --- CalendarProvider ---

    def changes(self, sync_token: str | None) -> Listing:
        self.requests += 1
        token = f"{self._epoch}:{self._version}"
        if sync_token is None:
            live = [e for e in self.events.values() if e.kind is not Kind.CANCELLED]
            return Listing(live, token, full=True)
        epoch, _, since = sync_token.partition(":")
        if int(epoch) != self._epoch:
            raise SyncExpired("memory: the sync token expired", status=410)
        return Listing([self.events[i] for i, v in self._changed.items() if v > int(since)],
                       token, full=False)

    def get(self, event_id: str) -> Event | None:
        self.requests += 1
        event = self.events.get(event_id)
        return None if event is None or event.kind is Kind.CANCELLED else event

    def patch(self, event: Event, description: str, location: str) -> Event:
        self.requests += 1
        current = self.events.get(event.id)
        if current is None or current.kind is Kind.CANCELLED:
            raise Gone(f"memory: event {event.id} is gone", status=410)
        if current.etag != event.etag:
            raise Conflict(f"memory: event {event.id} changed meanwhile", status=412)
        return self._touch(replace(current, description=description, location=location))

    def access(self) -> str:
        return "readable and writable (memory)"

    def close(self) -> None:
        pass
