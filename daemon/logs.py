"""Logging for every command: one line per event to stderr, with journald's priority
prefixes when systemd's journal reads the stream."""

from __future__ import annotations

import logging
import os
import sys


class _JournalFormatter(logging.Formatter):
    """`<N>` syslog priority prefixes, which journald turns into log levels."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(levelname)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("googleapiclient", "google", "httpx", "httpcore", "msal", "urllib3",
                  "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # "skipped: maximum number of running instances" when a pass outlasts the interval is
    # expected on a large campus; the pass's own log line tells its duration
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
