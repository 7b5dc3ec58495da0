"""Outbound HTTP: one place for TLS trust, proxies, timeouts and Retry-After parsing."""

from __future__ import annotations

import email.utils
import random
import re
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_RETRY_AFTER = 60.0
_PWD = re.compile(r"(pwd=)[^&#\s\"'<]+")


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Trust exactly `ca_bundle` when set, whatever SSL_CERT_FILE and friends say."""
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return ssl.create_default_context()


def https_proxy() -> str | None:
    """The environment's HTTPS proxy, passed explicitly because trust_env is off."""
    return urllib.request.getproxies().get("https")


def client(ca_bundle: Path | None, **kwargs: object) -> httpx.Client:
    return httpx.Client(
        verify=ssl_context(ca_bundle), trust_env=False, proxy=https_proxy(),
        timeout=TIMEOUT, **kwargs,  # type: ignore[arg-type]
    )


RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_ATTEMPTS = 4


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s... capped at 30 s."""
    return float(min(30.0, 0.25 * 2.0**attempt) * random.uniform(0.5, 1.0))


def send(http: httpx.Client, request: httpx.Request, auth: httpx.Auth | None,
         sleep: Callable[[float], None]) -> httpx.Response:
    """Send with bounded retries: transport errors, 429 and 5xx, honouring Retry-After.

    Only for requests that are safe to repeat: reads, and writes guarded by If-Match or
    idempotent by nature (a settings PATCH to the same values)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = http.send(request, auth=auth) if auth else http.send(request)
        except httpx.TransportError:
            if attempt == MAX_ATTEMPTS:
                raise
            sleep(backoff(attempt))
            continue
        if response.status_code in RETRY_STATUSES and attempt < MAX_ATTEMPTS:
            sleep(retry_after(response.headers) or backoff(attempt))
            continue
        return response
    raise AssertionError("unreachable")


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: seconds (maybe fractional) or an HTTP date."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        seconds = when - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def mask_url(text: str) -> str:
    """Join URLs with their `pwd=` part masked, for logs, audit and status."""
    return _PWD.sub(r"\1***", text)
