"""`officehours sync` for Outlook instructors, in a subprocess against the Graph emulator."""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme
from conftest import HOUR, clean_env, officehours, sigkill_after, spawn, wait_for
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Request, Response

from daemon.reconcile import START_MARK, strip_blocks, visible

MARY = "mary@example.edu"
PACIFIC = ZoneInfo("America/Los_Angeles")
BODY = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        "</head><body><p>Questions welcome.</p></body></html>")
OFFICE = ("series", "exception", "single")


def seed(sandbox: Sandbox, now: datetime, next_session: timedelta,
         calendar: str = "default") -> dict[str, str]:
    """A weekly Outlook series in Pacific time (next occurrence after `next_session`), one
    moved and one cancelled occurrence, a single event, a lecture, someone else's event."""
    graph = sandbox.graph
    first = now + next_session - timedelta(days=7)
    times = [(first + timedelta(days=7 * i), first + timedelta(days=7 * i) + HOUR)
             for i in range(10)]
    local = first.astimezone(PACIFIC)
    ids = {"series": graph.add_event(
        MARY, times[0][0], times[0][1], occurrences=times, calendar=calendar,
        subject="Office Hours", body={"contentType": "html", "content": BODY},
        originalStartTimeZone="Pacific Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "firstDayOfWeek": "sunday",
                                "daysOfWeek": [local.strftime("%A").lower()]},
                    "range": {"type": "noEnd", "startDate": local.date().isoformat(),
                              "recurrenceTimeZone": "Pacific Standard Time"}})}
    ids["exception"] = graph.add_exception(
        MARY, ids["series"], times[2][0], times[2][0] + 2 * HOUR, times[2][1] + 2 * HOUR,
        body={"contentType": "text", "content": "Moved this week."})
    graph.cancel_occurrence(MARY, ids["series"], times[3][0])
    day = now + timedelta(days=2)
    ids["single"] = graph.add_event(MARY, day, day + HOUR, subject="Office Hours - review",
                                    calendar=calendar,
                                    body={"contentType": "text", "content": ""})
    ids["lecture"] = graph.add_event(MARY, day, day + HOUR, subject="Lecture", calendar=calendar)
    ids["foreign"] = graph.add_event(MARY, day, day + HOUR, subject="Office Hours",
                                     calendar=calendar, organizer="other@example.edu")
    return ids


def events(sandbox: Sandbox, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: sandbox.graph.event(MARY, eid) for name, eid in ids.items()}


def assert_linked(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                  url: str) -> None:
    for name in OFFICE:
        content = after[name]["body"]["content"]
        assert content.count(url) == 1, (name, content)
        assert after[name]["location"]["displayName"] == url
    # stored as Exchange renders it (the emulator's exchange_rendering): the same to a reader
    series = after["series"]["body"]["content"]
    assert visible(series).startswith(visible(BODY) + " " + START_MARK)
    assert visible(strip_blocks(series)) == visible(BODY)
    assert visible(after["exception"]["body"]["content"]).startswith(
        f"Moved this week. {START_MARK}")
    for name in ("lecture", "foreign"):
        assert after[name] == before[name], name


@pytest.fixture
def mary(sandbox: Sandbox) -> Sandbox:
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    return sandbox


def test_first_pass_links_outlook_events_once_and_second_pass_writes_nothing(
        mary: Sandbox, now: datetime) -> None:
    ids = seed(mary, now, next_session=3 * HOUR)
    config = mary.write_config()
    before = events(mary, ids)

    first = officehours(config, "sync")
    assert first.returncode == 0, first.stderr
    assert_linked(before, events(mary, ids), mary.zoom.user(MARY).join_url)
    patches = mary.graph.requests("PATCH")
    assert len(patches) == 3  # one per series, exception and single: never an occurrence
    assert not any("_OCC" in p.path for p in patches)
    # secured at first sight, before the link was written: no second email to the class
    assert [r.path for r in mary.zoom.writes()] == [f"/v2/users/{MARY}/settings",
                                                    "/v2/meetings/8555555555"]

    second = officehours(config, "sync")
    assert second.returncode == 0, second.stderr
    assert len(mary.graph.requests("PATCH")) == 3
    assert len(mary.zoom.writes()) == 2


def test_outlook_session_secured_from_mapped_recurrence(mary: Sandbox, now: datetime) -> None:
    """The session 5 minutes away is known only by expanding the weekly pattern locally."""
    seed(mary, now, next_session=timedelta(minutes=5))
    result = officehours(mary.write_config(), "sync")
    assert result.returncode == 0, result.stderr
    assert mary.zoom.user(MARY).secure
    (row,) = json.loads(officehours(mary.write_config(), "status", "--json").stdout)["instructors"]
    assert datetime.fromisoformat(row["next_session"]) == (now + timedelta(minutes=5))


def test_412_on_outlook_series_rereads_and_keeps_the_edit(mary: Sandbox, now: datetime) -> None:
    ids = seed(mary, now, next_session=3 * HOUR)
    edited = threading.Event()
    edit = BODY.replace("Questions welcome.", "Questions welcome. Bring snacks!")

    def instructor_edits_first(request: Request) -> Response | None:
        if request.method == "PATCH" and not edited.is_set():
            edited.set()
            mary.graph.edit_event(MARY, ids["series"],
                                  body={"contentType": "html", "content": edit})
        return None

    mary.graph.hooks.append(instructor_edits_first)
    ids.pop("exception"), ids.pop("single")
    result = officehours(mary.write_config(), "sync")
    assert result.returncode == 0, result.stderr
    statuses = [r.status for r in mary.graph.requests("PATCH")]
    assert statuses.count(412) == 1 and statuses.count(200) == 3
    content = mary.graph.event(MARY, ids["series"])["body"]["content"]
    assert "Bring snacks!" in content and content.count(mary.zoom.user(MARY).join_url) == 1


@pytest.mark.parametrize("kind", ["503", "429", "reset"])
def test_msal_token_requests_are_retried_like_the_rest(mary: Sandbox, now: datetime,
                                                       kind: str) -> None:
    seed(mary, now, next_session=3 * HOUR)
    mary.graph.inject(kind, "POST", "/oauth2/v2.0/token")
    result = officehours(mary.write_config(), "sync")
    assert result.returncode == 0, result.stderr
    assert len(mary.graph.requests("POST", "/oauth2/v2.0/token")) == 2


def test_expired_delta_link_starts_a_new_round(mary: Sandbox, now: datetime) -> None:
    seed(mary, now, next_session=3 * HOUR)
    config = mary.write_config()
    assert officehours(config, "sync").returncode == 0
    mary.graph.expire_delta_tokens()
    day = now + timedelta(days=3)
    new = mary.graph.add_event(MARY, day, day + HOUR, subject="Office Hours")
    patches = len(mary.graph.requests("PATCH"))
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert 410 in [r.status for r in mary.graph.requests("GET", "/delta")]
    assert START_MARK in mary.graph.event(MARY, new)["body"]["content"]
    assert len(mary.graph.requests("PATCH")) == patches + 1


def test_other_calendar_is_compared_by_change_key(mary: Sandbox, now: datetime) -> None:
    mary.instructors[-1]["calendar_id"] = "AAMkCalendar2="
    ids = seed(mary, now, next_session=3 * HOUR, calendar="AAMkCalendar2=")
    config = mary.write_config()
    before = events(mary, ids)
    assert officehours(config, "sync").returncode == 0
    assert_linked(before, events(mary, ids), mary.zoom.user(MARY).join_url)
    assert officehours(config, "sync").returncode == 0
    assert len(mary.graph.requests("PATCH")) == 3
    mary.graph.edit_event(MARY, ids["single"], body={"contentType": "text", "content": "hi"})
    assert officehours(config, "sync").returncode == 0
    assert START_MARK in mary.graph.event(MARY, ids["single"])["body"]["content"]
    assert len(mary.graph.requests("PATCH")) == 4


def test_certificate_credentials(mary: Sandbox, now: datetime) -> None:
    ids = seed(mary, now, next_session=3 * HOUR)
    from cryptography import x509

    leaf = trustme.CA().issue_cert("officehours.example.edu",  # Entra ID wants RSA
                                   not_after=datetime.now(UTC) + dt.timedelta(days=30),
                                   key_type=trustme.KeyType.RSA)
    pem = leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes()
    mary.graph.add_certificate(x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()))
    path = mary.credentials / "ms-cert.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    config = mary.write_config()
    text = config.read_text().replace(
        f'client_secret_file = "{mary.credentials / "ms-secret"}"',
        f'client_certificate_file = "{path}"')
    config.write_text(text)
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert START_MARK in mary.graph.event(MARY, ids["single"])["body"]["content"]


def test_google_and_microsoft_instructors_in_one_install(mary: Sandbox, now: datetime) -> None:
    seed(mary, now, next_session=3 * HOUR)
    mary.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    event = mary.google.add_event("ada@example.edu", summary="Office Hours",
                                  start={"dateTime": (now + HOUR).isoformat()},
                                  end={"dateTime": (now + 2 * HOUR).isoformat()})
    result = officehours(mary.write_config(), "sync")
    assert result.returncode == 0, result.stderr
    assert "2 instructor(s), 0 failed" in result.stdout
    assert START_MARK in mary.google.event("ada@example.edu", event)["description"]


def test_ca_bundle_wins_over_the_environment(mary: Sandbox, now: datetime,
                                             tmp_path: Path) -> None:
    """REQUESTS_CA_BUNDLE & co. point at a CA that does not sign the emulators."""
    seed(mary, now, next_session=timedelta(minutes=5))
    mary.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    stranger = tmp_path / "stranger.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    env = {**clean_env(), "REQUESTS_CA_BUNDLE": str(stranger), "CURL_CA_BUNDLE": str(stranger),
           "SSL_CERT_FILE": str(stranger), "HTTPLIB2_CA_CERTS": str(stranger)}
    result = officehours(mary.write_config(), "sync", env=env)
    assert result.returncode == 0, result.stderr
    assert mary.zoom.user(MARY).secure and mary.graph.requests("PATCH")


@pytest.mark.parametrize("kill_at_write", [1, 2])
def test_kill_9_mid_outlook_pass_converges(mary: Sandbox, now: datetime,
                                           kill_at_write: int) -> None:
    ids = seed(mary, now, next_session=3 * HOUR)
    config = mary.write_config()
    before = events(mary, ids)
    assert sigkill_after(config, [mary.graph], kill_at_write, method="PATCH")
    assert officehours(config, "sync").returncode == 0
    assert_linked(before, events(mary, ids), mary.zoom.user(MARY).join_url)
    assert len(mary.graph.requests("PATCH")) == 3  # the write that landed is not repeated


def test_run_links_a_new_outlook_event_within_one_interval(mary: Sandbox, now: datetime) -> None:
    seed(mary, now, next_session=3 * HOUR)
    process = spawn(mary.write_config(sync_interval_seconds=1), "run")
    try:
        wait_for(lambda: len(mary.graph.requests("PATCH")) == 3, what="the first pass")
        day = now + timedelta(days=4)
        new = mary.graph.add_event(MARY, day, day + HOUR, subject="Office Hours - extra")
        wait_for(lambda: START_MARK in mary.graph.event(MARY, new)["body"]["content"],
                 timeout=5, what="the new event within one interval")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    # steady passes in between asked Graph only for the delta: no token, no master, no write
    assert len(mary.graph.requests("POST", "/token")) == 1
    assert len(mary.graph.requests("PATCH")) == 4


def test_doctor_passes_on_a_healthy_install(mary: Sandbox, now: datetime) -> None:
    seed(mary, now, next_session=3 * HOUR)
    mary.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    result = officehours(mary.write_config(), "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed." in result.stdout
    assert "Mary Somerville <mary@example.edu> calendar: microsoft calendar 'primary' " \
           "readable and writable" in result.stdout
    assert "Ada Lovelace <ada@example.edu> calendar: google calendar 'primary' readable and " \
           "writable (owner)" in result.stdout
    assert mary.google.writes() == [] and mary.graph.writes() == [] and mary.zoom.writes() == []


def test_doctor_reports_a_locked_zoom_setting_and_an_unreadable_calendar(
        mary: Sandbox, now: datetime) -> None:
    mary.zoom.user(MARY).locked = {"waiting_room"}
    mary.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789,  # already secure
                        require_password_for_pmi_meetings="all", pmi_password="123456",
                        waiting_room=True)
    mary.instructors[-1]["calendar_id"] = "dean@example.edu"  # not Ada's to read
    result = officehours(mary.write_config(), "doctor")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    locked = next(i for i, line in enumerate(lines) if "waiting_room must change" in line)
    assert lines[locked].startswith("FAIL  Mary Somerville") and "fix: unlock" in lines[locked + 1]
    unreadable = next(i for i, line in enumerate(lines) if line.startswith("FAIL  Ada Lovelace"))
    assert "HTTP 404" in lines[unreadable] and "domain-wide delegation" in lines[unreadable + 1]
    assert "2 problem(s) found." in result.stdout
    assert mary.zoom.writes() == []
