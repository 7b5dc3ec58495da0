"""[metrics] textfile: the Prometheus exposition a pass leaves for node_exporter, read back
with prometheus_client's own parser (what Prometheus would scrape), from `sync` and from
the service."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from conftest import HOUR, at, officehours, spawn, wait_for
from officehours_sandbox.domain import Sandbox
from prometheus_client.parser import text_string_to_metric_families

from daemon import metrics
from daemon.model import share_of
from daemon.rooms import EARLY_CHECK

ADA, BOB = "ada@example.edu", "bob@example.edu"


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample in the file: (name, labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text())
            for s in family.samples}


def with_metrics(config: Path, textfile: Path) -> Path:
    config.write_text(config.read_text() + f'\n[metrics]\ntextfile = "{textfile}"\n')
    return config


def test_a_pass_leaves_the_campus_in_the_textfile(sandbox: Sandbox, now: datetime,
                                                  tmp_path: Path) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_instructor("Bob Lovelace", BOB, 8999999999, locked={"waiting_room"})
    for email in (ADA, BOB):
        sandbox.google.add_event(email, summary="Office Hours", start=at(now + 3 * HOUR),
                                 end=at(now + 4 * HOUR))
    textfile = tmp_path / "node-exporter" / "officehours.prom"
    textfile.parent.mkdir()
    config = with_metrics(sandbox.write_config(), textfile)
    reactions = metrics.RUNTIME.get_sample_value("officehours_link_reaction_seconds_count")
    waited = metrics.RUNTIME.get_sample_value("officehours_link_reaction_seconds_sum")
    before = os.umask(0o077)  # as the unit runs the service (UMask=0077)
    try:
        assert officehours(config, "sync").returncode == 1  # Bob's room is refused
    finally:
        os.umask(before)
    # node_exporter runs as another user: the file must be readable by it
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
    assert [p.name for p in textfile.parent.iterdir()] == ["officehours.prom"]  # no temp
    found = samples(textfile)
    assert found[("officehours_instructors", (("state", "served"),))] == 2
    assert found[("officehours_instructors", (("state", "failing"),))] == 1
    assert found[("officehours_rooms", (("state", "secure"),))] == 1
    assert found[("officehours_rooms", (("state", "refused"),))] == 1
    assert found[("officehours_roster_held", ())] == 0
    assert found[("officehours_leader", ())] == 1
    assert found[("officehours_passes_total", ())] >= 1
    assert found[("officehours_vendor_requests_total", (("vendor", "zoom"),))] >= 4
    assert found[("officehours_vendor_requests_total", (("vendor", "google"),))] >= 2
    # a first, full read: events that did not just change are no reaction (the counters
    # are this process's)
    assert found[("officehours_link_reaction_seconds_count", ())] == (reactions or 0)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 5 * HOUR),
                             end=at(now + 6 * HOUR))
    officehours(config, "sync")
    found = samples(textfile)  # Ada's new event linked, seconds after it was made
    assert found[("officehours_link_reaction_seconds_count", ())] == (reactions or 0) + 1
    assert found[("officehours_link_reaction_seconds_sum", ())] - (waited or 0) < 60
    assert ("officehours_vendor_errors_total", (("kind", "throttled"), ("vendor", "zoom"))) \
        in found  # every series from the first write, at 0 or more


def test_vendor_errors_are_counted_by_vendor_and_kind(sandbox: Sandbox, now: datetime,
                                                     tmp_path: Path) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                             end=at(now + 4 * HOUR))
    textfile = tmp_path / "officehours.prom"
    config = with_metrics(sandbox.write_config(), textfile)
    assert officehours(config, "sync").returncode == 0
    key = ("officehours_vendor_errors_total", (("kind", "throttled"), ("vendor", "google")))
    before = samples(textfile)[key]
    sandbox.google.inject("429", "GET", "/events$", times=2)  # retried, and the pass goes on
    assert officehours(config, "sync").returncode == 0
    assert samples(textfile)[key] == before + 2


def test_the_service_counts_sessions_secured_in_time(sandbox: Sandbox,
                                                     tmp_path: Path) -> None:
    """A session whose pre-session check comes 8 s from now: the room, opened in the portal
    after the first pass, is secured before the session and counted so."""
    user = sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    lead = timedelta(minutes=1)  # one check per session (no "last minute" check)
    start = (datetime.now(UTC) + lead + timedelta(seconds=8)
             + EARLY_CHECK * share_of(ADA)).replace(microsecond=0)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(start),
                             end=at(start + HOUR))
    textfile = tmp_path / "officehours.prom"
    config = with_metrics(sandbox.write_config(enforce_lead_minutes=1,
                                               sync_interval_seconds=3), textfile)
    process = spawn(config, "run")
    try:
        wait_for(textfile.exists, what="the first pass's metrics")
        assert samples(textfile)[("officehours_instructors", (("state", "served"),))] == 1
        user.pmi_waiting_room = False  # someone opens the room in the portal
        wait_for(lambda: user.secure, timeout=20, what="the pre-session check")
        key = ("officehours_sessions_checked_total", (("outcome", "secured"),))
        wait_for(lambda: samples(textfile).get(key) == 1, what="the session counted")
        assert samples(textfile)[("officehours_sessions_checked_total",
                                  (("outcome", "insecure"),))] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def test_the_shipped_alerts_and_dashboard_use_the_metrics_written(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """Every metric the alert rules and the dashboard query is one the program writes (a
    renamed metric would leave an alert that never fires), and both files parse."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    textfile = tmp_path / "officehours.prom"
    assert officehours(with_metrics(sandbox.write_config(), textfile), "sync").returncode == 0
    written = {s.name for f in text_string_to_metric_families(textfile.read_text())
               for s in f.samples} | {"officehours_epoch",  # with [state] url only
                                      "officehours_zoom_events_up",  # with [zoom] events
                                      "officehours_push_calendars"}  # with [push]
    rules = yaml.safe_load(officehours(None, "example-monitoring").stdout)["groups"][0]["rules"]
    assert rules and all(r["alert"].startswith("Officehours") and r["labels"]["severity"] in (
        "critical", "warning") and r["annotations"]["summary"] for r in rules)
    dashboard = json.loads(officehours(None, "example-monitoring", "--dashboard").stdout)
    queries = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"]
                                            for t in p["targets"]]
    used = {name for q in queries for name in re.findall(r"officehours_\w+", q)}
    assert len(used) >= 10 and used <= written, used - written
