"""Crash safety: SIGKILL at many points of a pass, and a damaged or missing state database."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import officehours, sigkill_after
from test_e2e_sync import ADA, OFFICE, UNTOUCHED, assert_linked, events, seed

from daemon.sandbox.domain import Sandbox


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
    assert status.returncode == 1 and "cannot be read" in status.stderr
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
