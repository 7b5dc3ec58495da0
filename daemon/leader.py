"""Which node leads: a lease row in the shared database, timed by the database's clock.

Every node runs the same unit and config. A standby polls the `leader` row and takes it
once its lease has run out (`expires <= now()`, the database's now), with a new epoch: the
row's epoch plus one, in the same UPDATE, so a term's epoch is above every term's before
it and no number is ever handed out without the lead that goes with it. The leader renews
every lease/5 seconds on a connection of its own (TCP keepalives and a user timeout).

The leader trusts its lease only until `sent + 0.75 * lease` of its own clock (Linux's
CLOCK_BOOTTIME, which also counts a suspend), `sent` being when it sent the renewal that
succeeded: the database set `expires` later than that, so the leader stops writing
before any standby can take the row, even when its database stopped answering or the
process was paused (SIGSTOP). A virtual machine frozen by its hypervisor may not see the
time it lost until its clock is corrected; the epoch still fences its state writes, and
its next heartbeat finds the row taken. The epoch fences the state (store/postgres.py:
writes under an older epoch are refused), and a TermFence stops calendar and Zoom writes
(app.open_engine wraps both with it): each engine
writes for one term only, so a thread still running from a lost term never writes under
a later one. A vendor write already under way when the lease runs out
(the process paused mid-request) lands late and cannot be called back: a calendar write
carries If-Match, so one the next leader has overtaken gets 412; a Zoom repair sets the
same settings every leader sets, and a passcode it set afresh is what the next leader's
read-back and its link refresh (zoom.refresh_minutes) then find and put in the invites.

Not a session advisory lock: a paused process keeps its TCP connection, and so its lock,
and no standby could ever take over from it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from .store import Fenced
from .store.postgres import reason, unblock

log = logging.getLogger(__name__)
TRUST = 0.75  # share of the lease the leader writes under after a renewal was sent


def _clock() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Term:
    node: str
    epoch: int
    since: datetime


class Solo:
    """One node on SQLite: it always leads, and nothing fences it."""

    epoch: int | None = None
    term: Term | None = None

    def leading(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def abort(self) -> None:
        pass


class TermFence:
    """The lease as one term sees it: the engine opened for a term writes only while the
    node leads in that term (a new term opens a new engine)."""

    def __init__(self, lease: Lease, epoch: int | None) -> None:
        self._lease, self.epoch = lease, epoch

    def check(self) -> None:
        if self.epoch is None or not self._lease.leading_in(self.epoch):
            raise Fenced(f"not written: the lead of epoch {self.epoch} is over")

    def revoke(self) -> None:
        if self._lease.epoch == self.epoch:
            self._lease.revoke()


class FixedEpoch:
    """An admin command's fence: the epoch in force when it began (a failover since then
    refuses its writes, and the command says to run it again)."""

    def __init__(self, epoch: int) -> None:
        self.epoch: int | None = epoch
        self._revoked = False

    def check(self) -> None:
        if self._revoked:
            raise Fenced(f"not written: another node took the lead after epoch {self.epoch}")

    def revoke(self) -> None:
        self._revoked = True


def node_name(configured: str | None) -> str:
    return f"{configured or socket.gethostname()}/{os.getpid()}"


class Lease:
    def __init__(self, dsn: str, node: str, seconds: int,
                 clock: Callable[[], float] = _clock) -> None:
        self.node, self.seconds, self._dsn, self._clock = node, seconds, dsn, clock
        self._db: psycopg.Connection[Any] | None = None
        self.term: Term | None = None
        self.other: Term | None = None  # who leads, as a standby last saw it
        self._give_up = False
        self._hold_off = 0.0  # no taking the lead before this (after giving it up)
        self._until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    @property
    def epoch(self) -> int | None:
        return self.term.epoch if self.term else None

    def leading(self) -> bool:
        return self.term is not None and self._clock() < self._until

    def leading_in(self, epoch: int) -> bool:
        """Whether this node leads, in the term of `epoch` (one read of the term)."""
        until, term = self._until, self.term
        return term is not None and term.epoch == epoch and self._clock() < until

    def give_up(self) -> None:
        """Hand the lead over (this node cannot serve it) and wait a lease before taking
        it again, so that another node may."""
        self._give_up = True

    def revoke(self) -> None:
        """A state write met a newer epoch: stop trusting the lease at once (the next
        heartbeat finds the row taken and goes back to standby)."""
        self._until = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Hand the lead over at once (a clean stop): a standby takes it at its next poll."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=2.0)
        term, self.term = self.term, None
        if self._thread.is_alive():  # a renewal hung on a silent database: go without
            self.abort()
        elif self._db is not None and not self._db.closed:
            guard = threading.Timer(2.0, self.abort)  # a database gone silent just now
            guard.start()
            try:
                if term is not None:
                    self._expire(term.epoch)
                    log.info("action=hand-over epoch=%d", term.epoch)
                # a clean stop leaves status's list of nodes
                self._db.execute("DELETE FROM nodes WHERE node = %s", (self.node,))
            except psycopg.Error as err:
                log.warning("action=stop-lease problem=%r outcome=%s", reason(err),
                            "standby-takes-over-when-the-lease-runs-out" if term else
                            "listed-until-a-day-old")
            finally:
                guard.cancel()
        if self._db is not None:
            self._db.close()

    def abort(self) -> None:
        """From another thread: end a renewal blocked on a database that went silent."""
        unblock(self._db)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except psycopg.Error as err:
                if self._db is not None:
                    self._db.close()
                log.warning("action=lease problem=%r outcome=%s", reason(err),
                            "retrying" if self.leading() else "standby")
            wait = self.seconds / 5 if self.leading() else min(1.0, self.seconds / 5)
            self._stop.wait(wait)

    def step(self) -> None:
        """One heartbeat: renew the lead held, or try to take it."""
        if self.term is not None and not self.leading():
            log.error("action=lose-lead epoch=%d reason=lease-ran-out outcome=standby",
                      self.term.epoch)
            self.term = None
        if self._db is None or self._db.closed:
            self._db = psycopg.connect(self._dsn, autocommit=True)
        sent = self._clock()
        self._db.execute(  # this node's heartbeat, for status; a day's silence forgets it
            "WITH gone AS (DELETE FROM nodes WHERE seen < now() - interval '1 day') "
            "INSERT INTO nodes (node, seen) VALUES (%s, now()) "
            "ON CONFLICT (node) DO UPDATE SET seen = now()", (self.node,))
        if self._give_up:
            self._give_up, self._hold_off = False, sent + self.seconds
            if self.term is not None:
                self._expire(self.term.epoch)
                self.term = None
        if self.term is None and sent < self._hold_off:
            return
        if self.term is not None:
            renewed = self._db.execute(
                "UPDATE leader SET expires = now() + make_interval(secs => %s), "
                "renewed = now() WHERE id = 1 AND epoch = %s RETURNING epoch",
                (self.seconds, self.term.epoch)).fetchone()
            if renewed:
                self._until = sent + TRUST * self.seconds
                return
            log.error("action=lose-lead epoch=%d reason=another-node-leads outcome=standby",
                      self.term.epoch)
            self.term = None
            return
        taken = self._db.execute(
            "UPDATE leader SET node = %s, epoch = epoch + 1, since = now(), renewed = now(), "
            "expires = now() + make_interval(secs => %s) "
            "WHERE id = 1 AND (expires IS NULL OR expires <= now()) RETURNING epoch, since",
            (self.node, self.seconds)).fetchone()
        if taken:
            self._until = sent + TRUST * self.seconds
            self.term, self.other = Term(self.node, int(taken[0]), taken[1]), None
            return
        seen = self._db.execute("SELECT node, epoch, since FROM leader WHERE id = 1").fetchone()
        self.other = Term(seen[0], int(seen[1]), seen[2]) if seen and seen[0] else None

    def _expire(self, epoch: int) -> None:
        """End the lease of `epoch` now: a standby takes the row at its next poll."""
        assert self._db is not None
        self._db.execute("UPDATE leader SET expires = now() WHERE id = 1 AND epoch = %s",
                         (epoch,))
