"""The failover drill behind `make failover` (and, two rounds, the test suite): two `run`
nodes on one throwaway PostgreSQL against the emulators; each round gives the leader
work (new sessions, an instructor's edit, a Personal Room someone made insecure), kills
it with SIGKILL right after a random one of its vendor writes took effect, measures how
long until the standby leads, restarts the dead node (as systemd would) and waits for
the campus to converge. Then it counts what must be zero: duplicate blocks, lost
instructor edits, sessions that started insecure, epochs that went back.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from daemon.reconcile import START_MARK
from daemon.store.postgres import conninfo_for

from . import postgres
from .campus import add_session, description, email_of, now_utc, seed_campus
from .domain import Sandbox
from .server import Request, Response
from .waiting import wait_for

LEAD_MINUTES = 1


@dataclass
class Report:
    rounds: int = 0
    failover_seconds: list[float] = field(default_factory=list)
    duplicates: int = 0
    lost_edits: int = 0
    insecure_starts: int = 0
    sessions_watched: int = 0
    epochs: list[int] = field(default_factory=list)  # each leader's, in order
    epochs_in_order: bool = True  # the audit log's epochs never went back
    killed_after_write: list[int] = field(default_factory=list)


class Node:
    def __init__(self, config: Path, log: Path) -> None:
        with log.open("a") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                stdout=subprocess.DEVNULL, stderr=stderr,
                env={k: v for k, v in os.environ.items() if not k.startswith("OFFICEHOURS")})

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Drill:
    def __init__(self, work: Path, cluster: postgres.Cluster, instructors: int, lease: int,
                 seed: int, say: Callable[[str], None]) -> None:
        self.work, self.cluster, self.say = work, cluster, say
        self.rng = random.Random(seed)
        (work / "campus").mkdir(parents=True, exist_ok=True)
        self.box = Sandbox(work / "campus")
        self.emails = seed_campus(self.box, instructors, now_utc(), self.rng, other_events=3)
        self.url = cluster.url()
        self.dsn = conninfo_for(self.url, postgres.PASSWORD, None, "drill")
        self.config = self.box.write_config(
            sync_interval_seconds=2, enforce_lead_minutes=LEAD_MINUTES, state={
                "url": self.url, "password_file": str(cluster.password_file),
                "lease_seconds": lease})
        self.lease = lease
        self.report = Report()
        self.added: list[tuple[str, str]] = []  # (email, event id) of the sessions added
        self.edits: list[tuple[str, str, str]] = []  # (email, event id, the text added)
        self.sessions: list[tuple[datetime, str]] = []
        self._armed: tuple[int, int] | None = None  # (writes to go, pid to kill)
        self._killed_at: float | None = None
        self._lock = threading.Lock()
        for emulator in self._emulators():
            emulator.after_hooks.append(self._on_write)

    def _emulators(self) -> list[Any]:
        return [self.box.google_server.emulator, self.box.graph_server.emulator,
                self.box.zoom_server.emulator]

    def _on_write(self, request: Request, response: Response) -> None:
        """SIGKILL the leader right after its n-th write took effect (the answer is lost)."""
        if request.method not in ("PATCH", "PUT", "POST", "DELETE") or "token" in request.path:
            return
        with self._lock:
            if self._armed is None:
                return
            left, pid = self._armed
            if left > 1:
                self._armed = (left - 1, pid)
                return
            self._armed = None
            os.kill(pid, signal.SIGKILL)
            self._killed_at = time.monotonic()

    def leader(self) -> tuple[int, int]:
        """(pid, epoch) of the leading node, (0, epoch) while no lease is live."""
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.dsn) as db:
            row = db.execute("SELECT node, epoch, expires > now() FROM leader").fetchone()
            if row and row[0] and row[2]:
                return int(row[0].rsplit("/", 1)[1]), int(row[1])
            return 0, int(row[1]) if row else 0
        return 0, 0

    def run(self, rounds: int) -> Report:
        logs = [self.work / "node-a.log", self.work / "node-b.log"]
        nodes = {0: Node(self.config, logs[0])}
        watcher = threading.Thread(target=self._watch_sessions, daemon=True)
        try:
            pid, epoch = wait_for(lambda: self.leader()[0] and self.leader(), 30, "a leader")
            self.report.epochs.append(epoch)
            nodes[1] = Node(self.config, logs[1])
            wait_for(self._converged, 120, "the first pass over the campus")
            watcher.start()
            for number in range(rounds):
                self._round(number, nodes, logs)
            wait_for(lambda: not self._waiting_sessions(), 5 * 60, "the sessions to start")
        finally:
            for node in nodes.values():
                node.stop()
            for emulator in self._emulators():
                emulator.after_hooks.remove(self._on_write)
        self._count()
        return self.report

    def _round(self, number: int, nodes: dict[int, Node], logs: list[Path]) -> None:
        old_pid, old_epoch = self.leader()
        who = email_of(number % len(self.emails))
        self._give_work(number, who)
        writes = self.rng.randint(1, 4)
        with self._lock:
            self._armed, self._killed_at = (writes, old_pid), None
        try:  # a pass with fewer writes: killed at a random moment after it instead
            wait_for(lambda: self._killed_at, 6, "the leader's writes")
            self.report.killed_after_write.append(writes)
        except AssertionError:
            with self._lock:
                self._armed = None
            time.sleep(self.rng.uniform(0, 2))
            os.kill(old_pid, signal.SIGKILL)
            self._killed_at = time.monotonic()
            self.report.killed_after_write.append(0)
        killed_at = self._killed_at
        assert killed_at is not None
        def taken_over() -> tuple[int, int] | None:
            now_leading = self.leader()
            return now_leading if now_leading[0] not in (0, old_pid) else None

        new_pid, new_epoch = wait_for(taken_over, self.lease + 30, "the standby to lead")
        took = time.monotonic() - killed_at
        self.report.failover_seconds.append(took)
        self.report.epochs.append(new_epoch)
        dead = next(i for i, n in nodes.items() if n.pid == old_pid)
        nodes[dead].process.wait()
        nodes[dead] = Node(self.config, logs[dead])  # systemd's Restart=
        wait_for(self._converged, 60, f"round {number + 1} to converge")
        self.report.rounds += 1
        self.say(f"round {number + 1:2d}: killed after write {self.report.killed_after_write[-1]}"
                 f" (0: between writes); epoch {old_epoch} -> {new_epoch}; "
                 f"standby led after {took:.1f} s")

    def _give_work(self, number: int, who: str) -> None:
        """A session whose lead window opens soon, a later one, an instructor's edit, and
        the Personal Room made insecure in the portal."""
        # its window opens about when the leader dies: the new leader must secure it
        soon = now_utc() + timedelta(minutes=LEAD_MINUTES,
                                     seconds=self.rng.uniform(2, 2 + 2 * self.lease))
        self.sessions.append((soon, who))
        self.added.append((who, add_session(self.box, who, soon)))
        later = now_utc() + timedelta(days=self.rng.randint(1, 9))
        self.added.append((who, add_session(self.box, who, later)))
        linked = [(e, i) for e, i in self.added[:-2] if START_MARK in description(self.box, e, i)]
        if linked:
            email, event_id = self.rng.choice(linked)
            note = f"Round {number + 1}: bring your laptop."
            self._edit(email, event_id, note)
            self.edits.append((email, event_id, note))
        user = self.box.zoom.users[who]
        user.pmi_waiting_room = False

    def _edit(self, email: str, event_id: str, note: str) -> None:
        if int(email[10:15]) % 2 == 0:
            event = self.box.google.event(email, event_id)
            self.box.google.edit_event(email, event_id,
                                       description=f"{event.get('description', '')}\n{note}")
            return
        body = self.box.graph.event(email, event_id)["body"]
        content = body["content"]
        content = content.replace("</body>", f"<p>{note}</p></body>") if "</body>" in \
            content else content + f"<p>{note}</p>"
        self.box.graph.edit_event(email, event_id, body={**body, "content": content})

    def _converged(self) -> bool:
        return all(START_MARK in description(self.box, e, i) for e, i in self.added)

    def _waiting_sessions(self) -> list[tuple[datetime, str]]:
        with self._lock:
            return [s for s in self.sessions if s[0] > now_utc() - timedelta(seconds=1)]

    def _watch_sessions(self) -> None:
        """At each drill session's start: is the room students enter secure?"""
        seen: set[tuple[datetime, str]] = set()
        while True:
            with self._lock:
                due = [s for s in self.sessions if s not in seen and s[0] <= now_utc()]
            for session in due:
                seen.add(session)
                self.report.sessions_watched += 1
                if not self.box.zoom.users[session[1]].secure:
                    self.report.insecure_starts += 1
                    self.say(f"INSECURE at the start of {session[1]}'s session {session[0]}")
            time.sleep(0.05)

    def _count(self) -> None:
        for email in self.emails:
            for event_id, text in self._descriptions(email):
                if text.count(START_MARK) > 1:
                    self.report.duplicates += 1
                    self.say(f"DUPLICATE block in {email} {event_id}")
        for email, event_id, note in self.edits:
            if note not in description(self.box, email, event_id):
                self.report.lost_edits += 1
                self.say(f"LOST edit in {email} {event_id}: {note!r}")
        with psycopg.connect(self.dsn) as db:
            audit = [r[0] for r in db.execute("SELECT epoch FROM audit ORDER BY id")]
        self.report.epochs_in_order = audit == sorted(audit) and all(
            later > earlier for earlier, later in zip(self.report.epochs,
                                                       self.report.epochs[1:], strict=False))

    def _descriptions(self, email: str) -> list[tuple[str, str]]:
        if int(email[10:15]) % 2 == 0:
            return [(i, str(e.get("description", "")))
                    for i, e in self.box.google.events[email].items()]
        return [(i, str(e.get("body", {}).get("content", "")))
                for i, e in self.box.graph.events[email].items()]


def drill(work: Path, rounds: int, instructors: int = 24, lease: int = 10, seed: int = 1,
          say: Callable[[str], None] = print) -> Report:
    with postgres.cluster() as cluster:
        runner = Drill(work, cluster, instructors, lease, seed, say)
        try:
            return runner.run(rounds)
        finally:
            runner.box.stop()
