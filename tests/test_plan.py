"""The plan for one event, without I/O: which action, and what a person reads about it."""

from __future__ import annotations

from dataclasses import replace

from daemon.model import Event, JoinLink, Kind, KnownEvent, fingerprint
from daemon.plan import Remember, Write, owns_location, plan_event
from daemon.reconcile import START_MARK, Template

LINK = JoinLink("https://zoom.example/j/1234567890?pwd=abc", "1234567890")
TEMPLATE = Template("Join office hours on Zoom: {url}")


def event(description: str = "", location: str = "") -> Event:
    return Event("e1", Kind.SERIES, "Office Hours", description, location, "etag-1", True)


def known(link_hash: str | None = None, owned: str | None = None) -> KnownEvent:
    return KnownEvent(event(), link_hash, fingerprint(owned) if owned else None)


def test_a_new_event_gets_the_block_and_the_location() -> None:
    action = plan_event(event("Questions welcome."), None, LINK, TEMPLATE, 8000).action
    assert isinstance(action, Write) and action.action == "update-event"
    assert action.description.startswith("Questions welcome.\n\n" + START_MARK)
    assert action.location == action.owned_location == LINK.url
    assert action.line == ("'Office Hours' (series e1): link block inserted, location set "
                           "to 'https://zoom.example/j/1234567890?pwd=***'")  # masked


def test_an_event_already_right_is_only_remembered() -> None:
    written = plan_event(event("Hi"), None, LINK, TEMPLATE, 8000).action
    assert isinstance(written, Write)
    shown = replace(written.event, description=written.description, location=written.location)
    again = plan_event(shown, known(fingerprint(LINK.url), LINK.url), LINK, TEMPLATE, 8000)
    assert again.action == Remember(again.action.event, LINK.url)


def test_removing_takes_out_the_block_and_the_owned_location_only() -> None:
    written = plan_event(event("Hi", ""), None, LINK, TEMPLATE, 8000).action
    assert isinstance(written, Write)
    shown = Event("e1", Kind.SERIES, "Office Hours", written.description, written.location,
                  "etag-2", True)
    removal = plan_event(shown, known(fingerprint(LINK.url), LINK.url), None, TEMPLATE,
                         8000).action
    assert isinstance(removal, Write) and removal.removing and removal.action == "remove-link"
    assert (removal.description, removal.location) == ("Hi", "")
    assert removal.line.endswith("link block removed, location cleared")


def test_a_location_the_instructor_typed_is_theirs() -> None:
    action = plan_event(event("", "Room 4"), None, LINK, TEMPLATE, 8000).action
    assert isinstance(action, Write) and action.location == "Room 4"
    assert action.owned_location is None


def test_with_no_memory_a_location_equal_to_the_link_is_the_programs() -> None:
    assert owns_location(None, event("", LINK.url), LINK)
    assert not owns_location(known("x", None), event("", LINK.url), LINK)
    assert not owns_location(None, event("", LINK.url), None)


def test_no_room_for_the_block_is_said_and_the_location_carries_the_url() -> None:
    full = "x" * 100
    planned = plan_event(event(full), None, LINK, TEMPLATE, 120)
    assert planned.no_room and isinstance(planned.action, Write)
    assert planned.action.description == full and planned.action.location == LINK.url


def test_the_instructors_own_bare_link_without_the_passcode_is_flagged() -> None:
    bare = JoinLink("https://zoom.example/j/1234567890", "1234567890", "31415926")
    own = f"Join me: {bare.url}"
    planned = plan_event(event(own, bare.url), None, bare, TEMPLATE, 8000)
    assert planned.passcode_missing  # their text, no block of ours: no passcode for students
    assert not plan_event(event(own + " (passcode 31415926)", bare.url), None, bare,
                          TEMPLATE, 8000).passcode_missing
    assert not plan_event(event("Hi"), None, bare, TEMPLATE, 8000).passcode_missing
