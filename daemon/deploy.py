"""What an admin installs beside the program: the systemd unit, written for one
configuration, and the example configuration, both shipped inside the package.

The unit's LoadCredential= lines are derived from the configuration, so that what the
configuration names is exactly what systemd delivers (no line to uncomment by hand).
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

DEFAULT_UNIT = Path("/etc/systemd/system/officehours.service")
CREDENTIALS_SOURCE = Path("/etc/officehours/credentials")  # where the README puts secrets
# $CREDENTIALS_DIRECTORY of the service: an absolute secret path here is a credential too
RUN_CREDENTIALS = Path("/run/credentials/officehours.service")
STATE_ROOT = Path("/var/lib")  # where systemd makes a unit's StateDirectory=
_LOAD_CREDENTIAL = re.compile(r"^\s*LoadCredential=([^:\s]+):(\S+)\s*$")


def shipped(name: str) -> str:
    """A file shipped in the package: 'officehours.service' or 'config.example.toml'."""
    return files("daemon").joinpath("share", name).read_text()


def credential_name(path: Path) -> str | None:
    """The credential a secret path stands for, or None for a plain file path: a relative
    path is a credential name, and so is a path inside the service's credentials folder."""
    if not path.is_absolute():
        return str(path)
    if path.parent == RUN_CREDENTIALS:
        return path.name
    return None


def render_unit(credentials: list[str], executable: Path, config: Path,
                state_dir: Path = STATE_ROOT / "officehours", writable: tuple[Path, ...] = (),
                ) -> str:
    """The unit for a configuration whose secrets are these credential names, whose state
    lives in `state_dir` (under /var/lib: StateDirectory=, owned by the dynamic user), and
    which also writes into the `writable` directories (ReadWritePaths=)."""
    lines = "\n".join(f"LoadCredential={name}:{CREDENTIALS_SOURCE / name}"
                      for name in sorted(set(credentials)))
    text = (shipped("officehours.service").replace("@CREDENTIALS@", lines)
            .replace("@EXECUTABLE@", str(executable)).replace("@CONFIG@", str(config))
            .replace("StateDirectory=officehours",
                     f"StateDirectory={state_dir.relative_to(STATE_ROOT)}"))
    paths = "".join(f"ReadWritePaths={path}\n" for path in writable)
    return text.replace("ProtectSystem=strict\n", f"ProtectSystem=strict\n{paths}")


def render_socket(address: str) -> str:
    """officehours.socket: systemd listens on `address` and hands the socket to the
    service ([push] listen = "systemd"), which then starts with its port already bound."""
    return ("[Unit]\nDescription=officehours: the receiver of calendar notifications "
            "([push])\n\n[Socket]\n"
            f"ListenStream={address}\nBindIPv6Only=default\nNoDelay=yes\n\n"
            "[Install]\nWantedBy=sockets.target\n")


def unit_state_problem(state_dir: Path) -> str | None:
    """Why the unit cannot give the service this state directory, or None."""
    if state_dir.parent != STATE_ROOT:
        return (f"{state_dir}: the service runs as a dynamic user (DynamicUser=) whose only "
                f"writable state is a directory systemd makes under {STATE_ROOT} "
                f"(StateDirectory=): give {STATE_ROOT}/NAME, e.g. {STATE_ROOT}/officehours")
    return None


def writable(unit: Path) -> list[Path]:
    """What a unit file lets the service write: its StateDirectory= and ReadWritePaths=."""
    found = []
    for line in unit.read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if key == "StateDirectory":
            found += [STATE_ROOT / name for name in value.split()]
        elif key == "ReadWritePaths":
            found += [Path(name.lstrip("-")) for name in value.split()]
    return found


def delivered(unit: Path) -> dict[str, Path]:
    """The credentials a unit file delivers: credential name -> the file systemd reads."""
    found = {}
    for line in unit.read_text().splitlines():
        match = _LOAD_CREDENTIAL.match(line)
        if match:
            found[match.group(1)] = Path(match.group(2))
    return found
