"""Wiring: from a Config to a ready Engine (secrets read, clients built, providers chosen)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from .calendars.base import CalendarProvider
from .calendars.google import GoogleAccount, GoogleCalendar, load_credentials
from .calendars.microsoft import GraphApp, OutlookCalendar, group_users
from .config import Config, ConfigError, Instructor
from .engine import Engine
from .errors import CalendarError
from .http import Outbound
from .state import State
from .zoom.client import ZoomClient


def read_secret(path: Any, key: str) -> str:
    try:
        secret = path.read_text().strip()
    except OSError as err:
        raise ConfigError([f"{key}: {path} cannot be read: {err.strerror}"]) from None
    if not secret:
        raise ConfigError([f"{key}: {path} is empty"])
    return str(secret)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Providers:
    """Makes each instructor's calendar provider; shares what can be shared per vendor."""

    def __init__(self, config: Config, outbound: Outbound) -> None:
        self._config = config
        self._sleep = outbound.sleep
        # a roster may bring instructors of any provider whose section is configured
        used = ({i.provider for i in config.instructors} if config.roster is None
                else {"google", "microsoft"})
        self._google: GoogleAccount | None = None
        self._graph: tuple[GraphApp, httpx.Client] | None = None
        try:
            if config.google is not None and "google" in used:
                self._google = GoogleAccount(config.google,
                                             load_credentials(config.google.credentials_file),
                                             outbound)
            if config.microsoft is not None and "microsoft" in used:
                self._graph = (GraphApp(config.microsoft, outbound), outbound.httpx())
        except (ValueError, OSError, CalendarError) as err:
            raise ConfigError([f"{config.path}: credentials: {err}"]) from None

    def __call__(self, instructor: Instructor) -> CalendarProvider:
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


def open_engine(config: Config, dry_run: bool = False, clock: Callable[[], datetime] = utc_now,
                sleep: Callable[[float], None] = time.sleep) -> Engine:
    """`sleep` is how retries wait: tests and the soak test pass a quicker one."""
    secret = read_secret(config.zoom.client_secret_file, "zoom.client_secret_file")
    outbound = Outbound(config.service.ca_bundle, float(config.service.http_timeout_seconds),
                        sleep)
    zoom = ZoomClient(config.zoom, secret, outbound.httpx(), sleep=sleep)
    state = (State.scratch_copy(config.service.state_dir) if dry_run
             else State.open(config.service.state_dir))
    return Engine(config, state, zoom, Providers(config, outbound), clock, dry_run=dry_run)

