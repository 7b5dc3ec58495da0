"""Google Calendar's push notifications, for the Calendar emulator: events.watch,
channels.stop, and a message to each live channel on every change of its calendar.

As https://developers.google.com/workspace/calendar/api/guides/push (read 2026-12-07)
says: a channel is `id` (at most 64 characters), `type` "web_hook" (or "webhook"),
`address` (HTTPS), `token` (at most 256, echoed as X-Goog-Channel-Token); it lives
params.ttl seconds, 604,800 by default (events/watch reference), or less by Google's own
limits ("the more restrictive value is used": `channel_seconds` here), and is never
renewed; the answer gives resourceId and the expiration in milliseconds as a string (an
int64 in the discovery document). Messages carry no body, only X-Goog-Channel-ID,
-Token, -Expiration, X-Goog-Resource-ID, -URI, -State and X-Goog-Message-Number: "sync"
(number 1) as a channel opens, "exists" on a change; the numbers after it are "not
sequential". Some messages never arrive ("not 100% reliable": Deliveries.drop_next).
channels.stop takes id and resourceId and "returns an empty response body" (204 here);
a channel unknown to it is a 404 (not documented: the program takes either as stopped).
"""

from __future__ import annotations

import email.utils
import random
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from .google_identity import google_error
from .push import Deliveries
from .server import Request, Response

CHANNEL_ID = re.compile(r"[A-Za-z0-9\-_+/=]{1,64}")


class GoogleChannels:
    """Mixed into GoogleCalendarEmulator (its lock, routes, `_access`, `_caller`)."""

    channel_seconds = 604_800  # Google's own cap on a channel's life (default ttl)
    deliveries: Deliveries | None = None  # set by the sandbox: where messages go out
    base_url = "https://www.googleapis.com"  # for X-Goog-Resource-URI
    if TYPE_CHECKING:  # the emulator's own (GoogleCalendarEmulator, GoogleIdentity)
        import threading
        lock: threading.RLock

        def route(self, method: str, pattern: str, handler: Any) -> None: ...
        def _access(self, request: Request, calendar: str, method_id: str
                    ) -> tuple[str, str] | Response: ...
        def _caller(self, request: Request, method_id: str
                    ) -> tuple[str, frozenset[str]] | Response: ...

    def _init_channels(self, prefix: str) -> None:
        self.channels: dict[str, dict[str, Any]] = {}  # id -> the channel
        self.route("POST", prefix + "/calendars/([^/]+)/events/watch",
                   self._watch)
        self.route("POST", prefix + "/channels/stop", self._stop)
        self._prefix = prefix

    def live_channels(self, calendar: str | None = None) -> list[dict[str, Any]]:
        now = time.time()
        with self.lock:
            return [c for c in self.channels.values() if c["expires"] > now
                    and (calendar is None or c["calendar"] == calendar)]

    def changed(self, calendar: str) -> None:
        """A change of `calendar`: an "exists" message to each of its live channels."""
        for channel in self.live_channels(calendar):
            channel["number"] += random.randint(1, 3)
            self._send(channel, "exists")

    def _send(self, channel: dict[str, Any], state: str) -> None:
        if self.deliveries is None:
            return
        headers = {
            "X-Goog-Channel-ID": channel["id"],
            "X-Goog-Channel-Expiration": email.utils.formatdate(channel["expires"],
                                                                usegmt=True),
            "X-Goog-Resource-ID": channel["resourceId"],
            "X-Goog-Resource-URI": channel["uri"],
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel["number"])}
        if channel.get("token"):
            headers["X-Goog-Channel-Token"] = channel["token"]
        self.deliveries.post(channel["address"], headers)

    def _watch(self, request: Request, calendar: str) -> Response:
        access = self._access(request, calendar, "calendar.events.watch")
        if isinstance(access, Response):
            return access
        body = request.json()
        if not isinstance(body, dict):
            return google_error(400, "badRequest", "Bad Request")
        wanted, kind, address = body.get("id"), body.get("type"), body.get("address")
        token, ttl = body.get("token"), (body.get("params") or {}).get("ttl")
        if not isinstance(wanted, str) or not CHANNEL_ID.fullmatch(wanted):
            return google_error(400, "invalid", "Invalid channel id.")
        if kind not in ("web_hook", "webhook"):
            return google_error(400, "invalid", "Invalid channel type.")
        if not isinstance(address, str) or not address.startswith("https://"):
            return google_error(400, "push.webhookUrlNotHttps",
                                "WebHook callback must be HTTPS: " + str(address)[:100])
        if token is not None and (not isinstance(token, str) or len(token) > 256):
            return google_error(400, "invalid", "Invalid channel token.")
        seconds = self.channel_seconds
        if ttl is not None:
            seconds = min(seconds, int(ttl)) if str(ttl).isdigit() else -1
            if seconds < 1:
                return google_error(400, "invalid", "Invalid ttl.")
        with self.lock:
            if wanted in self.channels:
                return google_error(400, "channelIdNotUnique", "Channel id not unique")
            channel: dict[str, Any] = {"id": wanted, "calendar": access[0], "address": address,
                       "token": token, "resourceId": secrets.token_urlsafe(20),
                       "uri": f"{self.base_url}{self._prefix}/calendars/{access[0]}/events"
                              "?alt=json",
                       "expires": time.time() + seconds, "number": 1}
            self.channels[wanted] = channel
        self._send(channel, "sync")  # may arrive before the answer, as Google warns
        answer = {"kind": "api#channel", "id": wanted, "resourceId": channel["resourceId"],
                  "resourceUri": channel["uri"], "expiration": str(int(channel["expires"]
                                                                       * 1000))}
        return Response(200, {**answer, "token": token} if token else answer)

    def _stop(self, request: Request) -> Response:
        caller = self._caller(request, "calendar.channels.stop")
        if isinstance(caller, Response):
            return caller
        body = request.json()
        wanted = body.get("id") if isinstance(body, dict) else None
        with self.lock:
            channel = self.channels.get(wanted) if isinstance(wanted, str) else None
            if channel is None or channel["resourceId"] != body.get("resourceId"):
                return google_error(404, "notFound", f"Channel '{str(wanted)[:64]}' not "
                                    "found")
            del self.channels[channel["id"]]
        return Response(204)
