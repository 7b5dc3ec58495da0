"""Wiring: from a Config to a ready Engine (secrets read, clients built, providers chosen)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from . import metrics
from .calendars.base import CalendarProvider, FencedCalendar
from .calendars.entra import GraphApp, group_users
from .calendars.google import GoogleAccount, GoogleCalendar, load_credentials
from .calendars.microsoft import OutlookCalendar
from .config import Config, ConfigError
from .engine import Engine
from .environment import resolve_credential
from .errors import CalendarError
from .http import Outbound
from .model import Instructor
from .store import Fence, Fenced, StateError
from .store.sql import SqlStore
from .store.sqlite import OFFBOARDED, State

if TYPE_CHECKING:
    from .store.postgres import PostgresState
from .zoom.client import ZoomClient

log = logging.getLogger(__name__)
PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def guard_secrets() -> None:
    """This process is about to hold the vendors' secrets and access tokens: no core dump
    of it (RLIMIT_CORE 0; the unit also sets LimitCORE=0) and not dumpable, so that a crash,
    a core_pattern pipe or another process of the same user cannot read them out of its
    memory (prctl(2) PR_SET_DUMPABLE: no core, no ptrace, /proc/PID/mem closed)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the rlimit is what is
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def read_secret(path: Any, key: str) -> str:
    guard_secrets()
    try:
        secret = path.read_text().strip()
    except OSError as err:
        raise ConfigError([f"{key}: {path} cannot be read: {err.strerror}"]) from None
    if not secret:
        raise ConfigError([f"{key}: {path} is empty"])
    return str(secret)


def outbound_for(config: Config, sleep: Callable[[float], None] = time.sleep) -> Outbound:
    """How this configuration reaches the vendors: trust, timeout, retries' waits, paging."""
    service = config.service
    return Outbound(service.ca_bundle, float(service.http_timeout_seconds), sleep,
                    service.max_pages, observe=metrics.answered)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Providers:
    """Makes each instructor's calendar provider; shares what can be shared per vendor."""

    def __init__(self, config: Config, outbound: Outbound, fence: Fence | None = None) -> None:
        guard_secrets()  # the Google key and the Graph secret are read below
        self._config, self._fence = config, fence
        self._sleep = outbound.sleep
        # a roster may bring instructors of any provider whose section is configured
        used = ({i.provider for i in config.instructors} if config.roster is None
                else {"google", "microsoft"})
        self._google: GoogleAccount | None = None
        self._graph: tuple[GraphApp, httpx.Client] | None = None
        try:
            if config.google is not None and "google" in used:
                self._google = GoogleAccount(
                    config.google, load_credentials(config.google.credentials_file), outbound,
                    directory_url=config.roster.google_directory_url if config.roster else "")
            if config.microsoft is not None and "microsoft" in used:
                self._graph = (GraphApp(config.microsoft, outbound),
                               outbound.httpx("microsoft", config.microsoft.graph_base_url))
        except (ValueError, OSError, CalendarError) as err:
            raise ConfigError([f"{config.path}: credentials: {err}"]) from None

    def __call__(self, instructor: Instructor) -> CalendarProvider:
        """The instructor's calendar; its writes fenced when the node has a fence."""
        calendar = self._calendar(instructor)
        return calendar if self._fence is None else FencedCalendar(calendar, self._fence)

    def _calendar(self, instructor: Instructor) -> CalendarProvider:
        config = self._config
        if instructor.provider == "google" and self._google:
            return GoogleCalendar(self._google, instructor, self._sleep)
        if instructor.provider == "microsoft" and config.microsoft and self._graph:
            return OutlookCalendar(config.microsoft, self._graph[0], self._graph[1], instructor,
                                   sleep=self._sleep)
        raise CalendarError(f"no {instructor.provider} section in the configuration")

    def group_users(self, source: str) -> list[dict[str, str]]:
        """The users of a roster group: "entra:<object id>" through the Outlook app, or
        "google:<group address>" through the Google service account."""
        kind, _, group = source.partition(":")
        roster = self._config.roster
        if kind == "google" and self._google is not None and roster is not None \
                and roster.google_group_admin:
            return self._google.group_members(roster.google_directory_url,
                                              roster.google_group_admin, group, self._sleep)
        if kind == "entra" and self._graph is not None and self._config.microsoft:
            return group_users(self._graph[0], self._graph[1],
                               self._config.microsoft.graph_base_url, group, self._sleep)
        raise CalendarError(f"the roster group {source} has no app configured to read it")

    def close(self) -> None:
        if self._google:
            self._google.close()
        if self._graph:
            self._graph[1].close()


def state_dsn(config: Config, application: str = "officehours") -> str:
    """How to reach the [state] database: the URL, the password from its file (resolved
    like every secret file: a credential name under $CREDENTIALS_DIRECTORY), TLS roots."""
    from .store.postgres import conninfo_for

    assert config.state is not None
    password = None
    if config.state.password_file is not None:
        try:
            path = resolve_credential(config.state.password_file)
        except ValueError as err:
            raise ConfigError([f"{config.path}: state.password_file: {err}"]) from None
        password = read_secret(path, "state.password_file")
    return conninfo_for(config.state.url, password, config.service.ca_bundle, application,
                        config.state.lease_seconds)


def open_shared(config: Config, fence: Fence | None = None,
                read_only: bool = False) -> PostgresState:
    """The [state] database. Without a `fence` (an admin command), writes are fenced by
    the epoch in force now: a failover while the command runs refuses its writes."""
    from .leader import FixedEpoch
    from .store.postgres import PostgresState

    store = PostgresState(state_dsn(config), fence=fence, read_only=read_only)
    if fence is None and not read_only:
        store.fence = FixedEpoch(store.current_epoch())
    return store


def open_state(config: Config, fence: Fence | None = None) -> SqlStore:
    """The state to write: SQLite in service.state_dir, or the [state] database.

    Each node keeps the offboardings it writes or sees in service.state_dir as well
    (OFFBOARDED); a shared database found empty (lost, or replaced by an empty one) takes
    them back, so that no offboarded instructor is linked again. A populated one is the
    truth: another node may have reinstated someone since."""
    if config.state is None:
        return State.open(config.service.state_dir)
    store = open_shared(config, fence)
    journal = config.service.state_dir / OFFBOARDED
    try:
        config.service.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store.keep_offboardings(journal, merge=store.schema_version >= 1 and store.is_empty())
    except (OSError, Fenced, StateError) as err:  # a standby, or no local directory: the
        # leader keeps it
        log.warning("action=keep-offboardings journal=%s problem=%r", journal, str(err))
    return store


def read_state(config: Config) -> SqlStore | None:
    """The state database, read-only (safe while `run` writes it), or None before any pass."""
    if config.state is not None:
        shared = open_shared(config, read_only=True)
        if shared.schema_version < 1:
            shared.close()
            return None
        return shared
    path = config.service.state_dir / "state.sqlite3"
    if not path.exists():
        return None
    try:
        state = State(path, read_only=True)
        if state.schema_version < 1:
            raise StateError("it has no officehours tables", damaged=True)
    except StateError as err:
        then = ("the service sets it aside and rebuilds it at its next start, offboardings "
                "kept" if err.damaged else "try again once the disk or lock is cleared")
        raise StateError(f"{path} cannot be read ({err}); {then}", stuck=True) from None
    return state


@contextmanager
def reading(config: Config) -> Iterator[SqlStore | None]:
    """The state read-only for one command (None before any pass), closed after it."""
    state = read_state(config)
    try:
        yield state
    finally:
        if state is not None:
            state.close()


@contextmanager
def writing(config: Config) -> Iterator[SqlStore]:
    """The state to write, for one admin command, closed after it."""
    state = open_state(config)
    try:
        yield state
    finally:
        state.close()


@contextmanager
def roster_groups(config: Config) -> Iterator[Callable[[str], list[dict[str, str]]] | None]:
    """What reads the roster's groups (the apps' clients, closed after), or None when the
    roster has no group."""
    roster = config.roster
    if roster is None or not (roster.entra_group_id or roster.google_group):
        yield None
        return
    providers = Providers(config, outbound_for(config))
    try:
        yield providers.group_users
    finally:
        providers.close()


def open_engine(config: Config, dry_run: bool = False, clock: Callable[[], datetime] = utc_now,
                sleep: Callable[[float], None] = time.sleep,
                fence: Fence | None = None) -> Engine:
    """`sleep` is how retries wait: tests and the soak test pass a quicker one. `fence`:
    the service's lease, checked before every calendar and Zoom write."""
    secret = read_secret(config.zoom.client_secret_file, "zoom.client_secret_file")
    outbound = outbound_for(config, sleep)
    # every calendar and Zoom write asks the fence first: the wrappers made here
    zoom = ZoomClient(config.zoom, secret, outbound.httpx(
        "zoom", config.zoom.api_base_url, config.zoom.oauth_base_url), sleep=sleep,
        before_write=fence.check if fence is not None else lambda: None)
    state: SqlStore
    if not dry_run:
        state = open_state(config, fence)
    elif config.state is None:
        state = State.scratch_copy(config.service.state_dir)
    else:
        shared = open_shared(config, read_only=True)
        try:  # before the first pass the database has no tables: an empty copy
            state = State.scratch_from(shared) if shared.schema_version else State(":memory:")
        finally:
            shared.close()
    return Engine(config, state, zoom, Providers(config, outbound, fence), clock,
                  dry_run=dry_run, fence=fence)

