"""The values of a configuration file: each converter takes what TOML gave and returns
the typed value, or raises ValueError saying what is wrong (config.py declares which key
takes which)."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

PLACEHOLDER = "..."  # config.example.toml's stand-in for a value the admin must give
TEMPLATE_FIELDS = {"url", "meeting_id", "passcode", "name"}
PasscodePolicy = bool | Literal["auto"]  # links.include_passcode
Converter = Callable[[Any], Any]


def string_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type_name(value)}")
    return value


def nonempty(value: Any) -> str:
    text = string_value(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if text == PLACEHOLDER:
        raise ValueError(f'is still the example\'s placeholder "{PLACEHOLDER}": fill it in')
    return text


def number_between(low: float, high: float) -> Converter:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {type_name(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, not {value}")
        return float(value)

    return convert


def int_at_least(minimum: int) -> Converter:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {type_name(value)}")
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, not {value}")
        return value

    return convert


def int_between(low: int, high: int) -> Converter:
    at_least = int_at_least(low)

    def convert(value: Any) -> int:
        found: int = at_least(value)
        if found > high:
            raise ValueError(f"must be <= {high}, not {found}")
        return found

    return convert


def passcode_policy(value: Any) -> PasscodePolicy:
    if value == "auto" or isinstance(value, bool):
        return "auto" if value == "auto" else bool(value)
    raise ValueError(f'must be "auto", true or false, not {value!r}')


def choice(*allowed: str) -> Converter:
    def convert(value: Any) -> str:
        text = string_value(value)
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(map(repr, allowed))}, not {text!r}")
        return text

    return convert


def https_url(value: Any) -> str:
    url = nonempty(value)
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"must be an https:// URL, not {url!r}")
    return url.rstrip("/")


def wss_url(value: Any) -> str:
    url = nonempty(value)
    parts = urlsplit(url)
    if parts.scheme != "wss" or not parts.hostname or parts.query:
        raise ValueError(f"must be a wss:// URL without a query, not {url!r}")
    return url.rstrip("/")


def push_url(value: Any) -> str:
    """[push] public_url: the HTTPS URL the vendors call, without query or fragment (the
    receiver's three paths are made from it)."""
    url = https_url(value)
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"must be an https:// URL without a query, fragment or user, not "
                         f"{url!r}")
    return url


SYSTEMD_SOCKET = "systemd"  # [push] listen: the socket systemd's socket activation passes


def listen_address(value: Any) -> str:
    """[push] listen: "host:port" (an IPv6 host in brackets: "[::1]:8787") or "systemd"."""
    text = nonempty(value)
    if text == SYSTEMD_SOCKET:
        return text
    host, colon, port = text.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not bare or not port.isdigit() or not 0 < int(port) < 65536 or \
            (":" in bare) != host.startswith("["):
        raise ValueError(f'must be "host:port" (IPv6: "[::1]:8787") or "systemd", not '
                         f"{text!r}")
    return text


def split_listen(text: str) -> tuple[str, int]:
    """A checked listen_address as (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def postgres_url(value: Any) -> str:
    url = nonempty(value)
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ValueError("must be a postgresql://user@host/database URL")
    if parts.password is not None or "password=" in parts.query.lower():
        raise ValueError("holds a password: take it out of the URL and put it in the file "
                         "named by state.password_file")
    return url


def titles(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError("must be a string or a non-empty list of strings")
    titles = tuple(nonempty(item) for item in items)
    return titles


def email_address(value: Any) -> str:
    """One @, something before it, a dot inside the domain, no spaces (CONTRACT.md)."""
    text = nonempty(value)
    local, _, domain = text.partition("@")
    if (text.count("@") != 1 or not local or "." not in domain.strip(".")
            or domain.startswith(".") or domain.endswith(".") or ".." in domain
            or any(c.isspace() for c in text)):
        raise ValueError(f"must be an email address, not {text!r}")
    return text


ZOOM_ADDRESS = re.compile(r"[\w.!$&'*+=^`{|}~-]+@[\w-]+(\.[\w-]+)+")


def zoom_user(value: Any) -> str:
    """An email address, or a Zoom user id (letters, digits, - and _), nothing else: it is
    a path segment of Zoom's API (escaped there too), so no "/", "#", "?" or "%"."""
    text = nonempty(value)
    if "@" in text and ZOOM_ADDRESS.fullmatch(text):
        return email_address(text)
    if "@" in text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError(f"must be an email address or a Zoom user id, not {text!r}")
    return text



def template(value: Any) -> str:
    text = nonempty(value)
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


def type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", bool: "a boolean", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)



def path(value: Any) -> Path:
    return Path(nonempty(value))


def optional_path(value: Any) -> Path | None:
    return None if value == "" else path(value)


def metrics_file(value: Any) -> Path:
    found = path(value)
    if not found.is_absolute() or found.suffix != ".prom":
        raise ValueError(f"{value!r}: give an absolute path ending in .prom (node_exporter's "
                         "textfile collector reads only those)")
    return found
