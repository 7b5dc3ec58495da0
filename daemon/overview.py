"""What the state says about the campus, as `status`, its JSON and the metrics show it:
one row per instructor, their counts, the roster's hold, and the nodes. Read from the
state alone (no secret, no network), and the same for all three."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .config import Config
from .model import Instructor, Room, same_person
from .store import Lead, Shared, Store

QUIET_FLOOR = 900  # seconds: no pass recorded for 3 intervals, and at least this, is news
MISSED_RENEWALS = 2  # a leader renews every lease/5 s: two missed is "not renewing"


@dataclass(frozen=True)
class Row:
    instructor: str
    email: str
    source: str  # "config" or "roster"
    zoom: str  # in a word or two: "secure", "repaired", "REFUSED", "NOT SECURE", "not yet"...
    failing: bool
    session_under_way: bool
    room: Room | None = None
    leaves_at: str | None = None  # left the roster: offboarded then
    roster_held: str | None = None
    last_pass: str | None = None
    next_session: str | None = None
    next_session_end: str | None = None
    zoom_state: str | None = None
    zoom_checked: str | None = None
    students_meet: dict[str, bool] | None = None  # what a student meets at the PMI
    last_error: str | None = None
    offboarded: str | None = None  # when remove-links (or the roster) took them out


@dataclass(frozen=True)
class Node:
    node: str  # "host/pid": the configured node name (or host name) and its process id
    role: str  # "leader", "leader (not renewing)", "standby"
    last_heartbeat: str
    seconds_since: float


@dataclass
class Overview:
    rows: list[Row]
    held: tuple[str, str] | None = None  # a held roster read: why, since when
    stale_since: str | None = None  # the newest pass, when that is too long ago
    shared: bool = False  # two or more nodes on PostgreSQL
    leader: dict[str, Any] | None = None  # then: the `leader` row (None: nobody led yet)
    nodes: list[Node] = field(default_factory=list)
    # [zoom] events: Zoom's event stream as the leader last saw it: up, since when, and
    # whether it has been down longer than EVENTS_DOWN_LOUD (None: no stream recorded)
    events: dict[str, Any] | None = None
    # [push]: how many served calendars are kept by their notifications, and those polled
    # at the usual interval instead, each with why (None: no [push])
    push: dict[str, Any] | None = None

    @property
    def failing(self) -> bool:
        """What makes `status` exit 1 (CONTRACT.md)."""
        return any(r.failing for r in self.rows) or self.held is not None or \
            self.stale_since is not None or bool(self.events and self.events["down_too_long"])

    def counts(self) -> dict[str, int]:
        live = [r for r in self.rows if not r.offboarded]
        return {"served": len(live),
                "failing": sum(r.failing for r in self.rows),
                "refused": sum(bool(r.room and r.room.failing) for r in live),
                "leaving": sum(bool(r.leaves_at) for r in live),
                "offboarded": len(self.rows) - len(live)}

    def rooms(self) -> dict[str, int]:
        """The rooms of the instructors served, by their state at the last check."""
        found = {"secure": 0, "insecure": 0, "refused": 0, "unchecked": 0}
        for row in self.rows:
            if not row.offboarded:
                found[ROOMS.get(row.room, "unchecked")] += 1
        return found

    def as_json(self) -> dict[str, Any]:
        return {"summary": self.counts(), "rooms": self.rooms(),
                "roster_held": self.held[0] if self.held else None,
                "no_pass_since": self.stale_since, "leader": self.leader,
                "nodes": [asdict(n) for n in self.nodes], "zoom_events": self.events,
                "push": self.push,
                "instructors": [{**asdict(r), "room": r.room.value if r.room else None}
                                for r in self.rows]}


EVENTS_DOWN_LOUD = 120.0  # seconds Zoom's event stream may be down before it is an error
ROOMS: dict[Room | None, str] = {  # the metrics' states of a room (else: unchecked)
    Room.SECURE: "secure", Room.REPAIRED: "secure", Room.REFUSED: "refused",
    Room.NOT_SECURE: "insecure"}
WORDS = {Room.SECURE: "secure", Room.REPAIRED: "repaired", Room.WOULD_REPAIR: "would repair",
         Room.REFUSED: "REFUSED", Room.NOT_SECURE: "NOT SECURE"}


def read(config: Config, state: Store | None, now: datetime) -> Overview:
    """The overview from the state (None: nothing recorded yet)."""
    known = state.statuses() if state else {}
    gone = state.offboarded() if state else {}
    members = state.roster() if state else {}
    held = state.held() if state else None
    listed = {i.key for i in config.instructors}
    grace = timedelta(hours=config.roster.leave_grace_hours if config.roster else 0)
    served = [(i, "config", None) for i in config.instructors] + [
        (Instructor(**how), "roster", left) for key, (how, left) in sorted(members.items())
        if key not in listed]
    rows = []
    for instructor, source, left in served:
        status = known.get(instructor.key)
        taken_out = gone.get(instructor.key)
        zoom_state = status.zoom_state if status else None
        room = status.room if status else None
        start = status.next_session if status else None
        end = status.next_session_end if status else None
        error = status.last_error if status else None
        rows.append(Row(
            instructor=instructor.name, email=instructor.email, source=source,
            zoom="offboarded" if taken_out else WORDS[room] if room else "not yet",
            room=room,
            failing=not taken_out and (bool(error) or room is not None and room.failing),
            session_under_way=bool(start and datetime.fromisoformat(start) <= now and (
                not end or now < datetime.fromisoformat(end))),
            leaves_at=(datetime.fromisoformat(left) + grace).isoformat()
            if left and not taken_out else None,
            roster_held=held[0] if held else None,
            last_pass=status.last_pass if status else None,
            next_session=start, next_session_end=end, zoom_state=zoom_state,
            zoom_checked=status.zoom_checked if status else None,
            students_meet=status.pmi if status else None, last_error=error,
            offboarded=taken_out))
    # no pass recorded for long: the service is stopped, or its passes are held (a state
    # database it cannot write records nothing, so the silence is what status can see)
    newest = max((r.last_pass for r in rows if r.last_pass), default=None)
    # with [push], a calendar notified is read when it changes and every safety interval
    safety = config.push.safety_interval_seconds if config.push is not None else 0
    quiet = timedelta(seconds=max(3 * config.service.sync_interval_seconds, QUIET_FLOOR,
                                  safety + 2 * config.service.sync_interval_seconds))
    stale = newest if newest and now - datetime.fromisoformat(newest) > quiet else None
    overview = Overview(rows, held, stale, events=_events(config, state, now),
                        push=_push(config, state, rows, now))
    if isinstance(state, Shared) and config.state is not None:  # two or more nodes
        _nodes(overview, state.leader(), state.nodes(), config.state.lease_seconds)
    return overview


def _events(config: Config, state: Store | None, now: datetime) -> dict[str, Any] | None:
    stream = state.stream() if state is not None and config.zoom.events else None
    if stream is None:
        return None
    up, since = stream
    down = (now - datetime.fromisoformat(since)).total_seconds()
    return {"up": up, "since": since, "down_too_long": not up and down > EVENTS_DOWN_LOUD}


def _push(config: Config, state: Store | None, rows: list[Row], now: datetime,
          ) -> dict[str, Any] | None:
    """[push]: the served calendars with healthy notifications, and the others (polled
    every interval) with the reason, as the leader last kept them."""
    if config.push is None:
        return None
    kept = state.subscriptions() if state is not None else {}
    polled: dict[str, str] = {}
    notified = 0
    for row in rows:
        if row.offboarded:
            continue
        found = kept.get(same_person(row.email))
        if found is not None and found.healthy(now):
            notified += 1
        else:
            polled[row.email] = found.problem or "expired" if found else "not subscribed yet"
    return {"notified": notified, "polled": polled}


def _nodes(overview: Overview, lead: Lead | None, seen: list[tuple[str, str, float]],
           lease_seconds: int) -> None:
    overview.shared = True
    renewing = lead is not None and lead.quiet <= MISSED_RENEWALS * lease_seconds / 5
    if lead is not None:
        overview.leader = {"node": lead.node, "epoch": lead.epoch, "since": lead.since,
                           "lease_running": lead.live, "renewing": renewing,
                           "seconds_since_renewal": round(lead.quiet, 1)}
    for node, heartbeat, ago in seen:
        role = "standby"
        if lead is not None and node == lead.node and lead.live:
            role = "leader" if renewing else "leader (not renewing)"
        overview.nodes.append(Node(node, role, heartbeat, round(ago, 1)))
