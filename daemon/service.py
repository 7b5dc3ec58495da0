"""The long-running part: a pass every sync interval, a Zoom check before each session,
systemd's notify protocol (READY, STATUS, WATCHDOG), reload on SIGHUP, clean stop on
SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

from . import metrics, roster
from .app import open_engine, state_dsn, utc_now
from .config import Config, ConfigError, load
from .engine import Engine
from .leader import Lease, Solo, TermFence, node_name
from .logs import setup_logging
from .model import Instructor
from .result import Result
from .runtime import passes
from .runtime.checks import Schedule
from .runtime.inbox import Inbox
from .runtime.lead import Change, Leadership
from .runtime.notify import notify, watchdog_interval
from .runtime.passes import offboard_leavers, soonest_first
from .runtime.push import Push
from .runtime.slot import EngineSlot
from .runtime.watch import RoomWatch
from .store import Fenced, StateError
from .zoom.events import ZoomEvent

log = logging.getLogger(__name__)
STATUS_EVERY = 1.0  # seconds between progress lines during a pass
TICK = 0.25  # how often the main loop looks at signals, reloads and the lease


class Service:
    def __init__(self, config_path: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.config_path = config_path
        self.clock = clock
        self._stop = threading.Event()
        # what a signal asks for, as plain flags: a handler runs between two bytecodes of
        # the main thread, which may hold an Event's lock just then (a SIGHUP arriving in
        # the SIGHUP handler's own Event.set() hung the service); the main loop acts on them
        self._stop_asked = False
        self._reload_asked = False
        self._schedule = Schedule(clock, self._enforce)  # passes and pre-session checks
        self._watch = RoomWatch(self._schedule, self._room_check,  # Zoom's events
                                lambda: list(self._served.values()),
                                lambda: not self._stop.is_set() and self._lead.leads)
        self._slot = EngineSlot()  # the config and engine in force
        self._push = Push(self._schedule, self._push_read,  # calendar notifications
                          lambda: self._served if self._passes or self._served else None,
                          lambda: not self._stop.is_set() and self._lead.leads, clock)
        self._inbox = Inbox(self._push, clock)  # its receiver: on every node, leading or not
        self._passes = 0
        self._served: dict[str, Instructor] = {}  # whom the last pass served, roster included
        self._groups: tuple[Engine, roster.CachedGroups | None] | None = None
        self._lead = Leadership(Solo())  # who leads: on SQLite, always this node
        self._pass_job = "pass"
        self._beat_at = time.monotonic()  # the scheduler's last sign of life
        self._exit_code = 0

    def run(self) -> int:
        config = load(self.config_path)
        setup_logging(config.service.log_level)
        if config.state is not None:
            self._lead = Leadership(Lease(state_dsn(config, "officehours-lease"),
                                          node_name(config.state.node),
                                          config.state.lease_seconds))
        self._slot.swap(config, self._open(config))
        self._inbox.listen(config)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        every = watchdog_interval()
        # the scheduler's own sign of life, which the main loop passes on
        self._schedule.start(self._beat, every / 2 if every else None)
        log.info("action=start instructors=%d interval=%ds lead=%dmin", len(config.instructors),
                 config.service.sync_interval_seconds, config.service.enforce_lead_minutes)
        self._lead.lease.start()
        self._follow_lease()
        # a standby is READY too: waiting for the lead is its job (its STATUS, and a new
        # leader's, were just sent by _follow_lease)
        notify("READY=1" if self._lead.shared else "READY=1\nSTATUS=first pass under way")
        # the watchdog is fed by this loop while the scheduler beats too: a stuck loop (on
        # a database, say) or a stuck scheduler is what systemd sees and restarts
        fed = 0.0
        while not self._stop.wait(min(TICK, every / 2 if every else TICK)):
            if self._stop_asked:
                self._request_stop()
                break
            now = time.monotonic()
            if every and now - fed >= every and now - self._beat_at < 2 * every:
                notify("WATCHDOG=1")
                fed = now
            if self._reload_asked:
                self._reload_asked = False
                self._apply_reload()
            self._follow_lease()
            self._watch.health()  # a stream down too long: said once in the log
        notify("STOPPING=1")
        log.info("action=stop reason=signal")
        # a write under way finishes and no new one starts; a database call hung on a
        # database gone silent is ended, so that the service still stops in time
        done = threading.Event()
        threading.Thread(target=self._end_stuck_calls, args=(done,), daemon=True).start()
        self._watch.stop()
        self._push.stop()
        self._inbox.close()
        self._schedule.close()
        done.set()
        self._lead.lease.stop()  # after the last write: a standby takes over at once
        self._slot.close()
        log.info("action=stopped")
        return self._exit_code

    def _open(self, config: Config, epoch: int | None = None) -> Engine:
        """An engine for this node: on two or more nodes, bound to the term `epoch` (None:
        it writes nothing; a term opens an engine of its own). Retry waits end at a stop."""
        lease = self._lead.lease
        fence = TermFence(lease, epoch) if isinstance(lease, Lease) else None
        return open_engine(config, clock=self.clock, fence=fence, sleep=self._sleep)

    def _beat(self) -> None:
        self._beat_at = time.monotonic()

    def _sleep(self, seconds: float) -> None:
        """How retries and pacing wait in the service: no longer once it stops."""
        self._stop.wait(seconds)

    def _end_stuck_calls(self, done: threading.Event) -> None:
        """While the scheduler drains at a stop: end a database call stuck for 2 s."""
        while not done.wait(0.5):
            for engine in self._slot.engines():
                engine.state.abort(stuck_for=2.0)

    def _follow_lease(self) -> None:
        """Start passes when this node takes the lead, in an engine of that term; stop
        every write when it loses it, or when its lease moved on to a term the engine
        was not opened for (lost and taken again between two looks)."""
        change = self._lead.change()
        if change in (Change.LOSE, Change.RELEAD):
            self._step_down()
        if change in (Change.LEAD, Change.RELEAD):
            self._take_lead()
        news = self._lead.standby_news()
        if news is not None:
            notify(f"STATUS={news}")
            if self._slot.config is not None:  # officehours_leader 0 on a standby too
                self._write_metrics(self._slot.config, None, None)

    def _take_lead(self) -> None:
        config = self._slot.config
        assert config is not None
        lease = self._lead.lease
        term = lease.term
        if isinstance(lease, Lease):  # two or more nodes: an engine of this term's own
            if term is None:  # lost again just now
                return
            try:
                self._slot.swap(config, self._open(config, term.epoch))
            except (ConfigError, StateError) as err:
                log.error("action=lead epoch=%d problem=%r outcome=lead-given-up",
                          term.epoch, str(err))
                lease.give_up()  # another node may do better; this one waits a lease
                return
            log.warning("action=lead node=%s epoch=%d outcome=passes-start", term.node,
                        term.epoch)
            notify(f"STATUS=leading (epoch {term.epoch}): first pass under way")
        with self._schedule.lock:
            self._lead.took(term.epoch if term else None)
            self._passes = 0
        # a job id of the term's own: a pass of a lost term may still be ending, and the
        # scheduler would skip this term's first pass as a second instance of it
        self._pass_job = f"pass:{term.epoch}" if term else "pass"
        self._schedule.passes(self._pass_job, config.service.sync_interval_seconds, self._pass)
        if self._slot.engine is not None:
            self._watch.start(config, self._slot.engine)
            self._push.start(config, self._slot.engine)

    def _step_down(self) -> None:
        """The lead is lost: no job starts, the running pass starts no instructor, every
        write is refused by the fence, and calls hung on a silent database return."""
        with self._schedule.lock:
            self._lead.lost()
            self._schedule.clear()
        self._watch.stop()  # the next leader consumes the stream
        for engine in self._slot.engines():
            engine.stopping.set()
            engine.state.abort()
        self._push.stop(lead_lost=True)  # ... and reads what is notified (after the abort:
        # its thread may be waiting on the database just now)
        if not self._lead.lease.leading():  # its renewal may hang on a silent database
            self._lead.lease.abort()
        if self._slot.config is not None:  # officehours_leader 0 from now
            self._write_metrics(self._slot.config, None, None)
        log.error("action=lose-lead outcome=standby writes=stopped")
        notify("STATUS=standby: lost the lead, all writes stopped")

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_asked = True  # no lock in a handler: the main loop stops (TICK)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self._reload_asked = True  # handled by the main loop, outside the signal handler

    def _request_stop(self) -> None:
        """Stop: no job starts, and a pass still running, with an engine a reload replaced
        too, starts no instructor more."""
        self._stop.set()
        for engine in self._slot.engines():
            engine.stopping.set()

    def _apply_reload(self) -> None:
        """Re-read the config; a config that does not load leaves the old one in force."""
        notify("RELOADING=1")
        try:
            config = load(self.config_path)
            engine = self._open(config, self._lead.term if self._lead.leads else None)
        except (ConfigError, StateError) as err:
            problems = err.problems if isinstance(err, ConfigError) else [str(err)]
            for problem in problems:
                log.error("action=reload problem=%r outcome=kept-old-config", problem)
            notify(f"READY=1\nSTATUS=reload failed, old config in force: {problems[0]}")
            return
        setup_logging(config.service.log_level)
        self._watch.stop()  # before the old engine is closed: it records the stream's end
        self._push.stop()
        old = self._slot.config
        self._slot.swap(config, engine)
        self._inbox.listen(config, old)  # moved when its address changed
        if self._lead.leads:
            self._schedule.pass_now(self._pass_job, config.service.sync_interval_seconds)
            self._watch.start(config, engine)  # the new config's stream, the new engine's app
            self._push.start(config, engine)
        log.info("action=reload instructors=%d outcome=applied", len(config.instructors))
        notify(f"READY=1\nSTATUS=config reloaded, {len(config.instructors)} instructors")

    def _pass(self) -> None:
        with self._slot.current() as (config, engine):
            term = self._lead.term
            if config is None or engine is None or not self._lead.leads:
                return
            try:
                self._pass_with(config, engine, term)
            except (Fenced, StateError) as err:  # the roster read, at the start of a pass
                log.warning("action=pass problem=%r outcome=skipped", str(err))

    def _pass_with(self, config: Config, engine: Engine, term: int | None) -> None:
        started, said = time.monotonic(), 0.0
        label = "first pass" if self._passes == 0 else "pass"
        if self._groups is None or self._groups[0] is not engine:
            reader = getattr(engine.provider, "group_users", None)
            minutes = config.roster.refresh_minutes if config.roster else 60
            self._groups = (engine, roster.CachedGroups(reader, minutes) if reader else None)
        serving = offboard_leavers(config, engine, self.clock(), self._groups[1])
        self._served = {i.key: i for i in serving.instructors}
        due = self._push.due(serving.instructors)  # with [push]: those push does not keep
        report = passes.Report(len(due), serving.held, len(serving.instructors) - len(due))
        lead = timedelta(minutes=config.service.enforce_lead_minutes)
        # the first pass as fast as it goes; then each pass spread over most of the
        # interval, so that every calendar is read one interval after the last time
        spread = 0.0 if self._passes == 0 else 0.8 * config.service.sync_interval_seconds
        instructors = due if self._passes else soonest_first(
            engine, due)  # after a failover: open lead windows first
        for result in passes.results(engine, [] if self._stop.is_set() else instructors,
                                     spread):
            self._read(result, lead, term)
            if result.damaged and not self._stop.is_set():  # found damaged while running:
                log.error("action=stop reason=state-damaged problem=%r outcome=restart-"
                          "rebuilds", result.error)  # a restart sets it aside (State.open)
                self._exit_code = 1  # not 78: systemd restarts the service
                self._request_stop()  # and this pass starts nobody more
            report.add(result)
            if self._lead.leads and time.monotonic() - said >= STATUS_EVERY:
                said = time.monotonic()
                notify(f"STATUS={self._lead.leading_as()}{report.progress(label)}")
        elapsed = time.monotonic() - started
        log.info("action=pass instructors=%d problems=%d seconds=%.1f", report.total,
                 report.problems, elapsed)
        metrics.pass_ended(elapsed)
        self._push.pass_ended()
        self._write_metrics(config, engine, term)
        if report.stuck is not None:  # a full disk, an I/O error, a lock: nothing changed
            log.error("action=pass outcome=held instructors=%d problem=%r retry=next-pass",
                      report.held, report.stuck)
        if not self._lead.in_term(term):  # the lead was lost during the pass: STATUS and
            return  # the count of passes belong to the standby or a new term
        self._passes += 1
        # not the scheduler's own next_run_time: a job must not call into the scheduler
        # (its shutdown holds the job-store lock while it waits for running jobs)
        interval = config.service.sync_interval_seconds
        upcoming = self.clock() + timedelta(seconds=max(interval - elapsed, 0))
        down = self._watch.health()
        notify(f"STATUS={self._lead.leading_as()}{report.summary(upcoming)}"
               + (f"; {down}" if down else ""))

    def _enforce(self, key: str, start: datetime, last: bool) -> None:
        """The pre-session check: the instructor's room secured before their calendar is
        read. The `last` check before the session `start` counts that session in the
        metrics."""
        result = self._check_room(key, "pre-session-check")
        if last and result is not None:
            secure = result.room is not None and result.room.secure
            metrics.SESSIONS.labels("insecure" if not secure else "secured"
                                    if self.clock() <= start else "late").inc()

    def _room_check(self, key: str, event: ZoomEvent | None) -> None:
        """A check Zoom's events asked for (`event`), or a reconnection (None): the room
        read again, whatever the event said, and what it found in the audit log."""
        self._check_room(key, "zoom-event" if event else "zoom-events-gap-check", event)

    def _check_room(self, key: str, why: str, event: ZoomEvent | None = None,
                    ) -> Result | None:
        """The instructor as the config has them now, their room secured first (None:
        not leading, stopping, or no longer served)."""
        with self._slot.current() as (config, engine):
            if self._stop.is_set() or not self._lead.leads or config is None or engine is None:
                return None
            instructor = self._served.get(key) or next(
                (i for i in config.instructors if i.key == key), None)
            if instructor is None:  # removed by a reload since the job was planned
                return None
            log.info("instructor=%s action=%s", instructor.email, why)
            result = engine.sync(instructor, secure_first=True)
            if event is not None and result.room is not None and not result.held:
                room = event.meeting_id or event.user_id or event.email
                with contextlib.suppress(Fenced, StateError):  # the log is the record then
                    engine.state.audit(self.clock(), key, f"zoom:{room}", "zoom-event",
                                       {"change": f"{event.kind}: room {result.zoom}"})
            return result

    def _push_read(self, key: str, why: str) -> None:
        """A calendar a notification named, read at once (the pass for that one
        instructor), its sessions' checks planned as a pass would."""
        with self._slot.current() as (config, engine):
            term = self._lead.term
            if self._stop.is_set() or not self._lead.leads or config is None or engine is None:
                return
            instructor = self._served.get(key)
            if instructor is None:  # not served (any more): its subscription ends
                return
            log.info("instructor=%s action=push-read why=%s", instructor.email, why)
            self._read(engine.sync(instructor),
                       timedelta(minutes=config.service.enforce_lead_minutes), term)

    def _read(self, result: Result, lead: timedelta, term: int | None) -> None:
        """A calendar read (by a pass, or for a notification): its sessions' checks planned
        while this node leads in `term`, and the read noted for push's safety interval."""
        self._schedule.plan(result, lead, lambda: not self._stop.is_set()
                            and self._lead.in_term(term))
        if result.error is None and result.checked_at is not None:
            self._push.was_read(result.instructor.key, result.checked_at)

    def _write_metrics(self, config: Config, engine: Engine | None, term: int | None) -> None:
        """[metrics] textfile: the state's view (not on a standby: it reads no state) and
        this process's counters."""
        leading = self._lead.in_term(term)
        metrics.publish(config, engine.state if engine is not None and leading else None,
                        leading, term, self.clock())
