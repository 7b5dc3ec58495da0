"""The TOML configuration, declared once: each key is a field of a frozen dataclass below,
made by `key()` with its converter, default and meaning (and, for a file or directory,
the environment check of environment.py that the service's view of it needs).
`parse` reads a file against those declarations, collecting every problem at once;
nothing here touches the network.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import environment
from .deploy import DEFAULT_UNIT
from .environment import Checks
from .model import Instructor, same_person
from .values import (
    Converter,
    PasscodePolicy,
    choice,
    email_address,
    https_url,
    int_at_least,
    int_between,
    listen_address,
    metrics_file,
    nonempty,
    number_between,
    optional_path,
    passcode_policy,
    path,
    postgres_url,
    push_url,
    template,
    titles,
    type_name,
    wss_url,
    zoom_user,
)

DEFAULT_CONFIG_PATH = Path("/etc/officehours/config.toml")
PROVIDERS = ("google", "microsoft")
DEFAULT_TEMPLATE = "Join office hours on Zoom: {url}\nMeeting ID: {meeting_id}"


class ConfigError(Exception):
    """The configuration is unusable; `problems` are one line each, ready to print."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def key(convert: Converter, default: Any = REQUIRED, *, name: str | None = None,
        check: environment.Check | None = None) -> Any:
    """One key of the file: `convert` takes the TOML value and returns the typed one
    (ValueError: what is wrong); `default` is converted the same way when the key is
    absent (REQUIRED: it must be given; None: absent means none); `name` when the TOML
    name differs from the field's; `check`: what environment.py checks of the value."""
    typed = default if default is None or default is REQUIRED else convert(default)
    meta = {"convert": convert, "name": name, "check": check}
    if default is REQUIRED:
        return field(metadata=meta)
    return field(default=typed, metadata=meta)


def _toml_name(f: Any) -> str:
    return str(f.metadata.get("name") or f.name)


# --- the declarations: one field per key, in the order config.example.toml gives them ---

@dataclass(frozen=True)
class ServiceConfig:
    state_dir: Path = key(path, "/var/lib/officehours", check=environment.state_directory)
    sync_interval_seconds: int = key(int_at_least(1), 300)
    enforce_lead_minutes: int = key(int_at_least(0), 15)
    titles: tuple[str, ...] = key(titles, "Office Hours", name="title")
    ca_bundle: Path | None = key(optional_path, "", check=environment.ca_bundle)
    log_level: str = key(choice("debug", "info", "warning", "error"), "info")
    http_timeout_seconds: int = key(int_at_least(1), 30)
    concurrency: int = key(int_at_least(1), 32)
    max_pages: int = key(int_at_least(1), 1000)  # pages of one listing: more is a loop


@dataclass(frozen=True)
class LinksConfig:
    template: str = key(template, DEFAULT_TEMPLATE)
    include_passcode: PasscodePolicy = key(passcode_policy, "auto")  # "auto": when the
    opt_out_marker: str = key(nonempty, "#no-zoom")                   # URL lacks it


SECRET = environment.readable_file(secret=True, content=environment.secret_text)


@dataclass(frozen=True)
class ZoomConfig:
    account_id: str = key(nonempty)
    client_id: str = key(nonempty)
    client_secret_file: Path = key(path, check=SECRET)
    api_base_url: str = key(https_url, "https://api.zoom.us/v2")
    oauth_base_url: str = key(https_url, "https://zoom.us")
    refresh_minutes: int = key(int_at_least(1), 60)
    plan: str = key(choice("pro", "business", "enterprise"), "pro")
    # Zoom's account events over WebSocket (README "Zoom events"): absent, no stream
    events: str | None = key(choice("websocket"), None)
    events_subscription_id: str | None = key(nonempty, None)
    events_url: str = key(wss_url, "wss://ws.zoom.us/ws")


@dataclass(frozen=True)
class GoogleConfig:
    credentials_file: Path = key(path, check=environment.readable_file(
        secret=True, content=environment.google_key))
    api_base_url: str = key(https_url, "https://www.googleapis.com/calendar/v3/")
    send_updates: str = key(choice("none", "externalOnly", "all"), "none")


@dataclass(frozen=True)
class MicrosoftConfig:
    tenant_id: str = key(nonempty)
    client_id: str = key(nonempty)
    client_secret_file: Path | None = key(path, None, check=SECRET)  # this, or:
    client_certificate_file: Path | None = key(  # PEM: private key and certificate
        path, None, check=environment.readable_file(
            secret=True, content=environment.pem_key_and_certificate))
    authority_host: str = key(https_url, "https://login.microsoftonline.com")
    graph_base_url: str = key(https_url, "https://graph.microsoft.com/v1.0")


@dataclass(frozen=True)
class InstructorEntry:
    """An [[instructors]] table, or a roster's row: made into a model.Instructor."""

    name: str = key(nonempty)
    email: str = key(email_address)
    provider: str = key(choice(*PROVIDERS))
    calendar_id: str = key(nonempty, "primary")
    zoom_user: str | None = key(zoom_user, None)  # default: the email

    def instructor(self) -> Instructor:
        return Instructor(self.name, self.email, self.provider, self.calendar_id,
                          self.zoom_user or self.email)


@dataclass(frozen=True)
class RosterConfig:
    # its rows are checked by check-config (roster.problems); at run time a file that
    # cannot be read is a held read, not an unusable configuration
    csv_file: Path | None = key(path, None)  # name, email, provider[, calendar_id, zoom_user]
    entra_group_id: str | None = key(nonempty, None)  # nested groups included
    entra_group_provider: str = key(choice(*PROVIDERS), "microsoft")
    google_group: str | None = key(email_address, None)  # a Google Group, nested included
    google_group_admin: str | None = key(email_address, None)  # whom it is read as
    google_group_provider: str = key(choice(*PROVIDERS), "google")
    google_directory_url: str = key(https_url, "https://admin.googleapis.com/")
    refresh_minutes: int = key(int_at_least(1), 60)  # a group's; a file: every pass
    leave_grace_hours: float = key(number_between(0, 24 * 365), 24)
    max_drop_percent: float = key(number_between(0, 100), 10)
    max_add_percent: float = key(number_between(0, 100_000), 50)


@dataclass(frozen=True)
class StateConfig:
    """[state]: the state shared by two or more nodes on PostgreSQL (absent: SQLite)."""

    url: str = key(postgres_url)  # postgresql://user@host[:port]/database; no password
    password_file: Path | None = key(path, None, check=SECRET)
    lease_seconds: int = key(int_at_least(2), 10)  # a silent leader is replaced after it
    node: str | None = key(nonempty, None)  # this node's name (default: the host name)


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: Prometheus exposition for node_exporter's textfile collector."""

    textfile: Path = key(metrics_file, check=environment.textfile)


@dataclass(frozen=True)
class PushConfig:
    """[push]: calendar change notifications (Graph subscriptions, Google watch channels),
    received behind an HTTPS reverse proxy; polling becomes the safety net."""

    public_url: str = key(push_url)  # what the vendors call: {public_url}/google, /graph
    listen: str = key(listen_address, "127.0.0.1:8787")  # or "systemd" (socket activation)
    # at most 6 hours: the pre-session checks are planned a day ahead of each read
    safety_interval_seconds: int = key(int_between(1, 21_600), 3600)


@dataclass(frozen=True)
class Config:
    path: Path
    service: ServiceConfig
    links: LinksConfig
    zoom: ZoomConfig
    google: GoogleConfig | None
    microsoft: MicrosoftConfig | None
    instructors: tuple[Instructor, ...]
    roster: RosterConfig | None = None
    state: StateConfig | None = None
    metrics: MetricsConfig | None = None
    push: PushConfig | None = None

    def secret_files(self) -> list[tuple[str, Path]]:
        """(key path, file) of every secret this configuration names."""
        found = [("zoom.client_secret_file", self.zoom.client_secret_file)]
        if self.google:
            found.append(("google.credentials_file", self.google.credentials_file))
        if self.microsoft:
            for name in ("client_secret_file", "client_certificate_file"):
                path = getattr(self.microsoft, name)
                if path is not None:
                    found.append((f"microsoft.{name}", path))
        if self.state and self.state.password_file:
            found.append(("state.password_file", self.state.password_file))
        return found


# the sections a file may have, and what each declares ([[instructors]]: each entry)
SECTIONS: dict[str, type] = {
    "service": ServiceConfig, "links": LinksConfig, "zoom": ZoomConfig,
    "google": GoogleConfig, "microsoft": MicrosoftConfig, "instructors": InstructorEntry,
    "roster": RosterConfig, "state": StateConfig, "metrics": MetricsConfig,
    "push": PushConfig}


def declared(section: type) -> dict[str, Any]:
    """A section's keys as the file names them -> their declared default (REQUIRED)."""
    return {_toml_name(f): REQUIRED if f.default is MISSING else f.default
            for f in fields(section)}


def default_config_path() -> Path:
    env = os.environ.get("OFFICEHOURS_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


class _Collector:
    def __init__(self, path: Path, checks: Checks) -> None:
        self.path, self.checks = path, checks
        self.problems: list[str] = []

    def add(self, name: str, message: str) -> None:
        self.problems.append(f"{self.path}: {name}: {message}" if name
                             else f"{self.path}: {message}")

    def unknown_keys(self, table: Mapping[str, Any], known: Any, prefix: str) -> None:
        for name in table:
            if name not in known:
                hint = difflib.get_close_matches(name, list(known), n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.add(f"{prefix}{name}", f"unknown key{suggestion}")

    def section(self, raw: Any, declaration: type, prefix: str) -> dict[str, Any]:
        """The section's values by field name, each converted and checked; what is wrong
        is collected (and left out)."""
        if not isinstance(raw, dict):
            self.add(prefix.rstrip("."), f"must be a table, not {type_name(raw)}")
            raw = {}
        self.unknown_keys(raw, {_toml_name(f) for f in fields(declaration)}, prefix)
        values: dict[str, Any] = {}
        for f in fields(declaration):
            name, convert, check = _toml_name(f), f.metadata["convert"], f.metadata["check"]
            try:
                if name in raw:
                    value = convert(raw[name])
                elif f.default is MISSING:
                    self.add(f"{prefix}{name}", "missing (required)")
                    continue
                else:
                    value = f.default
                values[f.name] = value if value is None or check is None else check(
                    value, self.checks)
            except ValueError as err:
                self.add(f"{prefix}{name}", str(err))
        return values

    def make(self, declaration: type, values: dict[str, Any]) -> Any:
        """The section's dataclass, or None when one of its keys was wrong."""
        if len(values) < len(fields(declaration)):
            return None
        return declaration(**values)


def load(path: Path, secrets: bool = True, unit: Path | None = None) -> Config:
    """Read and validate the file; raise ConfigError listing every problem.

    `secrets` False: the secret files it names are not looked at (for read-only commands).
    `unit`: the installed unit that delivers credentials (default: DEFAULT_UNIT)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}: cannot be read: {err}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{path}: TOML syntax error: {err}"]) from None
    return parse(raw, path, Checks(secrets, unit or DEFAULT_UNIT))


def parse(raw: Mapping[str, Any], path: Path, checks: Checks | None = None) -> Config:
    out = _Collector(path, checks or Checks())
    out.unknown_keys(raw, SECTIONS, "")
    if "zoom" not in raw:
        out.add("zoom", "missing section (account_id, client_id, client_secret_file)")
    made = {name: out.make(declaration, out.section(raw.get(name, {}), declaration,
                                                    f"{name}."))
            for name, declaration in SECTIONS.items()  # [service] and [links] may be absent
            if name in raw and name != "instructors" or name in ("service", "links")}
    roster, google, microsoft = made.get("roster"), raw.get("google"), raw.get("microsoft")
    if roster is not None and not (roster.csv_file or roster.entra_group_id
                                   or roster.google_group):
        out.add("roster", "no source: give csv_file, entra_group_id or google_group")
    if roster is not None and roster.google_group and (
            google is None or not roster.google_group_admin):
        out.add("roster.google_group", "a Google Group is read with the [google] service "
                "account acting as an admin: add that section and roster.google_group_admin")
    if roster is not None and roster.entra_group_id and microsoft is None:
        out.add("roster.entra_group_id", "an Entra group is read with the [microsoft] app: "
                "add that section")
    if isinstance(microsoft, dict):
        given = [k for k in ("client_secret_file", "client_certificate_file") if k in microsoft]
        if len(given) != 1:
            out.add("microsoft.client_secret_file", "missing (required): give it, or "
                    "client_certificate_file, not both" if given else "missing (required)")
    zoom = made.get("zoom")
    if zoom is not None and zoom.events and not zoom.events_subscription_id:
        out.add("zoom.events_subscription_id", 'missing (required with events = "websocket"): '
                "the Event Subscription's id, from the app's Marketplace page")
    instructors = _instructors(out, raw.get("instructors", []), "roster" in raw)
    for name in PROVIDERS:
        if name not in raw and any(i.provider == name for i in instructors):
            out.add(name, f"missing section: an instructor has provider = {name!r}")
    if out.problems:
        raise ConfigError(out.problems)
    return Config(path=path, service=made["service"], links=made["links"], zoom=made["zoom"],
                  google=made.get("google"), microsoft=made.get("microsoft"),
                  instructors=tuple(instructors), roster=roster, state=made.get("state"),
                  metrics=made.get("metrics"), push=made.get("push"))


def _instructors(out: _Collector, raw: Any, roster: bool) -> list[Instructor]:
    """[[instructors]]: each entry as declared, no address twice, no Zoom user shared."""
    if not isinstance(raw, list):
        out.add("instructors", "must be an array of tables ([[instructors]])")
        raw = []
    if not raw and not roster:
        out.add("instructors", "none given: add an [[instructors]] table per instructor "
                "(name, email, provider), or a [roster] source")
    found: list[Instructor] = []
    seen: dict[str, int] = {}
    rooms: dict[str, int] = {}  # Zoom user -> the first instructor with it
    for index, item in enumerate(raw):
        prefix = f"instructors[{index}]."
        entry = out.make(InstructorEntry, out.section(item, InstructorEntry, prefix))
        if entry is None:
            continue
        instructor = entry.instructor()
        if instructor.key in seen:
            out.add(f"{prefix}email", f"duplicate of instructors[{seen[instructor.key]}].email")
        seen.setdefault(instructor.key, index)
        room = same_person(instructor.zoom_user)
        if room in rooms and rooms[room] != seen[instructor.key]:
            out.add(f"{prefix}zoom_user", f"{instructor.zoom_user} is also the Zoom user of "
                    f"instructors[{rooms[room]}]: one class's invites would carry another "
                    "instructor's room")
        rooms.setdefault(room, index)
        found.append(instructor)
    return found


def entry(values: Mapping[str, str]) -> tuple[Instructor | None, list[str]]:
    """A roster's row (column -> text; empty optional columns left out) checked as an
    [[instructors]] entry is: the instructor, or what is wrong with each column."""
    out = _Collector(Path(), Checks(secrets=False))
    made = out.make(InstructorEntry, out.section(dict(values), InstructorEntry, ""))
    bad = [problem.split(": ", 1)[1].replace(": ", " ", 1) for problem in out.problems]
    return (made.instructor() if made is not None else None), bad
