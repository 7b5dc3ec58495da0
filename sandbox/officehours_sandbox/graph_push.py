"""Microsoft Graph change notifications, for the Graph emulator: POST, PATCH and DELETE
/subscriptions on a mailbox's events, the validation of both URLs before a subscription
is made, a notification per change, lifecycle notifications, and expiry.

As Microsoft documents them (read 2026-12-07):
- https://learn.microsoft.com/graph/api/subscription-post-subscriptions: 201 and the
  subscription; changeType "created", "updated", "deleted", comma-separated;
  notificationUrl and lifecycleNotificationUrl HTTPS; clientState at most 128
  characters; the application permission Calendars.Read for an event.
- /graph/change-notifications-overview: an Outlook event subscription lives 10,080
  minutes at most; "any requests to create or renew a subscription beyond the maximum
  value will fail" (400 here, with the words Graph gave in microsoft-graph-docs#2988).
- /graph/change-notifications-delivery-webhooks: the validation POST
  {url}?validationToken=... answered within 10 s with 200, text/plain and the decoded
  token, else no subscription ("returns a 400 Bad Request"); lifecycleNotificationUrl
  validated the same way; notifications as {"value": [{subscriptionId,
  subscriptionExpirationDateTime, changeType, resource, resourceData, clientState,
  tenantId}]}; a subscription not renewed in time is deleted.
- /graph/change-notifications-lifecycle-events: {"value": [{subscriptionId,
  subscriptionExpirationDateTime, tenantId, clientState, lifecycleEvent}]} with
  subscriptionRemoved, missed or reauthorizationRequired, to lifecycleNotificationUrl only.
- /graph/api/subscription-update: 200 and the subscription; /subscription-delete: 204.
  A subscription Graph does not have: 404 ResourceNotFound (not documented: as public
  reports show it, msgraph-sdk-php#221).
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .entra import graph_error
from .push import Deliveries
from .server import Request, Response

MAX_LIFETIME = timedelta(minutes=10_080)
CHANGES = {"created", "updated", "deleted"}
RESOURCE = re.compile(r"/?users/([^/]+)/(?:calendars/([^/]+)/)?events", re.I)
VALIDATION_SECONDS = 10


def _time(value: Any) -> datetime | None:
    try:
        found = datetime.fromisoformat(str(value).replace("Z", "+00:00")[:26] + (
            "+00:00" if str(value).endswith("Z") else ""))
    except ValueError:
        return None
    return found if found.tzinfo else None


def _iso(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}0Z"


class GraphSubscriptions:
    """Mixed into GraphEmulator (its lock, routes, `_authorized`, `events`, tenant)."""

    deliveries: Deliveries | None = None  # set by the sandbox
    clock: Callable[[], datetime] = staticmethod(lambda: datetime.now(UTC))  # a test's own
    if TYPE_CHECKING:  # the emulator's own (GraphEmulator, EntraDirectory)
        import threading
        lock: threading.RLock
        tenant: str
        client_id: str
        events: dict[str, dict[str, dict[str, Any]]]

        def route(self, method: str, pattern: str, handler: Any) -> None: ...
        def _authorized(self, request: Request) -> Response | None: ...

    def _init_subscriptions(self) -> None:
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.route("POST", "/v1.0/subscriptions", self._subscribe)
        self.route("PATCH", "/v1.0/subscriptions/([^/]+)", self._renew)
        self.route("DELETE", "/v1.0/subscriptions/([^/]+)", self._unsubscribe)

    # --- what happens in the mailbox, and Graph's own lifecycle events ---

    def changed(self, mailbox: str, event_id: str, change: str, calendar: str) -> None:
        """A created, updated or deleted event: a notification to each live subscription
        on its mailbox (and calendar) that asked for that change."""
        for found in self._live():
            if found["mailbox"] == mailbox.lower() and change in found["changes"] and (
                    found["calendar"] in (None, calendar)):
                resource = f"Users/{found['user']}/Events/{event_id}"
                self._post(found, found["notificationUrl"], {
                    "subscriptionId": found["id"],
                    "subscriptionExpirationDateTime": _iso(found["expires"]),
                    "changeType": change, "resource": resource, "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": resource, "id": event_id},
                    "clientState": found["clientState"], "tenantId": self.tenant})

    def lifecycle(self, subscription: str, event: str) -> None:
        """Graph's lifecycle event for a subscription (subscriptionRemoved also removes
        it); nothing for one made without a lifecycleNotificationUrl."""
        with self.lock:
            found = self.subscriptions.get(subscription)
            if found is None:
                return
            if event == "subscriptionRemoved":
                del self.subscriptions[subscription]
        if found.get("lifecycleNotificationUrl"):
            self._post(found, found["lifecycleNotificationUrl"], {
                "subscriptionId": found["id"], "lifecycleEvent": event,
                "subscriptionExpirationDateTime": _iso(found["expires"]),
                "clientState": found["clientState"], "tenantId": self.tenant})

    def expire(self, subscription: str) -> None:
        """A subscription's end reached now (as if not renewed in time): deleted."""
        with self.lock:
            self.subscriptions[subscription]["expires"] = self.clock()

    def _live(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self.lock:
            for key in [k for k, s in self.subscriptions.items() if s["expires"] <= now]:
                del self.subscriptions[key]  # "deleted" once not renewed in time
            return list(self.subscriptions.values())

    def _post(self, found: dict[str, Any], url: str, item: dict[str, Any]) -> None:
        if self.deliveries is not None:
            self.deliveries.post(url, {"Content-Type": "application/json"},
                                 json.dumps({"value": [item]}).encode())

    # --- HTTP ---

    def _subscribe(self, request: Request) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        body = request.json()
        if not isinstance(body, dict):
            return graph_error(400, "InvalidRequest", "The request body is not an object.")
        problem = self._problem(body, creating=True)
        if problem:
            return graph_error(400, "InvalidRequest", problem)
        match = RESOURCE.fullmatch(body["resource"])
        mailbox = (match.group(1) if match else "").lower()
        if match is None or mailbox not in self.events:
            return graph_error(404, "ResourceNotFound", "Resource not found for the segment.")
        for url in (body["notificationUrl"], body.get("lifecycleNotificationUrl")):
            if url and not self._validated(url):
                return graph_error(400, "ValidationError", "Subscription validation request "
                                   "failed. Notification endpoint must respond with 200 OK "
                                   "to validation request.")
        made = {"id": str(uuid.uuid4()), "resource": body["resource"],
                "changeType": body["changeType"], "clientState": body.get("clientState"),
                "notificationUrl": body["notificationUrl"],
                "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
                "applicationId": self.client_id,
                "latestSupportedTlsVersion": body.get("latestSupportedTlsVersion", "v1_2"),
                "mailbox": mailbox, "user": match.group(1), "calendar": match.group(2),
                "changes": set(body["changeType"].split(",")),
                "expires": _time(body["expirationDateTime"])}
        with self.lock:
            self.subscriptions[made["id"]] = made
        return Response(201, self._subscription_wire(made))

    def _renew(self, request: Request, subscription: str) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        body = request.json()
        problem = self._problem(body if isinstance(body, dict) else {}, creating=False)
        if problem:
            return graph_error(400, "InvalidRequest", problem)
        found = next((s for s in self._live() if s["id"] == subscription), None)
        if found is None:
            return graph_error(404, "ResourceNotFound", f"The object '{subscription}' doesn't "
                               "exist.")
        with self.lock:
            found["expires"] = _time(body["expirationDateTime"])
        return Response(200, self._subscription_wire(found))

    def _unsubscribe(self, request: Request, subscription: str) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        with self.lock:
            if self.subscriptions.pop(subscription, None) is None:
                return graph_error(404, "ResourceNotFound", f"The object '{subscription}' "
                                   "doesn't exist.")
        return Response(204)

    def _problem(self, body: dict[str, Any], creating: bool) -> str | None:
        until = _time(body.get("expirationDateTime"))
        now = self.clock()
        if until is None or until <= now:
            return "expirationDateTime must be a time in the future."
        if until - now > MAX_LIFETIME:
            return "Subscription expiration can only be 10080 minutes in the future."
        if not creating:
            return None
        changes = str(body.get("changeType", "")).split(",")
        if not changes or not set(changes) <= CHANGES:
            return "changeType must be created, updated or deleted."
        for name in ("notificationUrl", "lifecycleNotificationUrl"):
            url = body.get(name)
            if (url is not None or name == "notificationUrl") and (
                    not isinstance(url, str) or not url.startswith("https://")):
                return f"{name} must make use of the HTTPS protocol."
        state = body.get("clientState")
        if state is not None and (not isinstance(state, str) or len(state) > 128):
            return "clientState must be at most 128 characters."
        if not isinstance(body.get("resource"), str):
            return "resource is required."
        return None

    def _validated(self, url: str) -> bool:
        """Graph's validation request, answered as documented, within 10 s."""
        if self.deliveries is None:
            return False
        token = f"Validation: Testing client application reachability {secrets.token_hex(8)}"
        try:
            answer = self.deliveries.call(
                f"{url}?validationToken={quote(token)}",
                {"Content-Type": "text/plain; charset=utf-8"})
        except Exception:  # no connection, a bad certificate, too slow: not validated
            return False
        return (answer.status_code == 200 and answer.text == token and answer.headers.get(
            "content-type", "").startswith("text/plain")
            and answer.elapsed.total_seconds() < VALIDATION_SECONDS)

    def _subscription_wire(self, found: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in found.items() if k not in (
            "mailbox", "user", "calendar", "changes", "expires")}
        return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions"
                "/$entity", **shown, "expirationDateTime": _iso(found["expires"])}
