"""The long-running part: a pass every sync interval, a Zoom check before each session,
clean stop on SIGTERM/SIGINT, and systemd's notify protocol when it is there."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .app import open_engine, utc_now
from .config import Config, Instructor, load
from .engine import Engine

log = logging.getLogger(__name__)
SCHEDULE_AHEAD = timedelta(days=1)  # enforcement jobs are planned this far ahead


def notify(message: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, if set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError as err:
            log.warning("action=sd-notify problem=%r", str(err))


class Service:
    def __init__(self, config_path: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.config_path = config_path
        self.clock = clock
        self._stop = threading.Event()
        # APScheduler's shutdown holds its job-store lock while it waits for running jobs,
        # so a job must never add a job once shutdown may have begun: this lock orders them.
        self._planning = threading.Lock()
        self._scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    def run(self) -> int:
        config = load(self.config_path)
        from .cli import setup_logging

        setup_logging(config.service.log_level)
        engine = open_engine(config, clock=self.clock)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)
        self._scheduler.add_job(self._pass, IntervalTrigger(seconds=config.service.
                                                            sync_interval_seconds),
                                args=[config, engine], id="pass", next_run_time=self.clock())
        self._scheduler.start()
        log.info("action=start instructors=%d interval=%ds lead=%dmin", len(config.instructors),
                 config.service.sync_interval_seconds, config.service.enforce_lead_minutes)
        notify("READY=1\nSTATUS=first pass under way")
        while not self._stop.wait(1.0):
            pass
        notify("STOPPING=1")
        log.info("action=stop reason=signal")
        with self._planning:
            pass  # no job is adding a job now, and none will: _stop is set
        self._scheduler.shutdown(wait=True)  # a write under way finishes; no new one starts
        engine.close()
        log.info("action=stopped")
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        log.warning("action=reload problem='reload is not supported yet: restart the service'")

    def _pass(self, config: Config, engine: Engine) -> None:
        started = time.monotonic()
        problems = 0
        for instructor in config.instructors:
            if self._stop.is_set():
                return
            result = engine.sync(instructor)
            problems += result.error is not None
            self._plan_enforcement(config, engine, instructor)
        nxt = self.clock() + timedelta(seconds=config.service.sync_interval_seconds)
        summary = (f"{len(config.instructors)} instructors, {problems} problems, "
                   f"next pass {nxt:%H:%M:%S} UTC")
        log.info("action=pass instructors=%d problems=%d seconds=%.1f", len(config.instructors),
                 problems, time.monotonic() - started)
        notify(f"STATUS={summary}")

    def _plan_enforcement(self, config: Config, engine: Engine, instructor: Instructor) -> None:
        """One job at start - lead for each session of the next day (not only at passes)."""
        lead = timedelta(minutes=config.service.enforce_lead_minutes)
        now = self.clock()
        for session in engine.upcoming.get(instructor.key, []):
            at = session.start - lead
            if at > now + SCHEDULE_AHEAD:
                break
            if at <= now:  # within the window already: this pass has just secured it
                continue
            with self._planning:
                if self._stop.is_set():
                    return
                self._scheduler.add_job(
                    self._enforce, DateTrigger(run_date=at), args=[engine, instructor],
                    id=f"enforce:{instructor.key}:{session.start.isoformat()}",
                    replace_existing=True)

    def _enforce(self, engine: Engine, instructor: Instructor) -> None:
        if self._stop.is_set():
            return
        log.info("instructor=%s action=pre-session-check", instructor.email)
        engine.sync(instructor)
