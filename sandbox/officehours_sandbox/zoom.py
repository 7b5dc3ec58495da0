"""A Zoom REST v2 stand-in: S2S OAuth, users, user settings and the PMI meeting.

Faithful to what API-NOTES.md marks "emulate": tokens that expire (401 code 124),
scopes per endpoint (400 code 4711), settings that an account locks (silently kept, or
400 code 300), the PMI meeting's own waiting room apart from the user's default, a join
URL whose `pwd=` follows the PMI passcode only when the account embeds it, 100 meeting
updates a day per user (reset at 00:00 UTC, answered as Zoom really answers it), 404 codes
1001/3001, 429 with Retry-After. Bodies are checked against
../shared/specs/zoom-users-meetings.openapi.json (copied into specs/).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openapi_schema_validator import OAS30Validator

from .server import Emulator, Request, Response

if TYPE_CHECKING:
    from .zoom_events import ZoomEvents

SPEC = Path(__file__).parent / "specs" / "zoom-users-meetings.openapi.json"


# The scopes each endpoint accepts are the spec's own (`security` of each operation in
# specs/zoom-users-meetings.openapi.json, as the API reference lists them per endpoint);
# lock settings are outside that spec: the classic scope the reference names for it.
ENDPOINTS = {"GET user": ("/users/{userId}", "get"),
             "GET settings": ("/users/{userId}/settings", "get"),
             "PATCH settings": ("/users/{userId}/settings", "patch"),
             "GET meeting": ("/meetings/{meetingId}", "get"),
             "PATCH meeting": ("/meetings/{meetingId}", "patch")}
LOCK_SETTINGS_SCOPES = frozenset({"account:read:admin"})
CLASSIC_SCOPES = ("user:read:admin", "user:write:admin", "meeting:read:admin",
                  "meeting:write:admin", "account:read:admin")
# Meeting create/update requests: 100 a day per user, other apps of the account spending
# them too, reset at 00:00 UTC (the rate-limits page, developers.zoom.us/docs/api/rest/rate-
# limits/, "Meeting/Webinar Create/Update requests" per user per day). The answer is the one
# users report on devforum.zoom.us (threads on the daily limit; API-NOTES.md "Edges"): 429,
# code 429, this message, and no Retry-After and no X-RateLimit-Type.
MEETING_UPDATES_PER_DAY = 100
DAILY_LIMIT_MESSAGE = ("You have exceeded the daily rate limit (100) of Meeting Create/Update "
                       "API requests permitted for this particular user. You may resume "
                       "these requests at GMT 00:00:00.")


def zoom_error(status: int, code: int, message: str,
               headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"code": code, "message": message}, headers or {})


@dataclass
class ZoomUser:
    email: str
    pmi: int
    first_name: str = "Sandbox"
    last_name: str = "User"
    require_password_for_pmi_meetings: str = "none"
    pmi_password: str = ""
    waiting_room: bool = False  # the user's default for their meetings (in_meeting)
    # The Personal Meeting Room's own waiting room: None while nobody edited the room, when
    # it follows the user's default; set once written (web portal: Personal Room > Edit, or
    # PATCH /meetings/{pmi}). API-NOTES.md; Loyola's Zoom knowledge base: "the Personal
    # Meeting Room does not abide these user defaults".
    pmi_waiting_room: bool | None = None
    # schedule_meeting.embed_password_in_join_link: whether personal_meeting_url carries
    # ?pwd= (https://developers.zoom.us/docs/api/users/#tag/users/GET/users/{userId}/settings)
    embed_password_in_join_link: bool = True
    locked: set[str] = field(default_factory=set)  # setting names the account locked
    refuse_locked: bool = False  # answer a change of a locked setting with 400/300
    settings_patches: int = 0
    meeting_patches: list[float] = field(default_factory=list)  # when each PATCH came
    # meeting creates/updates today (UTC), this app's and other apps' alike
    meeting_updates: tuple[str, int] = ("", 0)
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    # told of every change of a field, the portal's or the API's (the account's events)
    watch: Callable[[ZoomUser, str, Any, Any], None] | None = field(
        default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        old = self.__dict__.get(name, value)
        object.__setattr__(self, name, value)
        watch = self.__dict__.get("watch")
        if watch is not None and old != value:
            watch(self, name, old, value)

    @property
    def room_waiting_room(self) -> bool:
        """What a student meets: the room's own setting, else the user's default."""
        return self.waiting_room if self.pmi_waiting_room is None else self.pmi_waiting_room

    @property
    def join_url(self) -> str:
        url = f"https://us05web.zoom.us/j/{self.pmi}"
        if self.embed_password_in_join_link and self.pmi_password:
            digest = hashlib.sha256(self.pmi_password.encode()).digest()
            url += "?pwd=" + base64.urlsafe_b64encode(digest[:18]).decode()
        return url

    @property
    def secure(self) -> bool:
        return (self.require_password_for_pmi_meetings == "all" and bool(self.pmi_password)
                and self.room_waiting_room)


class ZoomEmulator(Emulator):
    def __init__(self, account_id: str, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.credentials = (account_id, client_id, client_secret)
        self.users: dict[str, ZoomUser] = {}
        self.access_tokens: dict[str, float] = {}
        self.events: ZoomEvents | None = None  # the WebSocket delivery, once set up
        self.scopes = set(CLASSIC_SCOPES)  # what the app was granted in the Marketplace
        spec = json.loads(SPEC.read_text())
        self._paths = spec["paths"]
        self.route("POST", "/oauth/token", self._token)
        self.route("GET", "/v2/users/([^/]+)", self._get_user)
        self.route("GET", "/v2/users/([^/]+)/settings", self._get_settings)
        self.route("PATCH", "/v2/users/([^/]+)/settings", self._patch_settings)
        self.route("GET", "/v2/accounts/me/lock_settings", self._lock_settings)
        self.route("GET", "/v2/meetings/([0-9]+)", self._get_meeting)
        self.route("PATCH", "/v2/meetings/([0-9]+)", self._patch_meeting)

    # --- set-up and inspection ---

    def add_user(self, email: str, pmi: int, **fields: Any) -> ZoomUser:
        user = ZoomUser(email=email, pmi=pmi, **fields)
        user.watch = self._changed
        self.users[email.lower()] = user
        return user

    def _changed(self, user: ZoomUser, name: str, old: Any, new: Any) -> None:
        if self.events is not None:
            self.events.user_changed(user, name, old, new)

    def token_valid(self, token: str) -> bool:
        return self.access_tokens.get(token, 0.0) > time.time()

    def user(self, email: str) -> ZoomUser:
        return self.users[email.lower()]

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def error_response(self, status: int, reason: str, headers: dict[str, str]) -> Response:
        if status == 429:
            return zoom_error(429, 429, "You have reached the maximum per-second rate limit "
                              "for this API. Try again later.",
                              {"X-RateLimit-Category": "Light", "X-RateLimit-Type": "QPS",
                               **headers})
        return zoom_error(status, status, "Internal server error.", headers)

    # --- schema checks ---

    def _schema(self, path: str, method: str, which: str) -> dict[str, Any]:
        operation = self._paths[path][method]
        if which == "request":
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
        else:
            schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        if "oneOf" in schema:  # see specs/README.md: the default option's branch
            schema = schema["oneOf"][0]
        return dict(schema)

    def _check(self, body: Any, path: str, method: str, which: str) -> list[str]:
        if not self.validate:
            return []
        validator = OAS30Validator(self._schema(path, method, which))
        found = [f"{method.upper()} {path} {which}: {e.json_path}: {e.message}"
                 for e in validator.iter_errors(body)]
        self.schema_errors.extend(found)
        return found

    # --- HTTP ---

    def _token(self, request: Request) -> Response:
        form = {**request.query, **request.form()}
        account_id, client_id, secret = self.credentials
        expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Response(401, {"reason": "Invalid client_id or client_secret",
                                  "error": "invalid_client"})
        if form.get("grant_type") != "account_credentials" or form.get("account_id") != account_id:
            return Response(400, {"reason": "Invalid request", "error": "invalid_request"})
        token = "zoom-sandbox-" + secrets.token_urlsafe(16)
        self.access_tokens[token] = time.time() + 3600
        self.issued_tokens.append(token)
        return Response(200, {"access_token": token, "token_type": "bearer",
                              "expires_in": 3600, "scope": " ".join(sorted(self.scopes)),
                              "api_url": "https://api.zoom.us"})

    def _authorized(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        expiry = self.access_tokens.get(token)
        return expiry is not None and expiry > time.time()

    def _denied(self, request: Request, endpoint: str) -> Response | None:
        """401 for a bad token; 400 code 4711 naming the scopes a call lacks, as Zoom
        answers (https://devforum.zoom.us/t/granular-scopes-specification-change-of-scope-
        setting-for-creating-oauth-apps-on-the-developer-site/108207)."""
        if not self._authorized(request):
            return zoom_error(401, 124, "Invalid access token.")
        if endpoint in ENDPOINTS:
            path, method = ENDPOINTS[endpoint]
            wanted = set(self._paths[path][method]["security"][0]["openapi_oauth"])
        else:
            wanted = set(LOCK_SETTINGS_SCOPES)
        if not wanted & self.scopes:
            return zoom_error(400, 4711, "Invalid access token, does not contain scopes:["
                              + ", ".join(sorted(wanted)) + "].")
        return None

    def _find(self, request: Request, user_id: str,
              endpoint: str = "GET user") -> tuple[ZoomUser | None, Response | None]:
        denied = self._denied(request, endpoint)
        if denied is not None:
            return None, denied
        user = self.users.get(user_id.lower()) or next(
            (u for u in self.users.values() if u.id == user_id), None)
        if user is None:
            return None, zoom_error(404, 1001, "User does not exist: " + user_id)
        return user, None

    def _get_user(self, request: Request, user_id: str) -> Response:
        user, error = self._find(request, user_id)
        if user is None:
            return error or zoom_error(404, 1001, "User does not exist")
        body = {"id": user.id, "first_name": user.first_name, "last_name": user.last_name,
                "display_name": f"{user.first_name} {user.last_name}", "email": user.email,
                "type": 2, "pmi": user.pmi, "use_pmi": True, "timezone": "America/New_York",
                "personal_meeting_url": user.join_url, "status": "active",
                "vanity_url": "", "verified": 1, "language": "en-US"}
        self._check(body, "/users/{userId}", "get", "response")
        return Response(200, body)

    def _settings_body(self, user: ZoomUser) -> dict[str, Any]:
        return {
            "schedule_meeting": {
                "require_password_for_pmi_meetings": user.require_password_for_pmi_meetings,
                "pmi_password": user.pmi_password,
                "embed_password_in_join_link": user.embed_password_in_join_link,
                "meeting_password_requirement": {"length": 6, "have_letter": False,
                                                 "have_number": True,
                                                 "only_allow_numeric": False},
            },
            "in_meeting": {"waiting_room": user.waiting_room},
        }

    def _get_settings(self, request: Request, user_id: str) -> Response:
        user, error = self._find(request, user_id, "GET settings")
        if user is None:
            return error or zoom_error(404, 1001, "User does not exist")
        body = self._settings_body(user)
        self._check(body, "/users/{userId}/settings", "get", "response")
        return Response(200, body)

    def _patch_settings(self, request: Request, user_id: str) -> Response:
        user, error = self._find(request, user_id, "PATCH settings")
        if user is None:
            return error or zoom_error(404, 1001, "User does not exist")
        body = request.json()
        if self._check(body, "/users/{userId}/settings", "patch", "request"):
            return zoom_error(400, 300, "Invalid request body")
        changes: dict[str, Any] = {}
        for section in ("schedule_meeting", "in_meeting"):
            for name, value in (body.get(section) or {}).items():
                changes[name] = value
        attribute = {"waiting_room": "waiting_room",
                     "require_password_for_pmi_meetings": "require_password_for_pmi_meetings",
                     "pmi_password": "pmi_password"}
        locked = [n for n in changes if n in user.locked and getattr(user, attribute.get(n, n),
                                                                      None) != changes[n]]
        if locked and user.refuse_locked:
            return zoom_error(400, 300, f"The setting {locked[0]} is locked by your admin.")
        for name, value in changes.items():
            if name in attribute and name not in user.locked:
                setattr(user, attribute[name], value)
        user.settings_patches += 1
        return Response(204)

    def _lock_settings(self, request: Request) -> Response:
        """The account's locks; here, a setting locked for any user counts as locked."""
        denied = self._denied(request, "GET lock_settings")
        if denied is not None:
            return denied
        locked = set().union(*(u.locked for u in self.users.values()))
        return Response(200, {
            "schedule_meeting": {"require_password_for_pmi_meetings":
                                 "require_password_for_pmi_meetings" in locked},
            "in_meeting": {"waiting_room": "waiting_room" in locked}})

    def _meeting_body(self, user: ZoomUser) -> dict[str, Any]:
        # "Get a meeting" for a PMI: type 4, its passcode and its own waiting room
        # (https://developers.zoom.us/docs/api/meetings/#tag/meetings/GET/meetings/{meetingId})
        return {"id": user.pmi, "uuid": base64.b64encode(secrets.token_bytes(16)).decode(),
                "host_id": user.id, "host_email": user.email, "topic": "Personal Meeting Room",
                "type": 4, "password": user.pmi_password, "join_url": user.join_url,
                "settings": {"waiting_room": user.room_waiting_room}}

    def _find_meeting(self, request: Request, meeting_id: str,
                      endpoint: str) -> tuple[ZoomUser | None, Response | None]:
        denied = self._denied(request, endpoint)
        if denied is not None:
            return None, denied
        user = next((u for u in self.users.values() if str(u.pmi) == meeting_id), None)
        if user is None:
            return None, zoom_error(404, 3001, f"Meeting {meeting_id} is not found or has "
                                    "expired.")
        return user, None

    def _get_meeting(self, request: Request, meeting_id: str) -> Response:
        user, error = self._find_meeting(request, meeting_id, "GET meeting")
        if user is None:
            return error or zoom_error(404, 3001, "Meeting not found")
        body = copy.deepcopy(self._meeting_body(user))
        self._check(body, "/meetings/{meetingId}", "get", "response")
        return Response(200, body)

    def _patch_meeting(self, request: Request, meeting_id: str) -> Response:
        user, error = self._find_meeting(request, meeting_id, "PATCH meeting")
        if user is None:
            return error or zoom_error(404, 3001, "Meeting not found")
        body = request.json()
        if self._check(body, "/meetings/{meetingId}", "patch", "request"):
            return zoom_error(400, 300, "Invalid request body")
        now = time.time()
        today = datetime.now(UTC).date().isoformat()
        day, spent = user.meeting_updates
        spent = spent if day == today else 0
        if spent >= MEETING_UPDATES_PER_DAY:
            return zoom_error(429, 429, DAILY_LIMIT_MESSAGE)  # no headers (above)
        user.meeting_updates = (today, spent + 1)
        user.meeting_patches.append(now)
        locked = [n for n, v in (("pmi_password", body.get("password")), ("waiting_room", (
            body.get("settings") or {}).get("waiting_room"))) if v is not None and n in user.locked]
        if locked and user.refuse_locked:
            return zoom_error(400, 300, f"The setting {locked[0]} is locked by your admin.")
        if "password" in body and "pmi_password" not in user.locked:
            user.pmi_password = body["password"]
        waiting = (body.get("settings") or {}).get("waiting_room")
        if waiting is not None and "waiting_room" not in user.locked:
            user.pmi_waiting_room = waiting  # the room now keeps a setting of its own
        return Response(204)
