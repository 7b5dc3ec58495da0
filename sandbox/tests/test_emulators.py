"""The emulators' claims about the vendors, tested on the emulators alone (the runtime's
tests in tests/ rely on them): Google's scopes per method and 410 for a deleted event,
Graph's `$select`-only fields, Zoom's Personal Room following the user's default until
written, Graph's times in UTC."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google_auth_httplib2
import httplib2
import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from officehours_sandbox.campus import PACIFIC, WEEK, office_hours, weekly_evening_series
from officehours_sandbox.domain import Sandbox, checked
from officehours_sandbox.google_identity import AUTH
from officehours_sandbox.graph import graph_time

from daemon.calendars.google import SCOPES, _discovery_document
from daemon.http import ssl_context

ADA, MARY = "ada@example.edu", "mary@example.edu"
HOUR = timedelta(hours=1)
INSUFFICIENT = {"error": {
    "code": 403, "message": "Request had insufficient authentication scopes.",
    "errors": [{"message": "Insufficient Permission", "domain": "global",
                "reason": "insufficientPermissions"}],
    "status": "PERMISSION_DENIED"}}
Api = Callable[..., tuple[Any, httplib2.Http]]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with checked(tmp_path) as box:
        yield box


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


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


def test_emulator_returns_cancelled_occurrences_only_when_selected_by_id(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    master, starts = weekly_evening_series(sandbox, MARY, now)
    sandbox.graph.cancel_occurrence(MARY, master, starts[1])
    token = "test-token"
    sandbox.graph.access_tokens[token] = time.time() + 600
    base = f"{sandbox.graph_server.url}/v1.0/users/{MARY}"
    with httpx.Client(verify=ssl_context(sandbox.ca.bundle),
                      headers={"Authorization": f"Bearer {token}"}) as http:
        def get(url: str, **params: str) -> Any:
            response = http.get(url, params=params)
            return response.status_code, response.json()

        status, plain = get(f"{base}/events/{master}")
        assert status == 200 and "cancelledOccurrences" not in plain
        assert plain["recurrence"] and plain["subject"] == "Office Hours"

        status, chosen = get(f"{base}/events/{master}", **{"$select": "subject,"
                                                            "cancelledOccurrences"})
        assert status == 200
        assert set(chosen) == {"id", "@odata.etag", "subject", "cancelledOccurrences"}
        # the occurrence's date where the series recurs (Pacific), not its UTC date
        local_day = starts[1].astimezone(PACIFIC).date()
        assert chosen["cancelledOccurrences"] == [f"OID.{master}.{local_day}"]
        assert local_day != starts[1].date()

        status, _ = get(f"{base}/events/{master}", **{"$select": "subject,noSuchThing"})
        assert status == 400

        window = {"startDateTime": f"{now - HOUR:%Y-%m-%dT%H:%M:%SZ}",
                  "endDateTime": f"{now + 30 * WEEK:%Y-%m-%dT%H:%M:%SZ}"}
        status, listed = get(f"{base}/calendarView/delta", **window)
        assert status == 200 and listed["value"]
        assert not any("cancelledOccurrences" in item for item in listed["value"])
        status, _ = get(f"{base}/calendarView/delta", **window, **{"$select": "subject"})
        assert status == 400  # "$select is not supported" on calendarView delta


def test_a_never_edited_room_follows_the_users_default(sandbox: Sandbox) -> None:
    user = sandbox.zoom.add_user("ada@example.edu", 8123456789, waiting_room=True)
    assert user.room_waiting_room
    user.waiting_room = False
    assert not user.room_waiting_room
    user.pmi_waiting_room = True  # written once: the room keeps its own from then on
    assert user.room_waiting_room


def test_graph_time_is_utc() -> None:
    assert graph_time(datetime(2026, 1, 1, 12).astimezone())["timeZone"] == "UTC"


def test_google_watch_answers_a_channel_and_messages_it_as_documented(
        sandbox: Sandbox, now: datetime, calendar_api: Api) -> None:
    """events.watch: HTTPS only, the id unique, the answer's expiration in milliseconds (a
    string); "sync" (number 1) first, "exists" on a change, headers only; channels.stop
    takes id and resourceId (https://developers.google.com/workspace/calendar/api/guides/
    push)."""
    office_hours(sandbox, ADA, now, 8123456789)
    sandbox.push("127.0.0.1:9")  # nothing listens: deliveries fail, and are kept
    service, http = calendar_api(ADA, SCOPES)
    body = {"id": "chan-1", "type": "web_hook", "address": sandbox.public_url + "/google",
            "token": "t0k"}
    with pytest.raises(HttpError) as plain:
        service.events().watch(calendarId="primary", body={
            **body, "address": "http://campus.example/push"}).execute(http=http)
    assert plain.value.resp.status == 400
    answer = service.events().watch(calendarId="primary", body=body).execute(http=http)
    assert answer["kind"] == "api#channel" and answer["id"] == "chan-1"
    assert isinstance(answer["expiration"], str) and int(answer["expiration"]) > time.time()
    with pytest.raises(HttpError) as again:
        service.events().watch(calendarId="primary", body=body).execute(http=http)
    assert again.value.resp.status == 400
    sandbox.google.add_event(ADA, summary="Lunch", start={"date": "2026-12-08"},
                             end={"date": "2026-12-09"})
    assert sandbox.deliveries is not None
    deadline = time.monotonic() + 10
    while len(sandbox.deliveries.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sync, change = sandbox.deliveries.sent[:2]
    assert (sync.headers["X-Goog-Resource-State"], sync.headers["X-Goog-Message-Number"]) \
        == ("sync", "1")
    assert change.headers["X-Goog-Resource-State"] == "exists" and change.body == b""
    assert int(change.headers["X-Goog-Message-Number"]) > 1
    assert change.headers["X-Goog-Channel-Token"] == "t0k"
    service.channels().stop(body={"id": "chan-1", "resourceId": answer["resourceId"]}
                            ).execute(http=http)
    assert sandbox.google.live_channels() == []


def test_graph_subscriptions_validate_both_urls_and_cap_the_lifetime(
        sandbox: Sandbox, now: datetime) -> None:
    """No subscription without the validation token echoed (400); 10,080 minutes at most;
    PATCH renews, DELETE answers 204, then 404."""
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    sandbox.push("127.0.0.1:9")  # nothing behind the proxy: validation fails
    token = "test-token"
    sandbox.graph.access_tokens[token] = time.time() + 600
    body = {"changeType": "created,updated,deleted", "resource": f"users/{MARY}/events",
            "notificationUrl": sandbox.public_url + "/graph",
            "lifecycleNotificationUrl": sandbox.public_url + "/graph/lifecycle",
            "expirationDateTime": (now + timedelta(days=6)).isoformat(), "clientState": "s"}
    with httpx.Client(verify=ssl_context(sandbox.ca.bundle), base_url=sandbox.graph_server.url,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        refused = http.post("/v1.0/subscriptions", json=body)
        assert refused.status_code == 400 and \
            refused.json()["error"]["code"] == "ValidationError"
        assert sandbox.graph.subscriptions == {}
        sandbox.graph.deliveries = None  # as if validated: the rest of the claims
        sandbox.graph._validated = lambda url: True  # type: ignore[method-assign]
        too_long = http.post("/v1.0/subscriptions", json={
            **body, "expirationDateTime": (now + timedelta(minutes=10_081)).isoformat()})
        assert too_long.status_code == 400
        made = http.post("/v1.0/subscriptions", json=body)
        assert made.status_code == 201 and made.json()["clientState"] == "s"
        path = f"/v1.0/subscriptions/{made.json()['id']}"
        renewed = http.patch(path, json={
            "expirationDateTime": (now + timedelta(days=7)).isoformat()})
        assert renewed.status_code == 200
        assert http.delete(path).status_code == 204 and http.delete(path).status_code == 404
