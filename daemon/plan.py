"""The plan for one event, pure: from the event as the calendar shows it, what the state
remembers of it, the join link (None: take out what the program wrote) and the template,
the one action to take, with the line a person reads about it.

engine.py carries actions out, with the state writes that make a kill -9 safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Event, JoinLink, KnownEvent, mask_url
from .reconcile import Template, contains_url, desired_description, reconcile, strip_blocks


@dataclass(frozen=True)
class Write:
    """Write this description and location (guarded by the event's etag)."""

    event: Event
    description: str
    location: str
    owned_location: str | None  # the location the program owns after the write
    removing: bool  # remove-links: taking out what the program wrote

    @property
    def line(self) -> str:
        return describe(self.event, self.description, self.location)

    @property
    def action(self) -> str:
        return "remove-link" if self.removing else "update-event"


@dataclass(frozen=True)
class Remember:
    """Nothing to write: the event already offers the link; remember so."""

    event: Event
    owned_location: str | None


@dataclass(frozen=True)
class EventPlan:
    action: Write | Remember
    no_room: bool = False  # the description leaves no room: the URL is in the location only
    # the instructor's own text carries the link (so no block is added), but not the
    # passcode that belongs in the invite: students with it are asked for a passcode
    passcode_missing: bool = False


def plan_event(event: Event, known: KnownEvent | None, link: JoinLink | None,
               template: Template, limit: int) -> EventPlan:
    """What to do with one office-hours event."""
    owned = event.location if owns_location(known, event, link) else None
    change = reconcile(event.description, event.location, link, owned, template, limit)
    no_room = link is not None and len(desired_description(
        event.description, link, template)) > max(limit, len(event.description))
    own_text = strip_blocks(event.description)
    passcode_missing = (link is not None and bool(link.passcode)
                        and contains_url(own_text, link.url) and link.passcode not in own_text)
    if change is None:  # already right: only the memory of it to keep
        return EventPlan(Remember(event, owned), no_room, passcode_missing)
    return EventPlan(Write(event, change.description, change.location, change.owned_location,
                           removing=link is None), no_room, passcode_missing)


def owns_location(known: KnownEvent | None, event: Event, link: JoinLink | None) -> bool:
    """Whether the event's location is one the program wrote.

    With no memory of the event at all (a first pass, or a rebuilt state database), a
    location that is exactly the current join URL is taken as the program's: it is what
    the program writes, and so a later link change replaces it."""
    if known is not None and known.owns_location(event.location):
        return True
    forgotten = known is None or (known.link_hash is None
                                  and known.owned_location_hash is None)
    return forgotten and link is not None and event.location.strip() == link.url


def describe(event: Event, description: str, location: str) -> str:
    """One line a person can read: which event, what happens to its text and location."""
    had_block = strip_blocks(event.description) != event.description
    has_block = strip_blocks(description) != description
    parts = []
    if description != event.description:
        parts.append({(False, True): "link block inserted", (True, True): "link block updated",
                      (True, False): "link block removed"}.get((had_block, has_block),
                                                               "description updated"))
    if location != event.location:
        parts.append(f"location set to {mask_url(location)!r}" if location
                     else "location cleared")
    return f"{event.title!r} ({event.kind.value} {event.id}): {', '.join(parts)}"
