"""Outbound HTTP: one place for TLS trust, proxies, timeouts and the retry policy.

`Outbound` makes every client the program talks through: httpx (Zoom, Graph), httplib2
(Google's API client and its token refresh) and the requests session msal fetches tokens
with. Each trusts exactly `service.ca_bundle` when it is set (whatever REQUESTS_CA_BUNDLE,
SSL_CERT_FILE and friends say), goes through the environment's HTTPS proxy, and retries
as `with_retries` says.
"""

from __future__ import annotations

import email.utils
import random
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httplib2
import httpx
import requests

MAX_RETRY_AFTER = 60.0


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Trust exactly `ca_bundle` when set, whatever SSL_CERT_FILE and friends say."""
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return ssl.create_default_context()


def https_proxy() -> str | None:
    """The environment's HTTPS proxy, passed explicitly because trust_env is off."""
    return urllib.request.getproxies().get("https")


RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_ATTEMPTS = 4
T = TypeVar("T")


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s... capped at 30 s."""
    return float(min(30.0, 0.25 * 2.0**attempt) * random.uniform(0.5, 1.0))


def with_retries(once: Callable[[], T], delay: Callable[[T | Exception, int], float | None],
                 sleep: Callable[[float], None]) -> T:
    """The retry policy of every outbound request, in one place.

    `once` makes one attempt; `delay` says how long to wait before the next one (Retry-After
    when the service gave one, else jittered backoff) or None when the outcome is final.
    At most MAX_ATTEMPTS attempts; then the last outcome stands (an answer is returned,
    an exception raised). Only for requests that are safe to repeat: reads, and writes
    guarded by If-Match or idempotent by nature (a settings PATCH to the same values)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            outcome = once()
        except Exception as err:
            wait = delay(err, attempt)
            if wait is None or attempt == MAX_ATTEMPTS:
                raise
            sleep(wait)
            continue
        wait = delay(outcome, attempt)
        if wait is None or attempt == MAX_ATTEMPTS:
            return outcome
        sleep(wait)
    raise AssertionError("unreachable")


def httpx_delay(outcome: httpx.Response | Exception, attempt: int) -> float | None:
    if isinstance(outcome, httpx.TransportError | ValueError):  # reset, timeout, bad JSON
        return backoff(attempt)
    if isinstance(outcome, httpx.Response) and outcome.status_code in RETRY_STATUSES:
        return retry_after(outcome.headers) or backoff(attempt)
    return None


def send(http: httpx.Client, request: httpx.Request, auth: httpx.Auth | None,
         sleep: Callable[[float], None],
         delay: Callable[[httpx.Response | Exception, int], float | None] = httpx_delay,
         before: Callable[[], None] | None = None) -> httpx.Response:
    """Send with the retry policy; a 2xx answer whose JSON does not parse is retried too.

    `delay` is the policy's decision (see `with_retries`); a vendor may narrow it.
    `before` runs before every attempt (a write's fence: a retry after a wait of a
    minute is a new write)."""
    def once() -> httpx.Response:
        if before is not None:
            before()
        response = http.send(request, auth=auth) if auth else http.send(request)
        if response.is_success and response.content:
            response.json()  # raises ValueError on a truncated or garbled body
        return response

    return with_retries(once, delay, sleep)


class RateLimiter:
    """Spaces requests to at most `per_second`, across threads, without bursts."""

    def __init__(self, per_second: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._gap = 1.0 / per_second
        self._sleep, self._clock = sleep, clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._gap
        if slot > now:
            self._sleep(slot - now)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until the moment a Retry-After header names, uncapped, or None.

    Three forms are seen: seconds (maybe fractional: Graph), an HTTP date (RFC 9110), and
    an ISO-8601 date and time, which is what Zoom documents ("Retry-After:
    2020-05-31T00:00:00Z", https://developers.zoom.us/docs/api/rest/rate-limits/)."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if moment.tzinfo is None:  # neither form promises a zone; both mean UTC in practice
        moment = moment.replace(tzinfo=UTC)
    return max(moment.timestamp() - (time.time() if now is None else now), 0.0)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait before retrying within a pass, at most MAX_RETRY_AFTER."""
    seconds = retry_after_seconds(headers, now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def _requests_delay(outcome: requests.Response | Exception, attempt: int) -> float | None:
    if isinstance(outcome, requests.ConnectionError | requests.Timeout):
        return backoff(attempt)
    if isinstance(outcome, requests.Response) and outcome.status_code in RETRY_STATUSES:
        return retry_after(outcome.headers) or backoff(attempt)
    return None


class _RetryingSession(requests.Session):
    """A requests session whose every request follows the retry policy (msal's token
    fetches: a 503 or a reset from the identity platform costs a retry, not a pass)."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        super().__init__()
        self._sleep = sleep

    def request(self, method: Any, url: Any, *args: Any,
                **kwargs: Any) -> requests.Response:
        parent = super().request
        return with_retries(lambda: parent(method, url, *args, **kwargs), _requests_delay,
                            self._sleep)


@dataclass(frozen=True)
class Outbound:
    """How the program reaches the outside: trust, proxy, timeout, and how retries wait."""

    ca_bundle: Path | None = None
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def httpx(self) -> httpx.Client:
        return httpx.Client(verify=ssl_context(self.ca_bundle), trust_env=False,
                            proxy=https_proxy(),
                            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)))

    def httplib2(self) -> httplib2.Http:
        # httplib2 reads the proxy from the environment itself, NO_PROXY included
        return httplib2.Http(ca_certs=str(self.ca_bundle) if self.ca_bundle else None,
                             timeout=self.timeout,
                             proxy_info=httplib2.proxy_info_from_environment)

    def requests(self) -> requests.Session:
        session = _RetryingSession(self.sleep)
        session.trust_env = False  # REQUESTS_CA_BUNDLE etc. must not beat ca_bundle
        session.verify = str(self.ca_bundle) if self.ca_bundle else True
        proxy = https_proxy()
        if proxy:
            session.proxies = {"https": proxy}
        return session
