"""Files the stores write beside a database: whole or not at all, private."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from . import StateError


def private(path: Path) -> None:
    """The file (made if absent) readable by its owner only, whatever the umask."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        for suffix in ("-wal", "-shm"):
            extra = Path(f"{path}{suffix}")
            if extra.exists():
                os.chmod(extra, 0o600)
    except OSError as err:  # e.g. left root's by `sudo officehours sync`
        raise StateError(f"the state database {path} cannot be used by this user "
                         f"({err.strerror or err}): chown it to the service's user",
                         stuck=True) from None


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a whole file or nothing (a full disk leaves the old one), with this mode
    whatever the umask."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):  # gone already (replaced), or never made
            os.unlink(temporary)
