"""Google Calendar as the vendor behaves (issue 9, item 5): scopes per method, quotaUser
on every request, and an event deleted under us is gone, not a failure."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from conftest import officehours
from officehours_sandbox.campus import office_hours
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Request, Response

from daemon.calendars.google import quota_user
from daemon.reconcile import START_MARK

ADA, BOB, DEAN = "ada@example.edu", "bob@example.edu", "dean@example.edu"



def test_doctor_passes_with_only_the_delegated_calendar_events_scope(
        sandbox: Sandbox, now: datetime) -> None:
    office_hours(sandbox, ADA, now, 8123456789)
    result = officehours(sandbox.write_config(), "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed." in result.stdout
    assert "ok    Ada <ada@example.edu> calendar: google calendar 'primary' readable and " \
           "writable (owner)" in result.stdout
    assert sandbox.google.requests(path_contains="calendarList") == []
    assert [(q.method, q.quota_user) for q in sandbox.google.quota_users] == [
        ("GET", quota_user(ADA))]
    assert sandbox.google.writes() == []


def test_doctor_says_a_calendar_shared_read_only_cannot_be_written(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.google.add_calendar(DEAN)
    sandbox.google.share_calendar(DEAN, ADA, "reader")
    office_hours(sandbox, ADA, now, 8123456789)
    sandbox.instructors[-1]["calendar_id"] = DEAN
    result = officehours(sandbox.write_config(), "doctor")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("FAIL  Ada"))
    assert f"'{DEAN}' is only reader" in lines[failed] and "cannot write" in lines[failed]
    assert "owner or writer" in lines[failed + 1]


def test_every_request_of_a_sync_pass_names_the_instructor_as_quota_user(
        sandbox: Sandbox, now: datetime) -> None:
    office_hours(sandbox, ADA, now, 8123456789)
    office_hours(sandbox, BOB, now, 8999999999)
    config = sandbox.write_config()
    linked_and_quiet(config)
    sandbox.zoom.user(ADA).pmi_password = "222222"  # Ada's link changes: get and patch
    third = officehours(config, "sync")
    assert third.returncode == 0, third.stderr

    uses = sandbox.google.quota_users
    kinds = {(q.method, q.path.endswith("/events")) for q in uses}
    assert kinds == {("GET", True), ("GET", False), ("PATCH", False)}  # list, get, patch
    assert {q.subject for q in uses} == {ADA, BOB}
    assert [q for q in uses if q.quota_user != quota_user(q.subject or "")] == []
    # a stable digest within Google's 40 characters, the address not in it
    assert {len(q.quota_user or "") for q in uses} == {32}
    assert not [q for q in uses if "@" in (q.quota_user or "")]


def test_a_long_address_still_names_a_quota_user_google_takes(
        sandbox: Sandbox, now: datetime) -> None:
    long = "ada.augusta.king.countess.of.lovelace@mathematics.example.edu"  # 60 characters
    office_hours(sandbox, long, now, 8123456789)
    assert officehours(sandbox.write_config(), "sync").returncode == 0
    assert {q.quota_user for q in sandbox.google.quota_users} == {quota_user(long)}


def delete_just_before(sandbox: Sandbox, method: str, event_id: str, purged: bool) -> None:
    """The instructor deletes the event just before our `method` request for it arrives."""
    def instructor_deletes_first(request: Request) -> Response | None:
        if request.method == method and request.path.endswith(event_id) \
                and event_id in sandbox.google.events[ADA]:
            remove(sandbox, event_id, purged)
        return None

    sandbox.google.hooks.append(instructor_deletes_first)


@pytest.mark.parametrize("purged", [False, True], ids=["deleted-410", "purged-404"])
def test_event_deleted_before_our_patch_costs_no_failure(
        sandbox: Sandbox, now: datetime, purged: bool) -> None:
    series, single = office_hours(sandbox, ADA, now, 8123456789)
    config = sandbox.write_config()

    delete_just_before(sandbox, "PATCH", single, purged)
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    gone = 404 if purged else 410
    assert [r.status for r in sandbox.google.requests("PATCH", single)] == [gone]
    assert [r.status for r in sandbox.google.requests("GET", f"/events/{single}")] == [gone]
    assert START_MARK in sandbox.google.event(ADA, series)["description"]
    assert_no_error(config)


@pytest.mark.parametrize("purged", [False, True], ids=["deleted-410", "purged-404"])
def test_event_deleted_before_our_get_costs_no_failure(
        sandbox: Sandbox, now: datetime, purged: bool) -> None:
    series, single = office_hours(sandbox, ADA, now, 8123456789)
    config = sandbox.write_config()
    linked_and_quiet(config)
    sandbox.zoom.user(ADA).pmi_password = "222222"  # not listed, so read one by one

    delete_just_before(sandbox, "GET", single, purged)
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert [r.status for r in sandbox.google.requests("GET", f"/events/{single}")] == \
           [404 if purged else 410]
    assert len(sandbox.google.requests("PATCH", single)) == 1  # the first pass's only
    assert sandbox.zoom.user(ADA).join_url in sandbox.google.event(ADA, series)["location"]
    assert_no_error(config)


def linked_and_quiet(config: Path) -> None:
    """A pass that links every event, then one that lists our own writes: the next
    listing is empty, and a link change makes the pass read each event by itself."""
    for _ in range(2):
        result = officehours(config, "sync")
        assert result.returncode == 0, result.stderr


def remove(sandbox: Sandbox, event_id: str, purged: bool) -> None:
    """The instructor deletes the event (410 `deleted`), or it is long gone (404)."""
    if purged:
        del sandbox.google.events[ADA][event_id]
    else:
        sandbox.google.delete_event(ADA, event_id)


def assert_no_error(config: Path) -> None:
    (row,) = json.loads(officehours(config, "status", "--json").stdout)["instructors"]
    assert row["last_error"] is None, row

