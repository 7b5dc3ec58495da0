"""A Google Calendar v3 stand-in: events.list/get/patch (the tokens and the directory:
google_identity.py).

Faithful to what API-NOTES.md marks "emulate": singleEvents=false listings with series,
modified and cancelled occurrences; sync tokens (410 once expired); paging; ETags with
If-Match (412); organizer.self; scopes per method; access roles; Google's error bodies.
Bodies and scopes are checked against the discovery document google-api-python-client ships.
"""

from __future__ import annotations

import base64
import copy
import functools
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import googleapiclient
from jsonschema import Draft7Validator

from .google_identity import (
    GoogleIdentity,
    google_error,
    insufficient_scopes,
    schema_validator,
    unb64,
)
from .google_push import GoogleChannels
from .server import Request, Response

PREFIX = "/calendar/v3"
WRITERS = ("owner", "writer")
DESCRIPTION_LIMIT = 8192  # characters (see calendars/google.py)
SYNC_PARAMS_FORBIDDEN = ("timeMin", "timeMax", "q", "orderBy", "updatedMin", "iCalUID",
                         "privateExtendedProperty", "sharedExtendedProperty")


@dataclass(frozen=True)
class QuotaUse:
    """One Calendar API request, the quotaUser it named and the user its token acts as
    (None: none named, or no valid token)."""

    method: str
    path: str
    quota_user: str | None
    subject: str | None


@functools.cache
def _discovery() -> dict[str, Any]:
    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/calendar.v3.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def method_scopes(method_id: str) -> frozenset[str]:
    """The scopes any one of which lets a token call `method_id` (e.g.
    "calendar.events.list"): the method's "scopes" in the discovery document, the same
    lists as the "Authorization" section of each reference page, e.g.
    https://developers.google.com/calendar/api/v3/reference/calendarList/get (calendar,
    calendar.readonly, calendar.calendarlist*, calendar.app.created; not calendar.events)
    and https://developers.google.com/calendar/api/v3/reference/events/patch (calendar,
    calendar.events, calendar.events.owned, calendar.app.created). Scope meanings:
    https://developers.google.com/calendar/api/auth"""
    resource, method = method_id.removeprefix("calendar.").split(".")
    scopes = _discovery()["resources"][resource]["methods"][method]["scopes"]
    return frozenset(scopes)


def _discovery_validators() -> tuple[Draft7Validator, Draft7Validator]:
    """Validators for Event bodies from the shipped discovery document.

    Requests get additionalProperties=false so an unknown field we send is caught."""
    schemas = _discovery()["schemas"]
    return (schema_validator(schemas, "Event", strict=True),
            schema_validator(schemas, "Event", strict=False))


class GoogleCalendarEmulator(GoogleChannels, GoogleIdentity):
    def __init__(self, page_size: int = 50) -> None:
        super().__init__()
        self.page_size = page_size
        self.events: dict[str, dict[str, dict[str, Any]]] = {}  # calendar -> id -> event
        self.shares: dict[str, dict[str, str]] = {}  # calendar id -> user -> access role
        self.seq = 0  # bumped on every change; sync tokens remember it
        self.oldest_valid_sync = 0
        self.quota_users: list[QuotaUse] = []  # every Calendar API request, in order
        self.page_snapshots: dict[str, list[dict[str, Any]]] = {}
        self.send_updates: list[str] = []
        self._ids = itertools.count(1)
        self._request_schema, self._response_schema = _discovery_validators()
        self.route("GET", PREFIX + "/users/me/calendarList", self._calendar_list)
        self.route("GET", PREFIX + "/users/me/calendarList/([^/]+)", self._calendar_entry)
        self.route("GET", PREFIX + "/calendars/([^/]+)/events", self._list)
        self.route("GET", PREFIX + "/calendars/([^/]+)/events/([^/]+)", self._get)
        self.route("PATCH", PREFIX + "/calendars/([^/]+)/events/([^/]+)", self._patch)
        self._init_channels(PREFIX)  # events.watch, channels.stop (google_push.py)

    # --- set-up and inspection, used by tests and the demo (not over HTTP) ---

    def add_calendar(self, owner: str) -> None:
        with self.lock:
            self.events.setdefault(owner, {})
            self.owners[owner] = owner

    def share_calendar(self, calendar: str, user: str, role: str) -> None:
        """Give `user` an access role ("reader", "writer", ...) on someone's calendar."""
        with self.lock:
            self.shares.setdefault(calendar, {})[user] = role

    def add_event(self, calendar: str, **fields: Any) -> str:
        with self.lock:
            event_id = fields.pop("id", None) or f"evt{next(self._ids):04d}"
            event = {"kind": "calendar#event", "id": event_id, "status": "confirmed",
                     "summary": "", "organizer": {"email": calendar},
                     "iCalUID": f"{event_id}@sandbox", "sequence": 0,
                     "created": _now_rfc3339(), **fields}
            self.events[calendar][event_id] = event
            self._touch(event)
        self.changed(calendar)
        return event_id

    def edit_event(self, calendar: str, event_id: str, **changes: Any) -> None:
        """An edit as the instructor makes it in their calendar."""
        with self.lock:
            event = self.events[calendar][event_id]
            event.update(changes)
            self._touch(event)
        self.changed(calendar)

    def delete_event(self, calendar: str, event_id: str) -> None:
        self.edit_event(calendar, event_id, status="cancelled")

    def event(self, calendar: str, event_id: str) -> dict[str, Any]:
        with self.lock:
            return self._public(calendar, self.events[calendar][event_id])

    def expire_sync_tokens(self) -> None:
        with self.lock:
            self.oldest_valid_sync = self.seq + 1

    def dispatch(self, request: Request) -> Response:
        """Every request, then a note of the quotaUser it named (the user Google counts it
        against: https://developers.google.com/calendar/api/guides/quota and the standard
        parameters, https://cloud.google.com/apis/docs/system-parameters)."""
        response = super().dispatch(request)
        if request.path.startswith(PREFIX):
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            named = request.query.get("quotaUser") or ""
            if len(named) > 40:  # "up to 40 characters long" (the page above)
                self.schema_errors.append(f"quotaUser of {len(named)} characters: {named!r}")
            with self.lock:
                known = self.access_tokens.get(token)
                self.quota_users.append(QuotaUse(request.method, request.path,
                                                 request.query.get("quotaUser"),
                                                 known[0] if known else None))
        return response

    def expire_sync_state(self) -> None:
        self.expire_sync_tokens()

    def error_response(self, status: int, reason: str, headers: dict[str, str]) -> Response:
        domain = "usageLimits" if reason == "rateLimitExceeded" else "global"
        message = {403: "Rate Limit Exceeded", 429: "Rate Limit Exceeded"}.get(
            status, "Backend Error")
        return google_error(status, "rateLimitExceeded" if status == 429 else reason, message,
                            domain, headers)

    # --- HTTP ---

    def _touch(self, event: dict[str, Any]) -> None:
        self.seq += 1
        event["_seq"] = self.seq
        event["etag"] = f'"{3000000000000000 + self.seq}"'
        event["updated"] = _now_rfc3339()

    def _public(self, calendar: str, event: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in event.items() if not k.startswith("_")}
        if "organizer" in out:
            out["organizer"]["self"] = out["organizer"]["email"] == self.owners[calendar]
        if out.get("status") == "cancelled" and "recurringEventId" in out:
            out = {k: out[k] for k in ("kind", "etag", "id", "status", "recurringEventId",
                                       "originalStartTime") if k in out}
        self._check(self._response_schema, out, "response")
        return out

    def _caller(self, request: Request, method_id: str
                ) -> tuple[str, frozenset[str]] | Response:
        """The user a request acts as and its token's scopes, or the 401 (bad token) or
        403 (none of the method's scopes, see `method_scopes`) Google answers instead."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        known = self.access_tokens.get(token)
        if not known or known[1] < time.time():
            return google_error(401, "authError", "Invalid Credentials")
        scopes = self.token_scopes.get(token, frozenset())
        if not scopes & method_scopes(method_id):
            return insufficient_scopes()
        return known[0], scopes

    def _access(self, request: Request, calendar: str, method_id: str
                ) -> tuple[str, str] | Response:
        """The calendar a request names and the caller's access role on it; 404 for a
        calendar the caller cannot see."""
        caller = self._caller(request, method_id)
        if isinstance(caller, Response):
            return caller
        subject = caller[0]
        calendar = subject if calendar == "primary" else self._canonical(calendar) or calendar
        role = self._role(calendar, subject)
        if role is None:
            return google_error(404, "notFound", "Not Found")
        return calendar, role

    def _role(self, calendar: str, user: str) -> str | None:
        if calendar not in self.owners:
            return None
        if self.owners[calendar] == user:
            return "owner"
        return self.shares.get(calendar, {}).get(user)

    def _entry(self, calendar: str, role: str) -> dict[str, Any]:
        entry = {"kind": "calendar#calendarListEntry", "id": calendar, "summary": calendar,
                 "accessRole": role}
        return {**entry, "primary": True} if role == "owner" else entry

    def _calendar_list(self, request: Request) -> Response:
        caller = self._caller(request, "calendar.calendarList.list")
        if isinstance(caller, Response):
            return caller
        entries = [self._entry(c, role) for c in sorted(self.owners)
                   if (role := self._role(c, caller[0])) is not None]
        return Response(200, {"kind": "calendar#calendarList", "items": entries})

    def _calendar_entry(self, request: Request, calendar: str) -> Response:
        access = self._access(request, calendar, "calendar.calendarList.get")
        if isinstance(access, Response):
            return access
        return Response(200, self._entry(*access))

    def _list(self, request: Request, calendar: str) -> Response:
        access = self._access(request, calendar, "calendar.events.list")
        if isinstance(access, Response):
            return access
        resolved, role = access
        query = request.query
        if query.get("singleEvents", "false") != "false":
            return google_error(400, "invalid", "this emulator lists with singleEvents=false")
        page_token = query.get("pageToken")
        if page_token:
            items = self.page_snapshots.get(page_token)  # reusable, as Google's are
            if items is None:
                return google_error(400, "invalid", "Invalid page token")
            snapshot_seq = items[0]["seq"]
            items = items[1:]
        else:
            since = 0
            if "syncToken" in query:
                if any(p in query for p in SYNC_PARAMS_FORBIDDEN):
                    return google_error(400, "invalid", "syncToken may not be combined")
                try:
                    cal, since = json.loads(unb64(query["syncToken"]))
                except Exception:
                    return google_error(400, "invalid", "Invalid sync token")
                if cal != resolved or since < self.oldest_valid_sync:
                    return google_error(410, "fullSyncRequired", "Sync token is no longer "
                                        "valid, a full sync is required.", domain="calendar")
            show_deleted = query.get("showDeleted") == "true" or "syncToken" in query
            snapshot_seq = self.seq
            items = [
                {"event": self._public(resolved, e)}
                for e in sorted(self.events[resolved].values(), key=lambda e: e["id"])
                if e["_seq"] > since and (show_deleted or e["status"] != "cancelled"
                                          or "recurringEventId" in e)
            ]
        limit = min(int(query.get("maxResults", 250)), self.page_size)
        page, rest = items[:limit], items[limit:]
        # every page names the caller's role ("accessRole" of the Events resource:
        # https://developers.google.com/calendar/api/v3/reference/events/list#response)
        body: dict[str, Any] = {"kind": "calendar#events", "summary": resolved,
                                "accessRole": role,
                                "items": [entry["event"] for entry in page]}
        if rest:
            token = secrets.token_urlsafe(12)
            self.page_snapshots[token] = [{"seq": snapshot_seq}, *rest]
            body["nextPageToken"] = token
        else:
            body["nextSyncToken"] = _b64(json.dumps([resolved, snapshot_seq]).encode())
        return Response(200, body)

    def _one_event(self, calendar: str, event_id: str) -> dict[str, Any] | Response:
        """An event a get or patch names: 404 if it never existed; 410 `deleted` if it was
        deleted (API-NOTES; https://developers.google.com/calendar/api/guides/errors#410_gone).
        A cancelled occurrence of a series stays readable, in its short form."""
        event = self.events[calendar].get(event_id)
        if event is None:
            return google_error(404, "notFound", "Not Found")
        if event["status"] == "cancelled" and "recurringEventId" not in event:
            return google_error(410, "deleted", "Resource has been deleted")
        return event

    def _get(self, request: Request, calendar: str, event_id: str) -> Response:
        access = self._access(request, calendar, "calendar.events.get")
        if isinstance(access, Response):
            return access
        event = self._one_event(access[0], event_id)
        if isinstance(event, Response):
            return event
        return Response(200, self._public(access[0], event))

    def _patch(self, request: Request, calendar: str, event_id: str) -> Response:
        access = self._access(request, calendar, "calendar.events.patch")
        if isinstance(access, Response):
            return access
        resolved, role = access
        if role not in WRITERS:  # as Google answers a reader's write (e.g.
            # https://github.com/phw198/OutlookGoogleCalendarSync/issues/968)
            return google_error(403, "requiredAccessLevel",
                                "You need to have writer access to this calendar.",
                                domain="calendar")
        event = self._one_event(resolved, event_id)
        if isinstance(event, Response):
            return event
        if_match = request.headers.get("if-match")
        if if_match and if_match != event["etag"]:
            return google_error(412, "conditionNotMet", "Precondition Failed")
        body = request.json()
        self._check(self._request_schema, body, "patch body")
        if len(body.get("description") or "") > DESCRIPTION_LIMIT:
            return google_error(400, "invalid", "The description is too long.")
        self.send_updates.append(request.query.get("sendUpdates", ""))
        event.update(body)
        self._touch(event)
        self.changed(resolved)
        return Response(200, self._public(resolved, event))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
