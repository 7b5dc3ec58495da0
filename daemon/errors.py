"""The errors a pass can meet, each with the fields a caller decides on, and the one
place (`explain`) that turns them into the sentence an admin reads, with the fix.

    VendorError              a request to a vendor failed: vendor, status, code, retry_after
    ├── CalendarError        Google Calendar or Microsoft Graph
    │   ├── CredentialsRefused   the token endpoint refused the app's credentials
    │   ├── SyncExpired      the sync token or delta link was refused: list everything again
    │   ├── Conflict         the event changed since it was read (412/409): re-read, retry
    │   └── Gone             one event was deleted (404/410 on its get or patch)
    └── ZoomError
        ├── ZoomCredentialsRefused   the Server-to-Server app's credentials were refused
        ├── ZoomRefused      the account kept a setting insecure (`state`: what it is now)
        └── ZoomThrottled    a daily limit: nothing helps before `until`

Messages name no secret; no code branches on them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .zoom.policy import PmiState


class VendorError(Exception):
    """A vendor request failed. `status` is the HTTP status when there was an answer,
    `code` the vendor's own error code, `retry_after` the seconds it asked to wait."""

    vendor = "vendor"

    def __init__(self, message: str, *, status: int | None = None, code: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


class CalendarError(VendorError):
    vendor = "calendar"


class CredentialsRefused(CalendarError):
    """The token endpoint refused the app's credentials (or the delegation)."""


class SyncExpired(CalendarError):
    """The stored sync state was rejected: list everything again."""


class Conflict(CalendarError):
    """The event changed since it was read (412): re-read, re-apply, retry."""


class Gone(Conflict):
    """The one event asked for was deleted; a caller that re-reads finds nothing."""


class ZoomError(VendorError):
    vendor = "zoom"


class ZoomCredentialsRefused(ZoomError):
    """Zoom's token endpoint refused the app's account id, client id or secret."""


class ZoomRefused(ZoomError):
    """Zoom would not make the PMI secure (a setting locked by the account, say);
    `state` is what a student meets now, as read back."""

    def __init__(self, message: str, state: PmiState | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.state = state


class ZoomThrottled(ZoomError):
    """A daily limit (or a wait longer than a pass) was reached: no retry helps today."""

    def __init__(self, message: str, until: datetime, **fields: Any) -> None:
        super().__init__(message, status=429, **fields)
        self.until = until
        self.insecure = False  # set when it stopped a repair: the room is known NOT secure


# Zoom's codes (https://developers.zoom.us/docs/api/rest/error-definitions/)
ZOOM_UNKNOWN_USER, ZOOM_MISSING_SCOPE = 1001, 4711

ZOOM_SCOPES = ("user:read:admin, user:write:admin, meeting:read:admin and meeting:write:admin "
               "(granular: user:read:user:admin, user:read:settings:admin, "
               "user:update:settings:admin, meeting:read:meeting:admin, "
               "meeting:update:meeting:admin)")
UNLOCK = ("unlock it in the Zoom web portal (Admin > Account Management > Account Settings "
          "> Meeting), or set it there yourself")
CALENDAR_ACCESS = {
    "google": "check the service account's domain-wide delegation (scope "
              "https://www.googleapis.com/auth/calendar.events), calendar_id, and that the "
              "instructor can make changes to that calendar (owner or writer)",
    "microsoft": "check the app's Calendars.ReadWrite permission, the access policy or RBAC "
                 "scope covering this mailbox, and calendar_id",
}


def fix(err: Exception, provider: str = "", zoom_user: str = "") -> str:
    """What an admin can do about `err`, or "" when waiting is the fix."""
    if isinstance(err, ZoomCredentialsRefused):
        return "check zoom.account_id, zoom.client_id and the secret in zoom.client_secret_file"
    if isinstance(err, ZoomRefused):
        return UNLOCK
    if isinstance(err, ZoomThrottled):
        return ""
    if isinstance(err, VendorError) and err.code == "network":  # http.NETWORK
        return ("check that this server reaches that host: DNS, the firewall, HTTPS_PROXY; "
                "behind a TLS-inspecting proxy, its CA as service.ca_bundle")
    if isinstance(err, ZoomError) and err.code == ZOOM_MISSING_SCOPE:
        return f"add the scopes {ZOOM_SCOPES} to the Zoom app"
    if isinstance(err, ZoomError) and (err.status == 404 or err.code == ZOOM_UNKNOWN_USER):
        return (f"check that {zoom_user or 'the user'} is a licensed user of this Zoom "
                "account (zoom_user)")
    if isinstance(err, CredentialsRefused):
        return ("check the credentials file and, for Google, the domain-wide delegation; "
                "for Microsoft, tenant_id, client_id and the secret or certificate")
    if isinstance(err, CalendarError) and err.status in (401, 403, 404):
        return CALENDAR_ACCESS.get(provider, "")
    return ""


def explain(err: Exception, provider: str = "", zoom_user: str = "") -> str:
    """The sentence for a person: what failed and, when there is one, the fix."""
    advice = fix(err, provider, zoom_user)
    return f"{err}; fix: {advice}" if advice else str(err)
