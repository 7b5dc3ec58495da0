"""The PMI security policy, pure: what a student meets, what "secure" lacks, the repair.

No I/O here; `client.py` reads Zoom, applies the repair and reads it back
("secure" as ../shared/CONTRACT.md, "What a pass does", defines it).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..model import JoinLink
from ..values import PasscodePolicy


@dataclass(frozen=True)
class PmiState:
    """What a student meets when joining the PMI, from the two places that decide it.

    The user's settings say whether PMI meetings require a passcode; the PMI meeting
    itself (GET /meetings/{pmi}) holds the passcode and its own waiting room, which
    follows the user's default only until someone edits the Personal Room
    (../shared/API-NOTES.md, "The PMI meeting has a waiting room of its own")."""

    require_password_for_pmi_meetings: str  # user setting: "all", "jbh_only" or "none"
    passcode: str  # the PMI meeting's `password`
    waiting_room: bool  # the PMI meeting's `settings.waiting_room`
    url: str  # the user's `personal_meeting_url`, with `pwd=` when the account embeds it
    meeting_id: str
    password_requirement: dict[str, Any] = field(default_factory=dict)

    def lacking(self) -> list[str]:
        """Names of what 'secure' lacks, empty when secure."""
        missing = []
        if self.require_password_for_pmi_meetings != "all":
            missing.append("require_password_for_pmi_meetings")
        if not self.passcode:
            missing.append("password")
        if not self.waiting_room:
            missing.append("waiting_room")
        return missing

    def describe(self) -> str:
        lacking = self.lacking()
        return "secure" if not lacking else "insecure (" + ", ".join(lacking) + ")"

    @property
    def link_carries_passcode(self) -> bool:
        return carries_passcode(self.url)

    def link(self, policy: PasscodePolicy) -> JoinLink:
        """The link for invites: with the passcode when `policy` says it belongs there."""
        shown = passcode_in_invite(policy, self.url)
        return JoinLink(self.url, self.meeting_id, self.passcode if shown else "")


def carries_passcode(url: str) -> bool:
    """Whether a join URL lets a student in without typing the passcode."""
    return "pwd" in parse_qs(urlsplit(url).query)


def passcode_in_invite(policy: PasscodePolicy, url: str) -> bool:
    """links.include_passcode: "auto" gives it exactly when the link does not carry it."""
    return policy is True or (policy == "auto" and not carries_passcode(url))


def meets(state: PmiState, policy: PasscodePolicy) -> dict[str, bool]:
    """What a student meets at this PMI, as `status` and `doctor` show it."""
    return {"passcode_required": state.require_password_for_pmi_meetings == "all",
            "passcode_set": bool(state.passcode), "waiting_room": state.waiting_room,
            "link_carries_passcode": state.link_carries_passcode,
            "passcode_in_invite": passcode_in_invite(policy, state.url)}


def describe_meets(found: dict[str, bool]) -> str:
    """A short phrase for a person, from `meets`: what a student meets at the PMI."""
    if not (found.get("passcode_required") and found.get("passcode_set")):
        passcode = "NO PASSCODE"
    elif found.get("link_carries_passcode"):
        passcode = "passcode (in link)"
    elif found.get("passcode_in_invite"):
        passcode = "passcode (in invite)"
    else:
        passcode = "passcode (NOT in invite)"
    room = "waiting room" if found.get("waiting_room") else "NO WAITING ROOM"
    return f"{passcode}, {room}"


@dataclass(frozen=True)
class Repair:
    """What to PATCH, each through the endpoint that owns the setting; None: nothing."""

    settings: dict[str, Any] | None  # PATCH /users/{user}/settings
    meeting: dict[str, Any] | None  # PATCH /meetings/{pmi}


def missing_security(
    state: PmiState, new_passcode: Callable[[dict[str, Any]], str]
) -> Repair | None:
    """The PATCHes that make the PMI secure, or None when it already is.

    Never a PATCH for what is already right: Zoom allows a meeting 100 updates a day."""
    lacking = state.lacking()
    if not lacking:
        return None
    settings = None
    if "require_password_for_pmi_meetings" in lacking:
        settings = {"schedule_meeting": {"require_password_for_pmi_meetings": "all"}}
    meeting: dict[str, Any] = {}
    if "password" in lacking:
        meeting["password"] = new_passcode(state.password_requirement)
    if "waiting_room" in lacking:
        meeting["settings"] = {"waiting_room": True}
    return Repair(settings, meeting or None)


def random_passcode(requirement: dict[str, Any], rng: secrets.SystemRandom | None = None) -> str:
    """A random passcode that meets the account's rules (Zoom allows at most 10 characters)."""
    rng = rng or secrets.SystemRandom()
    length = min(max(int(requirement.get("length") or 0), 8), 10)
    if requirement.get("only_allow_numeric"):
        pools = [string.digits]
    else:
        pools = [string.ascii_lowercase, string.ascii_uppercase, string.digits]
        if requirement.get("have_special_character"):
            pools.append("@-_*")
    run_limit = int(requirement.get("consecutive_characters_length") or 0)
    alphabet = "".join(pools)
    while True:
        chars = [rng.choice(pool) for pool in pools]
        chars += [rng.choice(alphabet) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        code = "".join(chars)
        if not run_limit or not _has_run(code, run_limit):
            return code


def _has_run(code: str, limit: int) -> bool:
    """Whether `code` holds `limit` identical or consecutive characters in a row."""
    for i in range(len(code) - limit + 1):
        window = [ord(c) for c in code[i : i + limit]]
        steps = {b - a for a, b in zip(window, window[1:], strict=False)}
        if steps in ({0}, {1}, {-1}):
            return True
    return False
