"""Google Calendar through google-api-python-client, acting as one instructor.

Credentials: a service account with domain-wide delegation (subject = the instructor),
or an authorized-user file. TLS trust comes from service.ca_bundle via httplib2.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import googleapiclient
import httplib2
from google.auth import crypt
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from ..config import GoogleConfig
from ..environment import private_key
from ..errors import CalendarError, Conflict, CredentialsRefused, Gone, SyncExpired
from ..http import (
    NETWORK,
    RETRY_STATUSES,
    ForeignHost,
    Outbound,
    Pages,
    backoff,
    network_cause,
    origin,
    retry_after,
    with_retries,
)
from ..model import Event, Instructor, Kind, same_person
from .base import Channel, Listing, checked, identifier, instant, text

SCOPES = ["https://www.googleapis.com/auth/calendar.events"]
WRITERS = ("owner", "writer")
RATE_LIMITED = ("rateLimitExceeded", "userRateLimitExceeded")
# resets, timeouts, TLS and transport failures, a truncated or garbled JSON answer
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # google-auth's default
TRANSIENT = (OSError, http.client.HTTPException, httplib2.HttpLib2Error,
             google.auth.exceptions.TransportError, ValueError)


@cache
def _discovery_document(name: str = "calendar.v3.json") -> str:
    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents" / name
    return path.read_text()


# the one scope a roster's Google Group needs, delegated beside calendar.events
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"


def load_credentials(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(path.read_text())
    if info.get("type") not in ("service_account", "authorized_user"):
        raise CalendarError(f"{path}: neither a service-account key nor an authorized-user file")
    return info


class GoogleAccount:
    """What every Google instructor of an install shares: one API client built from the
    shipped discovery document, the parsed key, and one HTTP connection per thread.

    Per instructor there is then only a credentials object (a token), which keeps a
    campus of thousands in little memory."""

    def __init__(self, config: GoogleConfig, info: dict[str, Any], outbound: Outbound,
                 directory_url: str = "") -> None:
        self.config = config
        self._outbound = outbound
        self.max_pages = outbound.max_pages
        # where its tokens and the signed assertion may go: the API, the key's token_uri
        # (used as is, CONTRACT.md), and the Admin SDK for a roster group
        self._origins = (config.api_base_url, str(info.get("token_uri") or GOOGLE_TOKEN_URI),
                         directory_url)
        self._base: Any  # google-auth's credentials (untyped)
        if info["type"] == "service_account":
            # the key checked once per process (environment.private_key), not at each open
            signer = crypt.RSASigner(private_key(str(info["private_key"]).encode()),  # type: ignore[no-untyped-call]
                                     info.get("private_key_id"))
            self._base = service_account.Credentials(  # type: ignore[no-untyped-call]
                signer, service_account_email=info["client_email"],
                token_uri=info["token_uri"], project_id=info.get("project_id"),
                universe_domain=info.get("universe_domain", "googleapis.com"), scopes=SCOPES)
        else:
            creds = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=SCOPES)
            # from_authorized_user_info ignores the file's token_uri (API-NOTES): set it
            self._base = creds.with_token_uri(info.get("token_uri") or creds.token_uri)
        self._delegated = info["type"] == "service_account"
        self._local = threading.local()
        self._connections: list[httplib2.Http] = []
        self._lock = threading.Lock()
        self.service = build_from_document(
            _discovery_document(), http=self._new_http(),
            client_options={"api_endpoint": config.api_base_url})

    def group_members(self, directory_url: str, admin: str, group: str,
                      sleep: Callable[[float], None]) -> list[dict[str, str]]:
        """Every user of a Google Group, nested groups included, 200 a page (Admin SDK
        Directory members.list), read as `admin` with the directory scope."""
        if not self._delegated:
            raise CalendarError("a Google Group is read with a service-account key "
                                "(domain-wide delegation), not an authorized-user file")
        credentials = self._base.with_scopes([DIRECTORY_SCOPE]).with_subject(admin)
        directory = build_from_document(
            _discovery_document("admin.directory_v1.json"), http=self._new_http(),
            client_options={"api_endpoint": directory_url})
        users, page = [], None
        pages = Pages(f"Google Group {group}", self._outbound.max_pages)
        while True:
            request = directory.members().list(groupKey=group, includeDerivedMembership=True,
                                               maxResults=200, pageToken=page)
            http = google_auth_httplib2.AuthorizedHttp(credentials, http=self.http())
            try:
                body = with_retries(functools.partial(_answer, request, http), _delay, sleep)
            except HttpError as err:
                raise CalendarError(f"Google Group {group}: HTTP {err.resp.status} "
                                    f"({_reason(err)})", status=err.resp.status,
                                    code=_reason(err)) from None
            except google.auth.exceptions.RefreshError as err:
                raise CredentialsRefused(f"Google refused the directory scope for {admin}: "
                                         f"{str(err.args[0] if err.args else '')[:200]}"
                                         ) from None
            except ForeignHost as err:
                raise CalendarError(f"Google Group {group}: {err}") from None
            users += [{"mail": m["email"]} for m in body.get("members", [])
                      if m.get("type") == "USER"]
            page = pages.next(body.get("nextPageToken"))
            if not page:
                return users

    def credentials(self, subject: str) -> Any:
        """Domain-wide delegation: the service account acting as `subject`."""
        return self._base.with_subject(subject) if self._delegated else self._base

    def _new_http(self) -> httplib2.Http:
        http = self._outbound.httplib2("google", *self._origins)
        with self._lock:
            self._connections.append(http)
        return http

    def http(self) -> httplib2.Http:
        """This thread's connection (httplib2 is not thread-safe)."""
        if not hasattr(self._local, "http"):
            self._local.http = self._new_http()
        return self._local.http

    def close(self) -> None:
        with self._lock:
            for http in self._connections:
                http.close()


def quota_user(email: str) -> str:
    """The quotaUser naming an instructor: a stable digest of their address, 32 characters.
    Google takes "an arbitrary string, up to 40 characters long" (the system parameters:
    https://cloud.google.com/apis/docs/system-parameters), and an address can be longer;
    a digest also keeps the address out of Google's request logs for quota."""
    return hashlib.sha256(same_person(email.strip()).encode()).hexdigest()[:32]


class GoogleCalendar:
    """CalendarProvider for one instructor's Google calendar.

    Every request names the instructor by their quotaUser, so Google counts it against that
    user's per-user quota however the service account is counted
    (https://developers.google.com/calendar/api/guides/quota; quotaUser is one of the
    standard parameters, https://cloud.google.com/apis/docs/system-parameters)."""

    # Not in Google's reference; the limit integrators report (Nylas support, "Event
    # Description Limits in Google Calendar and Microsoft Exchange").
    description_limit = 8192

    def __init__(self, account: GoogleAccount, instructor: Instructor,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._account = account
        self._credentials = account.credentials(instructor.email)
        self._service = account.service
        self._sleep = sleep
        self._calendar = instructor.calendar_id
        self._send_updates = account.config.send_updates
        self._who = instructor.email
        self._quota_user = quota_user(instructor.email)
        self._max_pages = account.max_pages
        self.requests = 0

    def close(self) -> None:
        pass  # connections belong to the shared GoogleAccount

    def _execute(self, request: Any, one_event: str | None = None) -> Any:
        """Run a request; `one_event` names the event a get or patch is about."""
        self.requests += 1
        try:
            http = google_auth_httplib2.AuthorizedHttp(self._credentials,
                                                       http=self._account.http())
            return with_retries(lambda: _answer(request, http), _delay, self._sleep)
        except HttpError as err:
            status = err.resp.status
            reason = _reason(err)
            # a get or patch of one deleted event answers 404 or 410 `deleted`: that event is
            # gone (https://developers.google.com/calendar/api/guides/errors#410_gone)
            if one_event is not None and status in (404, 410):
                raise Gone(f"Google: event {one_event} is gone (HTTP {status})",
                           status=status, code=reason) from None
            if status == 410:
                raise SyncExpired("Google: sync token expired, a full sync is required",
                                  status=status, code=reason) from None
            if status == 412:
                raise Conflict("Google: the event changed meanwhile (412)", status=status,
                               code=reason) from None
            raise CalendarError(f"Google Calendar for {self._who}: HTTP {status} "
                                f"({reason})", status=status, code=reason) from None
        except google.auth.exceptions.RefreshError as err:
            reason = err.args[0] if err.args else "refused"
            raise CredentialsRefused(f"Google refused the credentials for {self._who}: "
                                     f"{str(reason)[:200]}") from None
        except TRANSIENT as err:
            raise CalendarError(f"Google Calendar unreachable at "
                                f"{origin(self._account.config.api_base_url)}: "
                                f"{network_cause(err)}", code=NETWORK) from None
        except ForeignHost as err:
            raise CalendarError(f"Google Calendar for {self._who}: {err}") from None

    def changes(self, sync_token: str | None) -> Listing:
        events: list[Event] = []
        page_token: str | None = None
        pages = Pages(f"Google Calendar for {self._who}", self._max_pages)
        while True:
            params: dict[str, Any] = {"calendarId": self._calendar, "singleEvents": False,
                                      "maxResults": 250, "quotaUser": self._quota_user}
            if sync_token:
                params["syncToken"] = sync_token
            if page_token:
                params["pageToken"] = page_token
            page = self._execute(self._service.events().list(**params))
            items = page.get("items") or []
            if not isinstance(items, list):
                raise CalendarError(f"Google Calendar for {self._who}: items is not a list")
            events.extend(to_event(item) for item in items)
            page_token = pages.next(page.get("nextPageToken"))
            if not page_token:
                token = page.get("nextSyncToken")
                if not isinstance(token, str) or not token:
                    raise CalendarError(f"Google Calendar for {self._who}: the last page has "
                                        "no nextSyncToken")
                return Listing(events, token, full=sync_token is None)

    def access(self) -> str:
        """Through events.list, which the delegated calendar.events scope allows and whose
        answer carries the caller's accessRole; calendarList.get would need the calendar
        or calendar.readonly scope (403 insufficientPermissions with calendar.events:
        https://developers.google.com/calendar/api/v3/reference/calendarList/get)."""
        page = self._execute(self._service.events().list(
            calendarId=self._calendar, maxResults=1, quotaUser=self._quota_user))
        role = page.get("accessRole", "")
        if role not in WRITERS:
            raise CalendarError(f"Google calendar {self._calendar!r} is only {role or 'visible'}"
                                f" to {self._who}: the program can read it but cannot write "
                                "the link into its events (it needs owner or writer access)",
                                status=403, code=role)  # what a write would be answered
        return f"readable and writable ({role})"

    # --- change notifications ([push]) ---

    def watch(self, address: str, secret: str, until: datetime, name: str) -> Channel:
        """events.watch: a web_hook channel under the id `name` (Google: at most 64
        characters; the token at most 256), for Google's default lifetime (params.ttl: 604,800 s, a
        week), which Google may shorten ("the more restrictive value is used"): the
        answer's `expiration` (milliseconds, an int64 as a string) is what counts
        (https://developers.google.com/workspace/calendar/api/guides/push)."""
        answer = self._execute(self._service.events().watch(
            calendarId=self._calendar, quotaUser=self._quota_user, body={
                "id": name, "type": "web_hook", "address": address, "token": secret}))
        return checked("Google", answer, lambda item: _channel(item, name, until))

    def renew(self, channel: Channel, until: datetime) -> Channel | None:
        return None  # "there's no automatic way to renew": a new channel replaces it (push)

    def unwatch(self, channel: Channel) -> None:
        """channels.stop with the id and resourceId; one Google no longer has is stopped."""
        with contextlib.suppress(Gone):  # 404: not Google's any more
            self._execute(self._service.channels().stop(
                body={"id": channel.id, "resourceId": channel.resource}), one_event=channel.id)

    def get(self, event_id: str) -> Event | None:
        try:
            item = self._execute(self._service.events().get(
                calendarId=self._calendar, eventId=event_id, quotaUser=self._quota_user),
                one_event=event_id)
        except Gone:
            return None
        return to_event(item)

    def patch(self, event: Event, description: str, location: str) -> Event:
        # only the fields that change: re-sending a description Google already holds (one
        # too long for a write, say) would fail a location-only change with it
        body = {k: v for k, v, was in (("description", description, event.description),
                                       ("location", location, event.location)) if v != was}
        request = self._service.events().patch(
            calendarId=self._calendar, eventId=event.id, sendUpdates=self._send_updates,
            quotaUser=self._quota_user, body=body)
        request.headers["If-Match"] = event.etag
        # deleted since it was read: Gone, a Conflict, so the caller re-reads as after any
        # change (get() then says None), and the next listing shows it cancelled
        return to_event(self._execute(request, one_event=event.id))


def _answer(request: Any, http: Any) -> dict[str, Any]:
    """One attempt. The client hands back the raw text of a body that is not JSON."""
    result = request.execute(http=http, num_retries=0)
    if result in ("", b"") and request.methodId == "calendar.channels.stop":
        return {}  # a method without a response body (its RawModel hands back "")
    if not isinstance(result, dict):
        raise ValueError("Google answered with a body that is not a JSON object")
    return result


def _reason(err: HttpError) -> str:
    details = err.error_details if isinstance(err.error_details, list) else []
    reasons = [d.get("reason", "") for d in details if isinstance(d, dict)]
    return ", ".join(r for r in reasons if r) or str(err.reason)


def _delay(outcome: Any, attempt: int) -> float | None:
    """Which Google failures are worth another attempt, and after how long."""
    if isinstance(outcome, HttpError):
        status = outcome.resp.status
        limited = status == 403 and any(r in _reason(outcome) for r in RATE_LIMITED)
        if status in RETRY_STATUSES or limited:
            return retry_after(outcome.resp) or backoff(attempt)
        return None
    if isinstance(outcome, TRANSIENT):
        return backoff(attempt)
    return None


def _channel(item: Mapping[str, Any], wanted: str, until: datetime) -> Channel:
    """events.watch's answer: the channel asked for, its resourceId, its expiration."""
    if identifier(item) != wanted:
        raise ValueError("the channel answered is not the one asked for")
    expiration = item.get("expiration")
    if expiration is None:  # not in the answer: the lifetime asked for, at most
        return Channel(wanted, identifier(item, "resourceId"), until)
    if not isinstance(expiration, str | int) or not str(expiration).isdigit() or \
            len(str(expiration)) > 15:
        raise ValueError("expiration is not milliseconds since 1970")
    return Channel(wanted, identifier(item, "resourceId"),
                   datetime.fromtimestamp(int(expiration) / 1000, UTC))


def _when(value: Any) -> datetime | date | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise TypeError("a time is not an object")
    if "dateTime" in value:
        return datetime.fromisoformat(value["dateTime"])
    if "date" in value:
        return date.fromisoformat(value["date"])
    return None


def to_event(item: Any) -> Event:
    """A Google event resource in the shared model, checked at the edge."""
    return checked("Google", item, _to_event)


def _to_event(item: Mapping[str, Any]) -> Event:
    if item.get("status") == "cancelled":
        kind = Kind.CANCELLED
    elif item.get("recurrence"):
        kind = Kind.SERIES
    elif item.get("recurringEventId"):
        kind = Kind.EXCEPTION
    else:
        kind = Kind.SINGLE
    start = item.get("start") or {}
    recurrence = item.get("recurrence") or []
    if not isinstance(recurrence, list) or not all(isinstance(r, str) for r in recurrence):
        raise TypeError("recurrence is not a list of text")
    return Event(
        id=identifier(item), kind=kind,
        title=text(item, "summary"), description=text(item, "description"),
        location=text(item, "location"), etag=text(item, "etag"),
        organizer_self=bool((item.get("organizer") or {}).get("self")),
        series_id=text(item, "recurringEventId") or None,
        original_start=_when(item.get("originalStartTime")),
        start=_when(start), end=_when(item.get("end")),
        timezone=text(start, "timeZone") or None,
        recurrence=tuple(recurrence), changed=instant(item.get("updated")),
    )
