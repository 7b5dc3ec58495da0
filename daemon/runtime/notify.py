"""systemd's notify protocol without libsystemd: READY, STATUS, RELOADING, STOPPING and
the watchdog (sd_notify(3))."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> None:
    """One datagram to $NOTIFY_SOCKET, if set; never blocks the service."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:  # a notify socket that is not being read must not hold the service up
            sock.sendto(message.encode(), socket.MSG_DONTWAIT, address)
        except OSError as err:
            log.warning("action=sd-notify problem=%r", str(err))


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec=, when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
