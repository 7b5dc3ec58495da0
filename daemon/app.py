"""Wiring: from a Config to a ready Engine (secrets read, clients built, providers chosen)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .calendars.base import CalendarError, CalendarProvider
from .calendars.google import GoogleCalendar, load_credentials
from .config import Config, ConfigError, Instructor
from .engine import Engine
from .http import client
from .state import State
from .zoom import ZoomClient


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


def provider_factory(config: Config) -> Callable[[Instructor], CalendarProvider]:
    google_info: dict[str, Any] | None = None
    if config.google is not None and any(i.provider == "google" for i in config.instructors):
        try:
            google_info = load_credentials(config.google.credentials_file)
        except (ValueError, CalendarError) as err:
            raise ConfigError([f"{config.path}: google.credentials_file: {err}"]) from None

    def make(instructor: Instructor) -> CalendarProvider:
        if instructor.provider == "google" and config.google and google_info:
            return GoogleCalendar(config.google, google_info, instructor,
                                  config.service.ca_bundle)
        raise CalendarError(f"the {instructor.provider} calendar provider is not available "
                            "in this version of officehours")

    return make


def open_engine(config: Config, dry_run: bool = False,
                clock: Callable[[], datetime] = utc_now) -> Engine:
    secret = read_secret(config.zoom.client_secret_file, "zoom.client_secret_file")
    zoom = ZoomClient(config.zoom, secret, client(config.service.ca_bundle))
    state = (State.scratch_copy(config.service.state_dir) if dry_run
             else State.open(config.service.state_dir))
    return Engine(config, state, zoom, provider_factory(config), clock, dry_run=dry_run)

