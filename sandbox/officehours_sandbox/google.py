"""A Google Calendar v3 stand-in: OAuth token endpoint, events.list/get/patch.

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
from urllib.parse import unquote

import googleapiclient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jsonschema import Draft7Validator

from .server import Emulator, Request, Response

PREFIX = "/calendar/v3"
AUTH = "https://www.googleapis.com/auth/"
CALENDAR_EVENTS = AUTH + "calendar.events"  # what the README has admins delegate
WRITERS = ("owner", "writer")
DESCRIPTION_LIMIT = 8192  # characters (see calendars/google.py)
SYNC_PARAMS_FORBIDDEN = ("timeMin", "timeMax", "q", "orderBy", "updatedMin", "iCalUID",
                         "privateExtendedProperty", "sharedExtendedProperty")


def google_error(code: int, reason: str, message: str, domain: str = "global",
                 headers: dict[str, str] | None = None, status: str | None = None,
                 detail: str | None = None) -> Response:
    """Google's error body (https://developers.google.com/calendar/api/guides/errors);
    `detail` is the errors[].message where it differs from the top-level one."""
    error: dict[str, Any] = {
        "errors": [{"domain": domain, "reason": reason, "message": detail or message}],
        "code": code, "message": message}
    if status:
        error["status"] = status
    return Response(code, {"error": error}, headers or {})


def insufficient_scopes() -> Response:
    """A token without any of the method's scopes: 403, as Google answers it (the body
    quoted in API-NOTES "scopes per method"; WWW-Authenticate per RFC 6750 section 3.1)."""
    return google_error(403, "insufficientPermissions",
                        "Request had insufficient authentication scopes.",
                        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
                        status="PERMISSION_DENIED", detail="Insufficient Permission")


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


@functools.cache
def directory_scopes() -> frozenset[str]:
    """members.list's scopes, from the Admin SDK discovery document the client ships."""
    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/" \
        "admin.directory_v1.json"
    document = json.loads(path.read_text())
    return frozenset(document["resources"]["members"]["methods"]["list"]["scopes"])


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
    return (_schema_validator(schemas, "Event", strict=True),
            _schema_validator(schemas, "Event", strict=False))


@functools.cache
def directory_members_validator() -> Draft7Validator:
    """members.list's answer (Members) from the Admin SDK discovery document, strict: the
    emulator answers with no field the document does not define."""
    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/" \
        "admin.directory_v1.json"
    return _schema_validator(json.loads(path.read_text())["schemas"], "Members", strict=True)


def _schema_validator(schemas: dict[str, Any], root: str, strict: bool) -> Draft7Validator:
    """A JSON-schema validator for `root` of a discovery document's schemas."""

    def convert(node: dict[str, Any], strict: bool) -> dict[str, Any]:
        if "$ref" in node:
            return {"$ref": f"#/definitions/{node['$ref']}"}
        out = {k: v for k, v in node.items() if k in ("type", "enum")}
        if out.get("type") == "any":
            out.pop("type")
        if "properties" in node:
            out["properties"] = {k: convert(v, strict) for k, v in node["properties"].items()}
            if strict:
                out["additionalProperties"] = False
        if isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = convert(node["additionalProperties"], strict)
        if "items" in node:
            out["items"] = convert(node["items"], strict)
        return out

    definitions = {name: convert(schema, strict) for name, schema in schemas.items()}
    return Draft7Validator({"$ref": f"#/definitions/{root}", "definitions": definitions})


class GoogleCalendarEmulator(Emulator):
    def __init__(self, page_size: int = 50) -> None:
        super().__init__()
        self.page_size = page_size
        # members.list may give fewer than maxResults ("the maximum number of results to
        # return": an upper bound, members/list reference above); tests set it to page
        self.member_page_size = 200
        self.events: dict[str, dict[str, dict[str, Any]]] = {}  # calendar -> id -> event
        self.owners: dict[str, str] = {}  # calendar id -> owner email
        self.shares: dict[str, dict[str, str]] = {}  # calendar id -> user -> access role
        self.seq = 0  # bumped on every change; sync tokens remember it
        self.oldest_valid_sync = 0
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (subject, expiry)
        self.token_scopes: dict[str, frozenset[str]] = {}  # access token -> its scopes
        self.service_accounts: dict[str, rsa.RSAPublicKey] = {}
        self.delegated_scopes: dict[str, frozenset[str]] = {}  # client email -> scopes
        # refresh token -> (client id, client secret, user, scopes the user consented to)
        self.authorized_users: dict[str, tuple[str, str, str, frozenset[str]]] = {}
        self.quota_users: list[QuotaUse] = []  # every Calendar API request, in order
        self.page_snapshots: dict[str, list[dict[str, Any]]] = {}
        self.send_updates: list[str] = []
        self._ids = itertools.count(1)
        self._request_schema, self._response_schema = _discovery_validators()
        self.route("POST", "/token", self._token)
        self.route("GET", PREFIX + "/users/me/calendarList", self._calendar_list)
        self.route("GET", PREFIX + "/users/me/calendarList/([^/]+)", self._calendar_entry)
        self.route("GET", PREFIX + "/calendars/([^/]+)/events", self._list)
        self.route("GET", PREFIX + "/calendars/([^/]+)/events/([^/]+)", self._get)
        self.route("PATCH", PREFIX + "/calendars/([^/]+)/events/([^/]+)", self._patch)
        self.route("GET", "/admin/directory/v1/groups/([^/]+)/members", self._members)
        self.groups: dict[str, list[str]] = {}  # group address -> member addresses

    # --- set-up and inspection, used by tests and the demo (not over HTTP) ---

    def add_group(self, group: str, *members: str) -> None:
        """A Google Group; a member that is itself a group's address is a nested group."""
        with self.lock:
            self.groups[group.lower()] = [m.lower() for m in members]

    def add_calendar(self, owner: str) -> None:
        with self.lock:
            self.events.setdefault(owner, {})
            self.owners[owner] = owner

    def share_calendar(self, calendar: str, user: str, role: str) -> None:
        """Give `user` an access role ("reader", "writer", ...) on someone's calendar."""
        with self.lock:
            self.shares.setdefault(calendar, {})[user] = role

    def add_service_account(self, client_email: str,
                            delegated: tuple[str, ...] = (CALENDAR_EVENTS,)) -> dict[str, str]:
        """Register a service account whose domain-wide delegation grants `delegated`
        (by default the one scope the README asks for); returns its key file as a dict."""
        key = _sandbox_key()
        self.service_accounts[client_email] = key.public_key()
        self.delegated_scopes[client_email] = frozenset(delegated)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "sandbox",
                "private_key_id": secrets.token_hex(8), "private_key": pem,
                "client_email": client_email, "client_id": "1000",
                "token_uri": "{url}/token"}

    def add_authorized_user(self, email: str,
                            consented: tuple[str, ...] = (CALENDAR_EVENTS,)) -> dict[str, str]:
        refresh, client_id, secret = (secrets.token_urlsafe(16), "sandbox-client",
                                      secrets.token_urlsafe(12))
        self.authorized_users[refresh] = (client_id, secret, email, frozenset(consented))
        return {"type": "authorized_user", "client_id": client_id, "client_secret": secret,
                "refresh_token": refresh, "token_uri": "{url}/token"}

    def add_event(self, calendar: str, **fields: Any) -> str:
        with self.lock:
            event_id = fields.pop("id", None) or f"evt{next(self._ids):04d}"
            event = {"kind": "calendar#event", "id": event_id, "status": "confirmed",
                     "summary": "", "organizer": {"email": calendar},
                     "iCalUID": f"{event_id}@sandbox", "sequence": 0,
                     "created": _now_rfc3339(), **fields}
            self.events[calendar][event_id] = event
            self._touch(event)
            return event_id

    def edit_event(self, calendar: str, event_id: str, **changes: Any) -> None:
        """An edit as the instructor makes it in their calendar."""
        with self.lock:
            event = self.events[calendar][event_id]
            event.update(changes)
            self._touch(event)

    def delete_event(self, calendar: str, event_id: str) -> None:
        self.edit_event(calendar, event_id, status="cancelled")

    def event(self, calendar: str, event_id: str) -> dict[str, Any]:
        with self.lock:
            return self._public(calendar, self.events[calendar][event_id])

    def expire_sync_tokens(self) -> None:
        with self.lock:
            self.oldest_valid_sync = self.seq + 1

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()
            self.token_scopes.clear()

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

    def _check(self, validator: Draft7Validator, body: Any, what: str) -> None:
        if not self.validate:
            return
        for error in validator.iter_errors(body):
            self.schema_errors.append(f"{what}: {error.json_path}: {error.message}")

    def _token(self, request: Request) -> Response:
        form = request.form()
        granted: tuple[str, frozenset[str]] | Response | None = None
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            granted = self._verify_jwt(form.get("assertion", ""))
        elif form.get("grant_type") == "refresh_token":
            known = self.authorized_users.get(form.get("refresh_token", ""))
            if known and known[:2] == (form.get("client_id"), form.get("client_secret")):
                granted = self._refresh_scopes(known[2], known[3], form.get("scope"))
        if isinstance(granted, Response):
            return granted
        if granted is None:
            return Response(400, {"error": "invalid_grant", "error_description": "Bad grant"})
        subject, scopes = granted
        token = "ya29.sandbox-" + secrets.token_urlsafe(16)
        with self.lock:
            self.access_tokens[token] = (subject, time.time() + 3600)
            self.token_scopes[token] = scopes
            self.issued_tokens.append(token)
        return Response(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer",
                              "scope": " ".join(sorted(scopes))})

    def _verify_jwt(self, assertion: str) -> tuple[str, frozenset[str]] | Response | None:
        """A service account's signed assertion: its `scope` claim must lie within what
        the domain's admin delegated to it, else 401 unauthorized_client
        (https://developers.google.com/identity/protocols/oauth2/service-account#error-codes)."""
        try:
            header, payload, signature = assertion.split(".")
            claims = json.loads(_unb64(payload))
            key = self.service_accounts[claims["iss"]]
            key.verify(_unb64(signature), f"{header}.{payload}".encode(),
                       padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return None
        subject = self._canonical(str(claims.get("sub", "")))
        requested = frozenset(str(claims.get("scope", "")).split())
        if subject is None or not requested:
            return None
        if not requested <= self.delegated_scopes.get(claims["iss"], frozenset()):
            return Response(401, {"error": "unauthorized_client", "error_description":
                                  "Client is unauthorized to retrieve access tokens using "
                                  "this method, or client not authorized for any of the "
                                  "scopes requested."})
        return subject, requested

    @staticmethod
    def _refresh_scopes(user: str, consented: frozenset[str], scope: str | None
                        ) -> tuple[str, frozenset[str]] | Response:
        """A refresh may ask for fewer scopes than the user consented to, never more
        (RFC 6749 section 6: 400 invalid_scope)."""
        requested = frozenset((scope or "").split()) or consented
        if not requested <= consented:
            return Response(400, {"error": "invalid_scope", "error_description":
                                  "Some requested scopes were invalid."})
        return user, requested

    def _canonical(self, email: str) -> str | None:
        """Google matches addresses without regard to case."""
        return next((owner for owner in self.owners if owner.lower() == email.lower()), None)

    def caller_of(self, request: Request) -> str | None:
        """The user a request is counted against (for per-user quotas): its quotaUser if it
        names one (https://developers.google.com/calendar/api/guides/quota), else the user
        its token acts as; None for the token endpoint."""
        known = self.access_tokens.get(request.headers.get("authorization", "")
                                       .removeprefix("Bearer "))
        if not known:
            return None
        return request.query.get("quotaUser") or known[0]

    def _members(self, request: Request, group: str) -> Response:
        """Admin SDK Directory members.list: the scopes of its discovery document
        (admin.directory_v1.json), pages of maxResults (at most 200) with nextPageToken,
        nested groups flattened with includeDerivedMembership, 404 for an unknown group
        (https://developers.google.com/admin-sdk/directory/reference/rest/v1/members/list)."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        known = self.access_tokens.get(token)
        if not known or known[1] < time.time():
            return google_error(401, "authError", "Invalid Credentials")
        if not self.token_scopes.get(token, frozenset()) & directory_scopes():
            return insufficient_scopes()
        key = unquote(group).lower()
        if key not in self.groups:
            return google_error(404, "notFound", "Resource Not Found: groupKey")
        derived = request.query.get("includeDerivedMembership") == "true"
        found: list[dict[str, str]] = []
        todo, seen, listed = list(self.groups[key]), {key}, set()
        while todo:
            member = todo.pop()
            if member in listed:
                continue
            listed.add(member)
            kind = "GROUP" if member in self.groups else "USER"
            found.append({"kind": "admin#directory#member", "email": member, "type": kind,
                          "role": "MEMBER", "status": "ACTIVE", "id": str(abs(hash(member)))})
            if kind == "GROUP" and derived and member not in seen:
                seen.add(member)
                todo += self.groups[member]
        size = min(int(request.query.get("maxResults", "200")), 200, self.member_page_size)
        start = int(request.query.get("pageToken", "0") or 0)
        body: dict[str, Any] = {"kind": "admin#directory#members",
                                "members": found[start:start + size]}
        if start + size < len(found):
            body["nextPageToken"] = str(start + size)
        self._check(directory_members_validator(), body, "members.list response")
        return Response(200, body)

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
                    cal, since = json.loads(_unb64(query["syncToken"]))
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
        return Response(200, self._public(resolved, event))


@functools.cache
def _sandbox_key() -> rsa.RSAPrivateKey:
    """One RSA key per process: generating one per sandbox costs more than a test."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
