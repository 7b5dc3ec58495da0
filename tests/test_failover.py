"""Two `run` nodes on one PostgreSQL state: one leads, a standby takes over after the
leader dies, is cut off from the database, or is paused; a lost lead writes nothing more.
(The 20-round version with figures is `make failover`: bench/failover.py.)"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import HOUR, at, officehours, spawn, wait_for

from daemon.pgstate import conninfo_for
from daemon.reconcile import START_MARK
from daemon.sandbox import postgres
from daemon.sandbox.domain import Sandbox

ADA, BOB = "ada@example.edu", "bob@example.edu"
LEASE = 3  # seconds: the failover bound is LEASE + about 1.5 s (README)


def two_node_config(sandbox: Sandbox, cluster: postgres.Cluster, url: str, **state: object
                    ) -> Path:
    return sandbox.write_config(sync_interval_seconds=1, state={
        "url": url, "password_file": str(cluster.password_file), "lease_seconds": LEASE,
        **state})


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo_for(url, postgres.PASSWORD, None, "test")) as db:
        try:
            return db.execute(sql).fetchall()
        except psycopg.errors.UndefinedTable:  # before the first node created it
            return []


def leader(cluster: postgres.Cluster, url: str) -> tuple[int, int, bool]:
    """(pid of the leading node, epoch, lease live)."""
    rows = query(url, "SELECT node, epoch, expires > now() FROM leader")
    if not rows or not rows[0][0]:
        return 0, 0, False
    node, epoch, live = rows[0]
    return int(node.rsplit("/", 1)[1]), int(epoch), bool(live)


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    return stderr


@pytest.fixture
def campus(sandbox: Sandbox, now: datetime) -> Sandbox:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_instructor("Bob Babbage", BOB, 8123456790)
    for who in (ADA, BOB):
        sandbox.google.add_event(who, summary="Office Hours", start=at(now + 3 * HOUR),
                                 end=at(now + 4 * HOUR), recurrence=["RRULE:FREQ=WEEKLY"])
    return sandbox


def test_one_node_leads_and_a_standby_takes_over_after_kill_9(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str, now: datetime) -> None:
    config = two_node_config(campus, pg_cluster, pg_url)
    first = spawn(config, "run")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == first.pid, what="the first leader")
        wait_for(lambda: len(campus.google.writes()) == 2, what="the first pass")
        second = spawn(config, "run")
        status = officehours(config, "status")
        assert f"/{first.pid} since" in status.stdout and "epoch 1" in status.stdout, status
        writes = len(campus.google.writes())
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        pid = second.pid
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == pid, timeout=LEASE + 5,
                 what="the standby to lead")
        took = time.monotonic() - killed
        assert took < LEASE + 2.5, took
        assert leader(pg_cluster, pg_url)[1] == 2  # a new epoch, above the first
        new = campus.google.add_event(ADA, summary="Office Hours", start=at(now + 5 * HOUR),
                                      end=at(now + 6 * HOUR))
        wait_for(lambda: START_MARK in campus.google.event(ADA, new).get("description", ""),
                 what="the new leader's pass")
        assert len(campus.google.writes()) == writes + 1  # resumed: nothing written twice
    finally:
        first.kill()
        first.communicate(timeout=10)
        if second is not None:
            stderr = stop(second)
            assert second.returncode == 0, stderr
