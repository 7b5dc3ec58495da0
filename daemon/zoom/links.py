"""Join links read from Zoom, trusted for `zoom.refresh_minutes`: quota, not CPU, is the
limit on a large campus. The first time, each instructor's link is trusted for a share
of that, different for each, so that refreshes spread over the cadence instead of all
coming due in the same pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..model import JoinLink, share_of


class LinkCache:
    def __init__(self, refresh_minutes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cadence = refresh_minutes * 60.0
        self._clock = clock
        self._links: dict[str, tuple[JoinLink, float]] = {}  # key -> (link, trusted until)
        self._lock = threading.Lock()

    def get(self, key: str) -> JoinLink | None:
        """The link while it is trusted, else None."""
        with self._lock:
            cached = self._links.get(key)
        return cached[0] if cached is not None and cached[1] > self._clock() else None

    def known(self, key: str) -> JoinLink | None:
        """The link last read, trusted or not (what the invites were last given)."""
        with self._lock:
            cached = self._links.get(key)
        return cached[0] if cached is not None else None

    def put(self, key: str, link: JoinLink) -> None:
        with self._lock:
            seen = key in self._links
            share = 1.0 if seen else 0.5 + 0.5 * share_of(key)
            self._links[key] = (link, self._clock() + self._cadence * share)

    def clear(self) -> None:
        """Trust no link: each is read again when next needed."""
        with self._lock:
            self._links.clear()
