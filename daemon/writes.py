"""One office-hours event brought to its plan: read again when asked, planned against what
the state remembers of it, written with If-Match and journaled before and after (a kill -9
at any point converges), a 412 read and planned again, and a write the vendor refused not
sent again until the event or the link changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from . import metrics
from .calendars.base import CalendarProvider
from .config import Config
from .errors import CalendarError, Conflict
from .model import Event, Instructor, JoinLink, fingerprint, mask_url
from .plan import EventPlan, Remember, Write, plan_event
from .reconcile import Template, strip_blocks
from .result import Result
from .store import Fenced, StateError, Store

log = logging.getLogger("daemon.engine")
MAX_CONFLICT_RETRIES = 5


class Refused(CalendarError):
    """A write the vendor refused for what it carried (400: a description too long, ...)."""

    def __init__(self, event: Event, attempt: str) -> None:
        super().__init__(f"event {event.id}: the vendor refused the write", status=400)
        self.event, self.attempt = event, attempt


def _attempt(event: Event, write: Write) -> str:
    """One write to one version of an event: the same again would be refused again."""
    return fingerprint(f"{event.etag}\0{write.description}\0{write.location}")


def _not_written(err: CalendarError) -> bool:
    """Whether the vendor certainly did not take a write: an answer refusing it (a 412, or
    a 4xx other than a time-out or a throttle). A time-out or a 5xx may hide a write done."""
    return isinstance(err, Conflict) or (err.status is not None and 400 <= err.status < 500
                                         and err.status not in (408, 429))


class Writer:
    def __init__(self, config: Config, state: Store, clock: Callable[[], datetime],
                 dry_run: bool, identity: Callable[[JoinLink], str],
                 is_office_event: Callable[[Event], bool]) -> None:
        self.config, self.state, self.clock, self.dry_run = config, state, clock, dry_run
        self._identity = identity  # what the state remembers of a link (hashed)
        self._is_office_event = is_office_event
        self._no_room: set[str] = set()  # events warned: no room for the block
        self._passcode_missing: set[str] = set()  # events warned: their own bare link
        self._refused: dict[str, str] = {}  # event -> the write refused (_attempt)

    def template(self, instructor: Instructor) -> Template:
        links = self.config.links
        return Template(links.template, links.opt_out_marker, instructor.name)

    def plan(self, instructor: Instructor, calendar: CalendarProvider, event: Event,
             link: JoinLink | None) -> EventPlan:
        return plan_event(event, self.state.known_event(instructor.key, event.id), link,
                          self.template(instructor), calendar.description_limit)

    def apply(self, instructor: Instructor, calendar: CalendarProvider, event: Event,
              link: JoinLink | None, result: Result, fetch: bool,
              planned: EventPlan | None = None) -> None:
        """Read (when asked), plan (unless `planned` already), execute one event; 412 ->
        read, plan, execute again. Refused: the vendor refused this write (remembered).

        `link` None takes out what the program wrote (remove-links)."""
        for _ in range(MAX_CONFLICT_RETRIES):
            if fetch:
                fresh = calendar.get(event.id)
                if fresh is None or not self._is_office_event(fresh):
                    return
                event = fresh
            if planned is None or fetch:
                planned = self.plan(instructor, calendar, event, link)
            if isinstance(planned.action, Write) and self._refused.get(event.id) == _attempt(
                    event, planned.action):
                result.error = result.error or (  # still so: status and sync say it
                    f"event {event.id}: the vendor refused this write before; not tried "
                    "again until the event or the link changes")
                return  # the vendor refused this very write to this very event: not again
            self._warn(instructor, calendar, event, planned)
            try:
                if self._execute(instructor, calendar, planned.action, link, result):
                    return
            except Refused as refused:  # said once; not tried again until the event changes
                self._refused[refused.event.id] = refused.attempt
                raise
            log.info("instructor=%s event=%s action=retry reason=conflict", instructor.email,
                     event.id)
            fetch = True
        raise CalendarError(f"event {event.id} kept changing under us; will retry next pass")

    def _warn(self, instructor: Instructor, calendar: CalendarProvider, event: Event,
              planned: EventPlan) -> None:
        """Say once per event and process what the plan leaves the instructor to fix."""
        if planned.no_room and event.id not in self._no_room:
            self._no_room.add(event.id)
            log.warning("instructor=%s event=%s action=skip-block reason=description-too-long "
                        "length=%d limit=%d outcome=link-in-location-only", instructor.email,
                        event.id, len(event.description), calendar.description_limit)
        if planned.passcode_missing and event.id not in self._passcode_missing:
            self._passcode_missing.add(event.id)
            log.warning("instructor=%s event=%s action=keep-instructor-text "
                        "problem=their-link-without-the-passcode outcome=students-asked-"
                        "for-a-passcode fix=add-the-passcode-to-the-text-or-remove-the-"
                        "link-and-let-officehours-add-its-block", instructor.email, event.id)

    def _execute(self, instructor: Instructor, calendar: CalendarProvider,
                 action: Write | Remember, link: JoinLink | None, result: Result) -> bool:
        """Carry out one action with the journal writes that make a kill -9 safe: a location
        about to be written is remembered before the write, the link after it. False when
        the event changed meanwhile."""
        key, event = instructor.key, action.event
        remembered = self._identity(link) if link else None
        if isinstance(action, Remember):
            if not self.dry_run:
                self.state.mark_link(key, event.id, remembered, action.owned_location)
            return True
        if self.dry_run:
            result.changes.append(action.line)
            return True
        if not action.removing and self.state.is_offboarded(key):
            return True  # remove-links took the instructor out while this pass ran
        if action.owned_location:
            self.state.add_pending_location(key, event.id, action.owned_location)
        line = mask_url(action.line)
        # in the audit log before the write (a state that cannot be written stops it here),
        # settled after: no write the vendor may have taken is missing from the log
        entry = self.state.audit(self.clock(), key, f"event:{event.id}", action.action,
                                 {"title": event.title, "change": line, "pending": True})
        try:  # Fenced when the lead ran out since the state write (app.Providers)
            calendar.patch(event, action.description, action.location)
        except (CalendarError, Fenced) as err:
            if isinstance(err, Fenced) or _not_written(err):  # not written: no line for it
                self._settle(entry, done=False)
            if isinstance(err, Conflict):
                return False
            if isinstance(err, CalendarError) and err.status == 400:
                raise Refused(event, _attempt(event, action)) from err  # the same next time
            raise
        self.state.mark_link(key, event.id, remembered, action.owned_location)
        self._settle(entry, done=True)
        if event.changed is not None and not action.removing and \
                strip_blocks(event.description) == event.description:  # its first link
            metrics.REACTION.observe(max((self.clock() - event.changed).total_seconds(), 0))
        log.info("instructor=%s event=%s action=%s %s", instructor.email, event.id,
                 action.action, line)
        result.changes.append(action.line)
        return True

    def _settle(self, entry: int, done: bool) -> None:
        """Settle a pending audit line; one that cannot be settled now stays pending."""
        try:
            self.state.settle_audit(entry, done)
        except (Fenced, StateError) as err:
            log.warning("action=audit entry=%d problem=%r outcome=left-pending", entry, str(err))
