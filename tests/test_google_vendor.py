"""Google Calendar as the vendor behaves (issue 9, item 5): scopes per method, quotaUser
on every request, and an event deleted under us is gone, not a failure."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from conftest import HOUR, at, officehours
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.google import AUTH
from officehours_sandbox.server import Request, Response

from daemon.calendars.google import SCOPES, _discovery_document, quota_user
from daemon.reconcile import START_MARK

ADA, BOB, DEAN = "ada@example.edu", "bob@example.edu", "dean@example.edu"
INSUFFICIENT = {"error": {
    "code": 403, "message": "Request had insufficient authentication scopes.",
    "errors": [{"message": "Insufficient Permission", "domain": "global",
                "reason": "insufficientPermissions"}],
    "status": "PERMISSION_DENIED"}}


def office_hours(sandbox: Sandbox, email: str, now: datetime, pmi: int) -> list[str]:
    """An instructor with a daily office-hours series and a single session."""
    sandbox.add_instructor(email.split("@")[0].title(), email, pmi)
    start = now + 3 * HOUR
    return [sandbox.google.add_event(email, summary="Office Hours", description="Welcome.",
                                     start=at(start), end=at(start + HOUR),
                                     recurrence=["RRULE:FREQ=DAILY"]),
            sandbox.google.add_event(email, summary="Office Hours - review", description="",
                                     start=at(start + 26 * HOUR),
                                     end=at(start + 27 * HOUR))]


Api = Callable[..., tuple[Any, httplib2.Http]]


@pytest.fixture
def calendar_api(sandbox: Sandbox) -> Iterator[Api]:
    """Makes the Calendar API acting as `subject` with `scopes` through a service account
    whose domain-wide delegation grants `delegated` (None: the sandbox's own key, which
    grants calendar.events); closes every connection afterwards."""
    connections: list[httplib2.Http] = []

    def make(subject: str, scopes: list[str],
             delegated: tuple[str, ...] | None = None) -> tuple[Any, httplib2.Http]:
        if delegated is None:
            info = json.loads((sandbox.credentials / "google.json").read_text())
        else:
            info = sandbox.google.add_service_account("other@sandbox.iam.gserviceaccount.com",
                                                      delegated)
            info["token_uri"] = info["token_uri"].format(url=sandbox.google_server.url)
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=scopes, subject=subject)
        connections.append(httplib2.Http(ca_certs=str(sandbox.ca.bundle)))
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=connections[-1])
        service = build_from_document(
            _discovery_document(), http=http,
            client_options={"api_endpoint": f"{sandbox.google_server.url}/calendar/v3/"})
        return service, http

    yield make
    for connection in connections:
        connection.close()


def test_calendar_list_get_is_403_with_the_delegated_calendar_events_scope(
        sandbox: Sandbox, now: datetime, calendar_api: Api) -> None:
    office_hours(sandbox, ADA, now, 8123456789)
    service, http = calendar_api(ADA, SCOPES)
    for request in (service.calendarList().get(calendarId="primary"),
                    service.calendarList().list()):
        with pytest.raises(HttpError) as refused:
            request.execute(http=http)
        assert refused.value.resp.status == 403
        assert json.loads(refused.value.content) == INSUFFICIENT
    page = service.events().list(calendarId="primary", maxResults=1).execute(http=http)
    assert page["accessRole"] == "owner" and len(page["items"]) == 1


def test_scopes_outside_the_delegation_get_no_token_and_readonly_cannot_write(
        sandbox: Sandbox, now: datetime, calendar_api: Api) -> None:
    (series, _) = office_hours(sandbox, ADA, now, 8123456789)
    service, http = calendar_api(ADA, [AUTH + "calendar"])
    with pytest.raises(RefreshError, match="unauthorized_client"):
        service.events().list(calendarId="primary").execute(http=http)

    readonly = [AUTH + "calendar.readonly"]
    service, http = calendar_api(ADA, readonly, delegated=tuple(readonly))
    entry = service.calendarList().get(calendarId="primary").execute(http=http)
    assert entry["accessRole"] == "owner"
    with pytest.raises(HttpError) as refused:
        service.events().patch(calendarId="primary", eventId=series,
                               body={"location": "x"}).execute(http=http)
    assert refused.value.resp.status == 403
    assert sandbox.google.event(ADA, series).get("location") is None


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


def test_deleted_event_reads_as_410_deleted(sandbox: Sandbox, now: datetime,
                                           calendar_api: Api) -> None:
    series, single = office_hours(sandbox, ADA, now, 8123456789)
    sandbox.google.delete_event(ADA, single)
    service, http = calendar_api(ADA, SCOPES)
    for request in (service.events().get(calendarId="primary", eventId=single),
                    service.events().patch(calendarId="primary", eventId=single,
                                           body={"location": "x"})):
        with pytest.raises(HttpError) as gone:
            request.execute(http=http)
        assert gone.value.resp.status == 410
        assert json.loads(gone.value.content)["error"]["errors"][0]["reason"] == "deleted"
    assert service.events().get(calendarId="primary", eventId=series).execute(http=http)
    with pytest.raises(HttpError) as missing:
        service.events().get(calendarId="primary", eventId="nosuch").execute(http=http)
    assert missing.value.resp.status == 404

