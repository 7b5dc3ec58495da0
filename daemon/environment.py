"""What a configuration names, checked where it will be used: secret files (private,
readable, holding what their key expects), the state directory, the metrics textfile's
directory and the CA bundle, each against the installed unit that will run the service.

config.py declares which check each key gets (`key(..., check=...)`); `Checks` carries
what a command asked for (secrets looked at or not, which unit) to every check, and each
check returns the value the program then uses (a credential name resolved to its file)
or raises ValueError saying what is wrong, never quoting a secret.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .deploy import CREDENTIALS_SOURCE, DEFAULT_UNIT, credential_name, delivered, writable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


@dataclass(frozen=True)
class Checks:
    """What a command checks: `secrets` False for those that read only the program's
    state (status, history, the unit's reload check): no secret file, no writable state
    directory; `unit`: the installed unit that delivers credentials and sets what the
    service may write."""

    secrets: bool = True
    unit: Path = DEFAULT_UNIT


Check = Callable[[Path, Checks], Path]


def resolve_credential(path: Path, unit: Path = DEFAULT_UNIT) -> Path:
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


def readable_file(secret: bool, content: Callable[[bytes], None] | None = None) -> Check:
    """A file that must exist and be readable (privately, for a secret); `content` checks
    what is inside, with a message that never quotes it."""
    def check(named: Path, checks: Checks) -> Path:
        if secret and not checks.secrets:
            return named
        path = resolve_credential(named, checks.unit)
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

    return check


def secret_text(data: bytes) -> None:
    if not data.strip():
        raise ValueError("is empty")


GOOGLE_FIELDS = {"service_account": ("client_email", "private_key", "token_uri"),
                 "authorized_user": ("client_id", "client_secret", "refresh_token")}


def google_key(data: bytes) -> None:
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
        try:
            private_key(str(info["private_key"]).encode())
        except (ValueError, TypeError):
            raise ValueError("is a service_account file whose private_key does not parse "
                             "(a PEM private key, unencrypted, as Google issues it)") from None


@functools.lru_cache(maxsize=2)
def private_key(pem: bytes) -> PrivateKeyTypes:
    """An unencrypted PEM private key, loaded and checked once per process: cryptography's
    check of an RSA key costs about 35 ms, and the config check, the Google account and
    the Entra certificate each need the same key (ValueError or TypeError: it does not
    parse). Two at most are kept: a key replaced by a reload drops out."""
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def pem_key_and_certificate(data: bytes) -> None:
    """A PEM file holding the app's private key and its certificate (msal needs both)."""
    from cryptography import x509

    try:
        private_key(data)
    except (ValueError, TypeError):
        raise ValueError("holds no unencrypted PEM private key") from None
    try:
        x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError("holds no PEM certificate (key and certificate go in one "
                         "file)") from None


def ca_bundle(path: Path, checks: Checks) -> Path:
    """A PEM bundle the service can trust, loaded as its HTTPS clients load it (a file
    that is not one passed check-config, and every request then failed)."""
    path = readable_file(secret=False)(path, checks)
    if checks.secrets:
        try:
            ssl.create_default_context(cafile=str(path))  # as http.ssl_context does
        except (ssl.SSLError, OSError) as err:
            raise ValueError(f"{path} is not a PEM bundle of certificates "
                             f"({getattr(err, 'reason', None) or err})") from None
    return path


def _unit_lets_write(path: Path, unit: Path) -> None:
    """Outside the service, with a unit installed: the unit must let the service write
    `path` (ProtectSystem=strict makes everything else read-only, and the service would
    exit 78 at its start)."""
    if os.environ.get("CREDENTIALS_DIRECTORY") or not unit.is_file():
        return
    allowed = writable(unit)
    if not any(path.absolute() == a or a in path.absolute().parents for a in allowed):
        raise ValueError(f"the installed unit {unit} lets the service write only "
                         f"{', '.join(map(str, allowed)) or 'nothing'}, not {path}: write the "
                         f"unit again (officehours --config FILE unit > {unit}; systemctl "
                         "daemon-reload)")


def state_directory(path: Path, checks: Checks) -> Path:
    """A writable directory, or one that can be created (nothing is created here), that
    the installed unit lets the service write."""
    if not checks.secrets:
        return path
    _unit_lets_write(path, checks.unit)
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


def textfile(path: Path, checks: Checks) -> Path:
    """node_exporter's textfile collector reads the *.prom files of one directory, which
    must exist (node_exporter's package makes it) and be writable by the service."""
    if checks.secrets and not path.parent.is_dir():
        raise ValueError(f"{path.parent} is not a directory: install node_exporter's textfile "
                         "collector, or point this at its --collector.textfile.directory")
    if checks.secrets:
        _unit_lets_write(path.parent, checks.unit)
    return path
