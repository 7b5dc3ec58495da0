"""Instructors from a roster (a CSV file the student information system exports) beside
the configuration's own list, and the rule that no read ever mass-offboards by accident.

A read that fails, is empty, or drops more than `max_drop_percent` of the members the
last applied read gave is held: the previous roster stays in force until an admin
accepts it (`officehours roster --accept`). Members who left are served through
`leave_grace_hours`, then offboarded as remove-links does; one who comes back is served
again.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .config import Config, RosterConfig, entry
from .errors import VendorError, explain
from .model import Instructor, same_person
from .store import Store
from .values import email_address

COLUMNS = ("name", "email", "provider", "calendar_id", "zoom_user")
REQUIRED = ("name", "email", "provider")
ADD_FLOOR = 10  # a read adding at most this many people is applied whatever the share
SOURCE = "roster"  # how the state says who offboarded a member: this module


class RosterError(Exception):
    """The roster cannot be read; the message names the file and the row."""


def read_csv(path: Path) -> tuple[Instructor, ...]:
    """The members a CSV roster lists (header names without regard to case; a UTF-8 BOM
    and extra columns ignored), each checked as an [[instructors]] entry is. Every bad row
    is named in one RosterError, with its line (the header is line 1) and the reason."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise RosterError(f"{path} cannot be read: {err}") from None
    if not text.strip():
        raise RosterError(f"{path} is empty: a header row (name, email, provider) and a row "
                          "per instructor")
    rows = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = {(name or "").strip().lower(): name for name in rows.fieldnames or []}
    except csv.Error as err:
        raise RosterError(f"{path} line 1: {err}") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise RosterError(f"{path}: the header row lacks {', '.join(missing)}")
    members: dict[str, Instructor] = {}
    problems: list[str] = []
    try:
        for row in rows:
            number = rows.line_num
            fields = {c: (row.get(header[c]) or "").strip() for c in COLUMNS if c in header}
            member, bad = entry({c: v for c, v in fields.items() if v or c in REQUIRED})
            if member is None:
                problems.append(f"line {number}: {'; '.join(bad)}")
                continue
            if member.key in members:
                problems.append(f"line {number}: {member.email} is listed twice")
                continue
            members[member.key] = member
    except csv.Error as err:  # an unclosed quote runs to the end of the file
        problems.append(f"line {rows.line_num}: {err} (a quote opened and never closed?)")
    if problems:
        raise RosterError(f"{path}: {len(problems)} bad row(s): {'; '.join(problems)}")
    return tuple(members.values())


GroupReader = Callable[[str], list[dict[str, str]]]  # group id -> its users (Graph)


class CachedGroups:
    """A group's members read at most every `roster.refresh_minutes` by the service: a
    5,000-member group costs its pages once per interval, not once per pass."""

    def __init__(self, read: GroupReader, minutes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self._ttl, self._clock = read, minutes * 60.0, clock
        self._cache: dict[str, tuple[float, list[dict[str, str]]]] = {}

    def __call__(self, group_id: str) -> list[dict[str, str]]:
        cached = self._cache.get(group_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        users = self._read(group_id)  # a failed read is not cached: tried again next pass
        self._cache[group_id] = (self._clock() + self._ttl, users)
        return users


def read_sources(roster: RosterConfig, groups: GroupReader | None) -> tuple[Instructor, ...]:
    """Every source's members, once each by address; raises RosterError for a source that
    cannot be read, or the same person with other settings in two sources."""
    found: dict[str, tuple[Instructor, str]] = {}

    def take(members: tuple[Instructor, ...], source: str) -> None:
        for member in members:
            other = found.get(member.key)
            if other is not None and _settings(other[0]) != _settings(member):
                raise RosterError(f"{member.email} is in {other[1]} and in {source} with "
                                  "other settings")
            found.setdefault(member.key, (member, source))

    if roster.csv_file is not None:
        take(read_csv(roster.csv_file), str(roster.csv_file))
    for kind, group, provider in (("entra", roster.entra_group_id, roster.entra_group_provider),
                                  ("google", roster.google_group, roster.google_group_provider)):
        if group is None:
            continue
        where = f"{'Entra group' if kind == 'entra' else 'Google Group'} {group}"
        if groups is None:
            raise RosterError(f"the {where} cannot be read without its app")
        try:
            users = groups(f"{kind}:{group}")
        except VendorError as err:
            vendor = "microsoft" if kind == "entra" else "google"
            raise RosterError(f"{where}: {explain(err, vendor)}") from None
        take(_members(users, where, kind, provider), where)
    return tuple(member for member, _ in found.values())


def _members(users: list[dict[str, Any]], where: str, kind: str,
             provider: str) -> tuple[Instructor, ...]:
    """A group's users as instructors; one without a usable address holds the read.

    Graph returns a member the app may not read with only `id` and `@odata.type`
    (learn.microsoft.com/graph/permissions-overview, "limited information returned for
    inaccessible member objects"): skipping them would offboard real people."""
    found, blank = [], 0
    for user in users:
        address = user.get("mail") or user.get("userPrincipalName") if isinstance(
            user, dict) else None
        try:
            email = email_address(address) if isinstance(address, str) else None
        except ValueError:
            email = None
        if email is None:
            blank += 1
            continue
        name = user.get("displayName")
        found.append(Instructor(name=name if isinstance(name, str) and name.strip()
                                else email, email=email, provider=provider,
                                calendar_id="primary", zoom_user=email))
    if blank:
        grant = ("grant the app User.ReadBasic.All (Graph, application) so that it may read "
                 "the members' addresses" if kind == "entra" else
                 "check that the group's members are users with addresses")
        raise RosterError(f"{where}: {blank} of {len(users)} members came without a usable "
                          f"address; {grant}")
    return tuple(found)


SETTINGS = ("provider", "calendar_id", "zoom_user")  # one instructor, whatever the source


def _settings(member: Instructor) -> tuple[str, ...]:
    """SETTINGS of a member as compared: the Zoom user's address without regard to case."""
    return (member.provider, member.calendar_id, _same(member.zoom_user))


def problems(config: Config) -> list[str]:
    """What check-config says of the roster's CSV, with no network: its file and rows,
    conflicts with [[instructors]], and providers whose section is missing."""
    if config.roster is None or config.roster.csv_file is None:
        return []
    where = f"{config.path}: roster.csv_file"
    held = " (`run` holds such a read: the roster last applied stays in force)"
    try:
        members = read_csv(config.roster.csv_file)
    except RosterError as err:
        return [f"{where}: {err}{held}"]
    found = [f"{where}: {p}{held}" for p in conflicts(config.instructors, members)
             + shared_rooms([*config.instructors, *members])]
    sections = {"google": config.google, "microsoft": config.microsoft}
    for provider in sorted({m.provider for m in members if sections[m.provider] is None}):
        found.append(f"{config.path}: {provider}: missing section: a roster member has "
                     f"provider = {provider!r} (`run` fails their passes)")
    if not members:
        found.append(f"{where}: {config.roster.csv_file} lists nobody{held}")
    return found


def file_verdict(config: Config, store: Store | None) -> tuple[int, str | None]:
    """What `run` would do with the roster file as it reads now, against the roster last
    applied (`store`: the state, read-only; None before any pass): the members it
    gives, and why the read would be held (None: applied). Only for a roster that is a
    file alone (a group is read with the network: doctor and `roster` do it)."""
    assert config.roster is not None
    from .store.sqlite import State

    empty = store is None
    store = State(":memory:") if store is None else store  # before any pass: nobody yet
    try:
        members, change = compare(store, config.roster, config.instructors)
    finally:
        if empty:
            store.close()
    return len(members or ()), change.held


def conflicts(listed: tuple[Instructor, ...] | list[Instructor],
              members: tuple[Instructor, ...]) -> list[str]:
    """The same address in [[instructors]] and the roster with other settings."""
    by_key = {i.key: i for i in listed}
    found = []
    for member in members:
        other = by_key.get(member.key)
        if other is None:
            continue
        differ = [name for name, mine, theirs in zip(
            SETTINGS, _settings(other), _settings(member), strict=True) if mine != theirs]
        if differ:
            found.append(f"{member.email} is in [[instructors]] and in the roster with a "
                         f"different {', '.join(differ)}")
    return found


def _same(value: str) -> str:
    """Addresses compare as one person (config.same_person); ids as written."""
    return same_person(value)


@dataclass(frozen=True)
class Serving:
    """Who a pass serves, who is due to be offboarded, and a held read, if any."""

    instructors: list[Instructor]
    leaving: list[Instructor]  # grace over: offboard as remove-links does
    held: str | None = None


@dataclass(frozen=True)
class Change:
    joins: list[str]
    leaves: list[str]
    held: str | None  # why the read would not be applied; None: it would


def compare(store: Store, roster: RosterConfig, extra: tuple[Instructor, ...],
            groups: GroupReader | None = None,
            ) -> tuple[tuple[Instructor, ...] | None, Change]:
    """The roster as read now, and what applying it would change (nothing is written)."""
    current = {k for k, (_, left) in store.roster().items() if left is None}
    try:
        members = read_sources(roster, groups)
    except RosterError as err:
        return None, Change([], [], f"the roster cannot be read: {err}")
    problems = conflicts(extra, members) + shared_rooms([*extra, *members])
    keys = {m.key for m in members}
    change = Change(sorted(keys - current), sorted(current - keys), None)
    if problems:
        return members, Change(change.joins, change.leaves, "; ".join(problems))
    if not members:
        return members, Change(change.joins, change.leaves, "the roster is empty")
    if current and len(change.leaves) * 100 > roster.max_drop_percent * len(current):
        return members, Change(change.joins, change.leaves, (
            f"the roster drops {len(change.leaves)} of {len(current)} members at once "
            f"(more than roster.max_drop_percent = {roster.max_drop_percent:g}%)"))
    if current and len(change.joins) > ADD_FLOOR and \
            len(change.joins) * 100 > roster.max_add_percent * len(current):
        return members, Change(change.joins, change.leaves, (
            f"the roster adds {len(change.joins)} people to {len(current)} members at once "
            f"(more than roster.max_add_percent = {roster.max_add_percent:g}%: a source "
            "switched to a far larger group?)"))
    return members, change


def shared_rooms(people: list[Instructor]) -> list[str]:
    """Two instructors with one Zoom user: one class's invites would carry the other's
    room. Each pair named once."""
    first: dict[str, Instructor] = {}
    found = []
    for person in people:
        other = first.setdefault(same_person(person.zoom_user), person)
        if other.key != person.key:
            found.append(f"{person.email} and {other.email} have the same Zoom user "
                         f"{person.zoom_user}")
    return found


def serving(config: Config, store: Store, now: datetime, accept: bool = False,
            groups: GroupReader | None = None) -> Serving:
    """Read the roster, apply it unless it must be held (or `accept`), and say whom a pass
    serves: the configuration's instructors and the roster's members, once each."""
    if config.roster is None:
        return Serving(list(config.instructors), [])
    members, change = compare(store, config.roster, config.instructors, groups)
    if members is not None and (change.held is None or accept):
        store.apply_roster([asdict(m) for m in members], now)
        store.hold(None, now)
    elif change.held is not None:
        store.hold(change.held, now)
    grace = timedelta(hours=config.roster.leave_grace_hours)
    listed = {i.key for i in config.instructors}
    serve, leaving = list(config.instructors), []
    for key, (served_as, left) in sorted(store.roster().items()):
        if key in listed:
            continue
        member = Instructor(**served_as)
        if left is None or now < datetime.fromisoformat(left) + grace:
            serve.append(member)
        elif not store.is_offboarded(key):
            leaving.append(member)
    held = store.held()
    return Serving(serve, leaving, held[0] if held else None)
