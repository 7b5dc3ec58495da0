"""An engine's Zoom side: each instructor's PMI made secure (read, repaired, read back)
before its link is written and in each session's lead window, its link cached, a daily
limit remembered until it lifts, and what was found recorded in the state."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from .config import Config
from .errors import ZoomRefused, ZoomThrottled, explain
from .model import Instructor, JoinLink, Room, mask_url, same_person
from .recurrence import Session
from .result import Result
from .store import Store
from .zoom.client import ZoomClient
from .zoom.events import ZoomEvent
from .zoom.links import LinkCache
from .zoom.policy import PmiState, carries_passcode, meets

log = logging.getLogger("daemon.engine")
# a pre-session check may run this much before its window opens (the service spreads the
# checks of sessions that start at the same time) and still counts for that window
EARLY_CHECK = timedelta(minutes=1)


class Rooms:
    def __init__(self, config: Config, state: Store, zoom: ZoomClient, dry_run: bool) -> None:
        self.config, self.state, self.zoom, self.dry_run = config, state, zoom, dry_run
        self.links = LinkCache(config.zoom.refresh_minutes)
        # when each instructor's room was last secured (or found secure), by this engine: a
        # lead window's room is checked once, not at every pass inside it
        self._secured_at: dict[str, datetime] = {}
        self._zoom_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._throttled: dict[str, ZoomThrottled] = {}  # instructor -> a daily limit hit
        self._no_passcode: set[str] = set()  # instructors warned: include_passcode = false
        # each room as Zoom's events name it, (user id, PMI): from the state at first use
        # (a new leader knows every room read before), then as rooms are read
        self._ids: dict[str, tuple[str, str]] | None = None
        # each room's security settings as last read back secure, as events report them
        self._confirmed: dict[str, frozenset[tuple[str, str]]] = {}
        self._ids_lock = threading.Lock()

    def window_unchecked(self, instructor: Instructor, upcoming: list[Session],
                          now: datetime) -> bool:
        """Whether a session's lead window is open and its room not checked since it opened
        (by the pre-session check, or a pass inside the window): once per window, since a
        pass inside every window would read Zoom for each room at every pass."""
        lead = timedelta(minutes=self.config.service.enforce_lead_minutes)
        opened = [s.start - lead for s in upcoming if s.start - lead <= now < s.end]
        if not opened:
            return False
        checked = self._secured_at.get(instructor.key)
        return checked is None or checked < max(opened) - EARLY_CHECK

    def secured_link(self, instructor: Instructor, result: Result, now: datetime) -> JoinLink:
        """The PMI secured (see `enforce`), and its link read afresh and cached.

        Secured at first sight (a session ahead, the PMI never checked) and before any
        link is written, since a passcode set now changes the link and it must not change
        after the students got it; again in each session's lead window, where the link
        is read afresh too, so a link changed in Zoom reaches the events in time."""
        blocked = self._throttled.get(instructor.key)
        if blocked is not None and blocked.until > now:
            if blocked.insecure:
                result.zoom, result.room = self._not_secure(blocked), Room.NOT_SECURE
            raise blocked  # a daily limit: no request can help before it lifts
        try:
            with self._zoom_locks[instructor.key]:  # a check and a pass: one after the other
                link = self.enforce(instructor, result, now)
        except ZoomThrottled as err:
            self._throttled[instructor.key] = err
            if err.insecure:  # said loudly: in the status row, the log and STATUS
                result.zoom, result.room = self._not_secure(err), Room.NOT_SECURE
                self._zoom_status(instructor, result, now, None)
            raise
        if result.room is not Room.REFUSED:  # a refused room is tried again at the next pass
            self._secured_at[instructor.key] = now
        self.links.put(instructor.key, link)
        return link

    def as_confirmed(self, event: ZoomEvent, key: str, wait: bool = False) -> bool:
        """Whether an event reports nothing but the room's settings as last read back
        secure (the echo of a repair, or a change to what is already so): no check. An
        event reporting any other value, or none, is checked. `wait`: after a check of
        the room under way (a repair's echo arrives before its read-back confirms it)."""
        if wait:
            with self._zoom_locks[key]:
                pass
        confirmed = self._confirmed.get(key)
        return bool(event.values) and confirmed is not None and set(event.values) <= confirmed

    def whose(self, event: ZoomEvent, served: Iterable[Instructor]) -> Instructor | None:
        """The served instructor a Zoom event is about: by the PMI or the user's id as their
        room was read (by this engine, even mid-check, or by any node before: the state
        keeps them), the zoom_user itself, or the address; None for anyone else, and for
        a room never read (its first check, when office hours appear, reads it)."""
        known, live = self._known_ids(), self.zoom.rooms
        for instructor in served:
            user = instructor.zoom_user
            ids = {*known.get(instructor.key, ()), *live.get(user.casefold(), ())} - {""}
            if event.meeting_id in ids or event.user_id and event.user_id in (user, *ids):
                return instructor
            if event.email and same_person(event.email) == same_person(user):
                return instructor
        return None

    @staticmethod
    def _not_secure(err: ZoomThrottled) -> str:
        return (f"NOT secure until {err.until:%Y-%m-%d %H:%M} UTC: Zoom's daily limit of "
                "meeting updates stopped the repair; tried again then")

    def cached_link(self, instructor: Instructor) -> JoinLink:
        """The current link, from the cache (zoom/links.py) or read from Zoom."""
        link = self.links.get(instructor.key)
        if link is None:
            link = self.zoom.link(instructor.zoom_user, self.config.links.include_passcode)
            self._warn_no_passcode(instructor, link.url)
            self.links.put(instructor.key, link)
            ids = self._read_ids(instructor, link.meeting_id)
            if ids is not None and not self.dry_run:  # a room read anew: its ids changed
                self.state.record_status(instructor.key, instructor.name,
                                         zoom_ids=json.dumps(ids))
                self._remember_ids(instructor.key, ids)
        return link

    def _known_ids(self) -> dict[str, tuple[str, str]]:
        with self._ids_lock:
            if self._ids is None:
                self._ids = self.state.zoom_ids()
            return self._ids

    def _read_ids(self, instructor: Instructor, pmi: str) -> tuple[str, str] | None:
        """The room's ids as just read, when they differ from those known (else None);
        remembered (`_remember_ids`) once the state has them."""
        ids = (self.zoom.rooms.get(instructor.zoom_user.casefold(), ("", ""))[0], pmi)
        return None if self._known_ids().get(instructor.key) == ids else ids

    def _remember_ids(self, key: str, ids: tuple[str, str]) -> None:
        known = self._known_ids()
        with self._ids_lock:
            known[key] = ids

    def enforce(self, instructor: Instructor, result: Result, now: datetime) -> JoinLink:
        """Make the PMI secure (read, repair, read back), record what students meet, and
        return the link for invites."""
        user, policy = instructor.zoom_user, self.config.links.include_passcode
        try:
            enforcement = self.zoom.enforce(user, dry_run=self.dry_run)
        except ZoomRefused as err:
            result.zoom, result.room = "REFUSED", Room.REFUSED
            result.error = explain(err)
            self._zoom_status(instructor, result, now, err.state, f"refused: {err}")
            return err.state.link(policy) if err.state else self.zoom.link(user, policy)
        before = enforcement.before.describe()
        if not enforcement.repaired:
            result.zoom, result.room = "secure", Room.SECURE
        elif self.dry_run:  # a passcode it would set changes the link shown below
            result.zoom = f"would repair ({before}) before writing the link"
            result.room = Room.WOULD_REPAIR
        else:
            result.zoom, result.room = f"repaired (was {before})", Room.REPAIRED
            log.warning("instructor=%s zoom_user=%s action=secure-pmi was=%r now=secure",
                        instructor.email, user, before)
            self.state.audit(now, instructor.key, f"zoom:{user}", "secure-pmi",
                             {"was": before, "now": "secure"})
        self._zoom_status(instructor, result, now, enforcement.after)
        after = enforcement.after
        if not after.lacking() and not self.dry_run:
            passcode = json.dumps(after.passcode)
            self._confirmed[instructor.key] = frozenset({
                ("password", passcode), ("pmi_password", passcode),
                ("waiting_room", "true"), ("require_password_for_pmi_meetings", '"all"')})
        link = enforcement.after.link(policy)
        self._warn_no_passcode(instructor, link.url)
        return link

    def _zoom_status(self, instructor: Instructor, result: Result, now: datetime,
                     pmi: PmiState | None, text: str | None = None) -> None:
        """The check in the state: the room (a value) and in words (`text`, else the
        result's), and what a student meets."""
        if self.dry_run:
            return
        found = None if pmi is None else json.dumps(meets(pmi, self.config.links.include_passcode))
        ids = None if pmi is None else self._read_ids(instructor, pmi.meeting_id)
        self.state.record_status(instructor.key, instructor.name,
                                 zoom_state=mask_url(text or result.zoom),
                                 room=result.room.value if result.room else None,
                                 zoom_checked=now.isoformat(), pmi=found,
                                 **({"zoom_ids": json.dumps(ids)} if ids else {}))
        if ids is not None:
            self._remember_ids(instructor.key, ids)

    def _warn_no_passcode(self, instructor: Instructor, url: str) -> None:
        """Say once per process when links.include_passcode = false leaves an invite that
        cannot get a student in on its own."""
        if (self.config.links.include_passcode is not False or carries_passcode(url)
                or instructor.key in self._no_passcode):
            return
        self._no_passcode.add(instructor.key)
        log.warning("instructor=%s action=write-link problem=link-without-passcode "
                    "outcome=students-asked-for-a-passcode-the-invite-does-not-give "
                    "fix=links.include_passcode=auto", instructor.email)
