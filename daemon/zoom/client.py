"""Zoom REST v2: Server-to-Server OAuth, the reads and repairs that secure a PMI, paced
to the plan's rate limits; errors carry what a caller needs and name no secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from ..config import ZoomConfig
from ..errors import ZoomCredentialsRefused, ZoomError, ZoomRefused, ZoomThrottled
from ..http import (
    MAX_RETRY_AFTER,
    NETWORK,
    ForeignHost,
    RateLimiter,
    httpx_delay,
    network_cause,
    origin,
    retry_after_seconds,
    send,
)
from ..model import JoinLink
from ..values import PasscodePolicy
from .policy import PmiState, Repair, missing_security, passcode_in_invite, random_passcode

TOKEN_MARGIN_SECONDS = 300  # ask for a new token this long before the old one expires
# Requests per second by plan and Zoom's rate-limit category (light: user and meeting
# reads and writes; medium: user settings), kept about 20% under Zoom's figures: requests
# spaced evenly here still bunch up on their way over many connections.
RATE_LIMITS = {"pro": {"light": 25.0, "medium": 16.0},
               "business": {"light": 64.0, "medium": 48.0},
               "enterprise": {"light": 64.0, "medium": 48.0}}


@dataclass(frozen=True)
class Enforcement:
    before: PmiState
    after: PmiState
    repaired: bool


class _TokenAuth(httpx.Auth):
    """S2S OAuth as a sans-I/O flow: fetch a token when needed, again on a 401."""

    requires_response_body = True

    def __init__(self, config: ZoomConfig, secret: str, clock: Callable[[], float]) -> None:
        basic = base64.b64encode(f"{config.client_id}:{secret}".encode()).decode()
        self.key = hashlib.sha256(b"officehours passcode digest:" + secret.encode()).digest()
        self._basic = f"Basic {basic}"
        self._config = config
        self._clock = clock
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def _token_request(self) -> httpx.Request:
        # Zoom documents the query string, API-NOTES the form body: send both, they agree
        grant = {"grant_type": "account_credentials", "account_id": self._config.account_id}
        return httpx.Request("POST", f"{self._config.oauth_base_url}/oauth/token", params=grant,
                             data=grant, headers={"Authorization": self._basic})

    def _store(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise ZoomCredentialsRefused(
                f"Zoom refused the app credentials (HTTP {response.status_code})",
                status=response.status_code)
        body = response.json()
        with self._lock:
            self._token = body["access_token"]
            self._expires = self._clock() + float(body.get("expires_in", 3600))

    def current(self, send: Callable[[httpx.Request], httpx.Response], fresh: bool) -> str:
        """The token, asked for through `send` when there is none, it is about to expire,
        or `fresh` is asked."""
        if fresh or not self._token or self._clock() > self._expires - TOKEN_MARGIN_SECONDS:
            self._store(send(self._token_request()))
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._token or self._clock() > self._expires - TOKEN_MARGIN_SECONDS:
            self._store((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:  # expired or revoked early: one fresh token, once
            self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


DAILY_MESSAGE = re.compile(r"daily rate limit", re.IGNORECASE)
RESUME_AT = re.compile(r"resume these requests at GMT (\d\d):(\d\d):(\d\d)")


def _daily_limit(response: httpx.Response, now: datetime | None = None) -> datetime | None:
    """When a 429 is a limit no retry within the pass can help, the moment it lifts.

    Zoom's limits are per second (QPS) or per day ("Daily-limit" in X-RateLimit-Type),
    and a user's meetings take 100 creates/updates a day
    (https://developers.zoom.us/docs/api/rest/rate-limits/). That daily limit is reported
    answered with no header at all, only a body saying "daily rate limit ... You may resume
    these requests at GMT 00:00:00." (API-NOTES.md, Edges): the body counts as much as the
    headers. A Retry-After beyond what a pass waits is taken the same way."""
    if response.status_code != 429:
        return None
    now = now or datetime.now(UTC)
    wait = retry_after_seconds(response.headers)
    message = _message(response)
    daily = ("daily" in response.headers.get("x-ratelimit-type", "").lower()
             or DAILY_MESSAGE.search(message) is not None)
    if not daily and (wait is None or wait <= MAX_RETRY_AFTER):
        return None
    if wait is not None:  # to the second: a Retry-After date is a whole second
        return (now + timedelta(seconds=wait, microseconds=500_000)).replace(microsecond=0)
    resume = RESUME_AT.search(message)
    at = (datetime.strptime(":".join(resume.groups()), "%H:%M:%S").time() if resume
          else datetime.min.time())  # Zoom's daily limits reset at 00:00 UTC (page above)
    lifts = datetime.combine(now.date(), at, UTC)
    return lifts if lifts > now else lifts + timedelta(days=1)


def _message(response: httpx.Response) -> str:
    """A Zoom error body's message, or "" when the body is not Zoom's JSON shape."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def _segment(user: str) -> str:
    """A Zoom user (an address or an id) as one path segment, escaped."""
    return quote(user, safe="@")


def _shown(value: Any) -> str:
    """A vendor's value in an error message: its type, and at most 40 characters of it."""
    return f"{type(value).__name__} {str(value)[:40]!r}" if value is not None else "missing"


def _delay(outcome: httpx.Response | Exception, attempt: int) -> float | None:
    if isinstance(outcome, httpx.Response) and _daily_limit(outcome) is not None:
        return None
    return httpx_delay(outcome, attempt)


class ZoomClient:
    def __init__(self, config: ZoomConfig, secret: str, http: httpx.Client,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 before_write: Callable[[], None] = lambda: None) -> None:
        self._base = config.api_base_url
        self._http = http
        self._auth = _TokenAuth(config, secret, clock)
        self._sleep = sleep
        self._limits = {category: RateLimiter(rate, sleep)
                        for category, rate in RATE_LIMITS[config.plan].items()}
        self.requests = 0
        self.rooms: dict[str, tuple[str, str]] = {}  # zoom_user -> (user id, PMI), as read
        # the node's fence, given where the engine is built: before every attempt of every
        # write (leader.py); Fenced once the node no longer leads
        self.before_write = before_write

    def close(self) -> None:
        self._http.close()

    def access_token(self, fresh: bool = False) -> str:
        """The app's OAuth token, for Zoom's event stream (whose URL carries it): the one
        the REST calls use, or a new one when `fresh` (the stream's was refused)."""
        try:
            return self._auth.current(lambda request: send(self._http, request, None,
                                                           self._sleep), fresh)
        except httpx.TransportError as err:
            raise ZoomError(f"Zoom unreachable at {origin(self._base)}: {network_cause(err)}",
                            code=NETWORK) from None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              category: str = "light") -> Any:
        """One request; `category` is Zoom's rate-limit label of the endpoint."""
        self.requests += 1
        self._limits[category].wait()
        request = self._http.build_request(method, self._base + path, json=body)
        try:
            response = send(self._http, request, self._auth, self._sleep, _delay,
                            before=None if method == "GET" else self.before_write)
        except httpx.TransportError as err:
            raise ZoomError(f"Zoom unreachable at {origin(self._base)}: {network_cause(err)}",
                            code=NETWORK) from None
        except ForeignHost as err:
            raise ZoomError(f"Zoom {method} {path}: {err}") from None
        except ValueError:
            raise ZoomError(f"Zoom {method} {path}: the answer was not valid JSON, "
                            "4 times") from None
        if response.status_code >= 400:
            raise self._error(method, path, response)
        return response.json() if response.content else None

    @staticmethod
    def _error(method: str, path: str, response: httpx.Response) -> ZoomError:
        code = None
        try:
            body = response.json()
            code = body.get("code")
            detail = f"code {code}: {body.get('message')}"
        except ValueError:
            detail = response.text[:200]
        text = f"Zoom {method} {path} failed: HTTP {response.status_code} ({detail})"
        fields: dict[str, Any] = {"code": code, "retry_after": retry_after_seconds(
            response.headers)}
        until = _daily_limit(response)
        if until is not None:
            return ZoomThrottled(f"{text}; Zoom's limit lifts at {until:%Y-%m-%d %H:%M} UTC, "
                                 "not tried again before then", until, **fields)
        if response.status_code == 400 and method == "PATCH" and code == 300:  # locked
            return ZoomRefused(text, status=400, **fields)
        return ZoomError(text, status=response.status_code, **fields)

    def _user(self, user: str) -> tuple[str, str]:
        body = self._object(self._call("GET", f"/users/{_segment(user)}"), f"/users/{user}")
        url, pmi, found = body.get("personal_meeting_url"), body.get("pmi"), body.get("id")

        if not isinstance(url, str) or not url.startswith("https://"):
            raise ZoomError(f"Zoom GET /users/{user}: personal_meeting_url is "
                            f"{_shown(url)}, not an https URL")
        if isinstance(pmi, bool) or not isinstance(pmi, int | str) or not str(pmi).isdigit():
            raise ZoomError(f"Zoom GET /users/{user}: pmi is {_shown(pmi)}, not a number")
        # what Zoom's events call the room: the user's id and the PMI, as just read
        self.rooms[user.casefold()] = (found if isinstance(found, str) and len(found) <= 64
                                       else "", str(pmi))
        return url, str(pmi)

    def _meeting(self, pmi: str) -> tuple[str, bool]:
        body = self._object(self._call("GET", f"/meetings/{pmi}"), f"/meetings/{pmi}")
        settings = body.get("settings") or {}
        password, waiting = body.get("password") or "", (
            settings.get("waiting_room", False) if isinstance(settings, dict) else None)
        if not isinstance(password, str) or not isinstance(waiting, bool):
            raise ZoomError(f"Zoom GET /meetings/{pmi}: password or settings.waiting_room "
                            "has the wrong type")
        return password, waiting

    @staticmethod
    def _object(body: Any, path: str) -> dict[str, Any]:
        """A Zoom answer checked at the edge: a JSON object, or a vendor error naming it."""
        if not isinstance(body, dict):
            raise ZoomError(f"Zoom GET {path}: the answer is not a JSON object")
        return body

    def link(self, user: str, policy: PasscodePolicy) -> JoinLink:
        """The current link; the PMI meeting is read too when its passcode belongs in it."""
        url, pmi = self._user(user)
        if not passcode_in_invite(policy, url):
            return JoinLink(url, pmi)
        return JoinLink(url, pmi, self._meeting(pmi)[0])

    def pmi_state(self, user: str) -> PmiState:
        """What a student meets: user, user settings and PMI meeting, read now."""
        url, pmi = self._user(user)
        settings = self._object(self._call("GET", f"/users/{_segment(user)}/settings",
                                           category="medium") or {}, f"/users/{user}/settings")
        schedule = settings.get("schedule_meeting") or {}
        if not isinstance(schedule, dict):
            raise ZoomError(f"Zoom GET /users/{user}/settings: schedule_meeting is not an object")
        passcode, waiting_room = self._meeting(pmi)
        return PmiState(
            require_password_for_pmi_meetings=str(
                schedule.get("require_password_for_pmi_meetings", "none")),
            passcode=passcode, waiting_room=waiting_room, url=url, meeting_id=pmi,
            password_requirement=dict(schedule.get("meeting_password_requirement") or {}))

    def account_locks(self) -> set[str]:
        """Which of the settings 'secure' needs the account has locked."""
        body = self._call("GET", "/accounts/me/lock_settings", category="medium") or {}
        found = {**(body.get("schedule_meeting") or {}), **(body.get("in_meeting") or {})}
        return {name for name in ("require_password_for_pmi_meetings", "waiting_room")
                if found.get(name)}

    def enforce(self, user: str, dry_run: bool = False) -> Enforcement:
        """Make the PMI secure if it is not, each setting through the endpoint that owns
        it, and confirm by reading both back. A setting the account refuses does not stop
        the repair of the others."""
        before = self.pmi_state(user)
        repair = missing_security(before, random_passcode)
        if repair is None or dry_run:
            return Enforcement(before, before, repair is not None)
        try:
            refusals = self._repair(user, before, repair)
        except ZoomThrottled as err:  # a daily limit stopped the repair: NOT secure
            err.insecure = True
            raise
        after = self.pmi_state(user)
        if after.lacking():
            said = f"; Zoom said: {'; '.join(refusals)}" if refusals else \
                " (locked by the account?)"
            raise ZoomRefused(f"Zoom kept the PMI of {user} insecure after a repair: "
                              f"{', '.join(after.lacking())} unchanged{said}", after)
        return Enforcement(before, after, True)

    def _repair(self, user: str, before: PmiState, repair: Repair) -> list[str]:
        """The repair's PATCHes; what Zoom said of each it refused."""
        refusals = []
        if repair.settings is not None:
            refusals += self._patch(f"/users/{_segment(user)}/settings", repair.settings,
                                    "medium")
        if repair.meeting is not None:
            path = f"/meetings/{before.meeting_id}"
            refused = self._patch(path, repair.meeting)
            if refused and len(repair.meeting) > 1:  # one locked setting: try each alone
                refusals += [r for name, value in repair.meeting.items()
                             for r in self._patch(path, {name: value})]
            else:
                refusals += refused
        return refusals

    def _patch(self, path: str, body: dict[str, Any], category: str = "light") -> list[str]:
        """One repair PATCH; what Zoom said if it refused (checked by reading back)."""
        try:
            self._call("PATCH", path, body, category)
        except ZoomRefused as err:
            return [str(err)]
        return []

    def passcode_digest(self, passcode: str) -> str:
        """A passcode as the state may remember it: keyed with the app's secret, which
        the state does not hold, so a short passcode cannot be guessed back from it."""
        return hmac.new(self._auth.key, passcode.encode(), hashlib.sha256).hexdigest()
