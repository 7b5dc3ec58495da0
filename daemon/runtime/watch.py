"""Zoom's events while this node leads (`[zoom] events`): an event about a served
instructor's room is a check of that room at once (read, repaired, read back, and the
invites brought along when the link changed); each (re)connection re-checks the rooms
whose session is near or under way, since what happened while the stream was down was
never delivered; a stream down longer than EVENTS_DOWN_LOUD is said in the log and STATUS.
Polling (the pass and the pre-session checks) goes on as without events."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from ..config import Config
from ..engine import Engine
from ..http import https_proxy, ssl_context
from ..model import Instructor
from ..overview import EVENTS_DOWN_LOUD
from ..store import Fenced, StateError
from ..zoom.events import EventStream, ZoomEvent
from .checks import PerKey, Schedule

log = logging.getLogger("daemon.service")

RoomCheck = Callable[[str, ZoomEvent | None], None]  # (instructor key, the event or None)
MAX_PENDING = 16  # events kept for one room while its check waits


class RoomWatch:
    def __init__(self, schedule: Schedule, check: RoomCheck,
                 served: Callable[[], Iterable[Instructor]], may: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._schedule, self._check, self._served, self._may = schedule, check, served, may
        self._clock = clock
        self._stream: EventStream | None = None
        self._engine: Engine | None = None
        self._lead = timedelta(0)
        self._said_down = False
        # one check job per room at a time, which checks again as long as events came
        # in while it ran; a storm of them is one check of it all
        self._wanted: PerKey[ZoomEvent | None] = PerKey(
            schedule, "zoom-room", self._checked, may, "checks", MAX_PENDING,
            lambda events: [None])
        self._recorded: bool | None = None  # the stream's state as last written

    def start(self, config: Config, engine: Engine) -> None:
        """The stream of `config`, with `engine`'s Zoom app (leading); none without events."""
        self.stop()
        self._wanted.clear()  # checks planned for an engine or a term that is over are gone
        zoom = config.zoom
        if not zoom.events or not zoom.events_subscription_id:
            return
        self._engine = engine
        self._lead = timedelta(minutes=config.service.enforce_lead_minutes)
        self._stream = EventStream(
            zoom.events_url, zoom.events_subscription_id, engine.zoom.access_token,
            ssl_context(config.service.ca_bundle), https_proxy(), self._event, self._up,
            self._down, self._clock)
        self._stream.start()

    def stop(self) -> None:
        """End the stream (before its engine is closed: it writes the state once more)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            self._record(None)
        self._recorded = None

    def down_for(self) -> float | None:
        """Seconds the stream has been down (None: up, or no stream)."""
        stream = self._stream
        if stream is None or stream.down_since is None:
            return None
        return self._clock() - stream.down_since

    def health(self) -> str | None:
        """Words for STATUS when the stream has been down too long (once in the log)."""
        down = self.down_for()
        if down is None or down < EVENTS_DOWN_LOUD:
            self._said_down = False
            return None
        if not self._said_down:
            self._said_down = True
            log.error("action=zoom-events problem=down-for-%ds outcome=rooms-checked-on-"
                      "schedule-only", down)
        return f"Zoom events DOWN for {down:.0f} s (rooms checked on schedule only)"

    def _event(self, event: ZoomEvent) -> None:
        engine = self._engine
        instructor = engine.rooms.whose(event, self._served()) if engine else None
        if instructor is None:  # someone the program does not serve: nothing to do
            log.debug("action=zoom-event event=%s outcome=not-ours", event.kind)
            return
        if engine is not None and engine.rooms.as_confirmed(event, instructor.key):
            log.debug("instructor=%s action=zoom-event event=%s outcome=as-last-confirmed",
                      instructor.email, event.kind)
            return
        log.info("instructor=%s action=zoom-event event=%s outcome=check-room",
                 instructor.email, event.kind)
        self._wanted.ask(instructor.key, event)

    def _up(self) -> None:
        """Connected (again): the rooms of sessions near or under way, checked at once."""
        self._record(True)
        near = self._schedule.near(self._lead)
        log.info("action=zoom-events-connected rooms-near-a-session=%d outcome=checked-at-once",
                 len(near))
        for key in near:
            self._wanted.ask(key, None)

    def _down(self) -> None:
        """Down, or not up yet: recorded once, with the moment it went down."""
        if self._recorded is not False:
            self._record(False)

    def _record(self, up: bool | None) -> None:
        """The stream's state for status and the metrics (the log says why it changed)."""
        engine, since = self._engine, datetime.now(UTC)
        if engine is None:
            return
        down = self.down_for()
        if up is False and down is not None:
            since -= timedelta(seconds=down)
        with contextlib.suppress(Fenced, StateError):  # a standby, or the database away
            engine.state.record_stream(up, since)
            self._recorded = up

    def _checked(self, key: str, events: list[ZoomEvent | None]) -> None:
        """A round of a room's check job: the room checked unless every event pending is
        the echo of the check that just ended (None: a gap's check, whatever the events
        reported)."""
        engine = self._engine
        if engine is not None and None not in events and all(
                engine.rooms.as_confirmed(e, key, wait=True) for e in events if e):
            return  # the echo of the check that just ended: nothing to do
        self._check(key, None if None in events else events[-1])  # for the log
