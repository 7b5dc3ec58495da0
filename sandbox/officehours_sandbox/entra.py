"""Microsoft's identity platform and directory as an app meets them through Graph: the
token endpoint and OpenID metadata as msal asks for them (a client secret, or a
certificate's signed assertion), access tokens that expire, the app's application
permissions, and groups whose transitive members come back in pages. Errors in Graph's
shape. The Graph emulator (graph.py) is one of these with calendars.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .server import Emulator, Request, Response


def graph_error(status: int, code: str, message: str,
                headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": {"code": code, "message": message}}, headers or {})


class EntraDirectory(Emulator):
    def __init__(self, tenant: str, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        # a server-side page smaller than $top: "the server might return fewer results
        # than requested ... always follow @odata.nextLink"
        # (https://learn.microsoft.com/en-us/graph/paging); tests set it to see page two
        self.member_page_size = 999
        self.base_url = ""  # set once served: links in responses are absolute
        self.certificates: dict[str, x509.Certificate] = {}  # thumbprint -> certificate
        self.access_tokens: dict[str, float] = {}
        self.pages: dict[str, list[dict[str, Any]]] = {}  # $skiptoken -> what is left
        # application permissions granted to the app (admin consent); reading a group's
        # members needs GroupMember.Read.All (or Group.Read.All, Directory.Read.All):
        # https://learn.microsoft.com/en-us/graph/api/group-list-transitivemembers; their
        # properties need a permission to read users (User.ReadBasic.All or more), else
        # each member comes back as its id and @odata.type alone ("limited information
        # returned for inaccessible member objects", learn.microsoft.com/graph/
        # permissions-overview)
        self.app_roles = {"Calendars.ReadWrite", "GroupMember.Read.All", "User.ReadBasic.All"}
        self.groups: dict[str, list[str]] = {}  # group id -> member ids (users or groups)
        self.users: dict[str, dict[str, str]] = {}  # user id -> displayName, mail, UPN
        t = f"/{tenant}"
        self.route("GET", t + "/v2.0/.well-known/openid-configuration", self._openid)
        self.route("POST", t + "/oauth2/v2.0/token", self._token)
        self.route("GET", "/v1.0/groups/([^/]+)/transitiveMembers/microsoft.graph.user",
                   self._group_users)

    def add_group(self, group_id: str, *members: str) -> None:
        """A security group; members are user ids (see add_user) or other groups' ids."""
        with self.lock:
            self.groups[group_id] = list(members)

    def add_user(self, address: str, name: str) -> str:
        with self.lock:
            user_id = f"{len(self.users) + 1:08d}-0000-4000-8000-000000000000"
            self.users[user_id] = {"id": user_id, "displayName": name, "mail": address,
                                   "userPrincipalName": address}
            return user_id

    def add_certificate(self, certificate: x509.Certificate) -> None:
        thumbprint = certificate.fingerprint(hashes.SHA1())  # noqa: S303 - as Entra ID does
        self.certificates[base64.urlsafe_b64encode(thumbprint).decode().rstrip("=")] = certificate

    def _authorized(self, request: Request) -> Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        expiry = self.access_tokens.get(token)
        if expiry is None or expiry < time.time():
            return graph_error(401, "InvalidAuthenticationToken",
                               "Access token has expired or is not yet valid.")
        return None

    def _openid(self, request: Request) -> Response:
        base = f"{self.base_url}/{self.tenant}"
        return Response(200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "private_key_jwt"],
            "response_types_supported": ["code", "id_token", "token"],
        })

    def _token(self, request: Request) -> Response:
        form = request.form()
        ok = form.get("grant_type") == "client_credentials" and \
            form.get("client_id") == self.client_id
        if "client_secret" in form:
            ok = ok and form["client_secret"] == self.client_secret
        else:
            ok = ok and self._valid_assertion(form.get("client_assertion", ""))
        if not ok:
            return Response(401, {"error": "invalid_client", "error_description":
                                  "AADSTS7000215: Invalid client secret provided.",
                                  "error_codes": [7000215]})
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(24)
        self.access_tokens[token] = time.time() + 3599
        self.issued_tokens.append(token)
        return Response(200, {"token_type": "Bearer", "expires_in": 3599,
                              "ext_expires_in": 3599, "access_token": token})

    def _group_users(self, request: Request, group_id: str) -> Response:
        """transitiveMembers cast to users: nested groups flattened, each user once, in
        pages of $top (at most 999) with @odata.nextLink; 403
        Authorization_RequestDenied without the permission (reference page above)."""
        denied = self._authorized(request)
        if denied:
            return denied
        if not self.app_roles & {"GroupMember.Read.All", "Group.Read.All",
                                 "Directory.Read.All"}:
            return graph_error(403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.")
        skip = request.query.get("$skiptoken")
        if skip:
            rest = self.pages.get(skip)
            if rest is None:
                return graph_error(400, "Request_BadRequest", "Invalid skip token.")
            final, *items = rest
            return self._page_users(items, request.path, int(request.query.get("$top", "100")))
        if group_id not in self.groups:
            return graph_error(404, "Request_ResourceNotFound",
                               f"Resource '{group_id}' does not exist.")
        found: dict[str, dict[str, str]] = {}
        todo, seen = list(self.groups[group_id]), {group_id}
        while todo:
            member = todo.pop(0)
            if member in self.groups and member not in seen:
                seen.add(member)
                todo += self.groups[member]
            elif member in self.users:
                found.setdefault(member, self.users[member] if self._may_read_users() else {
                    "@odata.type": "#microsoft.graph.user", "id": member})
        return self._page_users(list(found.values()), request.path, min(
            int(request.query.get("$top", "100")), 999, self.member_page_size))

    def _may_read_users(self) -> bool:
        return bool(self.app_roles & {"User.ReadBasic.All", "User.Read.All",
                                      "Directory.Read.All"})

    def _page_users(self, users: list[dict[str, str]], path: str, size: int) -> Response:
        page, rest = users[:size], users[size:]
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#users",
                                "value": page}
        if rest:
            token = secrets.token_urlsafe(12)
            self.pages[token] = [{}, *rest]
            body["@odata.nextLink"] = f"{self.base_url}{path}?$top={size}&$skiptoken={token}"
        return Response(200, body)

    def _valid_assertion(self, assertion: str) -> bool:
        try:
            header, payload, signature = assertion.split(".")
            meta = json.loads(unb64(header))
            certificate = self.certificates[meta.get("x5t", "").rstrip("=")]
            public_key: Any = certificate.public_key()
            public_key.verify(unb64(signature), f"{header}.{payload}".encode(),
                              padding.PKCS1v15(), hashes.SHA256())
            return bool(json.loads(unb64(payload)).get("sub") == self.client_id)
        except Exception:
            return False


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

