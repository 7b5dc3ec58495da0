"""Graph as it really behaves (issue 9, item 4): `$select` for what comes back only then,
a deleted Outlook occurrence that is no session, and 412s on plain GETs.

The engine runs in-process with an injected clock (as in test_engine.py) against the
HTTPS Graph and Zoom emulators; `status --json` runs as the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import unquote

import pytest
from conftest import officehours
from officehours_sandbox.campus import weekly_evening_series
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Request, Response

from daemon.app import open_engine
from daemon.config import load
from daemon.engine import Engine

MARY = "mary@example.edu"


@pytest.fixture
def clock(now: datetime) -> list[datetime]:
    return [now]


@pytest.fixture
def engine(sandbox: Sandbox, clock: list[datetime]) -> Iterator[Engine]:
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    made = open_engine(load(sandbox.write_config(enforce_lead_minutes=15)),
                       clock=lambda: clock[0], sleep=lambda seconds: None)
    yield made
    made.close()


def zoom_calls(sandbox: Sandbox) -> list[str]:
    return [r.path for r in sandbox.zoom.requests() if "token" not in r.path]


def test_master_get_selects_every_field_read_including_cancelled_occurrences(
        engine: Engine, sandbox: Sandbox, now: datetime) -> None:
    master, _ = weekly_evening_series(sandbox, MARY, now)
    queries: list[dict[str, str]] = []

    def record(request: Request) -> Response | None:
        if request.method == "GET" and unquote(request.path).endswith(f"/events/{master}"):
            queries.append(dict(request.query))
        return None

    sandbox.graph.hooks.append(record)
    (mary,) = engine.config.instructors
    assert engine.sync(mary).error is None
    assert queries, "the series master was never read"
    selected = set(queries[0]["$select"].split(","))
    assert {"cancelledOccurrences", "recurrence", "subject", "body", "location", "isOrganizer",
            "type", "isCancelled", "seriesMasterId", "originalStart", "start", "end",
            "originalStartTimeZone"} <= selected


def test_occurrence_deleted_in_outlook_is_not_a_session(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    master, starts = weekly_evening_series(sandbox, MARY, now)
    (mary,) = engine.config.instructors
    for _ in range(2):  # the second pass reads back our own write of the link
        first = engine.sync(mary)
        assert first.error is None and first.next_session is not None
        assert first.next_session.start == starts[0]

    sandbox.graph.cancel_occurrence(MARY, master, starts[0])  # deleted in Outlook
    second = engine.sync(mary)
    assert second.error is None and second.next_session is not None
    assert second.next_session.start == starts[1]
    status = officehours(engine.config.path, "status", "--json")
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)["instructors"]
    assert datetime.fromisoformat(row["next_session"]) == starts[1]

    # the deleted occurrence's lead window: no Zoom check, nothing asked of Zoom at all
    clock[0] = starts[0] - timedelta(minutes=10)
    before = zoom_calls(sandbox)
    during = engine.sync(mary)
    assert during.error is None and during.zoom == ""
    assert zoom_calls(sandbox) == before
    assert during.next_session is not None and during.next_session.start == starts[1]

    clock[0] = starts[1] - timedelta(minutes=10)  # the next real session is checked
    after = engine.sync(mary)
    assert after.error is None and after.zoom
    assert len(zoom_calls(sandbox)) > len(before)


def test_series_deleted_in_outlook_has_no_sessions_left(
        engine: Engine, sandbox: Sandbox, now: datetime, clock: list[datetime]) -> None:
    """The delta names only the deleted occurrences; the series is read again and is gone."""
    master, starts = weekly_evening_series(sandbox, MARY, now)
    (mary,) = engine.config.instructors
    for _ in range(2):
        assert engine.sync(mary).error is None
    sandbox.graph.delete_event(MARY, master)
    result = engine.sync(mary)
    assert result.error is None and result.next_session is None
    clock[0] = starts[0] - timedelta(minutes=10)
    before = zoom_calls(sandbox)
    during = engine.sync(mary)
    assert during.error is None and during.zoom == "" and zoom_calls(sandbox) == before


@pytest.mark.parametrize("path", ["/calendarView/delta", "/events/"],
                         ids=["delta-page", "master-get"])
def test_412_on_a_get_is_retried_like_a_503(engine: Engine, sandbox: Sandbox, now: datetime,
                                            path: str) -> None:
    weekly_evening_series(sandbox, MARY, now)
    sandbox.graph.inject("412", "GET", path, times=2)
    (mary,) = engine.config.instructors
    result = engine.sync(mary)
    assert result.error is None
    statuses = [r.status for r in sandbox.graph.requests("GET", path)]
    assert statuses[:3] == [412, 412, 200]
    assert not sandbox.graph.queued
    assert sandbox.graph.requests("PATCH")  # the pass went on to link the series


def test_412_on_every_get_attempt_is_an_error_not_a_conflict(
        engine: Engine, sandbox: Sandbox, now: datetime) -> None:
    weekly_evening_series(sandbox, MARY, now)
    sandbox.graph.inject("412", "GET", "/calendarView/delta", times=4)
    (mary,) = engine.config.instructors
    result = engine.sync(mary)
    assert result.error is not None
    assert "HTTP 412" in result.error and "ErrorIrresolvableConflict" in result.error
    assert len(sandbox.graph.requests("GET", "/calendarView/delta")) == 4  # bounded
