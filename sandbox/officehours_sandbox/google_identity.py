"""Google's side of a Workspace domain as an app meets it: the OAuth token endpoint (a
service account's signed assertion within what the admin delegated, or an authorized
user's refresh token), access tokens with their scopes, and the Admin SDK's group
members. Google's error bodies; answers checked against the discovery documents
google-api-python-client ships. The Calendar emulator (google.py) is one of these with
calendars.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import googleapiclient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jsonschema import Draft7Validator

from .server import Emulator, Request, Response

AUTH = "https://www.googleapis.com/auth/"
CALENDAR_EVENTS = AUTH + "calendar.events"  # what the README has admins delegate


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


@functools.cache
def directory_scopes() -> frozenset[str]:
    """members.list's scopes, from the Admin SDK discovery document the client ships."""
    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/" \
        "admin.directory_v1.json"
    document = json.loads(path.read_text())
    return frozenset(document["resources"]["members"]["methods"]["list"]["scopes"])


@functools.cache
def directory_members_validator() -> Draft7Validator:
    """members.list's answer (Members) from the Admin SDK discovery document, strict: the
    emulator answers with no field the document does not define."""
    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/" \
        "admin.directory_v1.json"
    return schema_validator(json.loads(path.read_text())["schemas"], "Members", strict=True)


def schema_validator(schemas: dict[str, Any], root: str, strict: bool) -> Draft7Validator:
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


class GoogleIdentity(Emulator):
    def __init__(self) -> None:
        super().__init__()
        # members.list may give fewer than maxResults ("the maximum number of results to
        # return": an upper bound, members/list reference above); tests set it to page
        self.member_page_size = 200
        self.owners: dict[str, str] = {}  # the domain's users: calendar id -> owner email
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (subject, expiry)
        self.token_scopes: dict[str, frozenset[str]] = {}  # access token -> its scopes
        self.service_accounts: dict[str, rsa.RSAPublicKey] = {}
        self.delegated_scopes: dict[str, frozenset[str]] = {}  # client email -> scopes
        # refresh token -> (client id, client secret, user, scopes the user consented to)
        self.authorized_users: dict[str, tuple[str, str, str, frozenset[str]]] = {}
        self.groups: dict[str, list[str]] = {}  # group address -> member addresses
        self.route("POST", "/token", self._token)
        self.route("GET", "/admin/directory/v1/groups/([^/]+)/members", self._members)

    def add_group(self, group: str, *members: str) -> None:
        """A Google Group; a member that is itself a group's address is a nested group."""
        with self.lock:
            self.groups[group.lower()] = [m.lower() for m in members]

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

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()
            self.token_scopes.clear()

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
            claims = json.loads(unb64(payload))
            key = self.service_accounts[claims["iss"]]
            key.verify(unb64(signature), f"{header}.{payload}".encode(),
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


@functools.cache
def _sandbox_key() -> rsa.RSAPrivateKey:
    """One RSA key per process: generating one per sandbox costs more than a test."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
