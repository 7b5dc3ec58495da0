"""What students join is what was secured: the Personal Room's own waiting room, the
passcode in invites when the link lacks it, and Zoom's daily limits, through the real CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import HOUR, at, officehours
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Response

ADA = "ada@example.edu"


def seed(sandbox: Sandbox, now: datetime, **zoom: Any) -> str:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789, **zoom)
    return sandbox.google.add_event(ADA, summary="Office Hours", description="Questions welcome.",
                                    start=at(now + 3 * HOUR), end=at(now + 4 * HOUR),
                                    recurrence=["RRULE:FREQ=WEEKLY"])


def row(config: Path) -> dict[str, Any]:
    (found,) = json.loads(officehours(config, "status", "--json").stdout)["instructors"]
    assert isinstance(found, dict)
    return found


def test_status_says_what_a_student_meets_after_the_personal_room_is_repaired(
        sandbox: Sandbox, now: datetime) -> None:
    """The user's default says waiting room on; the Personal Room's own says off."""
    seed(sandbox, now, require_password_for_pmi_meetings="all", pmi_password="428571",
         waiting_room=True, pmi_waiting_room=False)
    config = sandbox.write_config()
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert sandbox.zoom.user(ADA).pmi_waiting_room is True
    found = row(config)
    assert found["zoom_state"] == "repaired (was insecure (waiting_room))"
    assert found["students_meet"] == {
        "passcode_required": True, "passcode_set": True, "waiting_room": True,
        "link_carries_passcode": True, "passcode_in_invite": False}
    table = officehours(config, "status").stdout
    assert "passcode (in link), waiting room" in table


def test_a_link_without_pwd_gets_the_passcode_in_the_invite_and_follows_its_changes(
        sandbox: Sandbox, now: datetime) -> None:
    event = seed(sandbox, now, embed_password_in_join_link=False)
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    user = sandbox.zoom.user(ADA)
    assert "pwd=" not in user.join_url and user.pmi_password
    description = sandbox.google.event(ADA, event)["description"]
    assert f"Passcode: {user.pmi_password}" in description
    assert row(config)["students_meet"]["passcode_in_invite"] is True

    user.pmi_password = "31415926"  # changed in the portal: a link change for students
    assert officehours(config, "sync").returncode == 0
    description = sandbox.google.event(ADA, event)["description"]
    assert "Passcode: 31415926" in description and description.count("Passcode:") == 1
    assert description.startswith("Questions welcome.")


def test_include_passcode_false_with_a_bare_link_is_a_warning_everywhere(
        sandbox: Sandbox, now: datetime) -> None:
    event = seed(sandbox, now, embed_password_in_join_link=False)
    config = sandbox.write_config(log_level="warning")
    with config.open("a") as file:
        file.write("\n[links]\ninclude_passcode = false\n")
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert "problem=link-without-passcode" in result.stderr
    assert "Passcode" not in sandbox.google.event(ADA, event)["description"]
    assert "passcode (NOT in invite), waiting room" in officehours(config, "status").stdout
    doctor = officehours(config, "doctor")
    assert "warn  Ada Lovelace <ada@example.edu> Zoom: the join link does not carry the " \
           "passcode" in doctor.stdout, doctor.stdout


def test_a_daily_limit_is_not_retried_and_the_row_says_when_it_lifts(
        sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, now)
    sandbox.zoom.fail("PATCH", "/v2/meetings/", Response(
        429, {"code": 429, "message": "You have exceeded the daily rate limit of (100) for "
              "Update a meeting API requests for this meeting."},
        {"Retry-After": "2099-01-01T00:00:00Z", "X-RateLimit-Type": "Daily-limit"}), times=4)
    config = sandbox.write_config()
    result = officehours(config, "sync")
    assert result.returncode == 1
    assert len(sandbox.zoom.requests("PATCH", "/v2/meetings/")) == 1  # no retry
    assert "2099-01-01 00:00 UTC" in row(config)["last_error"]


def test_an_iso_8601_retry_after_is_waited_for(sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, now)
    # a moment ~4.5 s ahead (whole seconds): a wait of a backoff's fraction of a second
    # would show that the date was not understood
    soon = (datetime.now(now.tzinfo) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sandbox.zoom.fail("GET", "/v2/meetings/", Response(
        429, {"code": 429, "message": "Too many requests"},
        {"Retry-After": soon, "X-RateLimit-Type": "QPS"}))
    config = sandbox.write_config()
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    first, second = sandbox.zoom.requests("GET", "/v2/meetings/")[:2]
    assert first.status == 429 and second.at - first.at >= 1.5
