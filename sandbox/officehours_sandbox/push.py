"""What stands between the vendors and the receiver of [push] on a campus, for the tests
and the demo: `Front`, the HTTPS reverse proxy at public_url (the README's nginx snippet:
TLS ends there, the path goes on unchanged to `listen`), and `Deliveries`, how a vendor
calls a notification URL: from its own queue, after the change, checking the certificate
(Google: "Invalid certificates include: Self-signed certificates",
https://developers.google.com/workspace/calendar/api/guides/push; Graph: "This URL must
make use of the HTTPS protocol", https://learn.microsoft.com/graph/api/resources/
subscription), and now and then not at all ("Notifications are not 100% reliable",
the same Google page).
"""

from __future__ import annotations

import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from .server import Emulator, Request, Response


class Front(Emulator):
    """The campus's HTTPS reverse proxy: every POST to it goes on to the receiver at
    `listen` (http://host:port), path and query unchanged; 502 when nothing listens."""

    def __init__(self, listen: str = "") -> None:
        super().__init__()
        self.listen = listen
        self.route("POST", "/.*", self._forward)

    def _forward(self, request: Request) -> Response:
        query = httpx.QueryParams(request.query)
        try:
            answer = httpx.post(f"http://{self.listen}{request.path}", params=query,
                                content=request.body, timeout=10, headers={
                                    k: v for k, v in request.headers.items()
                                    if k.startswith("x-goog-") or k == "content-type"})
        except httpx.HTTPError:
            return Response(502, raw=b"bad gateway", headers={"Content-Type": "text/plain"})
        return Response(answer.status_code, raw=answer.content, headers={
            "Content-Type": answer.headers.get("content-type", "text/plain")})


@dataclass(frozen=True)
class Delivered:
    url: str
    headers: dict[str, str]
    body: bytes
    status: int  # 0: not delivered (no connection, a bad certificate, dropped)


class Deliveries:
    """A vendor's outgoing notifications: queued, POSTed in order by one thread, each
    kept with the answer it got (`sent`). `drop_next(n)`: the next n are lost."""

    def __init__(self, ca_bundle: Path) -> None:
        self._client = httpx.Client(verify=ssl.create_default_context(cafile=str(ca_bundle)),
                                    timeout=10, trust_env=False)
        self._queue: queue.Queue[tuple[str, dict[str, str], bytes,
                                       Callable[[int], None] | None]] = queue.Queue()
        self.sent: list[Delivered] = []
        self.lock = threading.Lock()
        self._drop = 0
        threading.Thread(target=self._run, name="deliveries", daemon=True).start()

    def drop_next(self, count: int = 1) -> None:
        with self.lock:
            self._drop += count

    def post(self, url: str, headers: dict[str, str], body: bytes = b"",
             answered: Callable[[int], None] | None = None) -> None:
        self._queue.put((url, headers, body, answered))

    def call(self, url: str, headers: dict[str, str], body: bytes = b"") -> httpx.Response:
        """At once, in the caller's thread (Graph's validation, before it answers)."""
        return self._client.post(url, headers=headers, content=body)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def _run(self) -> None:
        while True:
            url, headers, body, answered = self._queue.get()
            try:
                with self.lock:
                    dropped, self._drop = self._drop > 0, max(self._drop - 1, 0)
                status = 0
                if not dropped:
                    try:
                        status = self._client.post(url, headers=headers, content=body
                                                   ).status_code
                    except httpx.HTTPError:
                        status = 0
                with self.lock:
                    self.sent.append(Delivered(url, headers, body, status))
                if answered is not None:
                    answered(status)
            finally:
                self._queue.task_done()
