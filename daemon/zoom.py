"""Zoom: the pure PMI security policy, and a small REST client that applies it.

`missing_security` decides; `ZoomClient.enforce` reads, repairs and reads back.
"""

from __future__ import annotations

import base64
import secrets
import string
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx

from .config import ZoomConfig
from .http import RateLimiter, send
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
    """Zoom would not make the PMI secure (a setting locked by the account, say)."""


@dataclass(frozen=True)
class PmiSettings:
    require_password_for_pmi_meetings: str
    pmi_password: str
    waiting_room: bool
    password_requirement: dict[str, Any]

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> PmiSettings:
        schedule = body.get("schedule_meeting") or {}
        return cls(
            require_password_for_pmi_meetings=str(
                schedule.get("require_password_for_pmi_meetings", "none")),
            pmi_password=str(schedule.get("pmi_password") or ""),
            waiting_room=bool((body.get("in_meeting") or {}).get("waiting_room", False)),
            password_requirement=dict(schedule.get("meeting_password_requirement") or {}),
        )

    def lacking(self) -> list[str]:
        """Names of what 'secure' lacks, empty when secure."""
        missing = []
        if self.require_password_for_pmi_meetings != "all":
            missing.append("require_password_for_pmi_meetings")
        if not self.pmi_password:
            missing.append("pmi_password")
        if not self.waiting_room:
            missing.append("waiting_room")
        return missing

    def describe(self) -> str:
        lacking = self.lacking()
        return "secure" if not lacking else "insecure (" + ", ".join(lacking) + ")"


def missing_security(
    settings: PmiSettings, new_passcode: Callable[[dict[str, Any]], str]
) -> dict[str, Any] | None:
    """The settings PATCH body that makes the PMI secure, or None when it already is."""
    lacking = settings.lacking()
    if not lacking:
        return None
    patch: dict[str, Any] = {}
    schedule: dict[str, Any] = {}
    if "require_password_for_pmi_meetings" in lacking:
        schedule["require_password_for_pmi_meetings"] = "all"
    if "pmi_password" in lacking:
        schedule["pmi_password"] = new_passcode(settings.password_requirement)
    if schedule:
        patch["schedule_meeting"] = schedule
    if "waiting_room" in lacking:
        patch["in_meeting"] = {"waiting_room": True}
    return patch


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
    before: PmiSettings
    after: PmiSettings
    repaired: bool
    link: JoinLink


class _TokenAuth(httpx.Auth):
    """S2S OAuth as a sans-I/O flow: fetch a token when needed, again on a 401."""

    requires_response_body = True

    def __init__(self, config: ZoomConfig, secret: str, clock: Callable[[], float]) -> None:
        basic = base64.b64encode(f"{config.client_id}:{secret}".encode()).decode()
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

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.requests += 1
        self._limits["medium" if "settings" in path else "light"].wait()
        request = self._http.build_request(method, self._base + path, json=body)
        try:
            response = send(self._http, request, self._auth, self._sleep)
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
        try:
            body = response.json()
            detail = f"code {body.get('code')}: {body.get('message')}"
        except ValueError:
            detail = response.text[:200]
        kind = ZoomRefused if response.status_code == 400 and "settings" in path else ZoomError
        return kind(f"Zoom {method} {path.split('?')[0]} failed: HTTP {response.status_code} "
                    f"({detail})")

    def link(self, user: str, settings: PmiSettings | None = None) -> JoinLink:
        body = self._call("GET", f"/users/{user}")
        passcode = settings.pmi_password if settings else ""
        return JoinLink(url=str(body["personal_meeting_url"]), meeting_id=str(body["pmi"]),
                        passcode=passcode)

    def settings(self, user: str) -> PmiSettings:
        return PmiSettings.from_api(self._call("GET", f"/users/{user}/settings"))

    def account_locks(self) -> set[str]:
        """Which of the settings 'secure' needs the account has locked."""
        body = self._call("GET", "/accounts/me/lock_settings") or {}
        found = {**(body.get("schedule_meeting") or {}), **(body.get("in_meeting") or {})}
        return {name for name in ("require_password_for_pmi_meetings", "waiting_room")
                if found.get(name)}

    def enforce(self, user: str, dry_run: bool = False) -> Enforcement:
        """Make the PMI secure if it is not, confirm by reading back, return the link."""
        before = self.settings(user)
        patch = missing_security(before, random_passcode)
        after = before
        if patch is not None and not dry_run:
            self._call("PATCH", f"/users/{user}/settings", patch)
            after = self.settings(user)
            if after.lacking():
                raise ZoomRefused(
                    f"Zoom kept the PMI of {user} insecure after a repair: "
                    f"{', '.join(after.lacking())} unchanged (locked by the account?)"
                )
        return Enforcement(before, after, patch is not None, self.link(user, after))
