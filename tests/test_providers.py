"""Each calendar provider passes the one provider contract (provider_contract.py):
Google and Microsoft against their HTTPS emulators, and the in-memory provider that
engine and plan tests may use."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memory_calendar import MemoryCalendar
from officehours_sandbox.domain import Sandbox
from provider_contract import ProviderContract

from daemon.app import Providers
from daemon.calendars.base import CalendarProvider
from daemon.config import load
from daemon.http import Outbound
from daemon.model import Event, Kind

ADA = "ada@example.edu"
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)


class _Vendor:
    """The sandbox world, for one instructor of one vendor."""

    html = False

    def __init__(self, microsoft: bool) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.box = Sandbox(Path(self._dir.name), page_size=2)
        (self.box.add_microsoft_instructor if microsoft else self.box.add_instructor)(
            "Ada Lovelace", ADA, 8123456789)
        config = load(self.box.write_config())
        self.slept: list[float] = []
        self._providers = Providers(config, Outbound(self.box.ca.bundle, 5.0,
                                                     self.slept.append))
        self.provider: CalendarProvider = self._providers(config.instructors[0])
        self._n = 0

    def close(self) -> None:
        self._providers.close()
        self.box.stop()
        self._dir.cleanup()

    def _slot(self) -> tuple[datetime, datetime]:
        self._n += 1
        start = START + timedelta(hours=self._n)
        return start, start + timedelta(minutes=50)

    def expire_sync_state(self) -> None:
        self.emulator.expire_sync_state()

    def expire_access_token(self) -> None:
        self.emulator.expire_access_tokens()

    def token_requests(self) -> int:
        return len(self.emulator.requests("POST", self.token_path))

    token_path = "/token"

    emulator: Any


class GoogleWorld(_Vendor):
    def __init__(self) -> None:
        super().__init__(microsoft=False)
        self.emulator = self.box.google

    def add_office_hours(self, description: str = "") -> str:
        start, end = self._slot()
        return self.box.google.add_event(
            ADA, summary="Office Hours", description=description,
            start={"dateTime": start.isoformat(), "timeZone": "UTC"},
            end={"dateTime": end.isoformat(), "timeZone": "UTC"})

    def edit(self, event_id: str, description: str) -> None:
        self.box.google.edit_event(ADA, event_id, description=description)

    def delete(self, event_id: str) -> None:
        self.box.google.delete_event(ADA, event_id)

    def inject(self, kind: str, what: str) -> None:
        self.box.google.inject(kind, "GET", r"/events/[^/?]+(\?|$)" if what == "get"
                               else r"/events(\?|$)")


class GraphWorld(_Vendor):
    html = True
    token_path = "/oauth2/v2.0/token"

    def __init__(self) -> None:
        super().__init__(microsoft=True)
        self.emulator = self.box.graph

    def add_office_hours(self, description: str = "") -> str:
        return self.box.graph.add_event(ADA, *self._slot(), subject="Office Hours",
                                        body={"contentType": "html", "content": description})

    def edit(self, event_id: str, description: str) -> None:
        self.box.graph.edit_event(ADA, event_id,
                                  body={"contentType": "html", "content": description})

    def delete(self, event_id: str) -> None:
        self.box.graph.delete_event(ADA, event_id)

    def inject(self, kind: str, what: str) -> None:
        self.box.graph.inject(kind, "GET", r"/events/[^/?]+(\?|$)" if what == "get"
                              else r"/delta")


class MemoryWorld:
    html = False

    def __init__(self) -> None:
        self.provider = self.calendar = MemoryCalendar()
        self.slept: list[float] = []
        self._n = 0

    def add_office_hours(self, description: str = "") -> str:
        self._n += 1
        start = START + timedelta(hours=self._n)
        return self.calendar.add(Event(f"m{self._n}", Kind.SINGLE, "Office Hours",
                                       description, organizer_self=True, start=start,
                                       end=start + timedelta(minutes=50))).id

    def edit(self, event_id: str, description: str) -> None:
        self.calendar.edit(event_id, description=description)

    def delete(self, event_id: str) -> None:
        self.calendar.delete(event_id)

    def expire_sync_state(self) -> None:
        self.calendar.expire_sync_state()

    def expire_access_token(self) -> None:
        pass

    def token_requests(self) -> int:
        return 0

    def inject(self, kind: str, what: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TestGoogleProvider(ProviderContract):
    def world(self) -> GoogleWorld:
        return GoogleWorld()


class TestGraphProvider(ProviderContract):
    def world(self) -> GraphWorld:
        return GraphWorld()


class TestMemoryProvider(ProviderContract):
    vendor_faults = False

    def world(self) -> MemoryWorld:
        return MemoryWorld()
