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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httplib2
import httpx
import requests

from .errors import CalendarError

MAX_RETRY_AFTER = 60.0
DEFAULT_PORTS = {"https": 443, "http": 80, "wss": 443}


class ForeignHost(Exception):
    """A request that would carry a token or a secret to a host the configuration does not
    name (a next-page or delta link, a redirect, a stored link pointing elsewhere): refused
    before anything is sent. Its message names the host, never the credential."""


def origin(url: str) -> str:
    """scheme://host:port of a URL, the port spelled out, for comparing where requests go."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # a port that is not a number
        port = -1
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


NETWORK = "network"  # the code of a vendor error that is the network's, not the vendor's
_CAUSES = (("certificate", "its TLS certificate is not trusted (service.ca_bundle?)"),
           ("name or service not known", "the name does not resolve (DNS)"),
           ("nodename nor servname", "the name does not resolve (DNS)"),
           ("temporary failure in name resolution", "the name does not resolve (DNS)"),
           ("connection refused", "the connection was refused"),
           ("proxy", "the proxy refused or failed"),
           ("timed out", "no answer within the time-out"),
           ("timeout", "no answer within the time-out"),
           ("network is unreachable", "no route to it"))


def network_cause(err: BaseException) -> str:
    """What went wrong on the way, in a few words an admin acts on, and the library's own
    words after them (they carry no secret: a transport error names hosts, not headers)."""
    text = f"{type(err).__name__}: {err}"
    found = next((cause for needle, cause in _CAUSES if needle in text.lower()),
                 "the connection failed")
    return f"{found} ({text[:160]})"


MAX_PAGE_TOKEN = 16_384  # a next-page token or link longer than this is not one


class Pages:
    """One listing's next pages, bounded: a vendor naming a page it already gave, or more
    than `limit` pages, ends the listing with a CalendarError (that instructor's pass
    fails, the others go on) instead of an endless loop. `next` takes the vendor's
    next-page token or link and returns it, or None at the end."""

    def __init__(self, what: str, limit: int) -> None:
        self._what, self._limit = what, limit
        self._seen: set[str] = set()

    def next(self, token: object) -> str | None:
        if token is None or token == "":
            return None
        if not isinstance(token, str):
            raise CalendarError(f"{self._what}: the next page is a {type(token).__name__}, "
                              "not a string; listing stopped")
        if not token.isprintable() or len(token) > MAX_PAGE_TOKEN:  # no URL, no token
            raise CalendarError(f"{self._what}: the next page is not a printable token or "
                                f"link of at most {MAX_PAGE_TOKEN} characters; listing stopped")
        if token in self._seen:
            raise CalendarError(f"{self._what}: the vendor named the same next page twice; "
                              "listing stopped (a loop on its side)")
        if len(self._seen) + 1 >= self._limit:
            raise CalendarError(f"{self._what}: more than {self._limit} pages; listing stopped "
                              "(service.max_pages)")
        self._seen.add(token)
        return token


class Origins:
    """Where one client's credentials may go: the origins of its configured base URLs (API,
    token endpoint). Every request with a credential is checked here before it is sent."""

    def __init__(self, urls: Iterable[str]) -> None:
        self._allowed = frozenset(origin(u) for u in urls if u)

    def check(self, url: str) -> None:
        where = origin(url)
        if where not in self._allowed:
            raise ForeignHost(f"a request to {where} was refused: credentials go only to "
                              f"{', '.join(sorted(self._allowed))} (the configured URLs)")


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Trust exactly `ca_bundle` when set, whatever SSL_CERT_FILE and friends say."""
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return ssl.create_default_context()


def https_proxy() -> str | None:
    """The environment's HTTPS proxy, passed explicitly because trust_env is off."""
    return urllib.request.getproxies().get("https")


RETRY_STATUSES = (429, 500, 502, 503, 504)
Answered = Callable[[int | None], None]  # one attempt's HTTP status, None: no answer
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
    fetches: a 503 or a reset from the identity platform costs a retry, not a pass), goes
    only to its origins and follows no redirect (a 307 would re-POST the secret)."""

    def __init__(self, sleep: Callable[[float], None], origins: Origins,
                 answered: Answered) -> None:
        super().__init__()
        self._sleep = sleep
        self._origins = origins
        self._answered = answered
        self.max_redirects = 0

    def request(self, method: Any, url: Any, *args: Any,
                **kwargs: Any) -> requests.Response:
        self._origins.check(str(url))
        kwargs["allow_redirects"] = False
        parent = super().request

        def once() -> requests.Response:
            try:
                response = parent(method, url, *args, **kwargs)
            except requests.RequestException:
                self._answered(None)
                raise
            self._answered(response.status_code)
            return response

        return with_retries(once, _requests_delay, self._sleep)


class _PinnedHttp(httplib2.Http):  # type: ignore[misc]
    """httplib2 for Google's API client and google-auth's token requests: only to its
    origins, and no redirect followed (httplib2 follows a 308 for any method, which would
    re-POST the signed assertion elsewhere)."""

    def __init__(self, origins: Origins, answered: Answered, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._origins = origins
        self._answered = answered
        self.follow_redirects = False

    def request(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        self._origins.check(uri)
        try:
            response, content = super().request(uri, *args, **kwargs)
        except (OSError, httplib2.HttpLib2Error):
            self._answered(None)
            raise
        self._answered(response.status)
        return response, content


class _Observed(httpx.BaseTransport):
    """httpx's transport, counting each attempt's answer (or its absence) per vendor."""

    def __init__(self, inner: httpx.BaseTransport, answered: Answered) -> None:
        self._inner, self._answered = inner, answered

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError:
            self._answered(None)
            raise
        self._answered(response.status_code)
        return response

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True)
class Outbound:
    """How the program reaches the outside: trust, proxy, timeout, and how retries wait."""

    ca_bundle: Path | None = None
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    max_pages: int = 1000  # service.max_pages: see Pages
    # told of each attempt's answer: (vendor, HTTP status or None for no answer); the
    # service counts them in its metrics
    observe: Callable[[str, int | None], None] | None = None

    def _answered(self, vendor: str) -> Answered:
        observe = self.observe
        return (lambda status: None) if observe is None else (
            lambda status: observe(vendor, status))

    # Each client below takes the configured URLs its credentials may go to, and refuses
    # (ForeignHost) any request elsewhere; none follows a redirect.

    # `vendor` ("google", "microsoft", "zoom") names them in the metrics.

    def httpx(self, vendor: str, *urls: str) -> httpx.Client:
        origins = Origins(urls)
        transport = httpx.HTTPTransport(verify=ssl_context(self.ca_bundle), trust_env=False,
                                        proxy=https_proxy())
        return httpx.Client(transport=_Observed(transport, self._answered(vendor)),
                            trust_env=False,
                            follow_redirects=False,
                            event_hooks={"request": [lambda r: origins.check(str(r.url))]},
                            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)))

    def httplib2(self, vendor: str, *urls: str) -> httplib2.Http:
        # httplib2 reads the proxy from the environment itself, NO_PROXY included
        return _PinnedHttp(Origins(urls), self._answered(vendor),
                           ca_certs=str(self.ca_bundle) if self.ca_bundle else None,
                           timeout=self.timeout, proxy_info=httplib2.proxy_info_from_environment)

    def requests(self, vendor: str, *urls: str) -> requests.Session:
        session = _RetryingSession(self.sleep, Origins(urls), self._answered(vendor))
        session.trust_env = False  # REQUESTS_CA_BUNDLE etc. must not beat ca_bundle
        session.verify = str(self.ca_bundle) if self.ca_bundle else True
        proxy = https_proxy()
        if proxy:
            session.proxies = {"https": proxy}
        return session
