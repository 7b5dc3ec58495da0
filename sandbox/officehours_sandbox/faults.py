"""Fault injection for the emulators: what a flaky network and busy vendors do.

An emulator with `chaos` set answers a share of its requests with a fault chosen at
random (seeded, so a run can be repeated): error statuses in the vendor's shape, 429s
with every form of Retry-After, connection resets, silent connections, truncated or
garbled bodies, writes whose answer is lost, tokens and sync state that expire mid-pass,
an instructor editing the event between our read and our write, a Zoom setting that
silently stays as it was.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Request

STATUS_KINDS = ("500", "502", "503", "429", "429-fraction", "429-date", "429-bare")
CONNECTION_KINDS = ("reset", "timeout", "truncate", "garbage", "lost-response", "latency")
STATE_KINDS = ("expire-token", "sync-expired", "conflict")
ALL_KINDS = (*STATUS_KINDS, *CONNECTION_KINDS, *STATE_KINDS)
GOOGLE_KINDS = (*ALL_KINDS, "rate-403")
ZOOM_KINDS = (*STATUS_KINDS, *CONNECTION_KINDS, "expire-token", "silent-refusal")
RARE = {"timeout": 0.2, "sync-expired": 0.3}  # slow or costly: drawn less often


def retry_after_header(kind: str) -> dict[str, str]:
    if kind == "429":
        return {"Retry-After": "1"}
    if kind == "429-fraction":
        return {"Retry-After": "0.5"}
    if kind == "429-date":
        return {"Retry-After": email.utils.formatdate(time.time() + 1, usegmt=True)}
    return {}


@dataclass
class Chaos:
    """Which share of requests fail, and how; `injected` counts what was done."""

    seed: int
    rate: float
    kinds: tuple[str, ...] = ALL_KINDS
    injected: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self, request: Request) -> str | None:
        if "token" in request.path or "openid" in request.path:
            return None  # identity endpoints stay up; expiring tokens is a kind of its own
        candidates = [k for k in self.kinds if _applies(k, request)]
        with self._lock:
            if not candidates or self._rng.random() >= self.rate:
                return None
            weights = [RARE.get(k, 1.0) for k in candidates]
            kind = self._rng.choices(candidates, weights)[0]
            self.injected[kind] += 1
            return kind


def _applies(kind: str, request: Request) -> bool:
    if kind == "conflict":
        return request.method == "PATCH" and "/settings" not in request.path
    if kind == "silent-refusal":
        return request.method == "PATCH" and request.path.endswith("/settings")
    if kind == "sync-expired":
        return request.method == "GET" and ("syncToken" in request.query
                                            or "$deltatoken" in request.query)
    return True
