"""Trust at the edges: a token or secret goes only where the config points, whatever a
vendor's answer, a redirect or the state database says. Each case points the program at
another HTTPS host on 127.0.0.1 (another port is another origin) and checks that nothing,
not even a request without a credential, arrives there."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import HOUR, at, officehours
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.google_identity import google_error
from officehours_sandbox.graph import exchange_rendering
from officehours_sandbox.server import Emulator, Request, Response, Served

from daemon.app import open_engine
from daemon.calendars.google import quota_user
from daemon.config import load
from daemon.http import ForeignHost, Origins, origin
from daemon.reconcile import strip_blocks, visible

ADA, MARY = "ada@example.edu", "mary@example.edu"
MINUTE = timedelta(minutes=1)


class Elsewhere:
    """A host the configuration does not name, noting every request that reaches it."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.emulator = Emulator()
        self.arrived: list[tuple[str, str, str | None]] = []
        self.emulator.hooks.append(self._note)
        self.served = Served(self.emulator, sandbox.ca)
        self.url = self.served.url
        self.where = origin(self.url)

    def _note(self, request: Request) -> Response | None:
        self.arrived.append((request.method, request.path, request.headers.get("authorization")))
        return Response(200, {"value": []})


@pytest.fixture
def elsewhere(sandbox: Sandbox) -> Iterator[Elsewhere]:
    made = Elsewhere(sandbox)
    yield made
    made.served.stop()


def outlook(sandbox: Sandbox, now: datetime, events: int = 5) -> None:
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    for n in range(events):  # pages of 3
        sandbox.graph.add_event(MARY, now + (n + 2) * HOUR, now + (n + 3) * HOUR,
                                subject="Office Hours" if n == 0 else f"Meeting {n}")


def google(sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))


def refused(result: Any, elsewhere: Elsewhere) -> None:
    """The pass failed for that instructor, naming the host; nothing reached it."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert elsewhere.where in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert elsewhere.arrived == []


def test_origins_compare_scheme_host_and_port() -> None:
    origins = Origins(["https://graph.example/v1.0"])
    origins.check("https://GRAPH.example:443/v1.0/users/x?$skiptoken=1")
    for other in ("http://graph.example/v1.0", "https://graph.example:8443/v1.0",
                  "https://graph.example.evil.test/v1.0", "https://evil.test/?graph.example",
                  "https://graph.example@evil.test/", "https://graph.example:x/"):
        with pytest.raises(ForeignHost):
            origins.check(other)


def test_a_graph_next_link_to_another_host_is_not_followed(
        sandbox: Sandbox, now: datetime, elsewhere: Elsewhere) -> None:
    outlook(sandbox, now)

    def point_away(request: Request, response: Response) -> None:
        if isinstance(response.body, dict) and "@odata.nextLink" in response.body:
            link = response.body["@odata.nextLink"]
            response.body["@odata.nextLink"] = elsewhere.url + link.split("/v1.0", 1)[1]

    sandbox.graph.after_hooks.append(point_away)
    refused(officehours(sandbox.write_config(), "sync"), elsewhere)


def test_a_delta_link_rewritten_in_the_state_is_not_followed(
        sandbox: Sandbox, now: datetime, elsewhere: Elsewhere) -> None:
    """Whoever can write the state database must not get a Calendars.ReadWrite token."""
    outlook(sandbox, now)
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    with sqlite3.connect(sandbox.dir / "state" / "state.sqlite3") as db:
        (token,) = db.execute("SELECT token FROM sync_tokens").fetchone()
        state = json.loads(token)
        state["link"] = elsewhere.url + state["link"].split("/v1.0", 1)[1]
        db.execute("UPDATE sync_tokens SET token=?", (json.dumps(state),))
    refused(officehours(config, "sync"), elsewhere)


def test_a_graph_token_endpoint_redirecting_elsewhere_gets_no_secret(
        sandbox: Sandbox, now: datetime, elsewhere: Elsewhere) -> None:
    outlook(sandbox, now)
    for status in (307, 308):
        sandbox.graph.fail("POST", "/oauth2/v2.0/token", Response(
            status, None, {"Location": elsewhere.url + "/token"}), times=10)
        result = officehours(sandbox.write_config(), "sync")
        assert result.returncode == 1, result.stdout
        assert elsewhere.arrived == []


@pytest.mark.parametrize("status", [307, 308])
def test_a_google_token_endpoint_redirecting_elsewhere_gets_no_assertion(
        sandbox: Sandbox, now: datetime, elsewhere: Elsewhere, status: int) -> None:
    google(sandbox, now)
    sandbox.google.fail("POST", "/token", Response(
        status, None, {"Location": elsewhere.url + "/token"}), times=10)
    result = officehours(sandbox.write_config(), "sync")
    assert result.returncode == 1, result.stdout
    assert elsewhere.arrived == []


def test_a_google_listing_redirected_elsewhere_is_not_followed(
        sandbox: Sandbox, now: datetime, elsewhere: Elsewhere) -> None:
    google(sandbox, now)
    sandbox.google.fail("GET", "/events$", Response(
        307, None, {"Location": elsewhere.url + "/calendar/v3/calendars/primary/events"}),
        times=10)
    result = officehours(sandbox.write_config(), "sync")
    assert result.returncode == 1, result.stdout
    assert elsewhere.arrived == []
    assert sandbox.google.writes() == []


# --- paging that ends ---


def test_a_next_page_named_forever_ends_that_instructors_pass_only(
        sandbox: Sandbox, now: datetime) -> None:
    """Graph repeats one nextLink, Google one nextPageToken, for ever: each listing stops at
    the repeat (2 requests, not 30,000 in 30 s), and the failure is that instructor's."""
    outlook(sandbox, now)
    google(sandbox, now)
    for n in range(4):  # a second page
        sandbox.google.add_event(ADA, summary=f"Meeting {n}", start=at(now + (n + 3) * HOUR),
                                 end=at(now + (n + 4) * HOUR))
    sandbox.add_instructor("Bob", "bob@example.edu", 8999999999)
    sandbox.google.add_event("bob@example.edu", summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))

    first: dict[str, str] = {}  # the first real next page of each: named again for ever

    def loop(request: Request, response: Response) -> None:
        body = response.body
        if not isinstance(body, dict) or request.method != "GET":
            return
        if "@odata.nextLink" in body or "@odata.deltaLink" in body:
            body.pop("@odata.deltaLink", None)
            body["@odata.nextLink"] = first.setdefault("graph", body.get("@odata.nextLink", ""))
        if "items" in body and request.query.get("quotaUser") == quota_user(ADA):
            body["nextPageToken"] = first.setdefault("google", body.get("nextPageToken", ""))

    sandbox.graph.after_hooks.append(loop)
    sandbox.google.after_hooks.append(loop)
    result = officehours(sandbox.write_config(), "sync")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "Mary Somerville" in out and "Ada Lovelace" in out
    failed = [line for line in out.splitlines() if ": FAILED: " in line]
    assert len(failed) == 2 and all("the same next page twice" in f for f in failed), out
    assert "Traceback" not in result.stderr
    assert len(sandbox.graph.requests("GET")) <= 3
    assert len(sandbox.google.requests("GET", "/events")) <= 4  # Ada 2, Bob 1..2
    assert "Bob <bob@example.edu>: 1 event(s) changed" in out


def test_more_pages_than_max_pages_end_the_listing(sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    for n in range(10):  # 4 pages of 3
        sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + (n + 1) * HOUR),
                                 end=at(now + (n + 2) * HOUR))
    config = sandbox.write_config(max_pages=3)
    result = officehours(config, "sync")
    assert result.returncode == 1
    assert "more than 3 pages" in result.stdout + result.stderr
    assert len(sandbox.google.requests("GET", "/events")) == 3
    config.write_text(config.read_text().replace("max_pages = 3", "max_pages = 4"))
    assert officehours(config, "sync").returncode == 0


# --- Zoom's daily limit, as Zoom sends it ---


def spent_today(sandbox: Sandbox, email: str) -> None:
    """Other apps of the account spent the user's 100 meeting updates of the day."""
    sandbox.zoom.user(email).meeting_updates = (datetime.now(UTC).date().isoformat(), 100)


def next_midnight() -> str:
    return f"{datetime.now(UTC).date() + timedelta(days=1):%Y-%m-%d} 00:00 UTC"


def test_zooms_daily_limit_without_headers_is_named_and_not_retried(
        sandbox: Sandbox, now: datetime) -> None:
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789, waiting_room=True)
    user.pmi_waiting_room = False  # the room's own waiting room is off
    user.require_password_for_pmi_meetings, user.pmi_password = "all", "428571"
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 5 * MINUTE),
                             end=at(now + HOUR))
    spent_today(sandbox, ADA)
    config = sandbox.write_config()
    result = officehours(config, "sync")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert f"NOT secure until {next_midnight()}" in out, out
    assert re.search(r"ERROR instructor=ada@example.edu .*daily rate limit", out), out
    patches = sandbox.zoom.requests("PATCH", "/meetings/")
    assert len(patches) == 1 and patches[0].status == 429  # not retried
    assert sandbox.google.writes() == []  # no link written for a room not secured
    status = officehours(config, "status")
    assert status.returncode == 1
    assert "NOT SECURE" in status.stdout and next_midnight() in status.stdout, status.stdout


def test_a_daily_limit_is_tried_again_once_it_lifts(sandbox: Sandbox, now: datetime) -> None:
    """In one process (the service): no request to Zoom until the limit lifts, then the
    room is repaired."""
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789, waiting_room=True)
    user.pmi_waiting_room = False
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 5 * MINUTE),
                             end=at(now + HOUR))
    spent_today(sandbox, ADA)
    clock = [now]
    engine = open_engine(load(sandbox.write_config()), clock=lambda: clock[0])
    (ada,) = engine.config.instructors
    try:
        first = engine.sync(ada)
        assert first.error and "daily rate limit" in first.error
        assert first.zoom.startswith("NOT secure until")
        asked = len(sandbox.zoom.log)
        clock[0] = now + 2 * MINUTE  # the next pass, same day: Zoom is not asked
        assert engine.sync(ada).zoom.startswith("NOT secure until")
        assert len(sandbox.zoom.log) == asked
        sandbox.zoom.user(ADA).meeting_updates = ("", 0)  # 00:00 UTC: the day's count resets
        clock[0] = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        sandbox.google.add_event(ADA, summary="Office Hours", start=at(clock[0] + 5 * MINUTE),
                                 end=at(clock[0] + HOUR))
        after = engine.sync(ada)
        assert after.error is None and after.zoom.startswith("repaired"), after
        assert user.secure
    finally:
        engine.close()


# --- who is who ---


def test_a_zoom_user_that_is_not_an_address_or_an_id_is_refused(sandbox: Sandbox) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    for hostile in ("../meetings/8123456789#@x.y", "ada/../bob@example.edu",
                    "ada?x=1@example.edu", "ada%2F@example.edu", "me/settings"):
        sandbox.instructors[0]["zoom_user"] = hostile
        result = officehours(sandbox.write_config(), "check-config")
        assert result.returncode == 78, hostile
        assert "instructors[0].zoom_user" in result.stderr, result.stderr
    sandbox.instructors[0]["zoom_user"] = "ada+office@example.edu"  # a real address
    assert officehours(sandbox.write_config(), "check-config").returncode == 0


def test_two_instructors_with_one_zoom_user_is_a_config_error_naming_both(
        sandbox: Sandbox) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_instructor("Bob", "bob@example.edu", 8999999999)
    sandbox.instructors[1]["zoom_user"] = "ADA@example.edu"
    result = officehours(sandbox.write_config(), "check-config")
    assert result.returncode == 78
    assert "instructors[1].zoom_user" in result.stderr and "instructors[0]" in result.stderr


@pytest.mark.parametrize(("field", "value"), [
    ("pmi", None), ("pmi", "../users/me"), ("pmi", True), ("pmi", 1.5),
    ("personal_meeting_url", None), ("personal_meeting_url", 42),
    ("personal_meeting_url", "javascript:alert(1)")])
def test_a_mistyped_zoom_field_is_a_vendor_error_naming_it(
        sandbox: Sandbox, now: datetime, field: str, value: object) -> None:
    """Checked at the edge: no `unexpected AttributeError`, no GET /meetings/None."""
    google(sandbox, now)

    def mistype(request: Request, response: Response) -> None:
        if request.path == f"/v2/users/{ADA}" and isinstance(response.body, dict):
            response.body[field] = value

    sandbox.zoom.after_hooks.append(mistype)
    result = officehours(sandbox.write_config(), "sync")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert f"{field} is" in out and "unexpected" not in out and "Traceback" not in out, out
    assert sandbox.zoom.requests(path_contains="/meetings/") == []
    assert sandbox.google.writes() == []


# --- writes that survive Exchange's re-rendering ---


@pytest.mark.parametrize("body", [
    {"contentType": "html", "content": "<p class='x'>Questions welcome.</p>"},
    {"contentType": "html", "content": "<html><body><p>Room 4</p></body></html>"},
    {"contentType": "html", "content": "<table><tr><td>Mon</td><td>Room 4</td></tr></table>"},
    {"contentType": "text", "content": "Bring your notes.\nRoom 4"},
    {"contentType": "html", "content": ""},
], ids=["fragment", "document", "table-only", "text", "empty"])
def test_an_outlook_event_is_written_once_whatever_exchange_makes_of_its_body(
        sandbox: Sandbox, now: datetime, body: dict[str, str]) -> None:
    """Exchange stores a body re-rendered (the emulator's exchange_rendering); a pass over
    an unchanged event must not write again: on Outlook each write mails every attendee."""
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    event = sandbox.graph.add_event(MARY, now + 2 * HOUR, now + 3 * HOUR,
                                    subject="Office Hours", body=body)
    config = sandbox.write_config()
    for _ in range(3):
        assert officehours(config, "sync").returncode == 0
    assert len(sandbox.graph.writes()) == 1, [w.path for w in sandbox.graph.writes()]
    stored = sandbox.graph.event(MARY, event)["body"]["content"]
    assert stored.startswith("<html><head>\r\n")  # as Exchange keeps it
    assert stored.count(sandbox.zoom.user(MARY).join_url) == 1
    expected = exchange_rendering(body)["content"] if body["content"] else ""
    assert visible(strip_blocks(stored)) == visible(expected)
    assert officehours(config, "remove-links").returncode == 0
    assert visible(sandbox.graph.event(MARY, event)["body"]["content"]) == visible(expected)


# --- writes Google refuses ---


def test_a_description_google_holds_but_would_refuse_gets_the_link_in_its_location(
        sandbox: Sandbox, now: datetime) -> None:
    """The description is longer than Google takes in a write: only the location is sent
    (before, the whole description was re-sent with it, and refused, every pass)."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    event = sandbox.google.add_event(ADA, summary="Office Hours", description="é" * 20_000,
                                     start=at(now + HOUR), end=at(now + 2 * HOUR))
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    stored = sandbox.google.event(ADA, event)
    assert stored["location"] == sandbox.zoom.user(ADA).join_url
    assert stored["description"] == "é" * 20_000
    assert officehours(config, "sync").returncode == 0
    assert len(sandbox.google.writes()) == 1


def test_a_write_google_refuses_is_said_once_and_not_retried_until_the_event_changes(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    first = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                     end=at(now + 2 * HOUR))
    second = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                                      end=at(now + 4 * HOUR))
    for event in (first, second):
        sandbox.google.fail("PATCH", f"/events/{event}$", google_error(
            400, "invalid", "The description is too long."), times=100)
    clock = [now]
    engine = open_engine(load(sandbox.write_config()), clock=lambda: clock[0])
    (ada,) = engine.config.instructors
    try:
        result = engine.sync(ada)
        assert result.error and "not tried again until the event changes" in result.error
        patched = len(sandbox.google.requests("PATCH"))
        assert patched == 2  # each event once: both reported, neither retried within
        for minutes in (1, 2, 3):  # still said (status, sync), never sent again
            clock[0] = now + timedelta(minutes=minutes)
            error = engine.sync(ada).error
            assert error and "refused this write before" in error
        assert len(sandbox.google.requests("PATCH")) == patched
        sandbox.google.edit_event(ADA, first, description="Room 4")  # it changed: try again
        engine.sync(ada)
        assert len(sandbox.google.requests("PATCH")) == patched + 1
    finally:
        engine.close()


# --- doctor's fixes fit the failure (issue 19, item 4) ---


def test_doctor_names_the_host_and_the_network_cause_not_a_scope(
        sandbox: Sandbox, now: datetime) -> None:
    """Zoom out of reach: the fix is the network's, not 'add the scope account:read:admin'."""
    google(sandbox, now)
    config = sandbox.write_config()
    closed = "https://127.0.0.1:1"  # nothing listens there: the connection is refused
    config.write_text(config.read_text()
                      .replace(f'api_base_url = "{sandbox.zoom_server.url}/v2"',
                               f'api_base_url = "{closed}/v2"')
                      .replace(f'oauth_base_url = "{sandbox.zoom_server.url}"',
                               f'oauth_base_url = "{closed}"'))
    result = officehours(config, "doctor")
    assert result.returncode == 1
    assert "account:read:admin" not in result.stdout, result.stdout
    assert "https://127.0.0.1:1" in result.stdout and "connection was refused" in result.stdout
    assert "DNS, the firewall, HTTPS_PROXY" in result.stdout
