"""Reconcile and matching: the pure rules of CONTRACT.md, by example and by property."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from daemon.model import JoinLink, is_office_hours
from daemon.reconcile import (
    END_MARK,
    START_MARK,
    Template,
    contains_url,
    reconcile,
    strip_blocks,
)

LINK = JoinLink("https://zoom.example/j/1234567890?pwd=abc", "1234567890")
NEW_LINK = JoinLink("https://zoom.example/j/1234567890?pwd=xyz", "1234567890", "n3w")
TEMPLATE = Template("Join office hours on Zoom: {url}\nMeeting ID: {meeting_id}")


def apply(description: str, location: str = "", link: JoinLink | None = LINK,
          owned: str | None = None) -> tuple[str, str, str | None]:
    change = reconcile(description, location, link, owned, TEMPLATE)
    if change is None:
        return description, location, owned
    return change.description, change.location, change.owned_location


def test_plain_text_gets_one_block_after_instructor_text() -> None:
    desc, loc, owned = apply("Bring your questions.")
    assert desc.startswith("Bring your questions.\n\n" + START_MARK)
    assert desc.endswith(END_MARK)
    assert desc.count(LINK.url) == 1
    assert "Meeting ID: 123 456 7890" in desc
    assert "s3cret" not in desc
    assert (loc, owned) == (LINK.url, LINK.url)


def test_empty_description_is_just_the_block() -> None:
    desc, _, _ = apply("")
    assert desc.startswith(START_MARK)


def test_html_description_gets_html_block() -> None:
    desc, _, _ = apply("Come by <b>room 4</b><br>Thanks")
    assert desc.startswith("Come by <b>room 4</b><br>Thanks<br><br>" + START_MARK + "<br>")
    assert "\n" not in desc
    assert desc.count(LINK.url) == 1


def test_html_document_gets_the_block_inside_body() -> None:
    document = '<html><head><meta charset="utf-8"></head><body><p>Come by</p>\r\n</body></html>'
    desc, _, _ = apply(document)
    assert desc.startswith('<html><head><meta charset="utf-8"></head><body><p>Come by</p>\r\n'
                           "<br><br>" + START_MARK)
    assert desc.endswith(END_MARK + "</body></html>")
    assert apply(desc, LINK.url, None, LINK.url)[0] == document


def test_second_pass_changes_nothing() -> None:
    desc, loc, owned = apply("Hi")
    assert reconcile(desc, loc, LINK, owned, TEMPLATE) is None


def test_link_change_replaces_block_in_place_and_updates_our_location() -> None:
    desc, loc, owned = apply("Top", "")
    desc = desc + "\nadded later by instructor"
    new_desc, new_loc, new_owned = apply(desc, loc, NEW_LINK, owned)
    assert LINK.url not in new_desc and new_desc.count(NEW_LINK.url) == 1
    assert new_desc.endswith("\nadded later by instructor")
    assert (new_loc, new_owned) == (NEW_LINK.url, NEW_LINK.url)


def test_instructor_location_is_theirs() -> None:
    _, loc, owned = apply("x", "Room 4")
    assert (loc, owned) == ("Room 4", None)
    # a URL the instructor typed (not ours) stays too, even after a link change
    _, loc, owned = apply("x", LINK.url, NEW_LINK, owned=None)
    assert loc == LINK.url


def test_no_block_when_instructor_text_has_the_url() -> None:
    desc, _, _ = apply(f"My room: {LINK.url} see you")
    assert START_MARK not in desc
    assert desc.count(LINK.url) == 1


def test_longer_url_in_instructor_text_is_not_ours() -> None:
    assert not contains_url(LINK.url + "9", LINK.url)
    assert contains_url(f"({LINK.url}).", LINK.url)
    desc, _, _ = apply(f"old: {LINK.url}9")
    assert START_MARK in desc


def test_block_restored_after_instructor_deletes_it() -> None:
    desc, loc, owned = apply("Hello")
    assert apply("Hello", loc, LINK, owned)[0] == desc


def test_opt_out_marker_removes_block_and_our_location() -> None:
    desc, loc, owned = apply("Hello")
    desc = desc.replace("Hello", "Hello #no-zoom this week")
    new_desc, new_loc, new_owned = apply(desc, loc, LINK, owned)
    assert new_desc == "Hello #no-zoom this week"
    assert (new_loc, new_owned) == ("", None)


def test_removing_links_restores_original() -> None:
    for original in ("", "Hello", "a<br>b"):
        desc, loc, owned = apply(original)
        assert apply(desc, loc, None, owned)[:2] == (original, "")


def test_passcode_only_when_it_belongs_in_the_invite() -> None:
    """The Zoom side leaves the passcode out of a link unless links.include_passcode
    (and the link itself) say it belongs in the invite."""
    with_code = JoinLink(LINK.url, LINK.meeting_id, "s3cret")
    change = reconcile("", "", with_code, None, TEMPLATE)
    assert change is not None and "Passcode: s3cret" in change.description
    change = reconcile("", "", LINK, None, TEMPLATE)
    assert change is not None and "Passcode" not in change.description


def test_matching_rules() -> None:
    titles = ("Office Hours",)
    for title in ("Office Hours", " office hours ", "Office Hours - CS 101",
                  "office hours (room 4)", "Office\u200b Hours", "OFFICE HOURS:",
                  "Office\u00a0Hours", "Office \u00a0\t Hours", "Office\u2003Hours - CS 101",
                  "\u00a0Office Hours\u3000"):
        assert is_office_hours(title, titles), title
    for title in ("Office Hoursday", "My Office Hours", "Office", "", "Office Hours2",
                  "Office\u00a0Hoursday", "OfficeHours"):
        assert not is_office_hours(title, titles), title
    assert is_office_hours("Student hours", ("Office Hours", "Student Hours"))
    assert is_office_hours("Office Hours", ("Office\u00a0 Hours",))  # the config's own title


# --- properties ---

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
fragments = st.lists(
    st.one_of(text, st.sampled_from(["<br>", "\n\n", "<b>", LINK.url, START_MARK, END_MARK,
                                     "#no-zoom", "https://zoom.example/j/1"])),
    max_size=8,
).map("".join)


@given(fragments, st.sampled_from(["", "Room 4", LINK.url]))
@example("\r", "")  # a lone CR before the separator read as part of it (hypothesis found)
def test_reconcile_is_idempotent_and_keeps_instructor_text(description: str, location: str) -> None:
    desc, loc, owned = apply(description, location)
    assert reconcile(desc, loc, LINK, owned, TEMPLATE) is None
    assert strip_blocks(desc) == strip_blocks(description)


@given(fragments)
def test_url_offered_exactly_once_unless_opted_out(description: str) -> None:
    desc, _, _ = apply(description)
    own = strip_blocks(description)
    if "#no-zoom" in own.casefold():
        assert desc == own  # opted out: only the instructor's text remains
    elif LINK.url not in own:
        assert desc.count(LINK.url) == 1


def test_nested_blocks_are_all_taken_out_at_once() -> None:
    """Regression (hypothesis): a block inside a block left, once the inner one was taken
    out, an outer block, so a second pass changed the event again."""
    nested = ("#NO-ZOOM-- Zoom (added by officehours) ---- Zoom (added by officehours) ---- "
              "end of Zoom ---- end of Zoom --")
    change = reconcile(nested, "", LINK, None, TEMPLATE)
    assert change is not None and change.description == "#NO-ZOOM"
    assert reconcile(change.description, change.location, LINK, None, TEMPLATE) is None
