"""Zoom: the pure PMI security policy, and a small REST client that applies it.

`missing_security` decides; `ZoomClient.enforce` reads, repairs and reads back.
"Secure" is what a student meets (../shared/CONTRACT.md, "What a pass does").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .config import PasscodePolicy, ZoomConfig
from .http import MAX_RETRY_AFTER, RateLimiter, httpx_delay, retry_after_seconds, send
from .model import JoinLink

TOKEN_MARGIN_SECONDS = 300  # ask for a new token this long before the old one expires
# Requests per second by plan and Zoom's rate-limit category (light: user and meeting
# reads and writes; medium: user settings), kept about 20% under Zoom's figures: requests
# spaced evenly here still bunch up on their way over many connections.
RATE_LIMITS = {"pro": {"light": 25.0, "medium": 16.0},
               "business": {"light": 64.0, "medium": 48.0},
               "enterprise": {"light": 64.0, "medium": 48.0}}


class ZoomError(Exception):
    """A Zoom request failed; the message is safe to log and names no secret."""


class ZoomRefused(ZoomError):
    """Zoom would not make the PMI secure (a setting locked by the account, say);
    `state` is what a student meets now, as read back."""

    def __init__(self, message: str, state: PmiState | None = None) -> None:
        super().__init__(message)
        self.state = state


class ZoomThrottled(ZoomError):
    """A daily limit (or a wait longer than a pass) was reached: no retry helps today."""

    def __init__(self, message: str, until: datetime) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True)
class PmiState:
    """What a student meets when joining the PMI, from the two places that decide it.

    The user's settings say whether PMI meetings require a passcode; the PMI meeting
    itself (GET /meetings/{pmi}) holds the passcode and its own waiting room, which
    follows the user's default only until someone edits the Personal Room
    (../shared/API-NOTES.md, "The PMI meeting has a waiting room of its own")."""

    require_password_for_pmi_meetings: str  # user setting: "all", "jbh_only" or "none"
    passcode: str  # the PMI meeting's `password`
    waiting_room: bool  # the PMI meeting's `settings.waiting_room`
    url: str  # the user's `personal_meeting_url`, with `pwd=` when the account embeds it
    meeting_id: str
    password_requirement: dict[str, Any] = field(default_factory=dict)

    def lacking(self) -> list[str]:
        """Names of what 'secure' lacks, empty when secure."""
        missing = []
        if self.require_password_for_pmi_meetings != "all":
            missing.append("require_password_for_pmi_meetings")
        if not self.passcode:
            missing.append("password")
        if not self.waiting_room:
            missing.append("waiting_room")
        return missing

    def describe(self) -> str:
        lacking = self.lacking()
        return "secure" if not lacking else "insecure (" + ", ".join(lacking) + ")"

    @property
    def link_carries_passcode(self) -> bool:
        return carries_passcode(self.url)

    def link(self, policy: PasscodePolicy) -> JoinLink:
        """The link for invites: with the passcode when `policy` says it belongs there."""
        shown = passcode_in_invite(policy, self.url)
        return JoinLink(self.url, self.meeting_id, self.passcode if shown else "")


def carries_passcode(url: str) -> bool:
    """Whether a join URL lets a student in without typing the passcode."""
    return "pwd" in parse_qs(urlsplit(url).query)


def passcode_in_invite(policy: PasscodePolicy, url: str) -> bool:
    """links.include_passcode: "auto" gives it exactly when the link does not carry it."""
    return policy is True or (policy == "auto" and not carries_passcode(url))


def meets(state: PmiState, policy: PasscodePolicy) -> dict[str, bool]:
    """What a student meets at this PMI, as `status` and `doctor` show it."""
    return {"passcode_required": state.require_password_for_pmi_meetings == "all",
            "passcode_set": bool(state.passcode), "waiting_room": state.waiting_room,
            "link_carries_passcode": state.link_carries_passcode,
            "passcode_in_invite": passcode_in_invite(policy, state.url)}


def describe_meets(found: dict[str, bool]) -> str:
    """A short phrase for a person, from `meets`: what a student meets at the PMI."""
    if not (found.get("passcode_required") and found.get("passcode_set")):
        passcode = "NO PASSCODE"
    elif found.get("link_carries_passcode"):
        passcode = "passcode (in link)"
    elif found.get("passcode_in_invite"):
        passcode = "passcode (in invite)"
    else:
        passcode = "passcode (NOT in invite)"
    room = "waiting room" if found.get("waiting_room") else "NO WAITING ROOM"
    return f"{passcode}, {room}"


@dataclass(frozen=True)
class Repair:
    """What to PATCH, each through the endpoint that owns the setting; None: nothing."""

    settings: dict[str, Any] | None  # PATCH /users/{user}/settings
    meeting: dict[str, Any] | None  # PATCH /meetings/{pmi}


def missing_security(
    state: PmiState, new_passcode: Callable[[dict[str, Any]], str]
) -> Repair | None:
    """The PATCHes that make the PMI secure, or None when it already is.

    Never a PATCH for what is already right: Zoom allows a meeting 100 updates a day."""
    lacking = state.lacking()
    if not lacking:
        return None
    settings = None
    if "require_password_for_pmi_meetings" in lacking:
        settings = {"schedule_meeting": {"require_password_for_pmi_meetings": "all"}}
    meeting: dict[str, Any] = {}
    if "password" in lacking:
        meeting["password"] = new_passcode(state.password_requirement)
    if "waiting_room" in lacking:
        meeting["settings"] = {"waiting_room": True}
    return Repair(settings, meeting or None)


def random_passcode(requirement: dict[str, Any], rng: secrets.SystemRandom | None = None) -> str:
    """A random passcode that meets the account's rules (Zoom allows at most 10 characters)."""
    rng = rng or secrets.SystemRandom()
    length = min(max(int(requirement.get("length") or 0), 8), 10)
    if requirement.get("only_allow_numeric"):
        pools = [string.digits]
    else:
        pools = [string.ascii_lowercase, string.ascii_uppercase, string.digits]
        if requirement.get("have_special_character"):
            pools.append("@-_*")
    run_limit = int(requirement.get("consecutive_characters_length") or 0)
    alphabet = "".join(pools)
    while True:
        chars = [rng.choice(pool) for pool in pools]
        chars += [rng.choice(alphabet) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        code = "".join(chars)
        if not run_limit or not _has_run(code, run_limit):
            return code


def _has_run(code: str, limit: int) -> bool:
    """Whether `code` holds `limit` identical or consecutive characters in a row."""
    for i in range(len(code) - limit + 1):
        window = [ord(c) for c in code[i : i + limit]]
        steps = {b - a for a, b in zip(window, window[1:], strict=False)}
        if steps in ({0}, {1}, {-1}):
            return True
    return False


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
            raise ZoomError(
                f"Zoom refused the app credentials (HTTP {response.status_code}); check "
                "zoom.account_id, zoom.client_id and zoom.client_secret_file"
            )
        body = response.json()
        with self._lock:
            self._token = body["access_token"]
            self._expires = self._clock() + float(body.get("expires_in", 3600))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._token or self._clock() > self._expires - TOKEN_MARGIN_SECONDS:
            self._store((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:  # expired or revoked early: one fresh token, once
            self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def _daily_limit(response: httpx.Response) -> datetime | None:
    """When a 429 is a limit no retry within the pass can help, the moment it lifts.

    Zoom's limits are per second (QPS) or per day ("Daily-limit" in X-RateLimit-Type),
    and a meeting takes 100 updates a day
    (https://developers.zoom.us/docs/api/rest/rate-limits/). A Retry-After beyond what a
    pass waits is taken the same way, whatever the type says."""
    if response.status_code != 429:
        return None
    wait = retry_after_seconds(response.headers)
    daily = "daily" in response.headers.get("x-ratelimit-type", "").lower()
    if not daily and (wait is None or wait <= MAX_RETRY_AFTER):
        return None
    now = datetime.now(UTC)
    if wait is not None:
        return now + timedelta(seconds=wait)
    # no moment given: Zoom's daily limits reset at 00:00 UTC (rate-limits page, above)
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)


def _delay(outcome: httpx.Response | Exception, attempt: int) -> float | None:
    if isinstance(outcome, httpx.Response) and _daily_limit(outcome) is not None:
        return None
    return httpx_delay(outcome, attempt)


class ZoomClient:
    def __init__(self, config: ZoomConfig, secret: str, http: httpx.Client,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._base = config.api_base_url
        self._http = http
        self._auth = _TokenAuth(config, secret, clock)
        self._sleep = sleep
        self._limits = {category: RateLimiter(rate, sleep)
                        for category, rate in RATE_LIMITS[config.plan].items()}
        self.requests = 0

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              category: str = "light") -> Any:
        """One request; `category` is Zoom's rate-limit label of the endpoint."""
        self.requests += 1
        self._limits[category].wait()
        request = self._http.build_request(method, self._base + path, json=body)
        try:
            response = send(self._http, request, self._auth, self._sleep, _delay)
        except httpx.TransportError as err:
            raise ZoomError(f"Zoom unreachable: {type(err).__name__}") from None
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
        until = _daily_limit(response)
        if until is not None:
            return ZoomThrottled(f"{text}; Zoom's limit lifts at {until:%Y-%m-%d %H:%M} UTC, "
                                 "not tried again before then", until)
        if response.status_code == 400 and method == "PATCH" and code == 300:  # locked
            return ZoomRefused(text)
        return ZoomError(text)

    def _user(self, user: str) -> tuple[str, str]:
        body = self._call("GET", f"/users/{user}")
        return str(body["personal_meeting_url"]), str(body["pmi"])

    def _meeting(self, pmi: str) -> tuple[str, bool]:
        body = self._call("GET", f"/meetings/{pmi}")
        settings = body.get("settings") or {}
        return str(body.get("password") or ""), bool(settings.get("waiting_room", False))

    def link(self, user: str, policy: PasscodePolicy) -> JoinLink:
        """The current link; the PMI meeting is read too when its passcode belongs in it."""
        url, pmi = self._user(user)
        if not passcode_in_invite(policy, url):
            return JoinLink(url, pmi)
        return JoinLink(url, pmi, self._meeting(pmi)[0])

    def pmi_state(self, user: str) -> PmiState:
        """What a student meets: user, user settings and PMI meeting, read now."""
        url, pmi = self._user(user)
        settings = self._call("GET", f"/users/{user}/settings", category="medium") or {}
        schedule = settings.get("schedule_meeting") or {}
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
        refusals = []
        if repair.settings is not None:
            refusals += self._patch(f"/users/{user}/settings", repair.settings, "medium")
        if repair.meeting is not None:
            path = f"/meetings/{before.meeting_id}"
            refused = self._patch(path, repair.meeting)
            if refused and len(repair.meeting) > 1:  # one locked setting: try each alone
                refusals += [r for name, value in repair.meeting.items()
                             for r in self._patch(path, {name: value})]
            else:
                refusals += refused
        after = self.pmi_state(user)
        if after.lacking():
            said = f"; Zoom said: {'; '.join(refusals)}" if refusals else \
                " (locked by the account?)"
            raise ZoomRefused(f"Zoom kept the PMI of {user} insecure after a repair: "
                              f"{', '.join(after.lacking())} unchanged{said}", after)
        return Enforcement(before, after, True)

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
