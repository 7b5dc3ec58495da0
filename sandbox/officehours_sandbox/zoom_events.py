"""Zoom's event delivery over WebSocket, as a Server-to-Server OAuth app meets it: the
account's events (what the portal and the API change) pushed to the one connection open
for an event subscription.

What it encodes, and where from (the research notes in specs/zoom-websocket.md quote each):
- Connect to `<url>?subscriptionId=<id>&access_token=<token>`, the app's OAuth token in the
  query string; a header is not read ("token is empty": devforum.zoom.us/t/69974; Zoom's
  websocket-js-sample and rtms-samples put it in the URL).
- Every frame is JSON text `{"module", "success", "content", "header"}`. A connection is
  answered `build_connection` (success false and closed, reason `invalid_token`, for a bad
  token: devforum 69974; the websocket-js-sample reads that close reason); an event is
  `module: "message"` with `content` the webhook body as a JSON *string*
  (`{"event", "event_ts", "payload"}`: rtms-samples' WebsocketManager parses it twice).
- The client sends `{"module": "heartbeat"}` every 30 s (Zoom's samples) and is answered
  `{"module": "heartbeat", "success": true, "content": "live"}` (devforum.zoom.us/t/94953).
  How long Zoom waits for a missing heartbeat is not documented: 90 s here.
- Events that happen while no connection is open are never delivered
  (developers.zoom.us/docs/api/websockets: "Any events that occur when the connection is
  closed will not be delivered"). One connection per subscription: a new one closes the
  old (only zoom/skills says so; a client must be right either way, and this is the
  stricter world).
- Payloads follow zoom/rivet-javascript (release-0.4.0 types): `meeting.updated` (object
  and old_object: id, password, settings.waiting_room), `user.settings_updated` (object.id,
  settings.schedule_meeting.{require_password_for_pmi_meetings, pmi_password},
  settings.in_meeting.waiting_room), `user.updated` (object.pmi), `meeting.started`
  (object.id, uuid, host_id, type 4: a PMI meeting). Only what changed, plus the id, as
  Zoom's sample payloads show. Frames carry no signature (none is documented).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from .server import CertificateAuthority

HEARTBEAT_TIMEOUT = 90.0  # seconds without a heartbeat before the server closes (not documented)
# Which events each user field's change gives (rivet-javascript's types, above)
USER_SETTINGS = {"waiting_room": ("in_meeting", "waiting_room"),
                 "require_password_for_pmi_meetings": ("schedule_meeting",
                                                       "require_password_for_pmi_meetings"),
                 "pmi_password": ("schedule_meeting", "pmi_password")}


def frame(module: str, content: str, success: bool = True) -> str:
    return json.dumps({"module": module, "success": success, "content": content, "header": {}},
                      separators=(",", ":"))


class ZoomEvents:
    """The WebSocket endpoint; `subscriptions` maps a subscription id to the event types it
    was set up with in the Marketplace."""

    def __init__(self, ca: CertificateAuthority, account_id: str,
                 token_valid: Callable[[str], bool]) -> None:
        self.account_id = account_id
        self._token_valid = token_valid
        self.subscriptions: dict[str, set[str]] = {}
        self.heartbeat_timeout = HEARTBEAT_TIMEOUT
        self.connected: dict[str, ServerConnection] = {}  # subscription -> its connection
        self.delivered: list[dict[str, Any]] = []  # every event sent, in order
        self.lost: list[dict[str, Any]] = []  # events nobody was connected for
        self.heartbeats = 0
        self.connections = 0  # accepted, in all
        self.garbage: str | None = None  # a frame to send before the next event (tests)
        self._lock = threading.Lock()
        self._server: Server = serve(self._handle, "127.0.0.1", 0, ssl=ca.server_context(),
                                     ping_interval=None)
        self.port = self._server.socket.getsockname()[1]
        self.url = f"wss://127.0.0.1:{self.port}/ws"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="zoom-events")
        self._thread.start()

    def add_subscription(self, *events: str) -> str:
        subscription = secrets.token_urlsafe(16)
        self.subscriptions[subscription] = set(events)
        return subscription

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def drop(self) -> None:
        """Every connection cut, as a network failure would (no close frame reaches the
        client before the socket goes)."""
        with self._lock:
            dropped, self.connected = list(self.connected.values()), {}
        for connection in dropped:
            with contextlib.suppress(OSError):
                connection.socket.close()

    # --- the connection ---

    def _handle(self, connection: ServerConnection) -> None:
        query = parse_qs(urlsplit(connection.request.path if connection.request else "").query)
        subscription = (query.get("subscriptionId") or [""])[0]
        token = (query.get("access_token") or [""])[0]
        if not token or not self._token_valid(token):
            connection.send(frame("build_connection", "Invalid Token" if token
                                  else "token is empty", success=False))
            connection.close(1008, "invalid_token")
            return
        if subscription not in self.subscriptions:
            connection.send(frame("build_connection", "subscription not found", success=False))
            connection.close(1008, "invalid_subscription")
            return
        with self._lock:
            previous = self.connected.get(subscription)
            self.connected[subscription] = connection
            self.connections += 1
        if previous is not None:
            previous.close(1000, "another connection opened for this subscription")
        connection.send(frame("build_connection", "ok"))
        try:
            self._listen(connection)
        finally:
            with self._lock:
                if self.connected.get(subscription) is connection:
                    del self.connected[subscription]

    def _listen(self, connection: ServerConnection) -> None:
        while True:
            try:
                message = connection.recv(timeout=self.heartbeat_timeout)
            except TimeoutError:
                connection.close(1000, "no heartbeat")
                return
            except ConnectionClosed:
                return
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(message).get("module") == "heartbeat":
                    self.heartbeats += 1
                    connection.send(frame("heartbeat", "live"))

    # --- events ---

    def emit(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None = None,
             operator: str = "portal@example.edu") -> None:
        """Deliver `event` to each subscription that has it and a connection open now."""
        now = int(time.time() * 1000)
        payload: dict[str, Any] = {"account_id": self.account_id, "object": obj,
                                   "time_stamp": now}
        if event != "meeting.started":
            payload.update(operator=operator, operator_id="operator-id")
        if old is not None:
            payload["old_object"] = old
        body = {"event": event, "event_ts": now, "payload": payload}
        with self._lock:
            targets = [c for s, c in self.connected.items() if event in self.subscriptions[s]]
            garbage, self.garbage = self.garbage, None
        if not targets:
            self.lost.append(body)
            return
        for connection in targets:
            with contextlib.suppress(ConnectionClosed, OSError):
                if garbage is not None:
                    connection.send(garbage)
                connection.send(frame("message", json.dumps(body, separators=(",", ":"))))
        self.delivered.append(body)

    def user_changed(self, user: Any, name: str, old: Any, new: Any) -> None:
        """What a change of a ZoomUser field gives (the portal's or the API's)."""
        if name in USER_SETTINGS:
            group, key = USER_SETTINGS[name]
            self.emit("user.settings_updated", {"id": user.id, "settings": {group: {key: new}}},
                      {"id": user.id, "settings": {group: {key: old}}})
        if name == "pmi_password":  # the PMI meeting's passcode too (its `password`)
            self.emit("meeting.updated", {"id": user.pmi, "host_id": user.id, "password": new},
                      {"id": user.pmi, "password": old})
        elif name == "pmi_waiting_room":
            self.emit("meeting.updated", {"id": user.pmi, "host_id": user.id,
                                          "settings": {"waiting_room": new}},
                      {"id": user.pmi, "settings": {"waiting_room": old}})
        elif name == "pmi":
            self.emit("user.updated", {"id": user.id, "pmi": new}, {"id": user.id, "pmi": old})

    def meeting_started(self, user: Any) -> None:
        self.emit("meeting.started", {
            "id": str(user.pmi), "uuid": secrets.token_urlsafe(16), "host_id": user.id,
            "topic": f"{user.first_name} {user.last_name}'s Personal Meeting Room", "type": 4,
            "start_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timezone": "UTC", "duration": 0})
