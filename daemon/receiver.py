"""The receiver of calendar change notifications ([push]): a small ASGI app served by
uvicorn in a thread of its own, behind the campus's HTTPS reverse proxy.

It answers at once and does nothing else in the request: a notification is authenticated
against the subscription it names (Google's channel token, Graph's clientState, compared
in constant time), and the calendar it is about is handed to `queue`, which records it in
the state for the leader to read. Anything unauthenticated, malformed, unknown or too
large is refused with a 4xx, logged once a minute per reason, and changes nothing.

Paths, under public_url's path (the proxy passes it on unchanged):
  /google           Google's channel messages: headers only, no body
  /graph            Graph's change notifications, and its validation handshake
  /graph/lifecycle  Graph's lifecycle notifications (subscriptionRemoved, missed,
                    reauthorizationRequired), validated the same way
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn

from .store import Subscription
from .values import SYSTEMD_SOCKET, split_listen

log = logging.getLogger("daemon.service")
logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start-up words: ours say it

MAX_BODY = 1024 * 1024  # a Graph batch (up to 1,000 items); Google's have no body
MAX_TOKEN = 1024  # Graph's validationToken, echoed
BODY_SECONDS = 5.0  # a body not received whole by then is refused (a slow sender)
SAY_EVERY = 60.0  # a refusal's reason is logged at most this often, with a count
LIFECYCLE = ("subscriptionRemoved", "missed", "reauthorizationRequired")
GOOGLE_STATES = ("sync", "exists", "not_exists")
# the Graph lifecycle events and Google resource states worth a calendar read
Lookup = Callable[[str], Subscription | None]  # a channel or subscription id -> its row
Queue = Callable[[str, str], None]  # (instructor, why): read that calendar
Confirm = Callable[[str, datetime], None]  # (channel, when): the vendor reached us
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Notifications:
    """The ASGI app."""

    def __init__(self, public_url: str, lookup: Lookup, queue: Queue,
                 confirm: Confirm | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        base = urlsplit(public_url).path.rstrip("/")
        self._routes = {f"{base}/google": self._google, f"{base}/graph": self._graph,
                        f"{base}/graph/lifecycle": self._lifecycle}
        self._lookup, self._queue, self._clock = lookup, queue, clock
        self._confirm = confirm
        self._said: dict[str, tuple[float, int]] = {}  # reason -> (last said, refused since)
        self.received = 0  # notifications taken (each a calendar queued)
        self.refused = 0

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; a WebSocket is not for us
            return
        try:
            handler = self._routes.get(scope["path"])
            if handler is None:
                raise Refused(404, "no such path")
            if scope["method"] != "POST":
                raise Refused(405, "not a POST")
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope["headers"]}
            body = await _body(receive, headers)
            status, text = await handler(query, headers, body)
        except Refused as refused:
            self._refuse(refused, scope)
            status, text = refused.status, f"refused: {refused}"
        except Exception as err:  # the state out of reach, say: the vendor retries later
            self._refuse(Refused(503, f"cannot record it now: {type(err).__name__}"), scope)
            status, text = 503, "try again later"
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body", "body": text.encode()})

    def _refuse(self, refused: Refused, scope: Mapping[str, Any]) -> None:
        self.refused += 1
        reason = str(refused)
        now = self._clock()
        said, count = self._said.get(reason, (float("-inf"), 0))
        if now - said < SAY_EVERY:
            self._said[reason] = (said, count + 1)
            return
        self._said[reason] = (now, 0)
        client = scope.get("client") or ("?", 0)
        log.warning("action=push-refused status=%d problem=%r path=%r from=%s%s",
                    refused.status, reason, str(scope.get("path", ""))[:100], client[0],
                    f" refused-since-last-said={count}" if count else "")

    async def _known(self, channel: str, provider: str, secret: str) -> Subscription:
        """The subscription a notification names, if its secret is the one kept."""
        if not channel or len(channel) > 200:
            raise Refused(400, "no channel or subscription id")
        found = await asyncio.to_thread(self._lookup, channel)
        if found is None or found.provider != provider:
            raise Refused(404, f"unknown {provider} channel")
        if not hmac.compare_digest(secret.encode(), found.secret.encode()):
            raise Refused(403, f"wrong {provider} secret")
        return found

    async def _take(self, instructor: str, why: str) -> None:
        self.received += 1
        await asyncio.to_thread(self._queue, instructor, why)

    async def _google(self, query: Mapping[str, list[str]], headers: Mapping[str, str],
                      body: bytes) -> tuple[int, str]:
        """A channel message (https://developers.google.com/workspace/calendar/api/guides/
        push): X-Goog-Channel-ID, -Token, X-Goog-Resource-ID, -State; no body. "sync"
        opens a channel (nothing changed); "exists" and "not_exists" are changes."""
        if body:
            raise Refused(400, "a Google message with a body")
        state = headers.get("x-goog-resource-state", "")
        if state not in GOOGLE_STATES:
            raise Refused(400, "no known X-Goog-Resource-State")
        channel = headers.get("x-goog-channel-id", "")
        found = await self._known(channel, "google", headers.get("x-goog-channel-token", ""))
        # "sync" may come before events.watch has answered, while the channel's row has
        # no resourceId yet (the push guide: "even before you receive the watch response")
        if headers.get("x-goog-resource-id", "") != found.resource and not (
                state == "sync" and not found.resource):
            raise Refused(403, "a Google message for another resource")
        if state == "sync":  # the channel works: Google reaches us through it
            if self._confirm is not None:
                await asyncio.to_thread(self._confirm, channel, datetime.now(UTC))
        else:
            await self._take(found.instructor, f"google:{state}")
        return 200, "ok"

    async def _graph(self, query: Mapping[str, list[str]], headers: Mapping[str, str],
                     body: bytes) -> tuple[int, str]:
        """Graph's change notifications, or its validation of this URL: the token echoed
        as text/plain, URL-decoded, within 10 s (https://learn.microsoft.com/graph/
        change-notifications-delivery-webhooks)."""
        if "validationToken" in query:
            return _validation(query)
        for item in await self._items(body):
            await self._take(item.instructor, "graph:changed")
        return 202, "accepted"

    async def _lifecycle(self, query: Mapping[str, list[str]], headers: Mapping[str, str],
                         body: bytes) -> tuple[int, str]:
        """subscriptionRemoved (made again), missed (a read catches up),
        reauthorizationRequired (renewed) (https://learn.microsoft.com/graph/
        change-notifications-lifecycle-events): each a calendar read by the leader."""
        if "validationToken" in query:
            return _validation(query)
        items = await self._items(body, lifecycle=True)
        for item, event in items:
            await self._take(item.instructor, f"graph:{event}")
        return 202, "accepted"

    async def _items(self, body: bytes, lifecycle: bool = False) -> list[Any]:
        """A batch's authenticated items (Refused when none is: a forged batch)."""
        try:
            batch = json.loads(body)
        except (ValueError, RecursionError):
            raise Refused(400, "a Graph notification that is not JSON") from None
        value = batch.get("value") if isinstance(batch, dict) else None
        if not isinstance(value, list) or not value or len(value) > 1000:
            raise Refused(400, "a Graph notification without a value list")
        taken: list[Any] = []
        problem: Refused | None = None
        for item in value:
            try:
                if not isinstance(item, dict):
                    raise Refused(400, "a Graph notification item that is not an object")
                subscription, secret = item.get("subscriptionId"), item.get("clientState")
                event = item.get("lifecycleEvent")
                if not isinstance(subscription, str) or not isinstance(secret, str):
                    raise Refused(400, "a Graph notification without subscriptionId or "
                                  "clientState")
                if lifecycle and event not in LIFECYCLE:
                    raise Refused(400, "a Graph lifecycle notification of no known kind")
                found = await self._known(subscription, "microsoft", secret)
                taken.append((found, event) if lifecycle else found)
            except Refused as refused:
                problem = refused
        if problem is not None:
            if not taken:
                raise problem
            self._refuse(problem, {"path": "graph item"})
        return taken


def _validation(query: Mapping[str, list[str]]) -> tuple[int, str]:
    token = query["validationToken"][0]
    if not token or len(token) > MAX_TOKEN or not token.isprintable():
        raise Refused(400, "a validationToken that is empty, too long or not text")
    return 200, token


async def _body(receive: Receive, headers: Mapping[str, str]) -> bytes:
    """The request body, MAX_BODY at most, whole within BODY_SECONDS."""
    declared = headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise Refused(413, "a body over the limit")

    async def whole() -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "the sender left")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise Refused(413, "a body over the limit")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    try:
        return await asyncio.wait_for(whole(), BODY_SECONDS)
    except TimeoutError:
        raise Refused(408, "a body too slow to arrive") from None


def systemd_socket() -> int:
    """The listening socket systemd passed (sd_listen_fds: LISTEN_PID is this process,
    LISTEN_FDS at least 1: the first is descriptor 3)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or \
            not os.environ.get("LISTEN_FDS", "0").isdigit() or \
            int(os.environ.get("LISTEN_FDS", "0")) < 1:
        raise OSError('[push] listen = "systemd", but systemd passed no socket: start the '
                      "service through officehours.socket, or give listen = host:port")
    return 3


class Receiver:
    """The app, served by uvicorn (h11) in a thread: bounded concurrency, headers and
    bodies, keep-alive; no access log, no server header."""

    def __init__(self, app: Notifications, listen: str) -> None:
        self.app = app
        where: dict[str, Any] = ({"fd": systemd_socket()} if listen == SYSTEMD_SOCKET
                                 else dict(zip(("host", "port"), split_listen(listen),
                                               strict=True)))
        config = uvicorn.Config(
            app, **where, http="h11", loop="asyncio", lifespan="off", interface="asgi3",
            log_config=None, access_log=False, server_header=False, date_header=False,
            proxy_headers=False, limit_concurrency=200, backlog=256, timeout_keep_alive=5,
            h11_max_incomplete_event_size=16 * 1024, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="push-receiver",
                                        daemon=True)

    def start(self, within: float = 10.0) -> None:
        """Listening once this returns; OSError when it cannot (a port in use)."""
        self._thread.start()
        deadline = time.monotonic() + within
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the push receiver could not listen (the address in use, or "
                              "not this host's?)")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose for port 0)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise OSError("not listening")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
