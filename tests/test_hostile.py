"""Strange and hostile input: what instructors, calendars and vendors really produce."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from conftest import HOUR, at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.graph import exchange_rendering

from daemon.app import open_engine
from daemon.config import load
from daemon.engine import Engine
from daemon.model import JoinLink
from daemon.reconcile import (
    END_MARK,
    START_MARK,
    Template,
    reconcile,
    strip_blocks,
    visible,
)

LINK = JoinLink("https://zoom.example/j/1234567890?pwd=abc", "1234567890")
TEMPLATE = Template("Join office hours on Zoom: {url}\nMeeting ID: {meeting_id}")
ADA, MARY = "Ada.Lovelace@Example.edu", "mary@example.edu"
# Google does not document a description limit; 8,192 characters is what integrators
# report (Nylas support: "Event Description Limits in Google Calendar and Microsoft
# Exchange"), and what the emulator enforces. Exchange: 32 KB for the whole item.
GOOGLE_LIMIT = 8192


def linked(description: str, limit: int | None = None) -> str:
    change = reconcile(description, "", LINK, None, TEMPLATE, limit)
    return change.description if change else description


def test_half_a_block_is_instructor_text() -> None:
    for half in (f"notes {START_MARK} more", f"{END_MARK} trailing"):
        result = linked(half)
        assert result.startswith(half) and result.count(LINK.url) == 1
        assert strip_blocks(result) == half


def test_two_blocks_become_one_and_the_text_between_stays() -> None:
    block = linked("")
    description = f"top\n\n{block}\nbetween\n\n{block}\nbottom"
    result = linked(description)
    assert result.count(START_MARK) == 1 and result.count(LINK.url) == 1
    assert strip_blocks(result) == "top\nbetween\nbottom"


def test_a_block_edited_by_hand_is_rewritten_and_the_rest_kept() -> None:
    description = linked("before") + "\nafter"
    tampered = description.replace("Join office hours", "JOIN (my note)")
    result = linked(tampered)
    assert result == description  # text typed inside the markers is the program's


def test_malformed_html_is_kept_as_is() -> None:
    broken = "<b>unclosed <i>tags <br <a href='x'>link"
    result = linked(broken)
    assert result.startswith(broken + "<br><br>" + START_MARK)


def test_description_at_the_provider_limit_gets_no_block() -> None:
    fits, full = "x" * (GOOGLE_LIMIT - 200), "x" * (GOOGLE_LIMIT - 50)
    assert linked(fits, GOOGLE_LIMIT).count(LINK.url) == 1
    change = reconcile(full, "", LINK, None, TEMPLATE, GOOGLE_LIMIT)
    assert change is not None and change.description == full and change.location == LINK.url


@pytest.fixture
def engine(sandbox: Sandbox) -> Iterator[Engine]:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    made = open_engine(load(sandbox.write_config()), sleep=lambda seconds: None)
    yield made
    made.close()


def sync_all(engine: Engine) -> None:
    assert [engine.sync(i).error for i in engine.config.instructors] == [None, None]


def test_odd_events_round_trip(engine: Engine, sandbox: Sandbox, now: datetime) -> None:
    """RTL and emoji text, zero-width title characters, no end, all-day, an organizer
    address in another case than the config's, a description near Google's limit."""
    owner = "ada.lovelace@example.edu"  # the config says Ada.Lovelace@Example.edu
    google = sandbox.google
    google.add_calendar(owner)
    texts = {
        "rtl": google.add_event(owner, summary="Office Hours", description="שלום! مرحبا 👋🏽",
                                start=at(now + HOUR), end=at(now + 2 * HOUR)),
        "zero-width": google.add_event(owner, summary="\u200bOffice\u200d Hours\ufeff",
                                       description="z", start=at(now + HOUR),
                                       end=at(now + 2 * HOUR)),
        "no-end": google.add_event(owner, summary="Office Hours", description="open end",
                                   start=at(now + 3 * HOUR), endTimeUnspecified=True),
        "all-day": google.add_event(owner, summary="Office Hours - all day", description="",
                                    start={"date": f"{now + timedelta(days=2):%Y-%m-%d}"},
                                    end={"date": f"{now + timedelta(days=3):%Y-%m-%d}"}),
        "long": google.add_event(owner, summary="Office Hours", description="é" * 8100,
                                 start=at(now + HOUR), end=at(now + 2 * HOUR)),
    }
    mary = sandbox.graph.add_event(MARY, now + HOUR, now + 2 * HOUR, subject="Office Hours ✨",
                                   body={"contentType": "text", "content": "مرحبا 🙂\u200f"})
    sandbox.google.owners.pop(ADA, None)  # only the lower-case calendar exists
    sandbox.google.events.pop(ADA, None)
    sync_all(engine)
    url = sandbox.zoom.user(ADA).join_url
    for name, event_id in texts.items():
        event = google.event(owner, event_id)
        if name == "long":
            assert event["description"] == "é" * 8100 and event["location"] == url
        else:
            assert event["description"].count(url) == 1, name
    assert google.event(owner, texts["rtl"])["description"].startswith("שלום! مرحبا 👋🏽\n\n")
    content = sandbox.graph.event(MARY, mary)["body"]["content"]
    # stored as Exchange renders it (a text body comes back HTML): the same to a reader
    assert visible(strip_blocks(content)) == "مرحبا 🙂\u200f" and content.count(
        sandbox.zoom.user(MARY).join_url) == 1
    writes = len(google.writes()) + len(sandbox.graph.writes())
    sync_all(engine)
    assert len(google.writes()) + len(sandbox.graph.writes()) == writes


pieces = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["<br>", "\n\n", "<p>", "</p>", "<html><body>", "</body></html>",
                     START_MARK, END_MARK, "#no-zoom", "https://us05web.zoom.us/j/8555555555",
                     "\u200b", "🙂", "مرحبا"]))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(description=st.lists(pieces, max_size=6).map("".join))
def test_generated_descriptions_survive_the_emulator_round_trip(
        engine: Engine, sandbox: Sandbox, now: datetime, description: str) -> None:
    event_id = sandbox.graph.add_event(MARY, now + HOUR, now + 2 * HOUR,
                                       subject="Office Hours",
                                       body={"contentType": "html", "content": description})
    (_, mary) = engine.config.instructors
    before = len(sandbox.graph.writes())
    assert engine.sync(mary).error is None
    after = sandbox.graph.event(MARY, event_id)["body"]["content"]
    # a body written is stored as Exchange renders it: the same to a reader
    written = exchange_rendering({"contentType": "html", "content": description})["content"]
    expected = written if len(sandbox.graph.writes()) > before else description
    assert visible(strip_blocks(after)) == visible(strip_blocks(expected))
    url = sandbox.zoom.user(MARY).join_url
    exact = re.compile(re.escape(url) + r"(?![A-Za-z0-9?&=#%/_\-])")  # not a longer URL
    if "#no-zoom" not in strip_blocks(description).casefold():
        own = len(exact.findall(strip_blocks(description)))
        assert len(exact.findall(after)) == max(1, own)
    writes = len(sandbox.graph.writes())
    assert engine.sync(mary).error is None
    assert len(sandbox.graph.writes()) == writes
