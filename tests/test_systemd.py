"""The unit file, and `run` as systemd runs it: notify socket, watchdog, credentials,
reload on SIGHUP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import HOUR, at, clean_env, wait_for
from officehours_sandbox.domain import Sandbox

from daemon.reconcile import START_MARK

UNIT = Path(__file__).parent.parent / "systemd" / "officehours.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed "
                                   "(.ci/run installs it)")
ADA = "ada@example.edu"


def unit_for_this_checkout(tmp_path: Path) -> Path:
    """The unit with ExecStart= pointing at this environment's officehours."""
    executable = Path(sys.executable).parent / "officehours"
    copy = tmp_path / "officehours.service"
    copy.write_text(UNIT.read_text().replace("/opt/officehours/venv/bin/officehours",
                                             str(executable)))
    return copy


@needs_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    result = subprocess.run([str(ANALYZE), "verify", str(unit_for_this_checkout(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "officehours.service" not in result.stderr, result.stderr


@needs_analyze
def test_unit_exposure_is_at_most_1_5(tmp_path: Path) -> None:
    result = subprocess.run([str(ANALYZE), "security", "--offline=yes",
                             str(unit_for_this_checkout(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    line = next(li for li in result.stdout.splitlines() if "Overall exposure level" in li)
    exposure = float(line.split(":")[1].split()[0])
    assert exposure <= 1.5, result.stdout


def test_unit_allows_no_core_dump() -> None:
    """A core dump would hold the vendors' secrets and tokens (the process also makes itself
    non-dumpable: test_secrets.py)."""
    assert "LimitCORE=0" in UNIT.read_text().splitlines()


class Notifications:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET, read continuously."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.messages += self.sock.recv(4096).decode().splitlines()
            except TimeoutError:
                continue

    def drain(self) -> list[str]:
        return list(self.messages)

    def close(self) -> None:
        self._closed.set()
        self._reader.join()
        self.sock.close()


@pytest.fixture
def notifications(tmp_path: Path) -> Iterator[Notifications]:
    listener = Notifications(tmp_path / "notify.sock")
    yield listener
    listener.close()


def start_like_systemd(sandbox: Sandbox, config: Path, notify: Notifications,
                       watchdog_usec: int = 400_000) -> subprocess.Popen[str]:
    env = {**clean_env(), "NOTIFY_SOCKET": str(notify.path),
           "WATCHDOG_USEC": str(watchdog_usec), "CREDENTIALS_DIRECTORY": str(sandbox.credentials),
           "JOURNAL_STREAM": "8:1234"}
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_run_speaks_the_notify_protocol(sandbox: Sandbox, now: datetime,
                                        notifications: Notifications) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))
    config = sandbox.write_config(relative_secrets=True, sync_interval_seconds=300)
    process = start_like_systemd(sandbox, config, notifications)
    try:
        wait_for(lambda: "READY=1" in notifications.drain(), what="READY=1")
        wait_for(lambda: any(m.startswith("STATUS=1 instructors, 0 problems, next pass")
                             for m in notifications.drain()), what="the pass summary")
        wait_for(lambda: notifications.drain().count("WATCHDOG=1") >= 3, what="watchdog pings")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "STOPPING=1" in notifications.drain()
    assert notifications.messages.index("READY=1") < notifications.messages.index("STOPPING=1")
    # journald priorities: <6> info lines, and no secret in them
    assert "<6>INFO action=start" in stderr
    assert sandbox.zoom_secret not in stderr


def test_no_watchdog_pings_when_systemd_did_not_ask(sandbox: Sandbox, now: datetime,
                                                    notifications: Notifications) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    config = sandbox.write_config(relative_secrets=True)
    process = start_like_systemd(sandbox, config, notifications, watchdog_usec=0)
    try:
        wait_for(lambda: any(m.startswith("STATUS=1 instructors") for m in notifications.drain()),
                 what="the pass summary")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert "WATCHDOG=1" not in notifications.messages


def test_sighup_reloads_and_a_broken_config_keeps_the_old_one(
        sandbox: Sandbox, now: datetime, notifications: Notifications) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))
    config = sandbox.write_config(relative_secrets=True, sync_interval_seconds=1)
    process = start_like_systemd(sandbox, config, notifications)
    try:
        wait_for(lambda: "READY=1" in notifications.drain(), what="READY=1")
        sandbox.add_instructor("Grace Hopper", "grace@example.edu", 8234567890)
        grace = sandbox.google.add_event("grace@example.edu", summary="Office Hours",
                                         start=at(now + HOUR), end=at(now + 2 * HOUR))
        sandbox.write_config(relative_secrets=True, sync_interval_seconds=1)
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: START_MARK in sandbox.google.event("grace@example.edu", grace).get(
            "description", ""), what="the reloaded config to serve Grace")
        assert "RELOADING=1" in notifications.drain()

        config.write_text(config.read_text().replace("[zoom]", "[zoom]\nbogus = 1"))
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: any(m.startswith("STATUS=reload failed") for m in notifications.drain()),
                 what="the failed reload to be reported")
        late = sandbox.google.add_event("grace@example.edu", summary="Office Hours - extra",
                                        start=at(now + HOUR), end=at(now + 2 * HOUR))
        wait_for(lambda: START_MARK in sandbox.google.event("grace@example.edu", late).get(
            "description", ""), what="passes to go on under the old config")
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "zoom.bogus: unknown key" in stderr and "outcome=kept-old-config" in stderr


def test_reloads_close_what_the_old_configuration_opened(
        sandbox: Sandbox, now: datetime, notifications: Notifications) -> None:
    """Each SIGHUP opens a new engine (state database, HTTP clients); the old one is closed
    once no job uses it, so descriptors stay flat over many reloads."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))
    sandbox.add_microsoft_instructor("Mary Somerville", "mary@example.edu", 8555555555)
    sandbox.graph.add_event("mary@example.edu", now + HOUR, now + 2 * HOUR,
                            subject="Office Hours")
    config = sandbox.write_config(relative_secrets=True, sync_interval_seconds=1)
    process = start_like_systemd(sandbox, config, notifications)

    def descriptors() -> int:
        return len(os.listdir(f"/proc/{process.pid}/fd"))

    def reload() -> None:
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: any(m.startswith("STATUS=config reloaded") for m in
                             notifications.drain()), what="the reload")

    try:
        wait_for(lambda: any(m.startswith("STATUS=2 instructors") for m in
                             notifications.drain()), what="the first pass")
        for _ in range(3):
            reload()
        settled = descriptors()
        for _ in range(15):
            reload()
        wait_for(lambda: any(m.startswith("STATUS=2 instructors") for m in
                             notifications.drain()), what="a pass with the last engine")
        assert descriptors() <= settled + 2, (settled, descriptors())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # say where it hangs: every thread's stack
            process.send_signal(signal.SIGUSR1)
            try:
                process.communicate(timeout=3)  # the dump is written meanwhile
            except subprocess.TimeoutExpired:
                process.kill()
            _, stderr = process.communicate(timeout=10)
            raise AssertionError(f"no clean stop within 10 s:\n{stderr[-6000:]}") from None
    assert process.returncode == 0, stderr


def test_exit_78_on_a_bad_config_so_systemd_does_not_loop(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[service]\nsync_interval_seconds = 0\n")
    result = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                            capture_output=True, text=True, timeout=30, env=clean_env())
    assert result.returncode == 78
    assert "RestartPreventExitStatus=78" in UNIT.read_text()
    assert os.linesep.join(result.stderr.splitlines()).count("\n") >= 1  # every problem listed


def test_status_names_the_rooms_a_daily_limit_leaves_insecure(
        sandbox: Sandbox, now: datetime, notifications: Notifications) -> None:
    """Zoom's daily limit stopped a repair: `systemctl status` says so, not only the log."""
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789, waiting_room=True)
    user.pmi_waiting_room = False
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + timedelta(minutes=5)),
                             end=at(now + HOUR))
    user.meeting_updates = (datetime.now(UTC).date().isoformat(), 100)  # other apps spent it
    config = sandbox.write_config(relative_secrets=True, sync_interval_seconds=300)
    process = start_like_systemd(sandbox, config, notifications)
    try:
        wait_for(lambda: any("1 rooms NOT SECURE" in m for m in notifications.drain()),
                 what="STATUS naming the room not secure")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert "<3>ERROR instructor=ada@example.edu" in stderr and "daily rate limit" in stderr
