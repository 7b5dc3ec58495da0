"""The TOML configuration file turned into a frozen, validated Config.

Every problem is collected and reported at once; nothing here touches the network.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import ssl
import stat
import string
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .deploy import CREDENTIALS_SOURCE, DEFAULT_UNIT, credential_name, delivered, writable
from .model import same_person

DEFAULT_CONFIG_PATH = Path("/etc/officehours/config.toml")
PLACEHOLDER = "..."  # config.example.toml's stand-in for a value the admin must give
PROVIDERS = ("google", "microsoft")
DEFAULT_TEMPLATE = "Join office hours on Zoom: {url}\nMeeting ID: {meeting_id}"
TEMPLATE_FIELDS = {"url", "meeting_id", "passcode", "name"}


class ConfigError(Exception):
    """The configuration is unusable; `problems` are one line each, ready to print."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ServiceConfig:
    state_dir: Path
    sync_interval_seconds: int
    enforce_lead_minutes: int
    titles: tuple[str, ...]
    ca_bundle: Path | None
    log_level: str
    http_timeout_seconds: int
    concurrency: int
    max_pages: int = 1000  # pages of one listing before it is called a vendor's loop


PasscodePolicy = bool | Literal["auto"]  # links.include_passcode


@dataclass(frozen=True)
class LinksConfig:
    template: str
    include_passcode: PasscodePolicy  # "auto": when the join URL does not carry it
    opt_out_marker: str


@dataclass(frozen=True)
class ZoomConfig:
    account_id: str
    client_id: str
    client_secret_file: Path
    api_base_url: str
    oauth_base_url: str
    refresh_minutes: int = 60
    plan: str = "pro"


@dataclass(frozen=True)
class GoogleConfig:
    credentials_file: Path
    api_base_url: str
    send_updates: str


@dataclass(frozen=True)
class MicrosoftConfig:
    tenant_id: str
    client_id: str
    client_secret_file: Path | None
    client_certificate_file: Path | None  # PEM: private key and certificate
    authority_host: str
    graph_base_url: str


@dataclass(frozen=True)
class Instructor:
    name: str
    email: str
    provider: str
    calendar_id: str
    zoom_user: str

    @property
    def key(self) -> str:
        """Stable identity in the state database: the address as compared (same_person)."""
        return same_person(self.email)


@dataclass(frozen=True)
class RosterConfig:
    csv_file: Path | None  # header row; name, email, provider[, calendar_id, zoom_user]
    entra_group_id: str | None  # an Entra group's members, nested groups included
    entra_group_provider: str  # the calendar provider the group's members use
    google_group: str | None  # a Google Group's address: its members, nested included
    google_group_admin: str | None  # the admin the service account reads it as
    google_group_provider: str  # the calendar provider its members use
    google_directory_url: str  # the Admin SDK's base URL
    leave_grace_hours: float  # a member who left is offboarded this long after
    max_drop_percent: float  # a read that loses more than this share at once is held
    refresh_minutes: int = 60  # how often `run` reads a group (a file: every pass)
    max_add_percent: float = 50  # a read that adds more than this share (and > 10) is held


@dataclass(frozen=True)
class StateConfig:
    """[state]: the state shared by two or more nodes on PostgreSQL (absent: SQLite)."""
    url: str  # postgresql://user@host[:port]/database[?sslmode=...]; never a password
    password_file: Path | None  # a secret file (systemd credential), like the others
    lease_seconds: int = 10  # a leader that stops renewing is replaced this long after
    node: str | None = None  # this node's name in status (default: the host name)


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: Prometheus exposition for node_exporter's textfile collector."""
    textfile: Path  # written whole after each pass; the name ends in .prom


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

    def secret_files(self) -> list[tuple[str, Path]]:
        """(key path, file) of every secret this configuration names."""
        found = [("zoom.client_secret_file", self.zoom.client_secret_file)]
        if self.google:
            found.append(("google.credentials_file", self.google.credentials_file))
        if self.microsoft:
            for key in ("client_secret_file", "client_certificate_file"):
                path = getattr(self.microsoft, key)
                if path is not None:
                    found.append((f"microsoft.{key}", path))
        if self.state and self.state.password_file:
            found.append(("state.password_file", self.state.password_file))
        return found


def default_config_path() -> Path:
    env = os.environ.get("OFFICEHOURS_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


# --- converters: each takes the raw value and returns the typed one or raises ValueError ---


class _Required:
    pass


REQUIRED = _Required()
Converter = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {_type_name(value)}")
    return value


def _nonempty(value: Any) -> str:
    text = _text(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if text == PLACEHOLDER:
        raise ValueError(f'is still the example\'s placeholder "{PLACEHOLDER}": fill it in')
    return text


def _number_between(low: float, high: float) -> Converter:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {_type_name(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, not {value}")
        return float(value)

    return convert


def _int_at_least(minimum: int) -> Converter:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {_type_name(value)}")
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, not {value}")
        return value

    return convert


def _passcode_policy(value: Any) -> PasscodePolicy:
    if value == "auto" or isinstance(value, bool):
        return "auto" if value == "auto" else bool(value)
    raise ValueError(f'must be "auto", true or false, not {value!r}')


def _choice(*allowed: str) -> Converter:
    def convert(value: Any) -> str:
        text = _text(value)
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(map(repr, allowed))}, not {text!r}")
        return text

    return convert


def _https_url(value: Any) -> str:
    url = _nonempty(value)
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"must be an https:// URL, not {url!r}")
    return url.rstrip("/")


def postgres_url(value: Any) -> str:
    url = _nonempty(value)
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ValueError("must be a postgresql://user@host/database URL")
    if parts.password is not None or "password=" in parts.query.lower():
        raise ValueError("holds a password: take it out of the URL and put it in the file "
                         "named by state.password_file")
    return url


def _titles(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError("must be a string or a non-empty list of strings")
    titles = tuple(_nonempty(item) for item in items)
    return titles


def email_address(value: Any) -> str:
    """One @, something before it, a dot inside the domain, no spaces (CONTRACT.md)."""
    text = _nonempty(value)
    local, _, domain = text.partition("@")
    if (text.count("@") != 1 or not local or "." not in domain.strip(".")
            or domain.startswith(".") or domain.endswith(".") or ".." in domain
            or any(c.isspace() for c in text)):
        raise ValueError(f"must be an email address, not {text!r}")
    return text


ZOOM_ADDRESS = re.compile(r"[\w.!$&'*+=^`{|}~-]+@[\w-]+(\.[\w-]+)+")


def _zoom_user(value: Any) -> str:
    """An email address, or a Zoom user id (letters, digits, - and _), nothing else: it is
    a path segment of Zoom's API (escaped there too), so no "/", "#", "?" or "%"."""
    text = _nonempty(value)
    if "@" in text and ZOOM_ADDRESS.fullmatch(text):
        return email_address(text)
    if "@" in text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError(f"must be an email address or a Zoom user id, not {text!r}")
    return text



def _template(value: Any) -> str:
    text = _nonempty(value)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as err:
        raise ValueError(f"is not a valid template: {err}") from None
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(
            f"uses unknown field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(TEMPLATE_FIELDS))}"
        )
    if "url" not in fields:
        raise ValueError("must contain {url}")
    return text


# Off for commands that read only the program's state (status, history): they need no
# secret and no writable state directory, and an admin may run them as a user who cannot
# read the credentials.
_CHECK_SECRETS: ContextVar[bool] = ContextVar("check_secrets", default=True)
# The unit whose LoadCredential= lines say where a credential comes from, outside systemd.
_UNIT: ContextVar[Path] = ContextVar("unit", default=DEFAULT_UNIT)


def _file(secret: bool, content: Callable[[bytes], None] | None = None) -> Converter:
    """A file that must exist and be readable (privately, for a secret); `content` checks
    what is inside, with a message that never quotes it."""
    def convert(value: Any) -> Path:
        named = Path(_nonempty(value))
        if secret and not _CHECK_SECRETS.get():
            return named
        path = resolve_credential(named)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ValueError(f"{path} does not exist") from None
        except OSError as err:
            raise ValueError(f"{path} cannot be read: {err.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ValueError(f"{path} is not a regular file")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{path} is not readable by this user")
        if secret and mode & stat.S_IROTH:
            raise ValueError(f"{path} is readable by others; run: chmod o-rwx {path}")
        if content is not None:
            try:
                content(path.read_bytes())
            except ValueError as err:
                raise ValueError(f"{path} {err}") from None
        return path

    return convert


def _secret_text(data: bytes) -> None:
    if not data.strip():
        raise ValueError("is empty")


GOOGLE_FIELDS = {"service_account": ("client_email", "private_key", "token_uri"),
                 "authorized_user": ("client_id", "client_secret", "refresh_token")}


def _google_key(data: bytes) -> None:
    """A service-account key or an authorized-user file, as Google issues them."""
    try:
        info = json.loads(data)
    except ValueError:
        raise ValueError("is not JSON: a Google service-account key or authorized-user "
                         "file is") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind not in GOOGLE_FIELDS:
        raise ValueError('has no "type" of "service_account" or "authorized_user"')
    missing = [f for f in GOOGLE_FIELDS[kind] if not info.get(f)]
    if missing:
        raise ValueError(f"is a {kind} file without {', '.join(missing)}")
    if kind == "service_account":  # the key parsed as the service will parse it
        from cryptography.hazmat.primitives import serialization

        try:
            serialization.load_pem_private_key(str(info["private_key"]).encode(),
                                               password=None)
        except (ValueError, TypeError):
            raise ValueError("is a service_account file whose private_key does not parse "
                             "(a PEM private key, unencrypted, as Google issues it)") from None


def _pem_key_and_certificate(data: bytes) -> None:
    """A PEM file holding the app's private key and its certificate (msal needs both)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError("holds no unencrypted PEM private key") from None
    try:
        x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError("holds no PEM certificate (key and certificate go in one "
                         "file)") from None


def _unit_lets_write(path: Path) -> None:
    """Outside the service, with a unit installed: the unit must let the service write
    `path` (ProtectSystem=strict makes everything else read-only, and the service would
    exit 78 at its start)."""
    unit = _UNIT.get()
    if os.environ.get("CREDENTIALS_DIRECTORY") or not unit.is_file():
        return
    allowed = writable(unit)
    if not any(path.absolute() == a or a in path.absolute().parents for a in allowed):
        raise ValueError(f"the installed unit {unit} lets the service write only "
                         f"{', '.join(map(str, allowed)) or 'nothing'}, not {path}: write the "
                         f"unit again (officehours --config FILE unit > {unit}; systemctl "
                         "daemon-reload)")


def _state_dir(value: Any) -> Path:
    """A writable directory, or one that can be created (nothing is created here), that
    the installed unit lets the service write."""
    path = Path(_nonempty(value))
    if not _CHECK_SECRETS.get():
        return path
    _unit_lets_write(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{path} is not writable by this user")
        return path
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{path} does not exist and cannot be created here ({parent} is "
                         "not a writable directory)")
    return path


def _textfile(value: Any) -> Path:
    """node_exporter's textfile collector reads *.prom files of one directory, which must
    exist (node_exporter's package makes it) and be writable here."""
    path = Path(_nonempty(value))
    if not path.is_absolute() or path.suffix != ".prom":
        raise ValueError(f"{value!r}: give an absolute path ending in .prom (node_exporter's "
                         "textfile collector reads only those)")
    if _CHECK_SECRETS.get() and not path.parent.is_dir():
        raise ValueError(f"{path.parent} is not a directory: install node_exporter's textfile "
                         "collector, or point this at its --collector.textfile.directory")
    if _CHECK_SECRETS.get():
        _unit_lets_write(path.parent)
    return path


def resolve_credential(path: Path) -> Path:
    """The file a secret path means for this process.

    In the service, a credential name is looked up in systemd's $CREDENTIALS_DIRECTORY.
    Outside it (an admin's check-config, sync or doctor), it is the file the installed
    unit's LoadCredential= line names: what the service will see, and an error naming the
    missing line when the unit would not deliver it."""
    name = credential_name(path)
    if name is None:
        return path
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        return Path(os.environ["CREDENTIALS_DIRECTORY"]) / name
    unit = _UNIT.get()
    if not unit.is_file():
        raise ValueError(f"{path} is a systemd credential, and no unit at {unit} delivers it: "
                         f"install one (officehours --config FILE unit > {unit}), or set "
                         "CREDENTIALS_DIRECTORY to the folder holding the credentials")
    source = delivered(unit).get(name)
    if source is None:
        raise ValueError(f"the unit {unit} delivers no credential {name!r}: write it again "
                         f"with `officehours --config FILE unit > {unit}` (or add "
                         f"LoadCredential={name}:{CREDENTIALS_SOURCE / name}), then "
                         "systemctl daemon-reload")
    return source


def _optional_file(value: Any) -> Path | None:
    if value == "":
        return None
    result: Path = _file(secret=False)(value)
    return result


def _ca_bundle(value: Any) -> Path | None:
    """A PEM bundle the service can trust, loaded as the service loads it (a file that
    is not one passed check-config, and every HTTPS request then failed)."""
    path = _optional_file(value)
    if path is not None and _CHECK_SECRETS.get():
        from .http import ssl_context  # the very code the service's clients use

        try:
            ssl_context(path)
        except (ssl.SSLError, OSError) as err:
            raise ValueError(f"{path} is not a PEM bundle of certificates "
                             f"({getattr(err, 'reason', None) or err})") from None
    return path


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", bool: "a boolean", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


# --- declarative schema: key -> (converter, default) ---

Schema = Mapping[str, tuple[Converter, Any]]

SERVICE: Schema = {
    "state_dir": (_state_dir, "/var/lib/officehours"),
    "sync_interval_seconds": (_int_at_least(1), 300),
    "enforce_lead_minutes": (_int_at_least(0), 15),
    "title": (_titles, "Office Hours"),
    "ca_bundle": (_ca_bundle, ""),
    "log_level": (_choice("debug", "info", "warning", "error"), "info"),
    "http_timeout_seconds": (_int_at_least(1), 30),
    "concurrency": (_int_at_least(1), 32),
    "max_pages": (_int_at_least(1), 1000),
}
LINKS: Schema = {
    "template": (_template, DEFAULT_TEMPLATE),
    "include_passcode": (_passcode_policy, "auto"),
    "opt_out_marker": (_nonempty, "#no-zoom"),
}
ZOOM: Schema = {
    "account_id": (_nonempty, REQUIRED),
    "client_id": (_nonempty, REQUIRED),
    "client_secret_file": (_file(secret=True, content=_secret_text), REQUIRED),
    "api_base_url": (_https_url, "https://api.zoom.us/v2"),
    "oauth_base_url": (_https_url, "https://zoom.us"),
    "refresh_minutes": (_int_at_least(1), 60),
    "plan": (_choice("pro", "business", "enterprise"), "pro"),
}
GOOGLE: Schema = {
    "credentials_file": (_file(secret=True, content=_google_key), REQUIRED),
    "api_base_url": (_https_url, "https://www.googleapis.com/calendar/v3/"),
    "send_updates": (_choice("none", "externalOnly", "all"), "none"),
}
MICROSOFT: Schema = {
    "tenant_id": (_nonempty, REQUIRED),
    "client_id": (_nonempty, REQUIRED),
    "client_secret_file": (_file(secret=True, content=_secret_text), None),  # this or:
    "client_certificate_file": (_file(secret=True, content=_pem_key_and_certificate), None),
    "authority_host": (_https_url, "https://login.microsoftonline.com"),
    "graph_base_url": (_https_url, "https://graph.microsoft.com/v1.0"),
}
INSTRUCTOR: Schema = {
    "name": (_nonempty, REQUIRED),
    "email": (email_address, REQUIRED),
    "provider": (_choice(*PROVIDERS), REQUIRED),
    "calendar_id": (_nonempty, "primary"),
    "zoom_user": (_zoom_user, None),
}
ROSTER: Schema = {
    # its rows are checked by check-config (roster.problems); at run time a file that
    # cannot be read is a held read, not an unusable configuration
    "csv_file": (lambda v: Path(_nonempty(v)), None),
    "entra_group_id": (_nonempty, None),
    "entra_group_provider": (_choice(*PROVIDERS), "microsoft"),
    "refresh_minutes": (_int_at_least(1), 60),
    "google_group": (email_address, None),
    "google_group_admin": (email_address, None),
    "google_group_provider": (_choice(*PROVIDERS), "google"),
    "google_directory_url": (_https_url, "https://admin.googleapis.com/"),
    "leave_grace_hours": (_number_between(0, 24 * 365), 24),
    "max_drop_percent": (_number_between(0, 100), 10),
    "max_add_percent": (_number_between(0, 100_000), 50),
}
STATE: Schema = {
    "url": (postgres_url, REQUIRED),
    "password_file": (_file(secret=True, content=_secret_text), None),
    "lease_seconds": (_int_at_least(2), 10),
    "node": (_nonempty, None),
}
METRICS: Schema = {
    "textfile": (_textfile, REQUIRED),
}
SECTIONS = ("service", "links", "zoom", "google", "microsoft", "instructors", "roster",
            "state", "metrics")


class _Collector:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")

    def unknown_keys(self, table: Mapping[str, Any], known: Any, prefix: str) -> None:
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, list(known), n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.add(f"{prefix}{key}", f"unknown key{suggestion}")

    def section(self, raw: Any, schema: Schema, prefix: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.add(prefix.rstrip("."), f"must be a table, not {_type_name(raw)}")
            raw = {}
        self.unknown_keys(raw, schema, prefix)
        values: dict[str, Any] = {}
        for key, (convert, default) in schema.items():
            if key not in raw:
                if default is REQUIRED:
                    self.add(f"{prefix}{key}", "missing (required)")
                else:
                    values[key] = default if default is None else convert(default)
                continue
            try:
                values[key] = convert(raw[key])
            except ValueError as err:
                self.add(f"{prefix}{key}", str(err))
        return values


def load(path: Path, secrets: bool = True, unit: Path | None = None) -> Config:
    """Read and validate the file; raise ConfigError listing every problem.

    `secrets` False: the secret files it names are not looked at (for read-only commands).
    `unit`: the installed unit that delivers credentials (default: DEFAULT_UNIT)."""
    checking = _CHECK_SECRETS.set(secrets)
    unit_token = _UNIT.set(unit or DEFAULT_UNIT)
    try:
        return _load(path)
    finally:
        _UNIT.reset(unit_token)
        _CHECK_SECRETS.reset(checking)


def _load(path: Path) -> Config:
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
    return parse(raw, path)


def parse(raw: Mapping[str, Any], path: Path) -> Config:
    out = _Collector(path)
    out.unknown_keys(raw, SECTIONS, "")
    service = out.section(raw.get("service", {}), SERVICE, "service.")
    links = out.section(raw.get("links", {}), LINKS, "links.")
    zoom = out.section(raw.get("zoom", {}), ZOOM, "zoom.") if "zoom" in raw else None
    if zoom is None:
        out.add("zoom", "missing section (account_id, client_id, client_secret_file)")

    instructors: list[Instructor] = []
    raw_instructors = raw.get("instructors", [])
    if not isinstance(raw_instructors, list):
        out.add("instructors", "must be an array of tables ([[instructors]])")
        raw_instructors = []
    roster = out.section(raw["roster"], ROSTER, "roster.") if "roster" in raw else None
    state = out.section(raw["state"], STATE, "state.") if "state" in raw else None
    metrics = out.section(raw["metrics"], METRICS, "metrics.") if "metrics" in raw else None
    if roster is not None and not (roster.get("csv_file") or roster.get("entra_group_id")
                                   or roster.get("google_group")):
        out.add("roster", "no source: give csv_file, entra_group_id or google_group")
    if roster is not None and roster.get("google_group") and (
            "google" not in raw or not roster.get("google_group_admin")):
        out.add("roster.google_group", "a Google Group is read with the [google] service "
                "account acting as an admin: add that section and roster.google_group_admin")
    if roster is not None and roster.get("entra_group_id") and "microsoft" not in raw:
        out.add("roster.entra_group_id", "an Entra group is read with the [microsoft] app: "
                "add that section")
    if not raw_instructors and roster is None:
        out.add("instructors", "none given: add an [[instructors]] table per instructor "
                "(name, email, provider), or a [roster] source")
    seen: dict[str, int] = {}
    rooms: dict[str, int] = {}  # Zoom user -> the first instructor with it
    for index, item in enumerate(raw_instructors):
        prefix = f"instructors[{index}]."
        fields = out.section(item, INSTRUCTOR, prefix)
        if not all(key in fields for key in ("name", "email", "provider")):
            continue
        email = same_person(fields["email"])
        if email in seen:
            out.add(f"{prefix}email", f"duplicate of instructors[{seen[email]}].email")
        seen.setdefault(email, index)
        fields["zoom_user"] = fields.get("zoom_user") or fields["email"]
        room = same_person(fields["zoom_user"])
        if room in rooms and rooms[room] != seen[email]:
            out.add(f"{prefix}zoom_user", f"{fields['zoom_user']} is also the Zoom user of "
                    f"instructors[{rooms[room]}]: one class's invites would carry another "
                    "instructor's room")
        rooms.setdefault(room, index)
        if "calendar_id" in fields and "zoom_user" in fields:
            instructors.append(Instructor(**fields))

    providers = {i.provider for i in instructors}
    sections: dict[str, dict[str, Any] | None] = {}
    for name, schema in (("google", GOOGLE), ("microsoft", MICROSOFT)):
        if name in raw:
            sections[name] = out.section(raw[name], schema, f"{name}.")
            given = [k for k in ("client_secret_file", "client_certificate_file")
                     if isinstance(raw[name], dict) and k in raw[name]]
            if name == "microsoft" and len(given) != 1:
                out.add("microsoft.client_secret_file", "missing (required): give it, or "
                        "client_certificate_file, not both" if given else "missing (required)")
        else:
            sections[name] = None
            if name in providers:
                out.add(name, f"missing section: an instructor has provider = {name!r}")

    if out.problems:
        raise ConfigError(out.problems)
    assert zoom is not None
    google, microsoft = sections["google"], sections["microsoft"]
    return Config(
        path=path,
        service=ServiceConfig(
            state_dir=service["state_dir"],
            sync_interval_seconds=service["sync_interval_seconds"],
            enforce_lead_minutes=service["enforce_lead_minutes"],
            titles=service["title"],
            ca_bundle=service["ca_bundle"],
            log_level=service["log_level"],
            http_timeout_seconds=service["http_timeout_seconds"],
            concurrency=service["concurrency"],
            max_pages=service["max_pages"],
        ),
        links=LinksConfig(**links),
        zoom=ZoomConfig(**zoom),
        google=GoogleConfig(**google) if google is not None else None,
        microsoft=MicrosoftConfig(**microsoft) if microsoft is not None else None,
        instructors=tuple(instructors),
        roster=RosterConfig(**roster) if roster is not None else None,
        state=StateConfig(**state) if state is not None else None,
        metrics=MetricsConfig(**metrics) if metrics is not None else None,
    )
