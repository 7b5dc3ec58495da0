"""The service's clock work on APScheduler: a pass every interval, the pre-session checks
of each session (a pass's sessions in, scheduled checks out), and the scheduler's own
heartbeat for the watchdog.

APScheduler's shutdown holds its job-store lock while it waits for running jobs, so a job
must never add a job once shutdown may have begun: `lock` orders them (and the service
changes who leads under it, so that no check is planned for a term that is over).
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..model import share_of
from ..recurrence import Session
from ..result import Result
from ..rooms import EARLY_CHECK

SCHEDULE_AHEAD = timedelta(days=1)  # checks are planned this far ahead
CHECKERS = 8  # pre-session checks at once: each is a few Zoom reads, paced by the plan
READERS = 8  # calendars notified ([push]) read at once
LAST_CHECK = timedelta(minutes=1)  # the last check of a room, this long before its session
BEAT = "beat"

Check = Callable[[str, datetime, bool], None]
T = TypeVar("T")  # (instructor, session start, the last check)


def check_moments(start: datetime, lead: timedelta, key: str,
                  ) -> list[tuple[str, datetime, datetime]]:
    """When a session's room is checked: as its lead window opens, up to EARLY_CHECK before,
    at a point of that minute fixed by the instructor (hundreds of sessions start on the
    hour: their rooms are read over a minute, not queued behind Zoom's limit); and once
    more LAST_CHECK before it starts, when the window is longer than that, so that a room
    opened in the portal after the first check is closed again before anyone joins.

    Each as (job name, the moment it is due for, the moment it runs)."""
    opens = start - lead
    moments = [("enforce", opens, opens - EARLY_CHECK * share_of(key))]
    if lead > LAST_CHECK:
        moments.append(("enforce-last", start - LAST_CHECK, start - LAST_CHECK))
    return moments


class Schedule:
    def __init__(self, clock: Callable[[], datetime], check: Check) -> None:
        self.lock = threading.Lock()
        self._clock, self._check = clock, check
        self._closed = False
        self._sessions: dict[str, list[Session]] = {}  # each instructor's, as last read
        self._scheduler = BackgroundScheduler(
            timezone="UTC",
            # passes on "default"; pre-session checks on workers of their own, so that a
            # pass holding its workers (a slow vendor, Zoom's pacing) cannot delay them
            executors={"default": ThreadPoolExecutor(4), "checks": ThreadPoolExecutor(CHECKERS),
                       "push": ThreadPoolExecutor(READERS), BEAT: ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    def start(self, beat: Callable[[], None] | None, every: float | None) -> None:
        """Run the jobs; `beat` every `every` seconds, the scheduler's sign of life."""
        if beat is not None and every:
            self._scheduler.add_job(beat, IntervalTrigger(seconds=every), id=BEAT,
                                    executor=BEAT)
        self._scheduler.start()

    def passes(self, job: str, seconds: int, run: Callable[[], None]) -> None:
        """`run` every `seconds`, the first one now."""
        self._scheduler.add_job(run, IntervalTrigger(seconds=seconds), id=job,
                                next_run_time=self._clock(), replace_existing=True)

    def pass_now(self, job: str, seconds: int) -> None:
        """A new interval (a reload), and a pass at once."""
        self._scheduler.reschedule_job(job, trigger=IntervalTrigger(seconds=seconds))
        self._scheduler.modify_job(job, next_run_time=self._clock())

    def plan(self, result: Result, lead: timedelta, may: Callable[[], bool]) -> None:
        """The checks of each of the instructor's sessions of the next day (check_moments)
        still ahead of the moment the pass looked, on the checks' own workers, while
        `may()` (this node still leads in the pass's term)."""
        key = result.instructor.key
        checked = result.checked_at or self._clock()
        if result.sessions is not None:
            self._sessions[key] = result.sessions
        # a calendar that could not be read: its sessions as last seen still get checks
        for session in self._sessions.get(key, []):
            if session.start - lead > checked + SCHEDULE_AHEAD:
                break
            moments = check_moments(session.start, lead, key)
            for name, due, at in moments:
                if due <= checked:  # already due when the pass looked: the pass checked it
                    continue
                last = name == moments[-1][0]  # the session's outcome, in the metrics
                with self.lock:
                    if self._closed or not may():
                        return
                    # a window that opened while the pass was busy elsewhere runs at once
                    self._scheduler.add_job(
                        self._check, DateTrigger(run_date=max(at, self._clock())),
                        args=[key, session.start, last],
                        id=f"{name}:{key}:{session.start.isoformat()}",
                        executor="checks", replace_existing=True)

    def now(self, job: str, run: Callable[[], None], may: Callable[[], bool],
            executor: str = "checks") -> bool:
        """`run` at once on the checks' workers (a room Zoom said changed), or on push's
        (a calendar notified: a burst of them never queues ahead of the rooms' checks),
        while `may()` (False: not planned). The caller keeps one `job` at a time: one
        asked while the same runs would be skipped."""
        with self.lock:
            if self._closed or not may():
                return False
            self._scheduler.add_job(run, DateTrigger(run_date=self._clock()), id=job,
                                    executor=executor, replace_existing=True)
            return True

    def near(self, lead: timedelta) -> list[str]:
        """The instructors with a session whose lead window is open now, or under way
        (sessions as their last pass read them)."""
        now = self._clock()
        return [key for key, found in list(self._sessions.items())
                if any(s.start - lead <= now < s.end for s in found)]

    def clear(self) -> None:
        """Every pass and check dropped (the lead is lost); call with `lock` held."""
        for job in self._scheduler.get_jobs():
            if job.id != BEAT:
                job.remove()

    def close(self) -> None:
        """No job plans another from now; the running ones end, then the scheduler."""
        with self.lock:
            self._closed = True
        self._scheduler.shutdown(wait=True)


class PerKey(Generic[T]):
    """Work asked for by key (a room Zoom's events named, a calendar a notification named),
    run at once on the Schedule's `executor`, one job per key at a time: what is asked while
    a key's job runs is handed to that job when its round ends, so a burst is one run and
    one more (a second job of the same id would be skipped by APScheduler while the first
    runs, and a job id is counted as running even once it has returned: each job gets its
    own). `handle(key, items)` gets every item asked since the last round; more than `most`
    of them become `storm(items)`."""

    def __init__(self, schedule: Schedule, name: str, handle: Callable[[str, list[T]], None],
                 may: Callable[[], bool], executor: str, most: int,
                 storm: Callable[[list[T]], list[T]]) -> None:
        self._schedule, self._name, self._handle, self._may = schedule, name, handle, may
        self._executor, self._most, self._storm = executor, most, storm
        self._lock = threading.Lock()
        self._pending: dict[str, list[T]] = {}  # key -> items not handled yet
        self._queued: set[str] = set()  # keys with a job planned or running
        self._jobs = itertools.count()

    def clear(self) -> None:
        """Nothing pending, no job counted (those planned for an engine or term over)."""
        with self._lock:
            self._pending.clear()
            self._queued.clear()

    def ask(self, key: str, item: T) -> None:
        with self._lock:
            pending = self._pending.setdefault(key, [])
            pending.append(item)
            if len(pending) > self._most:
                self._pending[key] = self._storm(pending)
            if key in self._queued:
                return
            self._queued.add(key)
        job = f"{self._name}:{key}:{next(self._jobs)}"
        if not self._schedule.now(job, functools.partial(self._run, key), self._may,
                                  executor=self._executor):
            with self._lock:
                self._queued.discard(key)

    def _run(self, key: str) -> None:
        try:
            while True:
                with self._lock:
                    if key not in self._pending:  # under the lock: an ask now plans anew
                        self._queued.discard(key)
                        return
                    items = self._pending.pop(key)
                self._handle(key, items)
        except BaseException:  # a run that failed leaves the key to the next ask
            with self._lock:
                self._queued.discard(key)
            raise
