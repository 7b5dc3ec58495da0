"""Outlook (Microsoft 365) calendars through Microsoft Graph, app-only (the app's identity,
token and error shape: entra.py).

The default calendar is read with calendarView/delta (the delta link is the sync token,
a new round starts when the look-ahead window must move); another calendar is read by
windowed calendarView and compared by changeKey. Series masters are fetched once per
series that changed, with `$select` (their cancelled occurrences come back only then).
Writes PATCH body and location together, with If-Match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import httpx

from ..config import MicrosoftConfig
from ..errors import CalendarError, Conflict, Gone, SyncExpired
from ..http import (
    NETWORK,
    ForeignHost,
    Pages,
    backoff,
    httpx_delay,
    network_cause,
    origin,
    retry_after,
    send,
)
from ..model import Event, Instructor, Kind
from ..reconcile import is_html
from . import graph_recurrence
from .base import Channel, Listing, checked, identifier, instant, text
from .entra import GraphApp, GraphAuth, graph_error

WINDOW_BEHIND = timedelta(days=1)  # sessions under way stay visible
WINDOW_AHEAD = timedelta(days=60)
NEW_ROUND_AFTER = timedelta(days=7)  # then the window is moved: the delta link is frozen
PAGE_SIZE = 100
PREFER = f'outlook.timezone="UTC", odata.maxpagesize={PAGE_SIZE}'
DEFAULT_CALENDARS = ("primary", "default", "calendar")
# Every event property the program reads (see _events, _to_event and changes); asked for
# with $select, so the answers carry these and nothing else.
EVENT_FIELDS = ("type", "isCancelled", "seriesMasterId", "originalStart", "subject", "body",
                "location", "isOrganizer", "start", "end", "originalStartTimeZone",
                "recurrence", "changeKey", "lastModifiedDateTime")
# A series' deleted occurrences come back "only on $select in a GET operation which specifies
# the ID of a series master event" (https://learn.microsoft.com/en-us/graph/api/resources/event,
# properties table; API-NOTES.md): without them a deleted occurrence would still be a session.
BY_ID_FIELDS = (*EVENT_FIELDS, "cancelledOccurrences")


class OutlookCalendar:
    """CalendarProvider for one instructor's Outlook calendar."""

    # Exchange's common limit for a whole calendar item is 32 KB (same source as Google's);
    # the body gets what the rest of the item leaves
    description_limit = 30_000

    def __init__(self, config: MicrosoftConfig, app: GraphApp, http: httpx.Client,
                 instructor: Instructor, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._base = config.graph_base_url
        self._user = quote(instructor.email, safe="@")
        self._calendar = (None if instructor.calendar_id.lower() in DEFAULT_CALENDARS
                          else instructor.calendar_id)
        self._auth = GraphAuth(app)
        self._app = app
        self._http = http
        self._clock = clock
        self._sleep = sleep
        self._who = instructor.email
        self._body_types: dict[str, str] = {}
        self.requests = 0

    def close(self) -> None:
        pass  # the httpx client is shared by every mailbox and closed by the app

    # --- HTTP ---

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
        self.requests += 1
        request = self._http.build_request(method, url, json=body,
                                           headers={"Prefer": PREFER, **(headers or {})})
        try:
            response = send(self._http, request, self._auth, self._sleep,
                            delay=_read_delay if method == "GET" else httpx_delay)
        except httpx.TransportError as err:
            raise CalendarError(f"Microsoft Graph unreachable at {origin(self._base)}: "
                                f"{network_cause(err)}", code=NETWORK) from None
        except ForeignHost as err:  # a next-page or delta link to another host
            raise CalendarError(f"Graph {method} for {self._who}: {err}") from None
        except ValueError:
            raise CalendarError(f"Graph {method} for {self._who}: the answer was not valid "
                                "JSON, 4 times") from None
        status = response.status_code
        if status < 400:
            pass
        elif status in (409, 412) and method != "GET":
            raise Conflict(f"Graph: the event changed meanwhile ({status})", status=status)
        elif status == 410:
            raise SyncExpired("Graph: the delta link expired, a new round is needed",
                              status=status)
        else:
            raise graph_error(f"Graph {method} for {self._who}", response)
        if status == 204:  # a DELETE's answer (https://learn.microsoft.com/graph/api/
            return {}       # subscription-delete): no body
        try:
            result: dict[str, Any] = response.json()
        except ValueError:
            raise CalendarError(f"Graph {method} for {self._who}: invalid JSON") from None
        if not isinstance(result, dict):
            raise CalendarError(f"Graph {method} for {self._who}: the answer is not an object")
        return result

    def _pages(self, url: str) -> tuple[list[dict[str, Any]], str]:
        """Every item behind `url`, following nextLink; and the deltaLink at the end."""
        items: list[dict[str, Any]] = []
        pages = Pages(f"Graph for {self._who}", self._app.max_pages)
        while True:
            page = self._call("GET", url)
            value = page.get("value") or []
            if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
                raise CalendarError(f"Graph for {self._who}: value is not a list of objects")
            items += value
            link = pages.next(page.get("@odata.nextLink"))
            if link is None:
                return items, str(page.get("@odata.deltaLink", ""))
            url = link

    # --- CalendarProvider ---

    def changes(self, sync_token: str | None) -> Listing:
        try:
            state = json.loads(sync_token) if sync_token else None
            if state is not None and not isinstance(state, dict):
                raise ValueError("not an object")
        except ValueError:  # a stored state this version cannot read: list everything
            raise SyncExpired("Graph: the stored delta state is unreadable") from None
        try:
            return self._changes(state)
        except (KeyError, TypeError, ValueError, AttributeError) as err:  # at the edge
            raise CalendarError(f"Graph for {self._who}: an answer has a field missing or of "
                                f"the wrong type ({type(err).__name__}: {str(err)[:120]})"
                                ) from None

    def _changes(self, state: dict[str, Any] | None) -> Listing:
        now = self._clock()
        if state and now - datetime.fromisoformat(state["start"]) > NEW_ROUND_AFTER:
            state = None  # move the window: a new round lists everything again
        full = state is None
        start = datetime.fromisoformat(state["start"]) if state else now - WINDOW_BEHIND
        window = {"startDateTime": f"{start:%Y-%m-%dT%H:%M:%SZ}",
                  "endDateTime": f"{start + WINDOW_AHEAD + WINDOW_BEHIND:%Y-%m-%dT%H:%M:%SZ}"}
        if self._calendar is None:
            # no $select here: "$select is not supported" in a delta query on a calendar view
            # (https://learn.microsoft.com/en-us/graph/delta-query-events, query parameters);
            # the items carry every property anyway, and masters are read by id below
            url = (state["link"] if state else
                   f"{self._base}/users/{self._user}/calendarView/delta?{urlencode(window)}")
            items, link = self._pages(url)
            new_state: dict[str, Any] = {"start": start.isoformat(), "link": link}
        else:
            query = urlencode({**window, "$select": ",".join(EVENT_FIELDS)}, safe="$,")
            url = (f"{self._base}/users/{self._user}/calendars/"
                   f"{quote(self._calendar, safe='')}/calendarView?{query}")
            listed, _ = self._pages(url)
            known: dict[str, str] = state["keys"] if state else {}
            keys = {item["id"]: item.get("changeKey", "") for item in listed}
            items = [item for item in listed if known.get(item["id"]) != keys[item["id"]]]
            items += [{"id": gone, "@removed": {"reason": "deleted"}}
                      for gone in known if gone not in keys]
            new_state = {"start": start.isoformat(), "keys": keys}
        series: list[str] = state.get("series", []) if state else []
        # A removal may be one deleted occurrence, which Graph reports as no more than its
        # "@removed" (https://learn.microsoft.com/en-us/graph/delta-query-events): its
        # id names no series, and only the master's cancelledOccurrences say which date
        # is gone. So any removal re-reads the series of the round; rare, and cheap.
        reread = series if any("@removed" in item for item in items) else []
        events, masters = self._events(items, full, reread)
        new_state["series"] = sorted(
            {m for m in series if masters.get(m, True)}
            | {m for m, exists in masters.items() if exists}
            | {str(i["seriesMasterId"]) for i in items if i.get("seriesMasterId")})
        return Listing(events, json.dumps(new_state), full=full)

    def _events(self, items: list[dict[str, Any]], full: bool,
                reread: list[str]) -> tuple[list[Event], dict[str, bool]]:
        """The events of `items`, with the series they need read by id (and `reread`);
        and which series were read, each with whether it still exists."""
        events: list[Event] = []
        masters: list[str] = []
        for item in items:
            kind = item.get("type")
            if "@removed" in item:
                events.append(Event(id=identifier(item), kind=Kind.CANCELLED))
                continue
            if kind in ("exception", "singleInstance"):
                events.append(self._to_event(item))
            master = text(item, "seriesMasterId")
            # an occurrence stands for its series; a new round also reads the series of
            # exceptions, in case every occurrence in the window was modified
            if master and master not in masters and (
                    kind == "occurrence" or (full and kind == "exception")):
                masters.append(master)
        masters += [m for m in reread if m not in masters]
        read: dict[str, bool] = {}
        for master_id in masters:  # once per series, however many occurrences changed
            found = self.get(master_id)
            events.append(found or Event(id=master_id, kind=Kind.CANCELLED))
            read[master_id] = found is not None
        return events, read

    def access(self) -> str:
        path = ("calendar" if self._calendar is None
                else f"calendars/{quote(self._calendar, safe='')}")
        calendar = self._call("GET", f"{self._base}/users/{self._user}/{path}")
        if not calendar.get("canEdit"):
            raise CalendarError(f"Outlook calendar {calendar.get('name')!r} of {self._who} "
                                "cannot be edited by the app")
        return f"readable and writable ({calendar.get('name', 'calendar')})"

    # --- change notifications ([push]) ---

    def watch(self, address: str, secret: str, until: datetime, name: str = "") -> Channel:
        """POST /subscriptions on the calendar's events: created, updated and deleted to
        `address`, lifecycle notifications (subscriptionRemoved, missed,
        reauthorizationRequired) to `address`/lifecycle, `secret` as the clientState
        (at most 128 characters). Graph validates both URLs before it answers 201
        (https://learn.microsoft.com/graph/api/subscription-post-subscriptions,
        /graph/change-notifications-lifecycle-events); the application permission
        Calendars.Read is enough for it."""
        events = ("events" if self._calendar is None
                  else f"calendars/{quote(self._calendar, safe='')}/events")
        answer = self._call("POST", f"{self._base}/subscriptions", {
            "changeType": "created,updated,deleted", "notificationUrl": address,
            "lifecycleNotificationUrl": f"{address}/lifecycle",
            "resource": f"users/{self._user}/{events}",
            "expirationDateTime": _graph_time(until), "clientState": secret,
            "latestSupportedTlsVersion": "v1_2"})
        return checked("Graph", answer, lambda item: Channel(
            identifier(item), "", _expiry(item)))

    def renew(self, channel: Channel, until: datetime) -> Channel | None:
        """PATCH the expirationDateTime (an Outlook event subscription lives 10,080 minutes
        at most: https://learn.microsoft.com/graph/change-notifications-overview); a
        subscription Graph no longer has is Gone."""
        try:
            answer = self._call("PATCH", self._subscription_url(channel.id),
                                {"expirationDateTime": _graph_time(until)})
        except CalendarError as err:
            if err.status == 404:
                raise Gone(f"Graph: subscription {channel.id[:64]} is gone", status=404
                           ) from None
            raise
        return checked("Graph", {"id": channel.id, **answer}, lambda item: Channel(
            channel.id, "", _expiry(item)))

    def unwatch(self, channel: Channel) -> None:
        try:
            self._call("DELETE", self._subscription_url(channel.id))
        except CalendarError as err:
            if err.status != 404:
                raise

    def _subscription_url(self, subscription: str) -> str:
        return f"{self._base}/subscriptions/{quote(subscription, safe='')}"

    def get(self, event_id: str) -> Event | None:
        try:
            query = urlencode({"$select": ",".join(BY_ID_FIELDS)}, safe="$,")
            item = self._call("GET", f"{self._event_url(event_id)}?{query}")
        except CalendarError as err:
            if err.status == 404:
                return None
            raise
        return self._to_event(item)

    def patch(self, event: Event, description: str, location: str) -> Event:
        body: dict[str, Any] = {}
        if description != event.description:
            content_type = self._body_types.get(event.id) or (
                "html" if is_html(description) else "text")
            body["body"] = {"contentType": content_type, "content": description}
        if location != event.location:
            body["location"] = {"displayName": location}
        item = self._call("PATCH", self._event_url(event.id), body,
                          headers={"If-Match": event.etag} if event.etag else None)
        written = self._to_event(item)
        if written.kind is Kind.SERIES and "cancelledOccurrences" not in item:
            # a PATCH answer has no cancelled occurrences (they come only on a $select by
            # id); If-Match guaranteed the series was the one read, EXDATEs included
            written = replace(written, recurrence=event.recurrence)
        return written

    def _event_url(self, event_id: str) -> str:
        return f"{self._base}/users/{self._user}/events/{quote(event_id, safe='')}"

    def _to_event(self, item: Any) -> Event:
        """A Graph event in the shared model, checked at the edge (base.checked)."""
        return checked("Graph", item, self._convert)

    def _convert(self, item: Mapping[str, Any]) -> Event:
        kind = {"seriesMaster": Kind.SERIES, "exception": Kind.EXCEPTION,
                "singleInstance": Kind.SINGLE}.get(text(item, "type"), Kind.SINGLE)
        if item.get("isCancelled"):
            kind = Kind.CANCELLED
        body = item.get("body") or {}
        location = item.get("location") or {}
        self._body_types[identifier(item)] = (text(body, "contentType") or "text").lower()
        zone = graph_recurrence.iana_zone(item.get("originalStartTimeZone"))
        start = _when(item.get("start"))
        recurrence: tuple[str, ...] = ()
        if kind is Kind.SERIES and item.get("recurrence") and start is not None:
            rec = item["recurrence"]
            zone = graph_recurrence.iana_zone(
                (rec.get("range") or {}).get("recurrenceTimeZone")
                or item.get("originalStartTimeZone"))
            try:
                recurrence = (graph_recurrence.rrule(rec, zone),
                              *graph_recurrence.exdates(item.get("cancelledOccurrences") or [],
                                                        start, zone))
            except (ValueError, KeyError) as err:
                raise CalendarError(f"Graph series {item['id']}: cannot read its "
                                    f"recurrence ({err})") from None
        original = text(item, "originalStart")
        return Event(
            id=identifier(item), kind=kind, title=text(item, "subject"),
            description=text(body, "content"), location=text(location, "displayName"),
            etag=text(item, "@odata.etag"), organizer_self=bool(item.get("isOrganizer")),
            series_id=text(item, "seriesMasterId") or None,
            original_start=datetime.fromisoformat(original.replace("Z", "+00:00"))
            if original else None,
            start=start, end=_when(item.get("end")), timezone=zone, recurrence=recurrence,
            changed=instant(item.get("lastModifiedDateTime")))


def _read_delay(outcome: httpx.Response | Exception, attempt: int) -> float | None:
    """http.py's policy, and for a GET a 412 retried like a 503.

    Graph answers plain GETs under load with 412 ErrorIrresolvableConflict (API-NOTES.md,
    Microsoft Graph): nothing of ours was written, so it is a busy service, not an edit
    to merge. A write's 412 stays a Conflict (_call)."""
    if isinstance(outcome, httpx.Response) and outcome.status_code == 412:
        return retry_after(outcome.headers) or backoff(attempt)
    return httpx_delay(outcome, attempt)


def _graph_time(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S.0000000Z}"


def _expiry(item: Mapping[str, Any]) -> datetime:
    found = instant(item.get("expirationDateTime"))
    if found is None:
        raise ValueError("expirationDateTime is not a time")
    return found


def _when(value: Any) -> datetime | None:
    """A dateTimeTimeZone as an aware datetime (we ask for UTC with Prefer)."""
    if not value or not value.get("dateTime"):
        return None
    if not isinstance(value["dateTime"], str):
        raise TypeError("dateTime is not text")
    text = value["dateTime"].rstrip("Z")[:26]
    when = datetime.fromisoformat(text)
    zone = graph_recurrence.iana_zone(value.get("timeZone"))
    return when.replace(tzinfo=ZoneInfo(zone)) if when.tzinfo is None else when
