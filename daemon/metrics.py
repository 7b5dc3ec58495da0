"""[metrics] textfile: the figures a campus's Prometheus scrapes, in the exposition format
node_exporter's textfile collector reads, written after each pass (and as the lead moves).

Two kinds: what this process counts while it runs (vendor answers, passes, pre-session
checks; they start at 0 with the process, as Prometheus counters do), and what the state
says at the moment of writing (instructors and rooms by state, the roster's hold), from
overview.py, the very rows `status` shows. The names and their meanings are listed in
README.md ("Metrics"); alert rules and a Grafana dashboard ship in daemon/share/.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import overview
from .config import Config
from .overview import Overview
from .store import Fenced, StateError, Store
from .store.files import write_atomically

log = logging.getLogger(__name__)
RUNTIME = CollectorRegistry()  # this process's counters, kept across reloads and terms

VENDOR_REQUESTS = Counter(
    "officehours_vendor_requests", "HTTP requests sent to each vendor, each attempt counted",
    ["vendor"], registry=RUNTIME)
VENDOR_ERRORS = Counter(
    "officehours_vendor_errors",
    "Vendor requests that failed, by kind: throttled (429), client (other 4xx), server "
    "(5xx), network (no answer: DNS, connect, TLS, time-out)", ["vendor", "kind"],
    registry=RUNTIME)
PASSES = Counter("officehours_passes", "Passes over the instructors' calendars finished",
                 registry=RUNTIME)
PASS_SECONDS = Gauge("officehours_pass_duration_seconds",
                     "How long the last pass took (a steady pass is spread over 0.8 of the "
                     "sync interval on purpose)", registry=RUNTIME)
LAST_PASS = Gauge("officehours_last_pass_timestamp_seconds",
                  "When the last pass ended (Unix time)", registry=RUNTIME)
SESSIONS = Counter(
    "officehours_sessions_checked",
    "Sessions at their last pre-session check, by outcome: secured (the room secure, read "
    "back, before the start), late (secured after the start), insecure (Zoom refused or "
    "could not be asked)", ["outcome"], registry=RUNTIME)
REACTION = Histogram(
    "officehours_link_reaction_seconds",
    "From an office-hours event's last change at the vendor to the pass that wrote its "
    "link", buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600), registry=RUNTIME)
for vendor in ("google", "microsoft", "zoom"):  # every series from the start: rate() and
    VENDOR_REQUESTS.labels(vendor)  # increase() need a first sample of 0
    for kind in ("throttled", "client", "server", "network"):
        VENDOR_ERRORS.labels(vendor, kind)
for outcome in ("secured", "late", "insecure"):
    SESSIONS.labels(outcome)


def answered(vendor: str, status: int | None) -> None:
    """One attempt at a vendor's API or token endpoint: its HTTP status (None: no answer)."""
    VENDOR_REQUESTS.labels(vendor).inc()
    if status is None:
        VENDOR_ERRORS.labels(vendor, "network").inc()
    elif status == 429:
        VENDOR_ERRORS.labels(vendor, "throttled").inc()
    elif status >= 500:
        VENDOR_ERRORS.labels(vendor, "server").inc()
    elif status >= 400:
        VENDOR_ERRORS.labels(vendor, "client").inc()


def pass_ended(seconds: float) -> None:
    PASSES.inc()
    PASS_SECONDS.set(seconds)
    LAST_PASS.set(time.time())


class _Now(Collector):
    """The gauges read at the moment of writing: the state's view, and the lead."""

    def __init__(self, seen: Overview | None, leading: bool, epoch: int | None) -> None:
        self._seen, self._leading, self._epoch = seen, leading, epoch

    def collect(self) -> Iterator[Metric]:
        lead = GaugeMetricFamily("officehours_leader",
                                 "1 on the node that runs passes (on SQLite: always)")
        lead.add_metric([], 1.0 if self._leading else 0.0)
        yield lead
        if self._epoch is not None:
            yield GaugeMetricFamily("officehours_epoch", "The epoch (fencing term) this "
                                    "node leads in, with [state] url", value=self._epoch)
        if self._seen is None:  # a standby does not read the state
            return
        people = GaugeMetricFamily("officehours_instructors",
                                   "Instructors by state, as `status` counts them", labels=[
                                       "state"])
        for state, count in self._seen.counts().items():
            people.add_metric([state], count)
        yield people
        rooms = GaugeMetricFamily("officehours_rooms", "PMI rooms of the instructors served, "
                                  "by their state at the last check", labels=["state"])
        for state, count in self._seen.rooms().items():
            rooms.add_metric([state], count)
        yield rooms
        yield GaugeMetricFamily("officehours_roster_held", "1 while a roster read is held "
                                "(officehours roster shows why)",
                                value=1.0 if self._seen.held else 0.0)
        if self._seen.events is not None:  # [zoom] events
            yield GaugeMetricFamily("officehours_zoom_events_up", "1 while Zoom's event "
                                    "stream is connected, 0 while it is down",
                                    value=1.0 if self._seen.events["up"] else 0.0)
        if self._seen.push is not None:  # [push]
            calendars = GaugeMetricFamily(
                "officehours_push_calendars", "Calendars kept by their change notifications "
                "(notified) or read every interval instead (polled: no subscription)",
                labels=["state"])
            calendars.add_metric(["notified"], self._seen.push["notified"])
            calendars.add_metric(["polled"], len(self._seen.push["polled"]))
            yield calendars


class _Runtime(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from RUNTIME.collect()


def exposition(seen: Overview | None, leading: bool, epoch: int | None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Now(seen, leading, epoch))
    registry.register(_Runtime())
    return generate_latest(registry)


def publish(config: Config, state: Store | None, leading: bool, epoch: int | None,
            now: datetime) -> None:
    """[metrics] textfile, when the config has one: the state's view (`state` None: a
    standby, which reads no state; a state that cannot be read: the counters alone) and
    this process's counters. For `sync` and `run` alike."""
    if config.metrics is None:
        return
    seen = None
    if state is not None:
        try:
            seen = overview.read(config, state, now)
        except (Fenced, StateError) as err:
            log.warning("action=write-metrics problem=%r outcome=counters-only", str(err))
    write(config.metrics.textfile, seen, leading, epoch)


def write(path: Path, seen: Overview | None, leading: bool, epoch: int | None) -> None:
    """Write the file whole or not at all (node_exporter never reads half of one), readable
    by node_exporter (0644, whatever the service's umask: the library's own
    write_to_textfile would leave it 0600 under UMask=0077). A failure is logged: metrics
    never stop a pass."""
    try:
        write_atomically(path, exposition(seen, leading, epoch).decode(), mode=0o644)
    except OSError as err:
        log.error("action=write-metrics file=%s problem=%r", path, err.strerror or str(err))
