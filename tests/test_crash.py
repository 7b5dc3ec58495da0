"""Crash safety: SIGKILL at many points of a pass, and a damaged or missing state database."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import HOUR, at, clean_env, officehours, sigkill_after, wait_for
from officehours_sandbox.domain import Sandbox
from test_e2e_sync import ADA, BOB, OFFICE, UNTOUCHED, assert_linked, events, seed

from daemon.reconcile import START_MARK
from daemon.store.sqlite import State


@pytest.mark.parametrize("kill_after", range(1, 12))  # a pass here makes 11 requests
def test_sigkill_after_any_request_converges(sandbox: Sandbox, now: datetime,
                                             kill_after: int) -> None:
    """The pass is killed right after the n-th request of any kind was answered by a
    vendor (the answer may or may not have reached the program), then run again."""
    ids = seed(sandbox, ADA, now, next_session=timedelta(minutes=5))
    config = sandbox.write_config()
    before = events(sandbox, ADA, ids)
    assert sigkill_after(config, [sandbox.google, sandbox.zoom], kill_after), \
        f"the pass made fewer than {kill_after} requests"

    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert_linked(before, events(sandbox, ADA, ids), sandbox.zoom.user(ADA).join_url)
    assert sandbox.zoom.user(ADA).secure
    writes = len(sandbox.google.writes())
    assert officehours(config, "sync").returncode == 0
    assert len(sandbox.google.writes()) == writes  # converged: nothing left to do


def test_damaged_state_database_is_set_aside_and_rebuilt(sandbox: Sandbox,
                                                         now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=timedelta(hours=3))
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    linked = events(sandbox, ADA, ids)
    state = sandbox.dir / "state" / "state.sqlite3"
    state.write_bytes(b"this is not a database" * 100)

    status = officehours(config, "status")
    assert status.returncode == 78 and "cannot be read" in status.stderr
    assert "Traceback" not in status.stderr

    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert "action=rebuild-state" in result.stderr
    assert list(state.parent.glob("state.sqlite3.damaged-*"))
    assert events(sandbox, ADA, ids) == linked  # a full resync found every block: no write
    assert officehours(config, "status").returncode == 0


def test_missing_state_database_means_a_full_resync_without_duplicates(
        sandbox: Sandbox, now: datetime) -> None:
    ids = seed(sandbox, ADA, now, next_session=timedelta(hours=3), pmi_password="13579111")
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    linked = events(sandbox, ADA, ids)
    shutil.rmtree(sandbox.dir / "state")
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    after = events(sandbox, ADA, ids)
    assert after == linked
    for name in OFFICE:
        assert after[name]["description"].count(sandbox.zoom.user(ADA).join_url) == 1
    assert all(after[n] == linked[n] for n in UNTOUCHED)
    assert Path(sandbox.dir / "state" / "state.sqlite3").exists()
    # the locations it wrote before the loss are still known as its own: a new link
    # replaces them, and the old link is nowhere
    old_url = sandbox.zoom.user(ADA).join_url
    sandbox.zoom.user(ADA).pmi_password = "24680135"
    assert officehours(config, "sync").returncode == 0
    for name, event in events(sandbox, ADA, ids).items():
        assert old_url not in str(event), name
        if name in OFFICE:
            assert event["location"] == sandbox.zoom.user(ADA).join_url


# --- the state never forgets (CONTRACT.md) ---


def no_room_to_grow(limit: int) -> None:
    """In the child: files may not grow past `limit` bytes, as on a full disk (SQLite
    answers SQLITE_FULL); SIGXFSZ ignored so that the write fails rather than kills."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def offboarded_ada(sandbox: Sandbox, now: datetime) -> tuple[Path, dict[str, str]]:
    """Ada and Bob linked, then Ada offboarded; the config and Ada's event ids."""
    ids = seed(sandbox, ADA, now, next_session=timedelta(hours=3))
    seed(sandbox, BOB, now, next_session=timedelta(hours=4), pmi=8999999999)
    config = sandbox.write_config()
    assert officehours(config, "sync").returncode == 0
    assert officehours(config, "remove-links", "--instructor", ADA).returncode == 0
    assert not any(START_MARK in e.get("description", "")
                   for e in events(sandbox, ADA, ids).values())
    return config, ids


def linked_again(sandbox: Sandbox, ids: dict[str, str]) -> bool:
    return any(START_MARK in e.get("description", "") for e in events(sandbox, ADA, ids).values())


def test_a_full_disk_stops_a_command_and_leaves_the_database_as_it_was(
        sandbox: Sandbox, now: datetime) -> None:
    """Before, a full disk or an I/O error was taken as damage: the database was set aside
    and rebuilt, and an offboarded instructor was linked again once space came back."""
    config, ids = offboarded_ada(sandbox, now)
    state_dir = sandbox.dir / "state"
    kept = ("state.sqlite3", "offboarded.json")
    files = {name: (state_dir / name).read_bytes() for name in kept}
    full = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(config), "sync"],
                          capture_output=True, text=True, timeout=60, env=clean_env(),
                          preexec_fn=lambda: no_room_to_grow(1024))
    assert full.returncode == 78, full.stdout + full.stderr
    # EFBIG past the limit: SQLite says "disk I/O error" (ENOSPC: "database or disk is full")
    assert "cannot be used now (disk I/O error)" in full.stderr, full.stderr
    assert "Traceback" not in full.stderr
    assert {name: (state_dir / name).read_bytes() for name in kept} == files  # untouched
    assert not list(state_dir.glob("*damaged*"))
    assert not linked_again(sandbox, ids)
    assert officehours(config, "sync").returncode == 0  # space is back
    assert not linked_again(sandbox, ids)
    history = officehours(config, "history", "--instructor", ADA).stdout
    assert "link block removed" in history and "PENDING" not in history, history


def test_damage_or_loss_of_the_database_never_links_an_offboarded_instructor_again(
        sandbox: Sandbox, now: datetime) -> None:
    config, ids = offboarded_ada(sandbox, now)
    database = sandbox.dir / "state" / "state.sqlite3"
    database.write_bytes(b"\0damaged" * 512)
    result = officehours(config, "sync")
    assert result.returncode == 0 and "action=rebuild-state" in result.stderr
    assert not linked_again(sandbox, ids)
    for suffix in ("", "-wal", "-shm"):  # lost altogether
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    assert officehours(config, "sync").returncode == 0
    assert not linked_again(sandbox, ids)
    assert officehours(config, "reinstate", "--instructor", ADA).returncode == 0
    assert officehours(config, "sync").returncode == 0
    assert linked_again(sandbox, ids)  # brought back the documented way only


def test_a_set_aside_copy_is_never_overwritten(sandbox: Sandbox, now: datetime) -> None:
    seed(sandbox, ADA, now, next_session=timedelta(hours=3))
    config = sandbox.write_config()
    database = sandbox.dir / "state" / "state.sqlite3"
    for n in range(2):  # twice within the same second
        assert officehours(config, "sync").returncode == 0
        database.write_bytes(f"damage {n} ".encode() * 512)
        assert officehours(config, "sync").returncode == 0
    copies = sorted(database.parent.glob("state.sqlite3.damaged-*"))
    assert [c.read_bytes()[:8] for c in copies if not c.name.endswith(("-wal", "-shm"))] == [
        b"damage 0", b"damage 1"]


def test_state_files_are_private_whatever_the_umask(sandbox: Sandbox, now: datetime) -> None:
    config, _ = offboarded_ada(sandbox, now)
    shutil.rmtree(sandbox.dir / "state")
    result = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(config), "sync"],
                            capture_output=True, text=True, timeout=60, env=clean_env(),
                            preexec_fn=lambda: os.umask(0o022) and None)
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (sandbox.dir / "state").iterdir()}
    assert "offboarded.json" in modes and "state.sqlite3" in modes
    assert set(modes.values()) == {0o600}, modes


def test_a_pending_write_stays_in_the_history(sandbox: Sandbox, now: datetime) -> None:
    """A write the program could not settle (killed right after the vendor took it) is
    in the history, marked pending; the next pass settles nothing twice."""
    ids = seed(sandbox, ADA, now, next_session=timedelta(hours=3))
    config = sandbox.write_config()
    assert sigkill_after(config, [sandbox.google], 1, method="PATCH")
    history = officehours(config, "history").stdout
    assert "PENDING: the write may not have been done" in history, history
    assert officehours(config, "sync").returncode == 0
    assert_linked(events(sandbox, ADA, ids), events(sandbox, ADA, ids),
                  sandbox.zoom.user(ADA).join_url)
    after = officehours(config, "history").stdout  # the pending line stays, said once
    assert after.count("PENDING") == 1, after


def test_run_holds_its_pass_while_the_disk_is_full_and_goes_on_after(
        sandbox: Sandbox, now: datetime) -> None:
    """The service's files may not grow (as on a full disk) from some pass on: that pass
    is held, logged at error level, and nothing is set aside; once space is back, the
    next pass links what was added meanwhile. (Its log goes to a pipe, which has no size.)"""
    seed(sandbox, ADA, now, next_session=timedelta(hours=3))
    config = sandbox.write_config(sync_interval_seconds=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env(),
        preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN) and None)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")),
                              daemon=True)  # type: ignore[union-attr]
    reader.start()
    log = lambda: "".join(lines)  # noqa: E731
    try:
        wait_for(lambda: "action=pass instructors=1 problems=0" in log(),
                 what="a first clean pass")
        unlimited = resource.RLIM_INFINITY  # the soft limit only: no privilege needed
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (0, unlimited))  # disk full
        new = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 5 * HOUR),
                                       end=at(now + 6 * HOUR))
        wait_for(lambda: "action=pass outcome=held" in log(), what="a held pass")
        assert START_MARK not in sandbox.google.event(ADA, new).get("description", "")
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
        wait_for(lambda: START_MARK in sandbox.google.event(ADA, new).get("description", ""),
                 what="the new event linked once space is back")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        reader.join(5)
        process.stderr.close()  # type: ignore[union-attr]
    assert process.returncode == 0, log()
    assert not list((sandbox.dir / "state").glob("*damaged*"))
    assert "rebuild-state" not in log()


def test_an_earlier_versions_keys_move_to_todays_and_stay_offboarded(
        sandbox: Sandbox, now: datetime) -> None:
    """Keys were lower(); they are NFKC and case folded now: an offboarded 'straße@…' kept
    under the old key must not be served again under the new one."""
    sandbox.add_instructor("Grete", "Straße@example.edu", 8123456789)
    event = sandbox.google.add_event("Straße@example.edu", summary="Office Hours",
                                     start=at(now + HOUR), end=at(now + 2 * HOUR))
    config = sandbox.write_config()
    state_dir = sandbox.dir / "state"
    state_dir.mkdir(mode=0o700)
    old = State(state_dir / "state.sqlite3")
    old.offboard("straße@example.edu", now)  # as an earlier version kept it
    old.close()
    assert officehours(config, "sync").returncode == 0
    assert START_MARK not in sandbox.google.event("Straße@example.edu", event).get(
        "description", "")
    again = State.open(state_dir)
    assert list(again.offboarded()) == ["strasse@example.edu"]
    again.close()


def test_a_journal_that_cannot_be_written_does_not_stop_an_offboarding(
        sandbox: Sandbox, now: datetime) -> None:
    config, ids = offboarded_ada(sandbox, now)
    blocker = sandbox.dir / "state" / f".offboarded.json.{os.getpid()}.{threading.get_ident()}.tmp"
    blocker.mkdir()  # the journal's next version cannot be written (the CLI runs in-process)
    result = officehours(config, "remove-links", "--instructor", BOB)
    assert result.returncode == 0, result.stderr
    assert "action=write-journal" in result.stderr
    blocker.rmdir()
    assert officehours(config, "sync").returncode == 0
    assert not linked_again(sandbox, ids)
