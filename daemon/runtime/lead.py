"""Who leads, as this node acts on it: the lease (leader.Lease on two or more nodes,
leader.Solo on SQLite, which always leads) and the term this node's jobs run in.

The service looks at every tick (`change`), and steps down, takes the lead, or tells
systemd who leads while it waits; a job asks `in_term` whether the term it began in is
still this node's.
"""

from __future__ import annotations

from enum import Enum

from ..leader import Lease, Solo


class Change(Enum):
    LEAD = "lead"  # the lease is this node's: passes start
    LOSE = "lose"  # the lease is lost: every write stops
    RELEAD = "relead"  # lost and taken again between two looks: a new term, a new engine


class Leadership:
    def __init__(self, lease: Lease | Solo) -> None:
        self.lease = lease
        self.leads = False  # this node runs passes (on SQLite: always)
        self.term: int | None = None  # the epoch it leads in (None: SQLite)
        self._standby = ""  # what STATUS said while waiting

    @property
    def shared(self) -> bool:
        """Two or more nodes (PostgreSQL)."""
        return isinstance(self.lease, Lease)

    def change(self) -> Change | None:
        """What the lease says that this node has not acted on yet."""
        leading, epoch = self.lease.leading(), self.lease.epoch
        if self.leads and not leading:
            return Change.LOSE
        if self.leads and epoch != self.term:
            return Change.RELEAD
        return Change.LEAD if leading and not self.leads else None

    def took(self, epoch: int | None) -> None:
        self.leads, self.term, self._standby = True, epoch, ""

    def lost(self) -> None:
        self.leads, self.term, self._standby = False, None, ""

    def in_term(self, term: int | None) -> bool:
        """Whether this node still leads in the term a job began in."""
        return self.leads and self.term == term

    def standby_news(self) -> str | None:
        """While waiting on two or more nodes: who leads, when that changed since the last
        look (for STATUS), else None."""
        if self.leads or not isinstance(self.lease, Lease):
            return None
        other = self.lease.other
        text = (f"standby: {other.node} leads since {other.since:%Y-%m-%d %H:%M:%S %Z} at "
                f"epoch {other.epoch}" if other else "standby: no node leads yet")
        if text == self._standby:
            return None
        self._standby = text
        return text

    def leading_as(self) -> str:
        """How STATUS begins on a node of two or more: which term it leads."""
        term = self.lease.term
        return "" if term is None else (f"leading since {term.since.astimezone():%H:%M} "
                                        f"(epoch {term.epoch}): ")
