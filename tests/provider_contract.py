"""The contract every calendar provider keeps (vdirsyncer's StorageTests, for ours):
listing and incremental changes across pages, expired sync state, 412 -> re-read and
retry, deleted events, bodies kept byte for byte, and, for providers behind a vendor,
an access token expiring and each form of 429 answered with a retry.

Subclass ProviderContract and give it `world()`, a World over that provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

from daemon.calendars.base import CalendarProvider
from daemon.errors import Conflict, SyncExpired
from daemon.model import Kind
from daemon.reconcile import visible


class World(Protocol):
    """A provider for one instructor, and the instructor's own hand on the calendar."""

    provider: CalendarProvider
    slept: list[float]  # how long each retry waited
    html: bool  # whether descriptions may be HTML (Outlook stores them so)

    def add_office_hours(self, description: str = "") -> str: ...
    def edit(self, event_id: str, description: str) -> None: ...
    def delete(self, event_id: str) -> None: ...
    def expire_sync_state(self) -> None: ...
    def expire_access_token(self) -> None: ...
    def token_requests(self) -> int:
        """How many access tokens the provider has asked its vendor for."""
    def inject(self, kind: str, what: str) -> None:
        """A fault (faults.py) on the next request of `what`: "list" or "get"."""
    def close(self) -> None: ...


class ProviderContract:
    vendor_faults = True  # whether the world can inject a vendor's faults

    def world(self) -> World:
        raise NotImplementedError

    @pytest.fixture
    def calendar(self) -> Iterator[World]:
        made = self.world()
        yield made
        made.close()

    def test_a_full_listing_then_only_what_changed(self, calendar: World) -> None:
        ids = [calendar.add_office_hours(f"session {n}") for n in range(5)]  # several pages
        listing = calendar.provider.changes(None)
        assert listing.full and set(ids) <= {e.id for e in listing.events}
        calendar.edit(ids[2], "moved to room 4")
        later = calendar.provider.changes(listing.sync_token)
        changed = {e.id for e in later.events if e.kind is not Kind.CANCELLED}
        assert not later.full and ids[2] in changed and ids[0] not in changed
        assert calendar.provider.changes(later.sync_token).events == []

    def test_expired_sync_state_asks_for_a_full_listing(self, calendar: World) -> None:
        calendar.add_office_hours()
        token = calendar.provider.changes(None).sync_token
        calendar.expire_sync_state()
        with pytest.raises(SyncExpired):
            calendar.provider.changes(token)
        assert calendar.provider.changes(None).full

    def test_a_write_over_an_edit_is_a_conflict_then_a_fresh_read_writes(
            self, calendar: World) -> None:
        event_id = calendar.add_office_hours("Questions welcome.")
        seen = calendar.provider.get(event_id)
        assert seen is not None and seen.etag
        calendar.edit(event_id, "The instructor's own words.")
        with pytest.raises(Conflict):
            calendar.provider.patch(seen, "ours", "https://z/j/1")
        fresh = calendar.provider.get(event_id)
        assert fresh is not None and "own words" in fresh.description
        calendar.provider.patch(fresh, fresh.description + " ours", "https://z/j/1")
        written = calendar.provider.get(event_id)
        assert written is not None and written.location == "https://z/j/1"
        assert written is not None and visible(written.description).endswith(" ours")  # as stored

    def test_a_deleted_event_reads_as_gone(self, calendar: World) -> None:
        event_id = calendar.add_office_hours()
        token = calendar.provider.changes(None).sync_token
        calendar.delete(event_id)
        assert calendar.provider.get(event_id) is None
        later = calendar.provider.changes(token)
        gone = [e for e in later.events if e.id == event_id]  # named, and as cancelled
        assert gone and all(e.kind is Kind.CANCELLED for e in gone), later.events

    def test_a_description_is_kept_byte_for_byte(self, calendar: World) -> None:
        text = ("<div>Bring <b>your</b> code &amp; questions</div>" if calendar.html
                else "Bring your code\n  & questions  ")
        event_id = calendar.add_office_hours(text)
        seen = calendar.provider.get(event_id)
        assert seen is not None and text in seen.description
        calendar.provider.patch(seen, seen.description, "")
        again = calendar.provider.get(event_id)
        assert again is not None and again.description == seen.description
        assert calendar.provider.description_limit > 1000

    def test_an_expired_access_token_is_renewed_on_the_way(self, calendar: World) -> None:
        if not self.vendor_faults:
            pytest.skip("no tokens here")
        calendar.add_office_hours()
        calendar.provider.changes(None)
        tokens = calendar.token_requests()
        assert tokens >= 1
        calendar.provider.changes(None)
        assert calendar.token_requests() == tokens  # a token in force is used again
        calendar.expire_access_token()
        assert calendar.provider.changes(None).full  # the 401 cost a new token, not the read
        assert calendar.token_requests() == tokens + 1

    @pytest.mark.parametrize("kind", ["429", "429-fraction", "429-date", "429-bare", "503"])
    def test_throttling_in_every_form_is_waited_out(self, calendar: World, kind: str) -> None:
        if not self.vendor_faults:
            pytest.skip("no vendor here")
        event_id = calendar.add_office_hours()
        calendar.inject(kind, "get")
        assert calendar.provider.get(event_id) is not None
        assert len(calendar.slept) == 1 and 0 <= calendar.slept[0] <= 60
