"""A whole sandbox domain: CA, Google and Zoom emulators, credentials and a config file.

Used by `officehours demo` and by the end-to-end tests, so both run the same pipeline.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .google import GoogleCalendarEmulator
from .graph import GraphEmulator
from .push import Deliveries, Front
from .server import CertificateAuthority, Served
from .zoom import ZoomEmulator, ZoomUser
from .zoom_events import ZoomEvents

ZOOM_ACCOUNT, ZOOM_CLIENT = "sandbox-account", "sandbox-client"
# the events the README has admins subscribe to (Marketplace: Event Subscriptions, WebSocket)
ZOOM_EVENT_TYPES = ("meeting.updated", "user.settings_updated", "user.updated",
                    "meeting.started")
TENANT, GRAPH_CLIENT = "00000000-0000-4000-8000-000000000001", "sandbox-graph-app"


def _secret_file(path: Path, content: str) -> Path:
    path.write_text(content)
    os.chmod(path, 0o600)
    return path


class Sandbox:
    def __init__(self, directory: Path, page_size: int = 3) -> None:
        self.dir = directory
        self.ca = CertificateAuthority(directory)
        self.zoom_secret = "zoom-secret-" + os.urandom(6).hex()
        self.google = GoogleCalendarEmulator(page_size=page_size)
        self.zoom = ZoomEmulator(ZOOM_ACCOUNT, ZOOM_CLIENT, self.zoom_secret)
        self.graph_secret = "graph-secret-" + os.urandom(6).hex()
        self.graph = GraphEmulator(TENANT, GRAPH_CLIENT, self.graph_secret, page_size=page_size)
        self.google_server = Served(self.google, self.ca)
        self.zoom_server = Served(self.zoom, self.ca)
        self.graph_server = Served(self.graph, self.ca)
        self.graph.base_url = self.graph_server.url
        self.credentials = directory / "credentials"
        self.credentials.mkdir(mode=0o700, exist_ok=True)
        _secret_file(self.credentials / "zoom-secret", self.zoom_secret + "\n")
        _secret_file(self.credentials / "ms-secret", self.graph_secret + "\n")
        key = self.google.add_service_account("officehours@sandbox.iam.gserviceaccount.com")
        key["token_uri"] = key["token_uri"].format(url=self.google_server.url)
        _secret_file(self.credentials / "google.json", json.dumps(key))
        self.instructors: list[dict[str, str]] = []
        self._events: ZoomEvents | None = None
        self.subscription = ""  # the Zoom event subscription, once zoom_events() set it up
        self.front: Front | None = None  # the campus's HTTPS proxy to [push], once push()
        self._front_server: Served | None = None
        self.deliveries: Deliveries | None = None

    def push(self, listen: str, safety_interval_seconds: int = 3600) -> str:
        """Google and Graph call back (Deliveries) through the campus's reverse proxy
        (Front) to the receiver at `listen`; the [push] section joins the config. The
        public URL."""
        if self.front is None:
            self.front = Front(listen)
            self._front_server = Served(self.front, self.ca)
            self.deliveries = Deliveries(self.ca.bundle)
            self.google.deliveries = self.graph.deliveries = self.deliveries
            self.google.base_url = self.google_server.url
        self.front.listen = listen
        self._push = {"listen": listen, "safety_interval_seconds": safety_interval_seconds}
        return self.public_url

    @property
    def public_url(self) -> str:
        assert self._front_server is not None
        return f"{self._front_server.url}/push"

    def zoom_events(self) -> ZoomEvents:
        """Zoom's WebSocket event delivery, started on first use, with a subscription to
        the events the README asks admins to choose."""
        if self._events is None:
            self._events = ZoomEvents(self.ca, ZOOM_ACCOUNT, self.zoom.token_valid)
            self.zoom.events = self._events
            self.subscription = self._events.add_subscription(*ZOOM_EVENT_TYPES)
        return self._events

    def add_instructor(self, name: str, email: str, pmi: int, **zoom: Any) -> ZoomUser:
        self.google.add_calendar(email)
        self.instructors.append({"name": name, "email": email, "provider": "google"})
        return self.zoom.add_user(email, pmi, **zoom)

    def add_microsoft_instructor(self, name: str, email: str, pmi: int, **zoom: Any) -> ZoomUser:
        self.graph.add_mailbox(email)
        self.instructors.append({"name": name, "email": email, "provider": "microsoft"})
        return self.zoom.add_user(email, pmi, **zoom)

    def write_config(self, relative_secrets: bool = False,
                     state: dict[str, Any] | None = None, **service: Any) -> Path:
        """The config file; `relative_secrets` names secrets as systemd credentials do;
        `state`: a [state] section (two nodes on PostgreSQL)."""
        def secret(name: str) -> Path:
            return Path(name) if relative_secrets else self.credentials / name

        settings = {"state_dir": str(self.dir / "state"), "sync_interval_seconds": 300,
                    "enforce_lead_minutes": 15, "ca_bundle": str(self.ca.bundle), **service}
        lines = ["[service]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items()), "",
                 "[zoom]", f'account_id = "{ZOOM_ACCOUNT}"', f'client_id = "{ZOOM_CLIENT}"',
                 f'client_secret_file = "{secret("zoom-secret")}"',
                 f'api_base_url = "{self.zoom_server.url}/v2"',
                 f'oauth_base_url = "{self.zoom_server.url}"',
                 *(['events = "websocket"', f'events_subscription_id = "{self.subscription}"',
                    f'events_url = "{self._events.url}"'] if self._events else []), "",
                 "[google]", f'credentials_file = "{secret("google.json")}"',
                 f'api_base_url = "{self.google_server.url}/calendar/v3/"', ""]
        if any(i["provider"] == "microsoft" for i in self.instructors):
            lines += ["[microsoft]", f'tenant_id = "{TENANT}"', f'client_id = "{GRAPH_CLIENT}"',
                      f'client_secret_file = "{secret("ms-secret")}"',
                      f'authority_host = "{self.graph_server.url}"',
                      f'graph_base_url = "{self.graph_server.url}/v1.0"', ""]
        if self.front is not None:
            lines += ["[push]", f'public_url = "{self.public_url}"',
                      *(f"{k} = {json.dumps(v)}" for k, v in self._push.items()), ""]
        if state:
            lines += ["[state]", *(f"{k} = {json.dumps(v)}" for k, v in state.items()), ""]
        for instructor in self.instructors:
            lines += ["[[instructors]]", *(f"{k} = {json.dumps(v)}" for k, v in
                                           instructor.items()), ""]
        path = self.dir / "config.toml"
        path.write_text("\n".join(lines))
        return path

    def stop(self) -> None:
        if self._events is not None:
            self._events.stop()
        self.google_server.stop()
        self.zoom_server.stop()
        self.graph_server.stop()
        if self._front_server is not None:
            self._front_server.stop()


@contextlib.contextmanager
def checked(directory: Path) -> Iterator[Sandbox]:
    """A sandbox for one test: stopped at the end, which then fails on any request or
    answer that broke the vendor's published schema."""
    box = Sandbox(directory)
    try:
        yield box
    finally:
        box.stop()
    assert box.google.schema_errors == [], box.google.schema_errors
    assert box.zoom.schema_errors == [], box.zoom.schema_errors
