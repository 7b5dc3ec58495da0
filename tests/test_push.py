"""[push]: a calendar's change reaches the program in seconds through the vendors' own
notifications (Google's watch channels, Graph's subscriptions: the emulators call back as
documented, through the campus's HTTPS proxy: sandbox/officehours_sandbox/push.py), with
passes an hour apart; forged notifications change nothing; a lost one is caught by the
safety poll; subscriptions outlive a restart."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import conftest
import httpx
import pytest
from conftest import HOUR, at, clean_env, officehours, wait_for
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Response

from daemon.app import writing
from daemon.config import load
from daemon.reconcile import START_MARK

ADA, GRACE = "ada@example.edu", "grace@example.edu"
MINUTE = timedelta(minutes=1)
QUICK = 10  # seconds: a change linked (the bound)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running(conftest.Running):
    """`officehours run` with [push]."""

    def __init__(self, sandbox: Sandbox, log: Path, interval: int = 3600,
                 safety: int = 3600) -> None:
        self.public_url = sandbox.push(f"127.0.0.1:{free_port()}", safety)
        self.sandbox = sandbox
        super().__init__(sandbox.write_config(sync_interval_seconds=interval,
                                              enforce_lead_minutes=15, log_level="debug"), log)


@pytest.fixture
def running(sandbox: Sandbox, tmp_path: Path) -> Iterator[Running]:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_microsoft_instructor("Grace Hopper", GRACE, 8234567890)
    service = Running(sandbox, tmp_path / "run.log")
    try:
        wait_for(lambda: sandbox.google.live_channels(ADA) and sandbox.graph.subscriptions,
                 what="a subscription for each calendar")
        yield service
    finally:
        if service.process.poll() is None:
            service.stop()


def linked(description: str | None) -> bool:
    return START_MARK in (description or "")


def test_new_edited_and_deleted_events_reach_the_program_without_a_pass(
        sandbox: Sandbox, running: Running, now: datetime) -> None:
    google = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                      end=at(now + 2 * HOUR))
    outlook = sandbox.graph.add_event(GRACE, now + HOUR, now + 2 * HOUR,
                                      subject="Office Hours")
    wait_for(lambda: linked(sandbox.google.event(ADA, google).get("description")),
             timeout=QUICK, what="the Google event linked by push")
    wait_for(lambda: linked(sandbox.graph.event(GRACE, outlook)["body"]["content"]),
             timeout=QUICK, what="the Outlook event linked by push")
    assert running.said("action=pass ") == 1  # the first pass only: push did it
    # an edit that takes the link out (the instructor pasted an old description back)
    sandbox.google.edit_event(ADA, google, description="Come by!")
    wait_for(lambda: linked(sandbox.google.event(ADA, google).get("description")),
             timeout=QUICK, what="the edited event linked again")
    reads = running.said("action=push-read")
    sandbox.google.delete_event(ADA, google)
    sandbox.graph.delete_event(GRACE, outlook)
    wait_for(lambda: running.said("action=push-read") >= reads + 2, timeout=QUICK,
             what="the deletions read")
    # each notification was answered 2xx through the proxy; Google's first message of a
    # channel ("sync") included
    assert {d.status for d in sandbox.deliveries.sent} <= {200, 202}, sandbox.deliveries.sent
    assert any(d.headers.get("X-Goog-Resource-State") == "sync"
               for d in sandbox.deliveries.sent)


def test_forged_notifications_are_refused_and_change_nothing(
        sandbox: Sandbox, running: Running) -> None:
    (channel,) = sandbox.google.live_channels(ADA)
    (subscription,) = sandbox.graph.subscriptions.values()
    google = {"X-Goog-Channel-ID": channel["id"], "X-Goog-Channel-Token": channel["token"],
              "X-Goog-Resource-ID": channel["resourceId"], "X-Goog-Resource-State": "exists"}
    item = {"subscriptionId": subscription["id"], "changeType": "created",
            "clientState": subscription["clientState"], "resource": "Users/x/Events/y"}
    with httpx.Client(verify=ssl.create_default_context(cafile=str(sandbox.ca.bundle))) as client:
        def post(path: str, **kwargs: object) -> int:
            return client.post(running.public_url + path, **kwargs).status_code  # type: ignore

        forged = [
            post("/google", headers={**google, "X-Goog-Channel-Token": "guess"}),
            post("/google", headers={**google, "X-Goog-Channel-ID": "no-such-channel"}),
            post("/google", headers={**google, "X-Goog-Resource-ID": "another"}),
            post("/google", headers={**google, "X-Goog-Resource-State": "bogus"}),
            post("/graph", json={"value": [{**item, "clientState": "guess"}]}),
            post("/graph", json={"value": [{**item, "subscriptionId": "nope"}]}),
            post("/graph", content=b"{" * 10),
            post("/graph", json={"value": [item], "pad": "x" * 1_100_000}),
            post("/graph/lifecycle", json={"value": [{**item, "lifecycleEvent": "boom"}]}),
        ]
        assert forged == [403, 404, 403, 400, 403, 404, 400, 413, 400]
        assert post("/graph?validationToken=" + "x" * 2000) == 400
        echo = client.post(running.public_url + "/graph?validationToken=a%2Bb%20c")
        assert (echo.status_code, echo.text) == (200, "a+b c")  # decoded, as Graph asks
        assert echo.headers["content-type"].startswith("text/plain")
    # none was queued: the receiver records a calendar before it answers, so a forged
    # one would be in the queue (or read) by now
    with sqlite3.connect(sandbox.dir / "state" / "state.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM push_queue").fetchone() == (0,)
    assert running.said("action=push-read") == 0  # nothing was read for any of them
    assert running.said("action=push-refused") >= 5
    for secret in (channel["token"], subscription["clientState"]):
        assert secret not in running.log.read_text()  # never in the log
    # the real ones still work
    with httpx.Client(verify=ssl.create_default_context(cafile=str(sandbox.ca.bundle))) as client:
        assert client.post(running.public_url + "/google", headers=google).status_code == 200
    wait_for(lambda: running.said("action=push-read") == 1, what="the genuine one read")


def test_a_lost_notification_is_caught_by_the_safety_poll(
        sandbox: Sandbox, now: datetime, tmp_path: Path) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    service = Running(sandbox, tmp_path / "run.log", interval=1, safety=4)
    try:
        wait_for(lambda: sandbox.google.live_channels(ADA), what="the channel")
        assert sandbox.deliveries is not None
        wait_for(lambda: sandbox.deliveries.idle() and service.said("action=pass ") >= 3,
                 what="a few passes")
        sandbox.deliveries.drop_next()  # Google's "not 100% reliable"
        before = len(sandbox.deliveries.sent)
        lists = len(sandbox.google.requests("GET", f"/calendars/{ADA}/events"))
        started = datetime.now()
        event = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                         end=at(now + 2 * HOUR))
        wait_for(lambda: linked(sandbox.google.event(ADA, event).get("description")),
                 timeout=15, what="the event linked by the safety poll")
        took = (datetime.now() - started).total_seconds()
        assert sandbox.deliveries.sent[before].status == 0  # it was lost indeed (what
        # follows is the notification of the link written, delivered)
        # one read in the safety interval, though a pass ran every second
        reads = len(sandbox.google.requests("GET", f"/calendars/{ADA}/events")) - lists
        assert reads <= 2 + int(took / 4), (reads, took)
    finally:
        service.stop()


def test_subscriptions_outlive_a_restart(sandbox: Sandbox, running: Running) -> None:
    channels = [c["id"] for c in sandbox.google.live_channels(ADA)]
    subscriptions = set(sandbox.graph.subscriptions)
    watches = len(sandbox.google.requests("POST", "/watch"))
    running.stop()
    running.start()
    wait_for(lambda: running.said("action=pass ") >= 2, what="the first pass after")
    wait_for(lambda: running.said("action=push-listen") >= 2, what="listening again")
    assert [c["id"] for c in sandbox.google.live_channels(ADA)] == channels
    assert set(sandbox.graph.subscriptions) == subscriptions
    assert len(sandbox.google.requests("POST", "/watch")) == watches
    # and they still deliver to the new process
    event = sandbox.google.add_event(ADA, summary="Office Hours",
                                     start=at(datetime.now().astimezone() + HOUR),
                                     end=at(datetime.now().astimezone() + 2 * HOUR))
    wait_for(lambda: linked(sandbox.google.event(ADA, event).get("description")),
             timeout=QUICK, what="linked by push after the restart")


def test_status_and_the_metrics_count_calendars_notified_and_polled(
        sandbox: Sandbox, running: Running, tmp_path: Path) -> None:
    status = officehours(running.config, "status")
    assert "Push: 2 of 2 calendars notified; 0 polled every interval\n" in status.stdout, \
        status.stdout
    running.stop()
    sandbox.graph.fail("POST", "/v1.0/subscriptions", Response(403, {"error": {
        "code": "ExtensionError", "message": "Forbidden"}}), times=100)
    with writing(load(running.config)) as state:  # Graph dropped Grace's meanwhile
        state.drop_subscription(GRACE)
    textfile = tmp_path / "officehours.prom"
    running.config.write_text(running.config.read_text()
                              + f'\n[metrics]\ntextfile = "{textfile}"\n')
    running.start()
    wait_for(lambda: running.said("action=push-subscribe problem="), what="the refusal said")
    status = officehours(running.config, "status")
    assert status.returncode == 0, status.stdout  # degraded, not failing: it is polled
    line = next(x for x in status.stdout.splitlines() if x.startswith("Push:"))
    assert line.startswith("Push: 1 of 2 calendars notified; 1 polled every interval (") \
        and "403" in line, line
    assert json.loads(officehours(running.config, "status", "--json").stdout)["push"][
        "polled"].keys() == {GRACE}
    wait_for(lambda: textfile.exists() and 'officehours_push_calendars{state="polled"} 1.0'
             in textfile.read_text(), what="the metric")


def test_doctor_checks_that_public_url_reaches_the_receiver(sandbox: Sandbox,
                                                            tmp_path: Path) -> None:
    sandbox.add_microsoft_instructor("Grace Hopper", GRACE, 8234567890)
    sandbox.push(f"127.0.0.1:{free_port()}")
    config = sandbox.write_config()
    found = officehours(config, "doctor")  # the service is not running: its own receiver
    lines = [x for x in found.stdout.splitlines() if "push:" in x]
    assert len(lines) == 2 and all(x.startswith("ok") for x in lines), found.stdout
    assert sandbox.graph.subscriptions == {}  # Graph's round trip left nothing behind
    assert len(sandbox.graph.requests("DELETE", "/subscriptions/")) == 1
    assert sandbox.front is not None
    sandbox.front.listen = f"127.0.0.1:{free_port()}"  # the proxy sends elsewhere
    broken = officehours(config, "doctor")
    line = next(x for x in broken.stdout.splitlines() if "push: public_url" in x)
    assert line.startswith("FAIL") and "HTTP 502" in line, broken.stdout
    assert "reverse proxy" in broken.stdout and broken.returncode == 1


def test_listen_systemd_serves_the_socket_systemd_passes(sandbox: Sandbox, now: datetime,
                                                        tmp_path: Path) -> None:
    """Socket activation (sd_listen_fds): the socket comes as descriptor 3, with LISTEN_FDS
    and LISTEN_PID naming this very process, as officehours.socket would pass it."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    sandbox.push(f"127.0.0.1:{port}")
    config = sandbox.write_config(sync_interval_seconds=3600)
    config.write_text(config.read_text().replace(f'listen = "127.0.0.1:{port}"',
                                                 'listen = "systemd"'))
    log = tmp_path / "run.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(  # what systemd does between fork and exec
            [sys.executable, "-c", "import os, sys; os.dup2(int(sys.argv[1]), 3); "
             "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
             "os.execv(sys.executable, [sys.executable, '-m', 'daemon.cli', '--config', "
             "sys.argv[2], 'run'])", str(listening.fileno()), str(config)],
            stdout=subprocess.DEVNULL, stderr=stderr, env=clean_env(),
            pass_fds=(listening.fileno(),))
    listening.close()  # the service's now
    try:
        wait_for(lambda: sandbox.google.live_channels(ADA), what="subscribed through it")
        event = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                         end=at(now + 2 * HOUR))
        wait_for(lambda: linked(sandbox.google.event(ADA, event).get("description")),
                 timeout=QUICK, what="linked through the socket systemd passed")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0, log.read_text()[-2000:]
