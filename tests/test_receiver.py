"""The receiver's reading of what arrives (receiver.Notifications, the ASGI app itself):
malformed, huge, repeated and foreign requests never raise, never queue a calendar they
do not authenticate, and are answered with a 4xx; genuine ones queue their calendar."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.receiver import MAX_BODY, Notifications
from daemon.store import Subscription

LATER = datetime(2099, 1, 1, tzinfo=UTC)
KNOWN = {"ch-1": Subscription("ada@example.edu", "google", "ch-1", "res-1", "tok", LATER),
         "sub-1": Subscription("bob@example.edu", "microsoft", "sub-1", "", "cs", LATER)}


def call(path: str, headers: dict[str, str], body: bytes, query: str = "",
         method: str = "POST") -> tuple[int, bytes, list[tuple[str, str]]]:
    queued: list[tuple[str, str]] = []
    app = Notifications("https://campus.example/push", KNOWN.get,
                        lambda key, why: queued.append((key, why)))
    sent: list[dict[str, Any]] = []
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)] or [b""]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path,
             "query_string": query.encode("latin-1", "replace"),
             "headers": [(k.lower().encode("latin-1", "replace"), v.encode("latin-1", "replace"))
                         for k, v in headers.items()], "client": ("203.0.113.9", 4242)}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"], queued


GOOGLE = {"X-Goog-Channel-ID": "ch-1", "X-Goog-Channel-Token": "tok",
          "X-Goog-Resource-ID": "res-1", "X-Goog-Resource-State": "exists"}
GRAPH_ITEM = {"subscriptionId": "sub-1", "clientState": "cs", "changeType": "updated"}


def test_genuine_notifications_queue_their_calendar() -> None:
    assert call("/push/google", GOOGLE, b"")[::2] == (200, [("ada@example.edu",
                                                             "google:exists")])
    assert call("/push/google", {**GOOGLE, "X-Goog-Resource-State": "sync"}, b"")[::2] == \
        (200, [])  # a channel opening: nothing changed
    body = json.dumps({"value": [GRAPH_ITEM, GRAPH_ITEM]}).encode()
    status, _, queued = call("/push/graph", {"content-length": str(len(body))}, body)
    assert status == 202 and queued == [("bob@example.edu", "graph:changed")] * 2


text = st.text(max_size=300)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | text,
                           lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(text, inner, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(["/push/google", "/push/graph", "/push/graph/lifecycle",
                             "/push", "/other", "/push/google/"]),
       method=st.sampled_from(["POST", "GET", "PUT"]),
       headers=st.dictionaries(st.sampled_from(list(GOOGLE) + ["content-length", "X-Other"]),
                               text, max_size=6),
       body=st.one_of(st.binary(max_size=2000), json_values.map(
           lambda v: json.dumps(v).encode()), st.builds(
           lambda items: json.dumps({"value": items}).encode(),
           st.lists(st.dictionaries(st.sampled_from(
               ["subscriptionId", "clientState", "lifecycleEvent", "changeType"]),
               json_values, max_size=4), max_size=5))),
       query=st.one_of(st.just(""), text.map(lambda t: "validationToken=" + t)))
def test_anything_else_is_refused_and_queues_nothing(path: str, method: str,
                                                     headers: dict[str, str], body: bytes,
                                                     query: str) -> None:
    headers = {**headers, "content-length": headers.get("content-length", str(len(body)))}
    status, answer, queued = call(path, headers, body, query, method)
    genuine = [q for q in queued if q[0] in ("ada@example.edu", "bob@example.edu")]
    assert queued == genuine  # only ever a known calendar
    if queued:  # only with the right secret for the right channel
        assert path in ("/push/google", "/push/graph", "/push/graph/lifecycle")
        assert (headers.get("X-Goog-Channel-Token") == "tok" or b'"cs"' in body)
    if status < 300 and not queued:  # a validation echo, or a Google "sync"
        assert query.startswith("validationToken=") or \
            headers.get("X-Goog-Resource-State") == "sync"
    assert 200 <= status < 500


def test_huge_and_repeated() -> None:
    huge = b"[" * (MAX_BODY + 1)
    assert call("/push/graph", {"content-length": str(len(huge))}, huge)[0] == 413
    lying = b"x" * (MAX_BODY + 10)  # a length that lies: counted as it arrives
    assert call("/push/graph", {"content-length": "10"}, lying)[0] == 413
    deep = b"[" * 100_000 + b"]" * 100_000
    assert call("/push/graph", {"content-length": str(len(deep))}, deep)[0] == 400
    many = json.dumps({"value": [GRAPH_ITEM] * 1001}).encode()
    assert call("/push/graph", {"content-length": str(len(many))}, many)[0] == 400
    assert call("/push/google", {**GOOGLE, "X-Goog-Channel-ID": "x" * 5000}, b"")[0] == 400
