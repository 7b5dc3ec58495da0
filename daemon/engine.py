"""One pass for one instructor: read calendar changes, secure Zoom when a session is
near, plan each event with reconcile, write what differs, record it.

Writes are idempotent and recorded before and after, so a pass killed at any point
and run again converges without duplicates.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from .calendars.base import CalendarProvider, Channel
from .config import Config
from .errors import CalendarError, SyncExpired, ZoomError, explain
from .model import (
    Event,
    Instructor,
    JoinLink,
    Kind,
    KnownEvent,
    fingerprint,
    is_office_hours,
    mask_url,
)
from .plan import Write
from .recurrence import Session, sessions
from .result import Result
from .rooms import Rooms
from .store import Fence, Fenced, StateError, Store
from .writes import Refused, Writer
from .zoom.client import ZoomClient

log = logging.getLogger(__name__)
HORIZON = timedelta(days=35)  # how far ahead sessions are known (status, scheduling)
FAR_AHEAD = timedelta(days=400)  # how far ahead a session still calls for a secured PMI


class Engine:
    def __init__(self, config: Config, state: Store, zoom: ZoomClient,
                 provider: Callable[[Instructor], CalendarProvider],
                 clock: Callable[[], datetime], dry_run: bool = False,
                 fence: Fence | None = None) -> None:
        self.config = config
        self.state = state
        self.zoom = zoom
        self.provider = provider
        self.clock = clock
        self.dry_run = dry_run
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._providers: dict[str, CalendarProvider] = {}
        self.stopping = threading.Event()
        self.rooms = Rooms(config, state, zoom, dry_run)  # the Zoom side
        self.links = self.rooms.links
        self.writer = Writer(config, state, clock, dry_run, self._identity,
                             self.is_office_event)  # the calendar side
        self.fence = fence  # two nodes: the term it writes for (app.open_engine fences the
        # calendar and Zoom writes with it; the store fences its own)

    def close(self) -> None:
        for calendar in self._providers.values():
            calendar.close()
        close_shared = getattr(self.provider, "close", None)
        if close_shared is not None:
            close_shared()
        self.zoom.close()
        self.state.close()

    def is_office_event(self, event: Event) -> bool:
        return (event.kind in (Kind.SERIES, Kind.EXCEPTION, Kind.SINGLE)
                and event.organizer_self
                and is_office_hours(event.title, self.config.service.titles))

    def calendar(self, instructor: Instructor) -> CalendarProvider:
        if instructor.key not in self._providers:
            self._providers[instructor.key] = self.provider(instructor)
        return self._providers[instructor.key]

    def sync(self, instructor: Instructor, secure_first: bool = False) -> Result:
        """A whole pass for one instructor; failures are caught, reported and recorded.

        `secure_first` (a pre-session check): the room is secured before the calendar is
        read and before the instructor's lock is taken, so that neither a slow calendar
        nor a pass busy with the same instructor can make the check late."""
        now = self.clock()
        result = Result(instructor, checked_at=now)
        try:
            if self.state.is_offboarded(instructor.key):  # remove-links took them out
                return Result(instructor, checked_at=now, offboarded=True)
            known = self.links.known(instructor.key)
            secured = self._caught(instructor, result, lambda: self.rooms.secured_link(
                instructor, result, now)) if secure_first else None
            # a check whose room gives the link the invites already carry: the calendar is
            # the pass's to read (a check is then 3 Zoom reads and nothing else)
            settled = secured is not None and secured == known
            lock = self._locks[instructor.key]
            # a check never waits for a pass busy with the same instructor (a vendor gone
            # slow could hold it for minutes, and with it a check worker): the room is
            # secured; the pass under way, or the next, brings the events along
            if settled or not lock.acquire(blocking=not secure_first):
                self._record(instructor, result, now)
                return result
            try:
                if result.error is None:
                    self._caught(instructor, result, lambda: self._sync(
                        instructor, result, now, secured))
                self._record(instructor, result, now)
            finally:
                lock.release()
        except (Fenced, StateError) as err:  # the lead is lost, or the database: the
            result.error = f"not synced: {err}"  # next leader takes over from the state
            result.held = isinstance(err, StateError) and err.stuck
            result.damaged = isinstance(err, StateError) and err.damaged
            log.warning("instructor=%s action=pass problem=%r outcome=stopped",
                        instructor.email, str(err))
        return result

    def _caught(self, instructor: Instructor, result: Result,
                work: Callable[[], JoinLink | None]) -> JoinLink | None:
        """`work()`, a vendor's failure or a bug made the result's error (the lead or the
        database lost go up: the whole pass stops)."""
        try:
            return work()
        except (CalendarError, ZoomError) as err:
            result.error = explain(err, instructor.provider, instructor.zoom_user)
        except (Fenced, StateError):
            raise
        except Exception as err:  # a bug must cost one instructor one pass, not everyone
            log.exception("instructor=%s action=pass problem=unexpected", instructor.email)
            result.error = f"unexpected {type(err).__name__} (a bug: the log has details)"
        return None

    def _record(self, instructor: Instructor, result: Result, now: datetime) -> None:
        nxt = result.next_session
        loud_for = self._log_failure(instructor, result)
        # a calendar not read (a vendor failed, or a check that needed no read): the next
        # session stays as last known
        fields: dict[str, str | None] = {} if result.sessions is None else {
            "next_session": nxt.start.isoformat() if nxt else None,
            "next_session_end": nxt.end.isoformat() if nxt else None}
        if result.error or result.sessions is not None:  # a check that read no calendar
            fields.update(last_error=mask_url(result.error) if result.error else None,
                          error_logged_for=loud_for)  # leaves the calendar's error shown
        if not self.dry_run:
            self.state.record_status(
                instructor.key, instructor.name, last_pass=now.isoformat(),
                **fields, served_as=json.dumps({
                    "name": instructor.name, "email": instructor.email,
                    "provider": instructor.provider,
                    "calendar_id": instructor.calendar_id,
                    "zoom_user": instructor.zoom_user}))

    def _log_failure(self, instructor: Instructor, result: Result) -> str | None:
        """Log a failure at error level once per office-hours session, then quietly.

        Returns the session the failure is now known for (None once it is fixed)."""
        if result.error is None:
            return None
        session = result.next_session.start.isoformat() if result.next_session else "none"
        repeated = self.state.error_logged_for(instructor.key) == session
        log.log(logging.INFO if repeated else logging.ERROR,
                "instructor=%s name=%r action=pass problem=%r%s", instructor.email,
                instructor.name, mask_url(result.error), " repeated=yes" if repeated else "")
        return session

    def _sync(self, instructor: Instructor, result: Result, now: datetime,
              secured: JoinLink | None) -> None:
        calendar = self.calendar(instructor)
        listing_events, token, known = self._read(instructor, calendar)
        upcoming = self._sessions(known, now, HORIZON)
        result.sessions = upcoming
        result.next_session = upcoming[0] if upcoming else None  # may be under way

        listed = {e.id: e for e in listing_events if self.is_office_event(e)}
        office = [k for k in known.values() if self.is_office_event(k.event)]
        if not office:  # no office hours: nothing to write, nothing to ask Zoom
            if not self.dry_run:
                self.state.save_sync_token(instructor.key, instructor.calendar_id, token)
            return
        first_sight = not self.state.pmi_checked(instructor.key) and self._ahead(
            known, upcoming, now)
        if secured is None and (first_sight or self.rooms.window_unchecked(instructor, upcoming,
                                                                      now)):
            secured = self.rooms.secured_link(instructor, result, now)
        link = secured or self.rooms.cached_link(instructor)
        stale = self._stale(office, listed, link)
        # each listed event planned once: the plan says whether a link is about to be
        # written, and is carried out unless securing first changed the link
        plans = {e.id: self.writer.plan(instructor, calendar, e, link) for e in listed.values()}
        if secured is None and (stale or any(isinstance(p.action, Write)
                                             for p in plans.values())) and self._ahead(
                known, upcoming, now):
            # a link is about to be written: secure first, so that it is the final one
            fresh = self.rooms.secured_link(instructor, result, now)
            plans, link = (plans if fresh == link else {}), fresh
            stale = self._stale(office, listed, link)
        failures = 0
        for event in [*listed.values(), *[k.event for k in stale]]:
            try:
                self.writer.apply(instructor, calendar, event, link, result,
                                  fetch=event.id not in listed, planned=plans.get(event.id))
            except Refused as refused:  # said once; not tried again until the event changes
                result.error = result.error or (f"event {refused.event.id}: "
                                                f"{refused.__cause__}; not tried again until "
                                                "the event changes")
            except CalendarError as err:
                failures += 1
                result.error = result.error or f"event {event.id}: {explain(err)}"
        if not failures and not self.dry_run:
            self.state.save_sync_token(instructor.key, instructor.calendar_id, token)

    def _sessions(self, known: dict[str, KnownEvent], now: datetime,
                  horizon: timedelta) -> list[Session]:
        """The office-hours sessions that have not ended, up to `horizon` ahead."""
        found = sessions((k.event for k in known.values()
                          if self.is_office_event(k.event)
                          or k.event.kind in (Kind.EXCEPTION, Kind.CANCELLED)), now, horizon)
        return [s for s in found if s.event_id in known
                and self.is_office_event(known[s.event_id].event)]

    def _ahead(self, known: dict[str, KnownEvent], upcoming: list[Session],
               now: datetime) -> bool:
        """Whether any office-hours session has not ended, however far ahead: a term's
        office hours are often entered weeks before they start."""
        return bool(upcoming) or bool(self._sessions(known, now, FAR_AHEAD))

    def _stale(self, office: list[KnownEvent], listed: dict[str, Event],
               link: JoinLink) -> list[KnownEvent]:
        """Unlisted office-hours events whose last written link is not `link`."""
        remembered = fingerprint(self._identity(link))
        return [k for k in office if k.event.id not in listed and k.link_hash != remembered]

    def _identity(self, link: JoinLink) -> str:
        """What the state remembers of a link (as a hash): its URL, and a passcode it
        shows only as a keyed digest, since a hash of a short passcode is easily guessed."""
        if not link.passcode:
            return link.url
        return f"{link.url} passcode:{self.zoom.passcode_digest(link.passcode)}"

    def _read(self, instructor: Instructor, calendar: CalendarProvider,
              ) -> tuple[list[Event], str, dict[str, KnownEvent]]:
        """Read what changed (everything after a 410), store the relevant events; the
        events listed, the next sync token, and the events known now."""
        token = self.state.sync_token(instructor.key, instructor.calendar_id)
        try:
            listing = calendar.changes(token)
        except SyncExpired:
            log.warning("instructor=%s action=full-resync reason=sync-token-expired",
                        instructor.email)
            listing = calendar.changes(None)
        if listing.full:  # a whole calendar, not what just changed: no reaction to time
            listing = replace(listing, events=[replace(e, changed=None) for e in listing.events])
        known = self.state.known_events(instructor.key)
        office_series = {i for i, k in known.items() if k.event.kind is Kind.SERIES}
        office_series |= {e.id for e in listing.events
                          if e.kind is Kind.SERIES and self.is_office_event(e)}
        keep, gone = [], []
        for event in sorted(listing.events, key=lambda e: e.kind is not Kind.SERIES):
            if self.is_office_event(event):
                keep.append(event)
            elif event.series_id and event.series_id in office_series:
                keep.append(event)  # a moved-away or cancelled occurrence of office hours
            elif event.kind is not Kind.CANCELLED and event.id in known:
                keep.append(event)  # retitled: remember what we wrote, in case it comes back
                office_series.discard(event.id)
            else:
                gone.append(event.id)
                office_series.discard(event.id)
        if not (keep or gone or listing.full):  # a steady pass: nothing changed
            return listing.events, listing.sync_token, known
        self.state.replace_events(instructor.key, keep, listing.full, gone)
        return listing.events, listing.sync_token, self.state.known_events(instructor.key)

    def remove_links(self, instructor: Instructor, by: str = "remove-links") -> Result:
        """Take out every block and location the program wrote for one instructor, who is
        served no more (by this process or a running service) until reinstated.

        Marked first: a service's pass under way then writes nothing more (each write
        checks the mark; a write it had in flight fails If-Match against ours)."""
        result = Result(instructor)
        if not self.dry_run:
            self.state.offboard(instructor.key, self.clock(), by)
        calendar = self.calendar(instructor)
        try:
            for event in calendar.changes(None).events:
                if self.is_office_event(event):
                    self.writer.apply(instructor, calendar, event, None, result, fetch=False)
            if not self.dry_run:
                self.state.forget_instructor_events(instructor.key)
                self._unwatch(instructor, calendar)
        except (CalendarError, ZoomError) as err:
            result.error = explain(err, instructor.provider, instructor.zoom_user)
        return result

    def _unwatch(self, instructor: Instructor, calendar: CalendarProvider) -> None:
        """Their calendar's change notifications ([push]) stopped, its row dropped (one
        the vendor no longer has, or that cannot be stopped now, ends at its expiry)."""
        kept = self.state.subscription_of(instructor.key)
        if kept is None:
            return
        if kept.channel:
            with contextlib.suppress(CalendarError):
                calendar.unwatch(Channel.of(kept))
        self.state.drop_subscription(instructor.key)

