"""`officehours doctor`: live checks of everything a pass needs, each with its fix.

Reads only: no event and no Zoom setting is written (with [push], one Graph
subscription is made and deleted, for Graph to validate public_url).
"""

from __future__ import annotations

import random
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .config import Config
from .engine import Engine
from .errors import (
    UNLOCK,
    ZOOM_MISSING_SCOPE,
    CalendarError,
    ZoomCredentialsRefused,
    ZoomError,
    fix,
)
from .model import Instructor
from .roster import RosterError, read_sources
from .store import StateError
from .zoom.policy import describe_meets, meets

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    outcome: str  # ok, warn or FAIL
    subject: str
    detail: str
    fix: str = ""


def _attempt(subject: str, action: Callable[[], str], provider: str = "",
             zoom_user: str = "") -> Check:
    try:
        return Check(OK, subject, action())
    except (CalendarError, ZoomError) as err:
        return Check(FAIL, subject, str(err), fix(err, provider, zoom_user))


def checks(config: Config, engine: Engine, sample: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> Iterator[Check]:
    """Every check, in order; the instructors are those of [[instructors]] and every
    roster member (or `sample` of them, drawn at random); `progress(done, total)` is
    called as each instructor's checks end."""
    members: tuple[Instructor, ...] = ()
    roster_check = None
    if config.roster is not None:
        roster_check, members = _roster_check(config, engine)
    listed = {i.key for i in config.instructors}
    people = [*config.instructors, *(m for m in members if m.key not in listed)]
    counts = {p: sum(i.provider == p for i in people) for p in ("google", "microsoft")}
    yield Check(OK, "configuration", f"{config.path}: {len(people)} instructor(s) "
                f"(google {counts['google']}, microsoft {counts['microsoft']}; "
                f"{len(config.instructors)} in [[instructors]], "
                f"{len(people) - len(config.instructors)} more from the roster)")
    for key, path in config.secret_files():
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            yield Check(WARN, key, f"{path} is readable by its group (mode {mode & 0o777:o})",
                        f"chmod 600 {path}")
        else:
            yield Check(OK, key, f"{path} readable, private (mode {mode & 0o777:o})")

    if config.state is not None:
        yield _state_check(config)
    locks: set[str] | None = None
    try:
        locks = engine.zoom.account_locks()
        yield Check(OK, "Zoom app", "credentials accepted; settings locked by the account: "
                    f"{', '.join(sorted(locks)) or 'none'}")
    except ZoomCredentialsRefused as err:
        yield Check(FAIL, "Zoom app", str(err), fix(err))
    except ZoomError as err:
        locks = set()
        scope = err.code == ZOOM_MISSING_SCOPE or err.status in (401, 403)
        yield Check(WARN, "Zoom app", f"cannot read the account's locked settings: {err}",
                    "add the scope account:read:admin to the Zoom app to check them"
                    if scope else fix(err))
    if config.zoom.events:
        yield _events_check(config, engine)
    if config.push is not None:
        yield from _push_checks(config, engine)
    if roster_check is not None:
        yield roster_check
    if sample is not None and sample < len(people):
        yield Check(OK, "sample", f"{sample} of {len(people)} instructors, drawn at random "
                    "(without --sample: every one)")
        people = random.sample(people, sample)
    for done, instructor in enumerate(people, 1):
        yield from _instructor_checks(instructor, engine, locks)
        if progress is not None:
            progress(done, len(people))


def _events_check(config: Config, engine: Engine) -> Check:
    """[zoom] events: the subscription connects and answers a heartbeat."""
    from .http import https_proxy, ssl_context
    from .zoom.events import WATCHED, probe

    zoom = config.zoom
    try:
        return Check(OK, "Zoom events", probe(
            zoom.events_url, zoom.events_subscription_id or "", engine.zoom.access_token(),
            ssl_context(config.service.ca_bundle), https_proxy()))
    except ZoomError as err:
        return Check(FAIL, "Zoom events", str(err), "in the Zoom Marketplace, the app's "
                     "Features -> Event Subscriptions: method WebSocket, the events "
                     f"{', '.join(WATCHED)}; then zoom.events_subscription_id = its ID and "
                     "zoom.events_url = the endpoint it shows (README: Zoom events)")


def _push_checks(config: Config, engine: Engine) -> Iterator[Check]:
    """[push]: public_url reaches a receiver (this host's `listen`, started here for the
    check when the service is not running): a validation request sent to it as Graph sends
    one comes back; then, with Microsoft instructors, Graph itself validates it (one
    subscription made and deleted at once)."""
    from .http import Outbound
    from .receiver import Notifications, Receiver

    assert config.push is not None
    push = config.push
    own: Receiver | None = None
    try:
        own = Receiver(Notifications(push.public_url, lambda _: None, lambda *_: None),
                       push.listen)
        own.start()
    except OSError:  # in use: the service's receiver, presumably (the round trip says)
        own = None
    try:
        with Outbound(config.service.ca_bundle, timeout=10).httpx(
                "push", push.public_url) as http:
            yield _round_trip(http, push.public_url, push.listen)
        microsoft = next((i for i in config.instructors if i.provider == "microsoft"), None)
        if microsoft is not None:
            yield _attempt("push: Graph", lambda: _graph_validates(engine, microsoft,
                                                                  push.public_url),
                           "microsoft")
    finally:
        if own is not None:
            own.stop()


def _round_trip(http: Any, public_url: str, listen: str) -> Check:
    token = f"officehours-doctor-{random.getrandbits(64):016x}"
    subject = "push: public_url"
    where = f"{public_url}/graph"
    proxy = (f"an HTTPS reverse proxy at {public_url} passing the path on to {listen} "
             "(README: Push), and the firewall open to it")
    try:
        answer = http.post(where, params={"validationToken": token})
    except Exception as err:  # noqa: BLE001 - any failure to connect is the finding
        return Check(FAIL, subject, f"{where} cannot be reached: {str(err)[:200]}", proxy)
    if answer.status_code != 200 or answer.text != token:
        return Check(FAIL, subject, f"{where} answered HTTP {answer.status_code}, not this "
                     "program's echo of a validation request", proxy)
    return Check(OK, subject, f"{where} reaches the receiver (a validation request echoed)")


def _graph_validates(engine: Engine, instructor: Instructor, public_url: str) -> str:
    """A subscription for 45 minutes (Graph's shortest), deleted at once: Graph's own
    validation of both URLs."""
    from datetime import timedelta

    from .runtime.push import address

    calendar = engine.calendar(instructor)
    channel = calendar.watch(address(public_url, "microsoft"),
                             f"doctor-{random.getrandbits(64):016x}",
                             engine.clock() + timedelta(minutes=45), "")
    calendar.unwatch(channel)
    return "Graph validated public_url (a subscription made and deleted)"


def _state_check(config: Config) -> Check:
    """The shared database: reachable with its password (and TLS), who leads."""
    from .app import open_shared

    assert config.state is not None
    try:
        shared = open_shared(config, read_only=True)
    except StateError as err:
        return Check(FAIL, "state database", str(err),
                     "check [state] url, state.password_file and the database's pg_hba.conf")
    try:
        found = shared.leader() if shared.schema_version else None
    finally:
        shared.close()
    if found is None:
        return Check(OK, "state database", "reachable; no node has led yet")
    node, epoch, since = found.node, found.epoch, found.since
    if not found.live:
        return Check(WARN, "state database", f"reachable; NO NODE LEADS: the lease of {node} "
                     f"(epoch {epoch}) ran out", "start officehours on a node: "
                     "systemctl start officehours")
    return Check(OK, "state database", f"reachable; {node} leads since {since} (epoch {epoch})")


def _roster_check(config: Config, engine: Engine) -> tuple[Check, tuple[Instructor, ...]]:
    """Each roster source read once (nothing applied); the members read."""
    assert config.roster is not None
    try:
        members = read_sources(config.roster, getattr(engine.provider, "group_users", None))
    except RosterError as err:
        return Check(FAIL, "roster", str(err),
                     "check roster.csv_file, or the app's GroupMember.Read.All permission "
                     "and roster.entra_group_id"), ()
    if not members:
        return Check(FAIL, "roster", "the roster lists nobody: a read would be held",
                     "check the roster's source"), ()
    return Check(OK, "roster", f"{len(members)} member(s) read"), members


def _instructor_checks(instructor: Instructor, engine: Engine,
                       locks: set[str] | None) -> Iterator[Check]:
    who = f"{instructor.name} <{instructor.email}>"

    def calendar_access() -> str:
        return f"{instructor.provider} calendar {instructor.calendar_id!r} " \
               f"{engine.calendar(instructor).access()}"

    yield _attempt(f"{who} calendar", calendar_access, instructor.provider)
    if locks is None:
        return
    user = instructor.zoom_user
    try:
        pmi = engine.zoom.pmi_state(user)
    except ZoomError as err:
        yield Check(FAIL, f"{who} Zoom", str(err), fix(err, zoom_user=user))
        return
    found = meets(pmi, engine.config.links.include_passcode)
    yield Check(OK, f"{who} Zoom", f"user found, PMI {pmi.link('auto').display_id}, "
                f"{pmi.describe()}; students meet: {describe_meets(found)}")
    blocked = [name for name in pmi.lacking() if name in locks]
    if blocked:
        yield Check(FAIL, f"{who} Zoom", f"{', '.join(blocked)} must change but is locked by "
                    "the account", UNLOCK)
    if not found["passcode_in_invite"] and not found["link_carries_passcode"]:
        yield Check(WARN, f"{who} Zoom", "the join link does not carry the passcode and "
                    "links.include_passcode = false: students with the invite are asked for a "
                    "passcode it does not give",
                    'set links.include_passcode = "auto", or turn on "Embed passcode in invite '
                    'link" in the Zoom account')


def run(config: Config, engine: Engine, out: Callable[[str], None] = print,
        sample: int | None = None) -> int:
    failures = 0
    progress = None
    if sys.stderr.isatty():  # a line that counts, rewritten in place, gone at the end
        def progress(done: int, total: int) -> None:
            sys.stderr.write(f"\rchecked {done} of {total} instructors" if done < total
                             else "\r\033[K")
            sys.stderr.flush()

    for check in checks(config, engine, sample, progress):
        out(f"{check.outcome:<5} {check.subject}: {check.detail}")
        if check.fix:
            out(f"      fix: {check.fix}")
        failures += check.outcome == FAIL
    out(f"{failures} problem(s) found." if failures else "All checks passed.")
    return 1 if failures else 0
