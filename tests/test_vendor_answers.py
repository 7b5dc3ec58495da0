"""Every reader of vendor data fed malformed, huge, repeated and foreign answers (Hypothesis):
each ends as that vendor's typed error (CalendarError, ZoomError) or a result, never another
exception, never an unbounded loop, and no request leaves for a host the config does not
name. The answers are the emulators' own, mutated on their way out."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import HOUR, at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Request, Response
from test_edges import Elsewhere

from daemon.app import Providers, outbound_for
from daemon.calendars.base import instant
from daemon.config import load
from daemon.errors import CalendarError, ZoomError
from daemon.http import Outbound
from daemon.zoom.client import ZoomClient

ADA, MARY = "ada@example.edu", "mary@example.edu"
JUNK = st.one_of(st.none(), st.integers(), st.booleans(), st.floats(allow_nan=False),
                 st.text(max_size=20), st.just("x" * 20_000), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
GOOGLE_FIELDS = ["id", "summary", "description", "location", "start", "end", "recurrence",
                 "recurringEventId", "status", "organizer", "etag", "originalStartTime",
                 "updated"]
GRAPH_FIELDS = ["id", "subject", "body", "location", "start", "end", "type", "seriesMasterId",
                "isCancelled", "@odata.etag", "originalStart", "recurrence", "@removed",
                "lastModifiedDateTime"]


class World:
    """One sandbox for all examples: Ada on Google, Mary on Outlook, both with a few events
    (pages of 3), their providers, a Zoom client, and a host nobody configured."""

    def __init__(self, sandbox: Sandbox) -> None:
        now = datetime.now(UTC)
        self.box = sandbox
        sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
        sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
        for n in range(5):
            sandbox.google.add_event(ADA, summary="Office Hours", description=f"d{n}",
                                     start=at(now + (n + 1) * HOUR),
                                     end=at(now + (n + 2) * HOUR),
                                     **({"recurrence": ["RRULE:FREQ=WEEKLY"]} if n == 0 else {}))
            sandbox.graph.add_event(MARY, now + (n + 1) * HOUR, now + (n + 2) * HOUR,
                                    subject="Office Hours")
        self.config = load(sandbox.write_config())
        self.providers = Providers(self.config, outbound_for(self.config, lambda s: None))
        ada, mary = self.config.instructors
        self.google, self.graph = self.providers(ada), self.providers(mary)
        self.zoom = ZoomClient(self.config.zoom, sandbox.zoom_secret, Outbound(
            sandbox.ca.bundle, 5.0, lambda s: None).httpx(
            "zoom", self.config.zoom.api_base_url, self.config.zoom.oauth_base_url),
            sleep=lambda s: None)
        self.elsewhere = Elsewhere(sandbox)
        for emulator in (sandbox.google, sandbox.graph, sandbox.zoom):
            emulator.validate = False

    def mutate(self, emulator: Any, change: Callable[[Request, dict[str, Any]], None]) -> None:
        def hook(request: Request, response: Response) -> None:
            if request.method == "GET" and isinstance(response.body, dict):
                response.body = copy.deepcopy(response.body)
                change(request, response.body)
        emulator.after_hooks[:] = [hook]

    def reset(self) -> None:
        for emulator in (self.box.google, self.box.graph, self.box.zoom):
            emulator.after_hooks.clear()
            emulator.log.clear()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    box = Sandbox(tmp_path_factory.mktemp("answers"))
    made = World(box)
    yield made
    made.elsewhere.served.stop()
    made.zoom.close()
    made.providers.close()
    box.stop()


def bounded(world: World, call: Callable[[], object], errors: type[Exception]) -> None:
    """`call` returns or raises `errors`; at most a few dozen requests; nothing elsewhere."""
    try:
        call()
    except errors:
        pass
    finally:
        world.reset()
    assert world.elsewhere.arrived == []


def item_change(items_key: str, fields: list[str]) -> st.SearchStrategy[Any]:
    """A change to one answer: a field of an item made junk or dropped, a page field made
    junk, the page made huge, or its next page repeated."""
    return st.one_of(
        st.tuples(st.just("field"), st.sampled_from(fields), JUNK),
        st.tuples(st.just("drop"), st.sampled_from(fields), st.none()),
        st.tuples(st.just("page"), st.sampled_from([items_key, "nextPageToken",
                                                    "nextSyncToken", "@odata.nextLink",
                                                    "@odata.deltaLink"]), JUNK),
        st.tuples(st.just("huge"), st.none(), st.none()),
        st.tuples(st.just("repeat"), st.none(), st.none()),
        st.tuples(st.just("foreign"), st.none(), st.none()),
    )


def apply(world: World, items_key: str, link_key: str, change: tuple[str, Any, Any],
          ) -> Callable[[Request, dict[str, Any]], None]:
    kind, key, value = change
    first: dict[str, Any] = {}

    def mutate(request: Request, body: dict[str, Any]) -> None:
        items = body.get(items_key)
        if kind in ("field", "drop") and isinstance(items, list) and items:
            if kind == "field":
                items[0][key] = value
            else:
                items[0].pop(key, None)
        elif kind == "page":
            body[key] = value
        elif kind == "huge" and isinstance(items, list):
            body[items_key] = items * 3000
        elif kind == "repeat" and link_key in body:
            body[link_key] = first.setdefault("link", body[link_key])
        elif kind == "foreign" and link_key in body and "://" in str(body[link_key]):
            body[link_key] = world.elsewhere.url + "/v1.0/next"
    return mutate


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(change=item_change("items", GOOGLE_FIELDS))
def test_google_listings_end_as_a_calendar_error_or_a_listing(
        world: World, change: tuple[str, Any, Any]) -> None:
    world.mutate(world.box.google, apply(world, "items", "nextPageToken", change))
    bounded(world, lambda: world.google.changes(None), CalendarError)


@SETTINGS
@given(change=item_change("value", GRAPH_FIELDS))
def test_graph_listings_end_as_a_calendar_error_or_a_listing(
        world: World, change: tuple[str, Any, Any]) -> None:
    world.mutate(world.box.graph, apply(world, "value", "@odata.nextLink", change))
    bounded(world, lambda: world.graph.changes(None), CalendarError)


@SETTINGS
@given(path=st.sampled_from(["/users/", "/settings", "/meetings/"]),
       field=st.sampled_from(["pmi", "personal_meeting_url", "password", "settings",
                              "schedule_meeting", "in_meeting", "id"]),
       value=JUNK, drop=st.booleans())
def test_zoom_answers_end_as_a_zoom_error_or_a_result(
        world: World, path: str, field: str, value: Any, drop: bool) -> None:
    def mutate(request: Request, body: dict[str, Any]) -> None:
        if path in request.path and (path != "/users/" or "/settings" not in request.path):
            if drop:
                body.pop(field, None)
            else:
                body[field] = value
    world.mutate(world.box.zoom, mutate)
    bounded(world, lambda: world.zoom.enforce(ADA), ZoomError)
    assert not [r for r in world.box.zoom.log if "None" in r.path]


@given(value=st.one_of(JUNK, st.text(max_size=60), st.datetimes().map(str),
                       st.datetimes(timezones=st.timezones()).map(
                           lambda d: d.isoformat().replace("+00:00", "Z"))))
def test_a_last_modified_time_is_a_moment_or_nothing(value: Any) -> None:
    """Only a metric reads it: whatever a vendor sends there, no event fails for it."""
    found = instant(value)
    assert found is None or found.tzinfo is not None


def test_the_last_modified_forms_the_vendors_send() -> None:
    assert instant("2026-12-07T01:02:03.000Z") == datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC)
    assert instant("2026-12-07T01:02:03.1234567Z") == datetime(  # Graph: 7 decimals
        2026, 12, 7, 1, 2, 3, 123456, tzinfo=UTC)
    assert instant("2026-12-07T01:02:03Z") == datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC)
    assert instant("yesterday") is None and instant(17) is None
