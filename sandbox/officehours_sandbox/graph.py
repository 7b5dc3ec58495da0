"""A Microsoft Graph v1.0 stand-in (the identity platform and the directory: entra.py):
calendarView/delta with paging and delta links, events get/patch with ETags,
calendarView of other calendars, 401/410/412/429 in Graph's error shape.

Series are stored as a master plus the occurrence times the test gives, so the emulator
does not share the program's recurrence code. Bodies are checked against the CSDL. As
strict as Graph about `$select`: a master's cancelled and exception occurrences come back
only when selected in a GET by id, and a selection returns only what it names.
"""

from __future__ import annotations

import base64
import copy
import html
import itertools
import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from .csdl import GraphSchema
from .entra import EntraDirectory, graph_error, unb64
from .graph_push import GraphSubscriptions
from .server import Request, Response

DEFAULT_CALENDAR = "default"
# "Returned only on $select in a GET operation which specifies the ID of a series master
# event" (https://learn.microsoft.com/en-us/graph/api/resources/event, properties table;
# API-NOTES.md): never in lists, delta, PATCH answers, or a GET by id without $select.
ONLY_ON_SELECT_BY_ID = ("cancelledOccurrences", "exceptionOccurrences")
# What a $select answer carries besides the selected properties: the key and the ETag
# annotation (https://learn.microsoft.com/en-us/graph/api/event-get, the $select example's
# response; OData 4.01 keeps key properties in a projection).
ALWAYS = ("id", "@odata.etag")


def graph_time(when: datetime) -> dict[str, str]:
    """A dateTimeTimeZone in UTC, as Graph returns it by default."""
    return {"dateTime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
            "timeZone": "UTC"}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.rstrip("Z")[:26]).replace(tzinfo=UTC)


class GraphEmulator(GraphSubscriptions, EntraDirectory):
    def __init__(self, tenant: str, client_id: str, client_secret: str,
                 page_size: int = 10) -> None:
        super().__init__(tenant, client_id, client_secret)
        self.page_size = page_size
        self.max_concurrent = 4  # per mailbox, as Graph enforces
        self.events: dict[str, dict[str, dict[str, Any]]] = {}  # mailbox -> id -> event
        self.occurrences: dict[str, list[tuple[datetime, datetime]]] = {}  # master -> times
        self.removed: dict[str, list[tuple[int, str]]] = {}  # mailbox -> (seq, id)
        self.seq = 0
        self.oldest_valid_delta = 0
        self._ids = itertools.count(1)
        self.schema = GraphSchema()
        self.route("GET", "/v1.0/users/([^/]+)/calendar", self._calendar)
        self.route("GET", "/v1.0/users/([^/]+)/calendars/([^/]+)", self._calendar)
        self.route("GET", "/v1.0/users/([^/]+)/calendarView/delta", self._delta)
        self.route("GET", "/v1.0/users/([^/]+)/calendars/([^/]+)/calendarView", self._view)
        self.route("GET", "/v1.0/users/([^/]+)/events/([^/]+)", self._get)
        self.route("PATCH", "/v1.0/users/([^/]+)/events/([^/]+)", self._patch)
        self.exchange_rendering = True  # bodies stored as Exchange renders them (below)
        self._init_subscriptions()  # change notifications (graph_push.py)

    def concurrency_key(self, request: Request) -> str | None:
        parts = request.path.split("/")
        return parts[3].lower() if len(parts) > 3 and parts[2] == "users" else None

    def too_many(self, request: Request) -> Response:
        return graph_error(429, "ApplicationThrottled", "Application is over its "
                           "MailboxConcurrency limit.", {"Retry-After": "1"})

    # --- set-up and inspection ---

    def add_mailbox(self, address: str) -> None:
        with self.lock:
            self.events.setdefault(address.lower(), {})
            self.removed.setdefault(address.lower(), [])

    def add_event(self, mailbox: str, start: datetime, end: datetime, *,
                  occurrences: list[tuple[datetime, datetime]] | None = None,
                  calendar: str = DEFAULT_CALENDAR, organizer: str | None = None,
                  **fields: Any) -> str:
        """A single event, or a series master when `occurrences` are given."""
        with self.lock:
            box = mailbox.lower()
            event_id = fields.pop("id", None) or f"AAMkAD{next(self._ids):05d}="
            organizer = organizer or mailbox
            event: dict[str, Any] = {
                "id": event_id, "subject": "", "body": {"contentType": "html", "content": ""},
                "start": graph_time(start), "end": graph_time(end),
                "location": {"displayName": "", "locationType": "default"},
                "isOrganizer": organizer.lower() == box, "isAllDay": False,
                "isCancelled": False, "type": "singleInstance",
                "organizer": {"emailAddress": {"name": organizer, "address": organizer}},
                "originalStartTimeZone": "UTC", "originalEndTimeZone": "UTC",
                "iCalUId": secrets.token_hex(8), "createdDateTime": _now(),
                "_calendar": calendar, **fields}
            if occurrences is not None:
                event["type"] = "seriesMaster"
                event["cancelledOccurrences"] = []
                self.occurrences[event_id] = list(occurrences)
            self.events[box][event_id] = event
            self._touch(event)
        self.changed(box, event_id, "created", calendar)
        return event_id

    def add_exception(self, mailbox: str, master_id: str, original: datetime, start: datetime,
                      end: datetime, **fields: Any) -> str:
        """A modified occurrence: the master's subject, body and location unless given."""
        master = self.events[mailbox.lower()][master_id]
        inherited = {k: copy.deepcopy(master[k]) for k in ("subject", "body", "location")}
        return self.add_event(mailbox, start, end, type="exception", seriesMasterId=master_id,
                              originalStart=_iso(original),
                              organizer=master["organizer"]["emailAddress"]["address"],
                              calendar=master["_calendar"], **{**inherited, **fields})

    def cancel_occurrence(self, mailbox: str, master_id: str, original: datetime) -> None:
        with self.lock:
            master = self.events[mailbox.lower()][master_id]
            # the date is the occurrence's date where the series recurs, as Exchange keeps
            # deleted instances (MS-OXOCAL 2.2.1.44.1 DeletedInstanceDates: midnight, local
            # time; example 4.1.1.3), not its UTC date: an evening session in the Americas
            # is on the next day in UTC
            zone = _zone((master.get("recurrence") or {}).get("range", {}).get(
                "recurrenceTimeZone") or master.get("originalStartTimeZone"))
            master["cancelledOccurrences"].append(
                f"OID.{master_id}.{original.astimezone(zone):%Y-%m-%d}")
            self.occurrences[master_id] = [o for o in self.occurrences[master_id]
                                           if o[0] != original]
            # the master changes (new ETag); its other occurrences are not listed again:
            # Graph documents only the deleted one's "@removed" in the delta
            # (https://learn.microsoft.com/en-us/graph/delta-query-events), so that is all
            # a client may count on
            shown = master["_shown_seq"]
            self._touch(master)
            master["_shown_seq"] = shown
            self.removed[mailbox.lower()].append((self.seq, _occurrence_id(master_id, original)))
        self.changed(mailbox, master_id, "updated", master["_calendar"])

    def edit_event(self, mailbox: str, event_id: str, **changes: Any) -> None:
        with self.lock:
            event = self.events[mailbox.lower()][event_id]
            event.update(changes)
            self._touch(event)
        self.changed(mailbox, event_id, "updated", event["_calendar"])

    def delete_event(self, mailbox: str, event_id: str) -> None:
        with self.lock:
            box = mailbox.lower()
            event = self.events[box].pop(event_id)
            self.seq += 1
            ids = [event_id] if event["type"] != "seriesMaster" else [
                _occurrence_id(event_id, s) for s, _ in self.occurrences.pop(event_id)]
            self.removed[box] += [(self.seq, i) for i in ids]
        self.changed(box, event_id, "deleted", event["_calendar"])

    def event(self, mailbox: str, event_id: str) -> dict[str, Any]:
        with self.lock:
            return self._public(self.events[mailbox.lower()][event_id])

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def expire_delta_tokens(self) -> None:
        with self.lock:
            self.oldest_valid_delta = self.seq + 1

    def expire_sync_state(self) -> None:
        self.expire_delta_tokens()

    def error_response(self, status: int, reason: str, headers: dict[str, str]) -> Response:
        # an injected "412" is what Graph answers to plain GETs under load (API-NOTES.md,
        # Microsoft Graph: ErrorIrresolvableConflict 412s on GETs, to be retried like a 503)
        code = {429: "TooManyRequests", 503: "ServiceNotAvailable",
                412: "ErrorIrresolvableConflict"}.get(status, "generalException")
        return graph_error(status, code, "The service is busy; retry later.", headers)

    # --- internals ---

    def _touch(self, event: dict[str, Any]) -> None:
        self.seq += 1
        event["_seq"] = event["_shown_seq"] = self.seq  # _shown_seq: a master's occurrences
        event["changeKey"] = base64.b64encode(f"ck{self.seq}".encode()).decode()
        event["@odata.etag"] = f'W/"{event["changeKey"]}"'
        event["lastModifiedDateTime"] = _now()

    def _public(self, event: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in event.items() if not k.startswith("_")}
        for problem in (self.schema.check(out) if self.validate else []):
            self.schema_errors.append(f"response: {problem}")
        return out

    def _select(self, request: Request) -> set[str] | Response | None:
        """The properties `$select` names, None without one; 400 for an unknown name, as
        Graph answers ("Could not find a property named ...")."""
        value = request.query.get("$select")
        if value is None:
            return None
        names = {name.strip() for name in value.split(",") if name.strip()}
        for name in sorted(names):
            if any("no such property" in p for p in self.schema.check({name: []})):
                return graph_error(400, "RequestBroker--ParseUri", f"Could not find a property "
                                   f"named '{name}' on type 'microsoft.graph.event'.")
        return names

    def _wire(self, event: dict[str, Any], select: set[str] | None,
              by_id: bool = False) -> dict[str, Any]:
        """An event as an answer carries it: the master-only collections only when selected
        in a GET by id; with `$select`, only the selected properties and ALWAYS."""
        out = self._public(event)
        for name in ONLY_ON_SELECT_BY_ID:
            out.pop(name, None)
        if select is None:
            return out
        if by_id and "cancelledOccurrences" in select:
            out["cancelledOccurrences"] = list(event.get("cancelledOccurrences", []))
        if by_id and "exceptionOccurrences" in select:  # a navigation property: events
            out["exceptionOccurrences"] = [
                {"id": e["id"]} for e in self.events[self._owner(event)].values()
                if e.get("seriesMasterId") == event["id"]]
        return {k: v for k, v in out.items() if k in select or k in ALWAYS}

    def _owner(self, event: dict[str, Any]) -> str:
        return next(box for box, events in self.events.items() if event["id"] in events)

    def _instances(self, box: str, calendar: str, start: datetime,
                   end: datetime) -> list[tuple[int, dict[str, Any]]]:
        """(seq, event) of what calendarView shows in [start, end): no masters."""
        found = []
        for event in self.events[box].values():
            if event["_calendar"] != calendar:
                continue
            if event["type"] == "seriesMaster":
                replaced = {e["originalStart"] for e in self.events[box].values()
                            if e.get("seriesMasterId") == event["id"]}
                for begins, ends in self.occurrences[event["id"]]:
                    if begins < end and ends > start and _iso(begins) not in replaced:
                        found.append((event["_shown_seq"],
                                      self._occurrence(event, begins, ends)))
            elif _parse(event["start"]["dateTime"]) < end and \
                    _parse(event["end"]["dateTime"]) > start:
                found.append((event["_seq"], self._public(event)))
        return sorted(found, key=lambda pair: pair[1]["id"])

    def _occurrence(self, master: dict[str, Any], start: datetime,
                    end: datetime) -> dict[str, Any]:
        out = self._public(master)
        out.pop("recurrence", None)
        out.pop("cancelledOccurrences", None)
        out.update(id=_occurrence_id(master["id"], start), type="occurrence",
                   seriesMasterId=master["id"], start=graph_time(start), end=graph_time(end),
                   originalStart=_iso(start))
        return out

    def _page(self, items: list[dict[str, Any]], path: str, final: dict[str, str],
              request: Request) -> Response:
        size = self.page_size
        prefer = request.headers.get("prefer", "")
        if "odata.maxpagesize=" in prefer:
            size = min(size, int(prefer.split("odata.maxpagesize=")[1].split(",")[0]))
        page, rest = items[:size], items[size:]
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#events",
                                "value": page}
        if rest:
            token = secrets.token_urlsafe(12)
            self.pages[token] = [final, *rest]
            body["@odata.nextLink"] = f"{self.base_url}{path}?$skiptoken={token}"
        else:
            body.update(final)
        return Response(200, body)

    # --- HTTP ---

    def _calendar(self, request: Request, user: str, calendar: str = DEFAULT_CALENDAR) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        box = user.lower()
        if box not in self.events or (calendar != DEFAULT_CALENDAR and not any(
                e["_calendar"] == calendar for e in self.events[box].values())):
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found "
                               "in the store.")
        body = {"id": calendar, "name": "Calendar" if calendar == DEFAULT_CALENDAR else calendar,
                "canEdit": True, "canShare": True, "isDefaultCalendar": calendar ==
                DEFAULT_CALENDAR, "owner": {"name": user, "address": user}}
        for problem in self.schema.check(body, "graph.calendar"):
            self.schema_errors.append(f"response: {problem}")
        return Response(200, body)

    def _delta(self, request: Request, user: str) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        box = user.lower()
        if box not in self.events:
            return graph_error(404, "ErrorInvalidUser", "The requested user is invalid.")
        path = request.path
        query = request.query
        if "$select" in query:  # "$select is not supported" for delta on a calendar view
            # (https://learn.microsoft.com/en-us/graph/delta-query-events, query parameters)
            return graph_error(400, "ErrorInvalidUrlQuery", "The query parameter '$select' "
                               "is not supported with this delta request.")
        if "$skiptoken" in query:
            items = self.pages.get(query["$skiptoken"])  # reusable, as Graph's are
            if items is None:
                return graph_error(400, "ErrorInvalidUrlQuery", "Invalid skip token.")
            return self._page(items[1:], path, items[0], request)
        if "$deltatoken" in query:
            try:
                window_start, window_end, since = json.loads(unb64(query["$deltatoken"]))
            except Exception:
                return graph_error(400, "ErrorInvalidUrlQuery", "Invalid delta token.")
            if since < self.oldest_valid_delta:
                return graph_error(410, "SyncStateNotFound", "The sync state is not found.")
            start, end = _parse(window_start), _parse(window_end)
        else:
            if "startDateTime" not in query or "endDateTime" not in query:
                return graph_error(400, "ErrorInvalidParameter",
                                   "This request requires a time window specified by the query "
                                   "string parameters StartDateTime and EndDateTime.")
            start, end, since = _parse(query["startDateTime"]), _parse(query["endDateTime"]), 0
        items = [event for seq, event in self._instances(box, DEFAULT_CALENDAR, start, end)
                 if seq > since]
        if since:
            items += [{"id": event_id, "@removed": {"reason": "deleted"}}
                      for seq, event_id in self.removed[box] if seq > since]
        token = _b64(json.dumps([_iso(start), _iso(end), self.seq]).encode())
        final = {"@odata.deltaLink": f"{self.base_url}{path}?$deltatoken={token}"}
        return self._page(items, path, final, request)

    def _view(self, request: Request, user: str, calendar: str) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        box = user.lower()
        query = request.query
        if "$skiptoken" in query:
            items = self.pages.get(query["$skiptoken"])  # reusable, as Graph's are
            if items is None:
                return graph_error(400, "ErrorInvalidUrlQuery", "Invalid skip token.")
            return self._page(items[1:], request.path, items[0], request)
        if box not in self.events or not any(
                e["_calendar"] == calendar for e in self.events[box].values()):
            return graph_error(404, "ErrorItemNotFound", "The calendar was not found.")
        try:
            start, end = _parse(query["startDateTime"]), _parse(query["endDateTime"])
        except KeyError:
            return graph_error(400, "ErrorInvalidParameter", "StartDateTime and EndDateTime "
                               "are required.")
        select = self._select(request)  # calendarView supports $select, as a list does
        if isinstance(select, Response):
            return select
        items = [event for _, event in self._instances(box, calendar, start, end)]
        if select is not None:
            items = [{k: v for k, v in item.items() if k in select or k in ALWAYS}
                     for item in items]
        return self._page(items, request.path, {}, request)

    def _find(self, request: Request, user: str,
              event_id: str) -> tuple[dict[str, Any] | None, Response | None]:
        denied = self._authorized(request)
        if denied:
            return None, denied
        event = self.events.get(user.lower(), {}).get(event_id)
        if event is None:
            return None, graph_error(404, "ErrorItemNotFound",
                                     "The specified object was not found in the store.")
        return event, None

    def _get(self, request: Request, user: str, event_id: str) -> Response:
        event, error = self._find(request, user, event_id)
        if event is None:
            return error or graph_error(404, "ErrorItemNotFound", "Not found.")
        select = self._select(request)
        if isinstance(select, Response):
            return select
        return Response(200, self._wire(event, select, by_id=True))

    def _patch(self, request: Request, user: str, event_id: str) -> Response:
        event, error = self._find(request, user, event_id)
        if event is None:
            return error or graph_error(404, "ErrorItemNotFound", "Not found.")
        if_match = request.headers.get("if-match")
        if if_match and if_match != event["@odata.etag"]:
            return graph_error(412, "ErrorIrresolvableConflict", "The send or update operation "
                               "could not be performed because the change key passed in the "
                               "request does not match the current change key for the item.")
        body = request.json()
        problems = self.schema.check(body) if self.validate else []
        self.schema_errors += [f"patch body: {p}" for p in problems]
        if problems:
            return graph_error(400, "RequestBodyRead", "; ".join(problems))
        for key, value in body.items():
            if isinstance(value, dict) and isinstance(event.get(key), dict):
                event[key] = {**event[key], **value}
            else:
                event[key] = value
        if "body" in body and self.exchange_rendering:
            event["body"] = exchange_rendering(event["body"])
        self._touch(event)
        self.changed(user, event_id, "updated", event["_calendar"])
        return Response(200, self._wire(event, None))


_TAG_END = re.compile(r"(<br\s*/?>|</(?:p|div|li|tr|table|ul|ol|h\d)>)(?!\r\n)", re.I)
_SINGLE_QUOTED = re.compile(r"""(\s[\w-]+)='([^']*)'""")
_HEAD = ('<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; '
         'charset=utf-8">\r\n</head>\r\n<body>\r\n')


def exchange_rendering(body: dict[str, Any]) -> dict[str, Any]:
    """A body as Exchange stores it, which is not what was PATCHed (OfficeDev/office-js#828,
    microsoftgraph/microsoft-graph-docs#8215; API-NOTES.md "Edges"): HTML comes back a whole
    document (html, a head with a meta, body), with CR LF after line breaks and block ends
    and attributes in double quotes; a text body comes back as HTML, its lines joined by
    <br>. Rendering a rendered body again changes nothing."""
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "text").lower() != "html":
        content = "<br>".join(html.escape(line, quote=False)
                              for line in content.replace("\r\n", "\n").split("\n"))
        content = f'<div class="PlainText">{content}</div>'
    content = _SINGLE_QUOTED.sub(lambda m: f'{m[1]}="{m[2]}"', content)
    content = _TAG_END.sub(lambda m: m[1] + "\r\n", content)
    inner = re.search(r"<body[^>]*>(.*)</body>", content, re.I | re.S)
    if inner is not None:  # text around the document moves into its body, as a parser does
        start = re.search(r"<html[^>]*>|<body[^>]*>", content, re.I)
        end = re.search(r"</html>", content[inner.end():], re.I)
        before = content[:start.start()] if start else ""
        after = content[inner.end() + end.end():] if end else content[inner.end():]
        content = (before + inner[1] + after).strip("\r\n")
    return {"contentType": "html", "content": f"{_HEAD}{content}\r\n</body>\r\n</html>\r\n"}


def _occurrence_id(master_id: str, start: datetime) -> str:
    return f"{master_id}_OCC{start.astimezone(UTC):%Y%m%dT%H%M}"


def _zone(name: str | None) -> ZoneInfo:
    """A Windows zone name ("Pacific Standard Time") or an IANA one; UTC otherwise."""
    try:
        return ZoneInfo(win_tz.get(name or "UTC", name or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
