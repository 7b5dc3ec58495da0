"""`officehours run` in a subprocess: picks up new events, secures sessions on time,
stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta

from conftest import HOUR, at, officehours, spawn, wait_for

from daemon.reconcile import START_MARK
from daemon.sandbox.domain import Sandbox

ADA = "ada@example.edu"


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


def test_run_secures_the_pmi_when_the_lead_window_opens(sandbox: Sandbox, now: datetime) -> None:
    """No pass happens near the session (interval 300 s): only the per-session job can."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    start = datetime.now(now.tzinfo) + timedelta(seconds=4)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(start),
                             end=at(start + HOUR))
    config = sandbox.write_config(sync_interval_seconds=300, enforce_lead_minutes=0)
    process = spawn(config, "run")
    try:
        wait_for(lambda: sandbox.google.writes(), what="the first pass")
        assert not sandbox.zoom.user(ADA).secure  # too early: the window is [start, start]
        wait_for(lambda: sandbox.zoom.user(ADA).secure, timeout=20,
                 what="the PMI to be secured at the session start")
        assert datetime.now(now.tzinfo) >= start
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_run_secures_a_session_already_under_way_at_once(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now - timedelta(minutes=20)),
                             end=at(now + HOUR))
    config = sandbox.write_config(sync_interval_seconds=300)
    process = spawn(config, "run")
    try:
        wait_for(lambda: sandbox.zoom.user(ADA).secure, what="the PMI to be secured")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0
