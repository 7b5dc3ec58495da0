"""A pass: every instructor served, each synced by the engine, `service.concurrency` at a
time; the roster read first (its leavers offboarded). `sync` runs one pass, `run` one
every interval; both through here.

`results` hands each instructor's result over as soon as it is known (the service plans
that instructor's checks from it at once, while the pass goes on); `run_pass` is the whole
pass, in the instructors' order.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor as Pool
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import roster
from ..config import Config
from ..engine import Engine
from ..model import Instructor
from ..result import Result
from ..roster import Serving
from ..store import StateError

log = logging.getLogger(__name__)
LOOK = 0.25  # seconds: how often a spread pass looks whether the service is stopping


def results(engine: Engine, instructors: Sequence[Instructor],
            spread_seconds: float = 0.0) -> Iterator[Result]:
    """Each instructor's result as soon as it is known, in the order they end.

    With `spread_seconds`, the instructors are started evenly over that time rather than
    all at once: each calendar is then read at the same point of every pass, so a change
    waits at most one interval, and the vendors see a steady trickle. A stopping engine
    (SIGTERM) starts nobody more: one queued before the stop gets a result saying it was
    not synced, one not yet due gets none."""
    workers = max(1, min(engine.config.service.concurrency, len(instructors)))
    ended: queue.Queue[Result | BaseException] = queue.Queue()

    def one(instructor: Instructor) -> None:
        try:
            ended.put(Result(instructor, error="not synced: the service is stopping")
                      if engine.stopping.is_set() else engine.sync(instructor))
        except BaseException as err:  # handed to the consumer, never lost in the pool
            ended.put(err)

    def take(timeout: float | None) -> Result:
        found = ended.get(timeout=timeout)
        if isinstance(found, BaseException):
            raise found
        return found

    gap = spread_seconds / len(instructors) if instructors else 0.0
    began, started, handed = time.monotonic(), 0, 0
    with Pool(workers, thread_name_prefix="pass") as pool:
        for index, instructor in enumerate(instructors):
            while (wait := began + index * gap - time.monotonic()) > 0 and \
                    not engine.stopping.is_set():
                try:
                    yield take(min(wait, LOOK))
                    handed += 1
                except queue.Empty:
                    pass
            if engine.stopping.is_set():
                break
            pool.submit(one, instructor)
            started += 1
        while handed < started:
            yield take(None)
            handed += 1


def run_pass(engine: Engine, instructors: Sequence[Instructor],
             spread_seconds: float = 0.0) -> list[Result]:
    """The whole pass, each instructor's result in the order they were given."""
    order = {instructor.key: n for n, instructor in enumerate(instructors)}
    return sorted(results(engine, instructors, spread_seconds),
                  key=lambda result: order[result.instructor.key])


@dataclass
class Report:
    """A pass as it goes and as it ended, for the log and `systemctl status`."""

    total: int
    roster_held: str | None = None  # a roster read held: the previous roster in force
    by_push: int = 0  # calendars left to their notifications ([push]) this pass
    done: int = 0
    problems: int = 0
    insecure: int = 0  # rooms Zoom refused, or a daily limit left insecure
    held: int = 0  # instructors the state database could not record: nothing done
    stuck: str | None = None  # ... and why

    def add(self, result: Result) -> None:
        self.done += 1
        self.problems += result.error is not None
        self.insecure += result.room is not None and result.room.failing
        self.held += result.held
        if result.held and self.stuck is None:
            self.stuck = result.error or ""

    def progress(self, label: str) -> str:
        return f"{label}: {self.done}/{self.total} instructors, {self.problems} problems"

    def summary(self, next_pass: datetime) -> str:
        held = f", ROSTER HELD: {self.roster_held}" if self.roster_held else ""
        rooms = f", {self.insecure} rooms NOT SECURE" if self.insecure else ""
        if self.stuck is not None:
            held = (f", PASS HELD for {self.held}: the state database cannot be written, "
                    f"tried again at the next pass{held}")
        pushed = f" (and {self.by_push} kept by push)" if self.by_push else ""
        return (f"{self.total} instructors{pushed}, {self.problems} problems{rooms}, next "
                f"pass {next_pass.astimezone():%H:%M}{held}")


def soonest_first(engine: Engine, instructors: Sequence[Instructor]) -> list[Instructor]:
    """The instructors by their next session as the state last recorded it, soonest first
    (a new leader secures the rooms about to open before reading the other calendars)."""
    try:
        known = engine.state.statuses()
    except StateError:
        return list(instructors)
    never = datetime.max.replace(tzinfo=UTC)

    def when(instructor: Instructor) -> datetime:
        status = known.get(instructor.key)
        return datetime.fromisoformat(status.next_session) if status and \
            status.next_session else never

    return sorted(instructors, key=when)


def offboard_leavers(config: Config, engine: Engine, now: datetime,
                     groups: roster.GroupReader | None = None) -> Serving:
    """Read the roster (roster.py), offboard the members whose grace is over, say loudly
    when a read is held; whom this pass serves."""
    serving = roster.serving(config, engine.state, now, groups=groups or getattr(
        engine.provider, "group_users", None))
    if serving.held:
        log.error("action=roster-read problem=%r outcome=held-previous-roster-in-force "
                  "fix=officehours-roster-accept", serving.held)
    for leaver in serving.leaving:
        result = engine.remove_links(leaver, by=roster.SOURCE)
        log.warning("instructor=%s action=offboard reason=left-the-roster changes=%d%s",
                    leaver.email, len(result.changes),
                    f" problem={result.error!r}" if result.error else "")
    return serving
