"""`officehours run` in a subprocess: picks up new events, secures sessions on time,
stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta

from conftest import HOUR, at, officehours, spawn, wait_for
from officehours_sandbox.domain import Sandbox

from daemon.reconcile import START_MARK

ADA = "ada@example.edu"
MINUTE = timedelta(minutes=1)


def test_run_links_a_new_event_within_one_interval_and_stops_on_sigterm(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    first = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                                     end=at(now + 4 * HOUR))
    config = sandbox.write_config(sync_interval_seconds=1)
    process = spawn(config, "run")
    try:
        wait_for(lambda: START_MARK in sandbox.google.event(ADA, first).get("description", ""),
                 what="the first pass")
        status = officehours(config, "status")  # reads the state while `run` writes it
        assert status.returncode == 0 and "Ada Lovelace" in status.stdout, status.stderr
        new = sandbox.google.add_event(ADA, summary="Office Hours - extra",
                                       start=at(now + 5 * HOUR), end=at(now + 6 * HOUR))
        wait_for(lambda: START_MARK in sandbox.google.event(ADA, new).get("description", ""),
                 timeout=5, what="the new event to be linked within one interval")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "action=stopped" in stderr


def test_a_personal_room_opened_between_two_sessions_is_secure_again_before_the_second(
        sandbox: Sandbox, now: datetime) -> None:
    """No pass happens near the second session (interval 300 s): the per-session job
    finds the Personal Room's own waiting room switched off (the user's default still on)
    and repairs it within the lead window, before the session starts, writing no event."""
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789, waiting_room=True)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now - 10 * MINUTE),
                             end=at(now + 2 * MINUTE))
    second = datetime.now(now.tzinfo) + timedelta(seconds=70)  # its window opens in ~10 s
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(second),
                             end=at(second + HOUR))
    config = sandbox.write_config(sync_interval_seconds=300, enforce_lead_minutes=1)
    process = spawn(config, "run")
    try:
        wait_for(lambda: len(sandbox.google.writes()) == 2 and user.secure,
                 what="the first pass")
        user.pmi_waiting_room = False  # someone edits the Personal Room in the portal
        assert user.waiting_room and not user.secure
        patches = len(sandbox.zoom.writes())
        wait_for(lambda: user.secure,
                 timeout=(second - datetime.now(now.tzinfo)).total_seconds(),
                 what="the Personal Room to be secured before the second session starts")
        assert [r.path for r in sandbox.zoom.writes()[patches:]] == ["/v2/meetings/8123456789"]
        assert len(sandbox.google.writes()) == 2  # the link students have stays as it was
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_run_secures_a_session_already_under_way_at_once(
        sandbox: Sandbox, now: datetime) -> None:
    """The service resumes after downtime (a `sync` served Ada before: her room is no news,
    so first-sight securing does not apply) while her session is under way, and someone
    opened her room meanwhile: the first pass secures it, not a pass 300 s later."""
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now - timedelta(minutes=20)),
                             end=at(now + HOUR))
    config = sandbox.write_config(sync_interval_seconds=300)
    assert officehours(config, "sync").returncode == 0 and user.secure
    user.pmi_waiting_room = False  # opened in the portal while the service was down
    process = spawn(config, "run")
    try:
        wait_for(lambda: user.secure, timeout=20, what="the room secured by the first pass")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr.count("action=pass ") == 1, stderr  # the first pass, no other


def test_remove_links_while_running_sticks_until_reinstated(
        sandbox: Sandbox, now: datetime) -> None:
    """Offboarding with the service running: the next passes do not write the link back
    (on Outlook each rewrite would be an email to the class)."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_instructor("Grace Hopper", "grace@example.edu", 8234567890)
    ada = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                                   end=at(now + 4 * HOUR))
    config = sandbox.write_config(sync_interval_seconds=1)

    def linked(email: str, event: str) -> bool:
        return START_MARK in sandbox.google.event(email, event).get("description", "")

    process = spawn(config, "run")
    try:
        wait_for(lambda: linked(ADA, ada), what="the first pass")
        removed = officehours(config, "remove-links", "--instructor", ADA)
        assert removed.returncode == 0, removed.stderr
        assert not linked(ADA, ada)
        for _ in range(2):  # two more passes, proven by Grace's new events being linked
            grace = sandbox.google.add_event("grace@example.edu", summary="Office Hours",
                                             start=at(now + 3 * HOUR), end=at(now + 4 * HOUR))
            wait_for(lambda g=grace: linked("grace@example.edu", g), what="a later pass")
        assert not linked(ADA, ada)
        status = officehours(config, "status")
        assert "offboarded" in status.stdout and status.returncode == 0
        back = officehours(config, "reinstate", "--instructor", ADA)
        assert back.returncode == 0 and "served again" in back.stdout
        wait_for(lambda: linked(ADA, ada), what="the reinstated instructor to be served")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_remove_links_works_for_an_instructor_the_config_no_longer_lists(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_instructor("Grace Hopper", "grace@example.edu", 8234567890)
    ada = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                                   end=at(now + 4 * HOUR))
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    sandbox.instructors = [i for i in sandbox.instructors if i["email"] != ADA]
    config = sandbox.write_config()  # Ada left first, her links stayed
    result = officehours(config, "remove-links", "--instructor", "ADA@example.edu")
    assert result.returncode == 0, result.stderr
    assert START_MARK not in sandbox.google.event(ADA, ada)["description"]
    unknown = officehours(config, "remove-links", "--instructor", "nobody@example.edu")
    assert unknown.returncode == 78 and "no instructor with email" in unknown.stderr
