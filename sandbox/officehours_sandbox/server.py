"""A tiny HTTPS server on 127.0.0.1 that the emulators build on.

It routes requests to an emulator's handlers, counts them, and lets a test queue
faults (status, body, headers) for requests that match a method and path.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

from .faults import retry_after_header

if TYPE_CHECKING:
    from .faults import Chaos


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer: int = 0  # the client's TCP port: which process sent it (the failover tests)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serializable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    mangle: str | None = None  # reset, hang, truncate or garbage: how the answer breaks
    raw: bytes | None = None  # a body that is not JSON, as is (give its content-type)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    response: Response
    times: int
    kind: str | None = None


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` requests per `window` seconds for each key `key` gives (None: exempt)."""

    name: str
    limit: int
    window: float
    key: Callable[[Request], str | None]


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    status: int
    at: float = field(default_factory=time.monotonic, compare=False)  # when it was answered


Handler = Callable[..., Response]


class Emulator:
    """Base of the Google and Zoom emulators: routing, request log, faults."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.log: list[Logged] = []
        self.faults: list[Fault] = []
        self.queued: list[Fault] = []  # faults of a kind, for the next matching requests
        self.hooks: list[Callable[[Request], Response | None]] = []  # before routing
        self.after_hooks: list[Callable[[Request, Response], None]] = []  # before answering
        self.schema_errors: list[str] = []
        self.issued_tokens: list[str] = []  # every access token handed out, for secret checks
        self.validate = True  # check bodies against the vendor's schema (off for benchmarks)
        self.rate_limits: list[RateLimit] = []
        self.throttled: Counter[str] = Counter()  # 429s given, by limit
        self._hits: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.latency = 0.0  # seconds added to every request
        self.chaos: Chaos | None = None  # random faults, see faults.py
        self.hang_seconds = 2.0  # how long a "timeout" fault keeps the connection silent
        # the instructor editing an event between our read and our write (a "conflict")
        self.concurrent_edit: Callable[[Request], None] | None = None
        self.max_concurrent = 0  # per concurrency_key; 0 = unlimited
        self.in_flight: dict[str | None, int] = {}

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + "$"), handler))

    def fail(self, method: str, path_pattern: str, response: Response, times: int = 1) -> None:
        """Answer the next `times` matching requests with `response` instead."""
        with self.lock:
            self.faults.append(Fault(method, re.compile(path_pattern), response, times))

    def inject(self, kind: str, method: str, path_pattern: str, times: int = 1) -> None:
        """Give the next `times` matching requests the fault `kind` (see faults.py)."""
        with self.lock:
            self.queued.append(Fault(method, re.compile(path_pattern), Response(0), times, kind))

    def _take(self, faults: list[Fault], request: Request) -> Fault | None:
        """The first fault in `faults` matching `request`, used up once."""
        with self.lock:
            for fault in faults:
                if fault.method == request.method and fault.path.search(request.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        faults.remove(fault)
                    return fault
        return None

    def _queued_kind(self, request: Request) -> str | None:
        fault = self._take(self.queued, request)
        return fault.kind if fault else None

    def requests(self, method: str | None = None, path_contains: str = "") -> list[Logged]:
        with self.lock:
            return [r for r in self.log if (method is None or r.method == method)
                    and path_contains in r.path]

    def writes(self) -> list[Logged]:
        return [r for r in self.requests() if r.method in ("PATCH", "PUT", "POST", "DELETE")
                and "token" not in r.path]

    def dispatch(self, request: Request) -> Response:
        key = self.concurrency_key(request)
        with self.lock:
            busy = self.in_flight.get(key, 0)
            self.in_flight[key] = busy + 1
        try:
            limited = self._over_limit(request)
            if key is not None and self.max_concurrent and busy >= self.max_concurrent:
                self.throttled["concurrency"] += 1
                response = self.too_many(request)
            elif limited is not None:
                response = limited
            else:
                if self.latency:
                    time.sleep(self.latency)  # outside the lock: concurrent requests overlap
                kind = self._queued_kind(request) or (
                    self.chaos.pick(request) if self.chaos else None)
                response = self._inject(kind, request) if kind else self._answer(request)
        finally:
            with self.lock:
                self.in_flight[key] -= 1
        with self.lock:
            self.log.append(Logged(request.method, request.path, response.status))
        for hook in list(self.after_hooks):
            hook(request, response)
        return response

    def _over_limit(self, request: Request) -> Response | None:
        """A 429 when a rate limit is exhausted, with Retry-After until a slot frees up."""
        now = time.monotonic()
        with self.lock:
            for limit in self.rate_limits:
                key = limit.key(request)
                if key is None:
                    continue
                hits = self._hits[(limit.name, key)]
                while hits and hits[0] <= now - limit.window:
                    hits.popleft()
                if len(hits) >= limit.limit:
                    self.throttled[limit.name] += 1
                    wait = max(hits[0] + limit.window - now, 0.05)
                    return self.error_response(429, "rateLimitExceeded",
                                               {"Retry-After": f"{wait:.2f}"})
                hits.append(now)
        return None

    def _inject(self, kind: str, request: Request) -> Response:
        """Answer `request` with the fault `kind` (see faults.py)."""
        if kind[:3].isdigit():
            return self.error_response(int(kind[:3]), "backendError", retry_after_header(kind))
        if kind == "rate-403":
            return self.error_response(403, "rateLimitExceeded", {})
        if kind in ("reset", "timeout", "garbage"):
            mangle = {"reset": "reset", "timeout": "hang", "garbage": "garbage"}[kind]
            return Response(200, mangle=mangle)
        if kind == "latency":
            time.sleep(0.2)
        elif kind == "expire-token":
            self.expire_access_tokens()
        elif kind == "sync-expired":
            self.expire_sync_state()
        elif kind == "conflict" and self.concurrent_edit is not None:
            self.concurrent_edit(request)
        elif kind == "silent-refusal":
            return Response(204)  # "done", and nothing changed
        response = self._answer(request)
        if kind == "truncate":
            response.mangle = "truncate"
        elif kind == "lost-response":  # the write is done; its answer never arrives
            response.mangle = "reset"
        return response

    def error_response(self, status: int, reason: str, headers: dict[str, str]) -> Response:
        """An error in the vendor's own shape."""
        return Response(status, {"error": reason}, headers)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working."""

    def expire_sync_state(self) -> None:
        """Every sync token or delta link issued so far is rejected (410)."""

    def concurrency_key(self, request: Request) -> str | None:
        """Requests sharing a key count against `max_concurrent` (a mailbox, say)."""
        return None

    def too_many(self, request: Request) -> Response:
        return Response(429, {"error": "too many concurrent requests"}, {"Retry-After": "1"})

    def _answer(self, request: Request) -> Response:
        fault = self._take(self.faults, request)
        if fault is not None:
            return fault.response
        with self.lock:
            for hook in list(self.hooks):
                hooked = hook(request)
                if hooked is not None:
                    return hooked
            for method, pattern, handler in self.routes:
                match = pattern.match(request.path)
                if match and method == request.method:
                    return handler(request, *(unquote(group) for group in match.groups()))
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": f"no route for {request.method} {request.path}"})


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle and delayed ACKs
        # add ~40 ms to every answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            peer=int(self.client_address[1]),
        )
        try:
            response = self.server.emulator.dispatch(request)
        except Exception as err:  # an emulator bug must show up as a 500, not a hang
            response = Response(500, {"error": f"emulator error: {err!r}"})
        if response.mangle in ("reset", "hang"):
            if response.mangle == "hang":
                time.sleep(self.server.emulator.hang_seconds)
            self.close_connection = True
            with contextlib.suppress(OSError):  # RST instead of an orderly close
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            return
        payload = response.raw if response.raw is not None else \
            b"" if response.body is None else json.dumps(response.body).encode()
        if response.mangle == "garbage":
            payload = b'{"items": [{"id": "evt'
        self.send_response(response.status)
        headers = {"Content-Type": "application/json; charset=UTF-8", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if response.mangle == "truncate":
            payload = payload[: len(payload) // 2]
            self.close_connection = True
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: Emulator

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up (or is killed) mid-answer is not the emulator's problem


class CertificateAuthority:
    """One local CA for every emulator; `bundle` is the PEM file clients must trust."""

    def __init__(self, directory: Path | None = None) -> None:
        self._ca = trustme.CA()
        self._dir = directory or Path(tempfile.mkdtemp(prefix="officehours-ca-"))
        self.bundle = self._dir / "sandbox-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle))
        self._leaf = self._ca.issue_cert("127.0.0.1", "localhost")

    def write_leaf(self, certificate: Path, key: Path) -> None:
        """The emulators' certificate (127.0.0.1, localhost) and key, for another server."""
        self._leaf.cert_chain_pems[0].write_to_path(str(certificate))
        self._leaf.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context


class Served:
    """An emulator listening on an ephemeral port of 127.0.0.1 in a daemon thread."""

    def __init__(self, emulator: Emulator, ca: CertificateAuthority) -> None:
        self.emulator = emulator
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.emulator = emulator
        self._server.socket = ca.server_context().wrap_socket(
            self._server.socket, server_side=True
        )
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
