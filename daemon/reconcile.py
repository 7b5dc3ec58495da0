"""Pure decisions about one event: which description and location it should carry.

No I/O here. The program owns one delimited block in the description; everything else
is the instructor's and is kept byte for byte.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .model import JoinLink

START_MARK = "-- Zoom (added by officehours) --"
END_MARK = "-- end of Zoom --"
TEXT_SEPARATOR = "\n\n"
HTML_SEPARATOR = "<br><br>"

# the separator as written, or as Exchange gives it back (CR LF, <br/>, line ends after tags)
_SEPARATOR = r"\r?\n\r?\n|(?:<br\s*/?>[ \t]*\r?\n?){2}"
_BLOCK = re.compile(
    "(?P<sep>" + _SEPARATOR + ")?"
    + re.escape(START_MARK) + "(?:(?!" + re.escape(START_MARK) + ").)*?" + re.escape(END_MARK),
    re.DOTALL,
)
_HTML_TAG = re.compile(r"<(br|p|div|a|b|i|u|ul|ol|li|span|html|body|strong|em)\b[^>]*>", re.I)
# Characters that may continue a URL: a match followed by one of these is a longer URL.
_URL_CONTINUES = re.compile(r"[A-Za-z0-9?&=#%/_\-]")


@dataclass(frozen=True)
class Template:
    text: str
    opt_out_marker: str = "#no-zoom"
    name: str = ""


@dataclass(frozen=True)
class Change:
    description: str
    location: str
    owned_location: str | None  # the location the program now owns, to remember


def render_block(link: JoinLink, template: Template, as_html: bool) -> str:
    """The block's text; a link carries a passcode only when it belongs in the invite."""
    text = template.text
    if link.passcode and "{passcode}" not in text:
        text += "\nPasscode: {passcode}"
    body = text.format(
        url=link.url, meeting_id=link.display_id, passcode=link.passcode, name=template.name
    )
    lines = [START_MARK, *body.splitlines(), END_MARK]
    if as_html:
        return "<br>".join(html.escape(line, quote=False) for line in lines)
    return "\n".join(lines)


def is_html(text: str) -> bool:
    return bool(_HTML_TAG.search(text)) or "<table" in text.lower()


_HEAD = re.compile(r"<head\b.*?</head>", re.I | re.S)
_BREAKS = re.compile(r"<br\s*/?>|</(?:p|div|li|tr|h\d)>", re.I)
_TAGS = re.compile(r"</?[A-Za-z!?][^>]*>")  # a "<" before anything else is text (HTML)


def visible(text: str) -> str:
    """What a reader sees of a description: for HTML, the text without tags, entities
    read, each line break one; white space runs as one space. Two descriptions a vendor
    stores differently (Exchange re-renders HTML: API-NOTES.md "Edges") read the same."""
    if is_html(text):
        text = html.unescape(_TAGS.sub("", _BREAKS.sub("\n", _HEAD.sub("", text))))
    return " ".join(text.split())


def strip_blocks(description: str) -> str:
    """The instructor's text: the description without any block of ours (and its separator).

    Until nothing is left to strip: a block nested in another leaves, once taken out, an
    outer one that is a block too (found by hypothesis)."""
    while True:
        stripped = _BLOCK.sub("", description)
        if stripped == description:
            return stripped
        description = stripped


def contains_url(text: str, url: str) -> bool:
    """Whether `text` carries exactly this URL, not merely a longer one starting with it."""
    start = text.find(url)
    while start != -1:
        after = text[start + len(url) : start + len(url) + 1]
        if not after or not _URL_CONTINUES.match(after):
            return True
        start = text.find(url, start + 1)
    return False


def desired_description(description: str, link: JoinLink | None, template: Template) -> str:
    """The description as it should be: instructor text plus at most one block."""
    own_text = strip_blocks(description)
    wants_block = (
        link is not None
        and template.opt_out_marker.casefold() not in own_text.casefold()
        and not contains_url(own_text, link.url)
    )
    if not wants_block or link is None:
        return own_text
    block = render_block(link, template, as_html=is_html(own_text))
    match = _BLOCK.search(description)
    if match:  # replace in place, keeping its separator, and drop any further blocks
        head = description[: match.start()] + (match.group("sep") or "")
        return head + block + strip_blocks(description[match.end() :])
    if not description:
        return block
    if not is_html(description):  # text ending in a lone CR: a CR LF separator, which
        # strip_blocks takes out whole (found by hypothesis: "\r" + "\n\n" read as one)
        return description + ("\r\n\r\n" if description.endswith("\r") else
                              TEXT_SEPARATOR) + block
    body_end = description.lower().rfind("</body>")  # a whole HTML document (Outlook)
    if body_end == -1:
        return description + HTML_SEPARATOR + block
    return description[:body_end] + HTML_SEPARATOR + block + description[body_end:]


def reconcile(
    description: str,
    location: str,
    link: JoinLink | None,
    owned_location: str | None,
    template: Template,
    limit: int | None = None,
) -> Change | None:
    """What to write to one office-hours event, or None when it is already right.

    `link` None means: take out what the program wrote (offboarding).
    `owned_location` is the location the program last wrote to this event, if any.
    `limit` is the longest description the calendar accepts, in characters.
    """
    new_description = desired_description(description, link, template)
    if limit is not None and len(new_description) > max(limit, len(description)):
        new_description = description  # no room for the block: the location carries the URL
    if new_description != description and visible(new_description) == visible(description):
        new_description = description  # the same to a reader: as the vendor re-rendered it
    opted_out = template.opt_out_marker.casefold() in strip_blocks(description).casefold()
    current = location.strip()
    ours = not current or (owned_location is not None and current == owned_location.strip())
    if ours:  # empty, or still what we put there: the program may set it
        new_location = "" if link is None or opted_out else link.url
        if not current and not new_location:
            new_location = location  # leave whitespace-only locations byte for byte
    else:  # the instructor's own location
        new_location = location
    new_owned = new_location if ours and new_location.strip() else None
    if new_description == description and new_location == location:
        return None
    return Change(new_description, new_location, new_owned)
