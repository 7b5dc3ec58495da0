"""Two `run` nodes on one PostgreSQL state: one leads, a standby takes over after the
leader dies, is cut off from the database, or is paused; a lost lead writes nothing more.
(The 20-round version with figures is `make failover`: bench/failover.py.)"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import HOUR, at, clean_env, officehours, spawn, wait_for
from officehours_sandbox import postgres
from officehours_sandbox.domain import Sandbox
from test_push import free_port, linked
from test_systemd import Notifications, start_like_systemd

from daemon.config import load
from daemon.leader import FixedEpoch, Lease, Term, TermFence
from daemon.reconcile import START_MARK
from daemon.runtime.lead import Leadership
from daemon.service import Service
from daemon.store import Fenced, StateError
from daemon.store.postgres import PostgresState, conninfo_for

ADA, BOB = "ada@example.edu", "bob@example.edu"
LEASE = 3  # seconds: the failover bound is LEASE + about 1.5 s (README)


def two_node_config(sandbox: Sandbox, cluster: postgres.Cluster, url: str,
                    **service: Any) -> Path:
    return sandbox.write_config(**{"sync_interval_seconds": 1, **service}, state={
        "url": url, "password_file": str(cluster.password_file), "lease_seconds": LEASE})


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


def node(config: Path, log: Path) -> subprocess.Popen[str]:
    """`run` with its log in a file, readable while it runs."""
    with log.open("w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config),
                                 "run"], stdout=subprocess.DEVNULL, stderr=stderr, text=True,
                                env=clean_env())


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    return stderr or ""


def killed_and_stopped(killed: subprocess.Popen[str],
                       stopped: subprocess.Popen[str] | None) -> None:
    """The end of a takeover test: the killed leader reaped, the new one stopped cleanly."""
    killed.kill()
    killed.communicate(timeout=10)
    if stopped is not None:
        stderr = stop(stopped)
        assert stopped.returncode == 0, stderr


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
        doctor = officehours(config, "doctor")
        assert f"/{first.pid} leads since" in doctor.stdout, doctor.stdout
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
        killed_and_stopped(first, second)


def owner(port: int, server: int, pids: tuple[int, ...]) -> int:
    """Which of `pids` holds the TCP socket from local `port` to `server`'s port (0:
    neither). The whole connection, not the local port alone: Linux hands the same
    ephemeral port to connections to different destinations, so another of a node's
    sockets (to PostgreSQL, to another emulator) may share it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
                if (local, remote) == (port, server):
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return 0


class Writes:
    """Every calendar and Zoom write, with the process that sent it and when."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.seen: list[tuple[float, int, str, str]] = []
        self.pids: tuple[int, ...] = ()
        self.on_first: dict[int, Any] = {}  # pid -> called at that process's first write
        self._hooks = [(server.emulator, functools.partial(self._hook, server.port))
                       for server in (sandbox.google_server, sandbox.zoom_server)]
        for emulator, hook in self._hooks:
            emulator.after_hooks.append(hook)

    def _hook(self, server: int, request: Any, response: Any) -> None:
        if request.method not in ("PATCH", "PUT", "POST", "DELETE") or "token" in request.path:
            return
        pid = owner(request.peer, server, self.pids)
        self.seen.append((time.monotonic(), pid, request.method, request.path))
        action = self.on_first.pop(pid, None)
        if action is not None:
            action()

    def by(self, pid: int, after: float = 0.0) -> list[tuple[float, int, str, str]]:
        return [w for w in self.seen if w[1] == pid and w[0] > after]

    def close(self) -> None:
        for emulator, hook in self._hooks:
            emulator.after_hooks.remove(hook)


@contextlib.contextmanager
def trouble_at_first_write(campus: Sandbox, cluster: postgres.Cluster, url: str,
                           first_config: Path, second_config: Path, log: Path,
                           trouble: Callable[[int], None],
                           ) -> Iterator[tuple[int, Writes, float, Callable[[], None]]]:
    """A first node that meets `trouble(pid)` at its first write (in the vendor's hands,
    before the answer), then a standby: yields once the standby leads and has finished
    its pass (the trouble node's pid, the writes seen, when the standby took over, and
    `ended()`, which stops the trouble node and waits until it is gone: a window that
    ends there misses no late write of it)."""
    writes = Writes(campus)
    first = node(first_config, log)
    writes.pids = (first.pid,)
    writes.on_first[first.pid] = lambda: trouble(first.pid)
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: writes.by(first.pid), what="the first node's first write")
        second = spawn(second_config, "run")
        writes.pids = (first.pid, second.pid)
        pid = second.pid
        wait_for(lambda: leader(cluster, url)[0] == pid, timeout=LEASE + 15,
                 what="the standby to lead")
        took_over = time.monotonic()
        wait_for(lambda: len(campus.google.writes()) == 2, what="the new leader's pass")
        def ended() -> None:
            stop(first)

        yield first.pid, writes, took_over, ended
    finally:
        writes.close()
        stop(first)
        if second is not None:
            stop(second)


def test_a_leader_cut_off_from_the_database_mid_pass_writes_no_more(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str, tmp_path: Path) -> None:
    """The proxy stops forwarding right after the leader's first write: its next state
    write hangs; its lead runs out; it stops; the standby (direct to the database) takes
    over and finishes. No write of the cut node after the takeover."""
    proxy = postgres.Proxy(pg_cluster.port)
    database = pg_url.rsplit("/", 1)[1]
    cut_config = two_node_config(campus, pg_cluster, pg_cluster.url(database, proxy.port))
    cut_config = cut_config.rename(cut_config.with_name("cut.toml"))
    log = tmp_path / "first.log"
    try:
        with trouble_at_first_write(campus, pg_cluster, pg_url, cut_config,
                                    two_node_config(campus, pg_cluster, pg_url), log,
                                    lambda pid: proxy.cut()) as (first, writes, took_over,
                                                                 ended):
            wait_for(lambda: "action=lose-lead" in log.read_text(), timeout=LEASE + 5,
                     what="the cut node to say it lost the lead")
            ended()  # the window: from the takeover until the cut node is gone
            assert writes.by(first, after=took_over) == []
            assert writes.by(first)  # what it wrote while it led (the test's cue)
            assert leader(pg_cluster, pg_url)[1] == 2
    finally:
        proxy.close()


def audit_epochs(url: str) -> list[int]:
    return [row[0] for row in query(url, "SELECT epoch FROM audit ORDER BY id")]


def test_a_paused_leader_resumed_after_the_takeover_writes_nothing(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str, tmp_path: Path) -> None:
    """SIGSTOP at the leader's first write, held past the failover bound: the standby
    leads; the old leader, resumed, finds its lease run out: no calendar, Zoom or state
    write of its goes through. One instructor at a time: a second one's request, half
    sent when the process stopped, would land on resuming (a write made while it led,
    delivered late: leader.py says why that is harmless)."""
    config = two_node_config(campus, pg_cluster, pg_url, concurrency=1)
    log = tmp_path / "first.log"
    with trouble_at_first_write(campus, pg_cluster, pg_url, config, config, log,
                                lambda pid: os.kill(pid, signal.SIGSTOP)) as (
            first, writes, _, ended):
        resumed = time.monotonic()
        os.kill(first, signal.SIGCONT)
        wait_for(lambda: "action=lose-lead" in log.read_text(), timeout=LEASE + 5,
                 what="the resumed node to see it lost the lead")
        wait_for(lambda: "outcome=stopped" in log.read_text(), timeout=LEASE + 5,
                 what="the resumed node's pass to stop")
        ended()  # the window: from the resume until the node is gone, not its log line
        late = writes.by(first, after=resumed)
        assert late == [], (  # if ever: every write, timed against the resume, and the log
            [(round(t - resumed, 3), pid, m, path) for t, pid, m, path in writes.seen],
            log.read_text()[-3000:])
        epochs = audit_epochs(pg_url)
        assert epochs == sorted(epochs) and epochs[-1] == 2, epochs
        assert all(user.secure for user in campus.zoom.users.values())


def test_both_nodes_are_ready_and_say_who_leads(campus: Sandbox, pg_cluster: postgres.Cluster,
                                                pg_url: str, tmp_path: Path) -> None:
    """As systemd runs them (credentials by name, the notify socket, the watchdog): the
    leader's STATUS names its term; the standby is READY, pets the watchdog, and its
    STATUS names the leader."""
    shutil.copy(pg_cluster.password_file, campus.credentials / "db-password")
    (campus.credentials / "db-password").chmod(0o600)
    config = campus.write_config(relative_secrets=True, sync_interval_seconds=1, state={
        "url": pg_url, "password_file": "db-password", "lease_seconds": LEASE})
    heard = [Notifications(tmp_path / "a.sock"), Notifications(tmp_path / "b.sock")]
    first = start_like_systemd(campus, config, heard[0])
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: any("leading since" in m and "(epoch 1)" in m
                             for m in heard[0].drain()), what="the leader's STATUS")
        second = start_like_systemd(campus, config, heard[1])
        wait_for(lambda: "READY=1" in heard[1].drain(), what="the standby's READY")
        wait_for(lambda: any(f"STATUS=standby: {socket.gethostname()}/{first.pid} leads since"
                             in m and "at epoch 1" in m for m in heard[1].drain()),
                 what="the standby's STATUS")
        wait_for(lambda: heard[1].drain().count("WATCHDOG=1") >= 2, what="its watchdog")
    finally:
        for process in (first, second):
            if process is not None:
                stop(process)
        for listener in heard:
            listener.close()


def test_remove_links_beside_a_leader_is_fenced_by_its_epoch(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str) -> None:
    """An admin command writes under the epoch in force when it began: beside a running
    leader it works (and the leader serves that instructor no more); when another node
    takes the lead meanwhile, its next write is refused and it says to run it again."""
    config = two_node_config(campus, pg_cluster, pg_url)
    first = spawn(config, "run")
    try:
        wait_for(lambda: len(campus.google.writes()) == 2, what="the first pass")
        removed = officehours(config, "remove-links", "--instructor", ADA)
        assert removed.returncode == 0, removed.stderr
        events = campus.google.events[ADA].values()
        assert not any(START_MARK in e.get("description", "") for e in events)
        rows = query(pg_url, "SELECT action, epoch FROM audit WHERE instructor = "
                             f"'{ADA}' ORDER BY id")
        assert rows[-1][1] == 1 and rows[-1][0].startswith("remove"), rows
        writes, removed_at = len(campus.google.writes()), datetime.now(UTC).isoformat()
        wait_for(lambda: query(pg_url, "SELECT last_pass FROM instructors WHERE instructor = "
                                       f"'{BOB}'")[0][0] > removed_at, what="a pass after")
        assert len(campus.google.writes()) == writes  # the leader writes Ada's links no more
    finally:
        stop(first)
    officehours(config, "reinstate", "--instructor", ADA)

    def take_the_lead(request: Any, response: Any) -> None:
        if request.method == "PATCH":
            query(pg_url, "UPDATE leader SET epoch = epoch + 1 RETURNING epoch")

    campus.google_server.emulator.after_hooks.append(take_the_lead)
    try:
        fenced = officehours(config, "remove-links", "--instructor", BOB)
    finally:
        campus.google_server.emulator.after_hooks.remove(take_the_lead)
    assert fenced.returncode == 1 and "run the command again" in fenced.stderr, fenced
    assert "Traceback" not in fenced.stderr


def test_a_clean_stop_hands_the_lead_over_at_once(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str) -> None:
    """SIGTERM (systemctl stop, an upgrade): the leader gives its lease up as it exits,
    and the standby leads at its next poll, long before the lease would have run out."""
    config = campus.write_config(sync_interval_seconds=1, state={
        "url": pg_url, "password_file": str(pg_cluster.password_file), "lease_seconds": 30})
    first = spawn(config, "run")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == first.pid, what="the first leader")
        second = spawn(config, "run")
        pid = second.pid
        stopped = time.monotonic()
        stderr = stop(first)
        assert first.returncode == 0 and "action=hand-over epoch=1" in stderr, stderr
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == pid, timeout=10,
                 what="the standby to lead")
        assert time.monotonic() - stopped < 5  # not the 30 s lease
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_a_leader_cut_off_inside_a_transaction_does_not_hold_the_takeover_up(
        pg_cluster: postgres.Cluster, pg_url: str) -> None:
    """Cut off (or frozen) between BEGIN and COMMIT, a leader holds the `leader` row FOR
    SHARE; the server ends its idle transaction after a quarter of the lease, and the
    standby takes the row then."""
    proxy = postgres.Proxy(pg_cluster.port)
    database = pg_url.rsplit("/", 1)[1]
    PostgresState(conninfo_for(pg_url, postgres.PASSWORD, None, "setup")).close()
    query(pg_url, "UPDATE leader SET node = 'cut/1', epoch = 1, since = now(), "
                  f"expires = now() + interval '{LEASE} seconds' RETURNING epoch")
    cut = PostgresState(conninfo_for(pg_cluster.url(database, proxy.port), postgres.PASSWORD,
                                     None, "cut", LEASE), fence=FixedEpoch(1))
    standby = Lease(conninfo_for(pg_url, postgres.PASSWORD, None, "standby", LEASE),
                    "standby/2", LEASE)
    holding = cut.transaction()
    try:
        holding.__enter__()  # BEGIN; SELECT ... FOR SHARE: the row is held
        proxy.cut()
        began = time.monotonic()
        standby.start()
        wait_for(standby.leading, timeout=LEASE + 10, what="the standby to lead")
        assert time.monotonic() - began < LEASE + max(1, LEASE / 4) + 2.5
        assert standby.epoch == 2
    finally:
        proxy.close()
        with contextlib.suppress(Exception):
            holding.__exit__(None, None, None)
        cut.close()
        standby.stop()


def test_sigterm_stops_a_node_whose_database_went_silent(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str) -> None:
    proxy = postgres.Proxy(pg_cluster.port)
    database = pg_url.rsplit("/", 1)[1]
    config = two_node_config(campus, pg_cluster, pg_cluster.url(database, proxy.port))
    process = spawn(config, "run")
    try:
        wait_for(lambda: len(campus.google.writes()) == 2, what="the first pass")
        proxy.cut()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
    finally:
        proxy.close()
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_an_engine_writes_for_its_own_term_only() -> None:
    clock = [100.0]
    lease = Lease("", "here/1", 10, clock=lambda: clock[0])
    lease.term, lease._until = Term("here/1", 5, datetime.now(UTC)), 107.5
    fence = TermFence(lease, 5)
    fence.check()
    lease.term = Term("here/1", 6, datetime.now(UTC))  # the lead lost, then taken again
    with pytest.raises(Fenced, match="epoch 5 is over"):
        fence.check()
    TermFence(lease, 6).check()
    clock[0] = 108.0  # past 0.75 of the lease since the last renewal was sent
    with pytest.raises(Fenced):
        TermFence(lease, 6).check()
    with pytest.raises(Fenced):
        TermFence(lease, None).check()  # an engine opened before any term


def epoch_of(service: Service) -> int | None:
    """The term the engine in force was opened for."""
    engine = service._slot.engine
    return engine.fence.epoch if engine is not None and engine.fence is not None else None


def test_a_term_the_main_loop_missed_gets_an_engine_of_its_own(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str) -> None:
    """The lease lost and taken again between two looks of the main loop (epoch 5, then
    6): the engine of term 5 would refuse every write while the lease is renewed; the
    service steps down and leads again with an engine of term 6."""
    config_path = two_node_config(campus, pg_cluster, pg_url)
    service = Service(config_path)
    clock = [100.0]
    lease = Lease(conninfo_for(pg_url, postgres.PASSWORD, None, "t"), "here/1", LEASE,
                  clock=lambda: clock[0])
    service._lead = Leadership(lease)
    service._slot.swap(load(config_path), service._open(load(config_path)))
    try:
        lease.term, lease._until = Term("here/1", 5, datetime.now(UTC)), 102.0
        service._follow_lease()
        assert (service._lead.term, service._pass_job) == (5, "pass:5")
        assert epoch_of(service) == 5
        lease.term = Term("here/1", 6, datetime.now(UTC))
        service._follow_lease()
        assert (service._lead.term, service._pass_job) == (6, "pass:6")
        assert epoch_of(service) == 6
        assert service._slot.engine is not None and service._slot.engine.fence is not None
        service._slot.engine.fence.check()
    finally:
        service._slot.close()


def test_a_node_that_cannot_serve_its_term_gives_the_lead_up(pg_url: str) -> None:
    PostgresState(conninfo_for(pg_url, postgres.PASSWORD, None, "setup")).close()
    dsn = conninfo_for(pg_url, postgres.PASSWORD, None, "t", LEASE)
    first, second = Lease(dsn, "a/1", LEASE), Lease(dsn, "b/2", LEASE)
    try:
        first.step()
        second.step()
        assert first.leading() and not second.leading()
        first.give_up()
        first.step()  # hands the row over, and holds off a lease
        assert not first.leading()
        second.step()
        assert second.leading() and second.epoch == 2
        first.step()
        assert not first.leading() and first.other is None  # holding off: not even a look
    finally:
        first.stop()
        second.stop()


def test_a_transaction_the_server_ended_is_a_state_error(pg_url: str) -> None:
    """A node frozen inside a transaction longer than the server allows: its session is
    ended, and what it says on resuming is a StateError, not psycopg's."""
    store = PostgresState(conninfo_for(pg_url, postgres.PASSWORD, None, "frozen", 4))
    try:
        with pytest.raises(StateError, match="stopped answering"), store.transaction() as db:
            db.execute("SELECT 1")
            wait_for(lambda: not query(pg_url, "SELECT 1 FROM pg_stat_activity WHERE "
                                               "application_name = 'frozen'"),
                     what="the server to end the idle transaction")
            db.execute("SELECT 1")
    finally:
        store.close()


def test_only_the_leader_holds_zoom_s_event_stream_and_a_failover_resumes_it(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str, tmp_path: Path) -> None:
    hub = campus.zoom_events()
    config = two_node_config(campus, pg_cluster, pg_url)
    first = node(config, tmp_path / "first.log")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == first.pid and hub.connected
                 and len(campus.google.writes()) == 2, what="the leader's pass and stream")
        second = node(config, tmp_path / "second.log")
        wait_for(lambda: query(pg_url, "SELECT count(*) FROM nodes")[0][0] == 2,
                 what="the standby's first heartbeat")
        assert hub.connections == 1  # the standby does not consume
        first.send_signal(signal.SIGKILL)
        pid = second.pid
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == pid and hub.connections == 2,
                 timeout=LEASE + 10, what="the new leader's stream")
        user = campus.zoom.user(ADA)
        user.pmi_waiting_room = False
        wait_for(lambda: user.secure, timeout=10, what="the new leader acting on the event")
    finally:
        killed_and_stopped(first, second)


@contextlib.contextmanager
def pushing_pair(campus: Sandbox, cluster: postgres.Cluster, url: str, tmp_path: Path,
                 ) -> Iterator[tuple[subprocess.Popen[str], subprocess.Popen[str], list[str]]]:
    """Two nodes with [push], each with a listen address of its own (the proxy sends to
    the first): yielded once the leader (the first) has subscribed every calendar and the
    standby has its first heartbeat; both stopped at the end, however they ended."""
    ports = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    campus.push(ports[0])
    config = two_node_config(campus, cluster, url, sync_interval_seconds=3600)
    other = tmp_path / "second.toml"  # the same campus, this node's own listen address
    other.write_text(config.read_text().replace(ports[0], ports[1]))
    first = node(config, tmp_path / "first.log")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: leader(cluster, url)[0] == first.pid and all(
            campus.google.live_channels(who) for who in (ADA, BOB)),
            what="the leader's subscriptions")
        second = node(other, tmp_path / "second.log")
        wait_for(lambda: query(url, "SELECT count(*) FROM nodes")[0][0] == 2,
                 what="the standby's first heartbeat")
        wait_for(lambda: "action=push-listen" in (tmp_path / "second.log").read_text(),
                 what="the standby listening")
        yield first, second, ports
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_either_node_receives_the_leader_reads_and_a_failover_keeps_the_subscriptions(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str, tmp_path: Path,
        now: datetime) -> None:
    with pushing_pair(campus, pg_cluster, pg_url, tmp_path) as (first, second, ports):
        assert campus.front is not None
        campus.front.listen = ports[1]  # the load balancer sends to the standby now
        added = campus.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                        end=at(now + 2 * HOUR))
        wait_for(lambda: linked(campus.google.event(ADA, added).get("description")),
                 timeout=10, what="received by the standby, read by the leader")
        assert "action=push-read" not in (tmp_path / "second.log").read_text()
        watches = len(campus.google.requests("POST", "/watch"))
        first.send_signal(signal.SIGKILL)
        pid = second.pid
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == pid, timeout=LEASE + 10,
                 what="the takeover")
        wait_for(lambda: "action=pass " in (tmp_path / "second.log").read_text(),
                 what="the new leader's first pass")
        added = campus.google.add_event(BOB, summary="Office Hours", start=at(now + HOUR),
                                        end=at(now + 2 * HOUR))
        wait_for(lambda: linked(campus.google.event(BOB, added).get("description")),
                 timeout=10, what="linked by the new leader through push")
        assert len(campus.google.requests("POST", "/watch")) == watches  # none made again
    assert second.returncode == 0


def test_a_node_that_lost_the_lead_still_receives_for_the_new_leader(
        campus: Sandbox, pg_cluster: postgres.Cluster, pg_url: str, tmp_path: Path,
        now: datetime) -> None:
    """The old leader, paused past the takeover and resumed, aborts its engine's database
    calls; its receiver, with a connection of its own, still queues what the vendors send
    it, and the new leader reads it."""
    log = tmp_path / "first.log"
    with pushing_pair(campus, pg_cluster, pg_url, tmp_path) as (first, second, _):
        first.send_signal(signal.SIGSTOP)
        pid = second.pid
        wait_for(lambda: leader(pg_cluster, pg_url)[0] == pid, timeout=LEASE + 10,
                 what="the takeover")
        first.send_signal(signal.SIGCONT)
        wait_for(lambda: "action=lose-lead" in log.read_text(), timeout=LEASE + 5,
                 what="the old leader to see it lost the lead")
        added = campus.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                        end=at(now + 2 * HOUR))  # the proxy: to the old one
        wait_for(lambda: linked(campus.google.event(ADA, added).get("description")),
                 timeout=10, what="received by the old leader, read by the new one")
        assert "status=503" not in log.read_text()
        assert campus.deliveries is not None and campus.deliveries.sent[-1].status == 200
