"""`make bench`: officehours on a simulated campus, measured.

Starts the emulators with vendor latency and rate limits, seeds N instructors (half
Google, half Outlook; office-hours series with a moved occurrence, a single office-hours
event and ~20 other events each), runs `officehours run` as a real process against them,
and measures the first pass, a steady-state pass, reaction to new events, enforcement
before sessions, and the process's peak memory and CPU. Prints one table; writes JSON.

It guards what it measures: when a steady-state budget is broken (BUDGETS below) it names
the figure and exits 1. `make bench-ci` is the small run CI makes (1,000 instructors on a
Business plan's Zoom limits: the same per-instructor ratios in a few minutes).

    python bench/run.py --instructors 5000            # the full campus (about 33 minutes)
    python bench/run.py --instructors 200 --naive     # quick, with the naive comparison
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from officehours_sandbox.campus import (
    add_session,
    apply_vendor_limits,
    description,
    seed_campus,
)
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Emulator

from daemon.app import open_engine
from daemon.config import load
from daemon.reconcile import START_MARK
from daemon.runtime.passes import run_pass

DEFAULT_INTERVAL = 300  # the shipped sync_interval_seconds, for projections
GOOGLE_PER_MINUTE, GOOGLE_PER_DAY = 10_000, 1_000_000
# Google Calendar API usage limits (developers.google.com/workspace/calendar/api/guides/
# quota): 10,000 requests per minute per project, 600 per user, and for projects created
# since May 2026 a daily billing threshold of 1,000,000 requests per project.
ZOOM_LIGHT, ZOOM_MEDIUM = 30, 20  # Zoom Pro, requests per second
PASS_LINE = re.compile(r"action=pass instructors=(\d+) problems=(\d+) seconds=([\d.]+)")
CHECK_LINE = re.compile(r"instructor=(\S+) action=pre-session-check")
PUSH_READ = "action=push-read"
LEAD_MINUTES = 1  # short, so that sessions' windows open while the benchmark runs
RSS_BUDGET_MB = 250
ZOOM_BUDGET = 0.05  # Zoom requests of a steady pass, per instructor
TAMPER_BUDGET = 10.0  # seconds, p99 from a room made insecure to secure again (events)
LATENESS_BUDGET = 5.0  # seconds, p99 of the pre-session checks after their window opened
REACTION_SLACK = 10.0  # seconds over the interval, p99 of the link reaching a new event
PUSH_SAFETY = 3600  # [push] safety_interval_seconds, the shipped default
PUSH_BUDGET = 10.0  # seconds, p99 from a new event to its link with [push]
PUSH_DAY_BUDGET = 300_000  # Google requests a day, all-Google campus with [push]: a fifth
CHANGES_PER_DAY = 10  # changes to each calendar a day, any event (an assumption: stated)


def kind_of(method: str, path: str) -> str:
    if "token" in path or "openid" in path:
        return "token"
    if path.endswith(("/events", "/delta", "/calendarView")):
        return "list"
    return "write" if method in ("PATCH", "POST") else "read"


def tally(box: Sandbox, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
    counts: Counter[str] = Counter()
    for vendor, emulator in vendors(box):
        for r in list(emulator.log):
            if since <= r.at < until:
                counts[f"{vendor} {kind_of(r.method, r.path)}"] += 1
    return counts


def vendors(box: Sandbox) -> list[tuple[str, Emulator]]:
    return [("google", box.google), ("graph", box.graph), ("zoom", box.zoom)]


def zoom_by_kind(box: Sandbox, since: float, until: float,
                 checked: set[str]) -> tuple[Counter[str], Counter[str]]:
    """Zoom's requests between two moments by kind (user, settings, meeting; read or write),
    split into those of the pass and those of pre-session checks (requests about an
    instructor whose check ran then): a check is a cost per session, not per pass."""
    owner = {str(user.pmi): email for email, user in box.zoom.users.items()}
    of_pass: Counter[str] = Counter()
    of_checks: Counter[str] = Counter()
    for r in list(box.zoom.log):
        if not since <= r.at < until:
            continue
        parts = r.path.split("/")  # '', 'v2', 'users', email[, 'settings'] | 'meetings', pmi
        who = None
        if "token" in r.path:
            kind = "token"
        elif len(parts) > 3 and parts[2] == "meetings":
            kind, who = "meeting", owner.get(parts[3])
        elif len(parts) > 3 and parts[2] == "users":
            kind, who = ("settings" if len(parts) > 4 else "user"), unquote(parts[3]).lower()
        else:
            kind = "/".join(parts[2:3]) or r.path
        if kind != "token":
            kind += " read" if r.method == "GET" else " write"
        (of_checks if who in checked else of_pass)[kind] += 1
    return of_pass, of_checks


class Process:
    """`officehours run`, its pass lines as they come, its memory and CPU."""

    def __init__(self, config: Path, log: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = log
        self.passes: list[tuple[float, float, int]] = []  # (ended, seconds, problems)
        self.read: list[int] = []  # each pass's instructors read (with [push]: those due)
        self.push_reads = 0  # calendars read because a notification named them
        self.checks: list[tuple[float, str]] = []  # (when, instructor): pre-session checks
        self.peak_rss_mb = 0.0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.log.open("w") as kept:  # the service's log, for a figure that surprises
            for line in self.proc.stderr:
                kept.write(line)
                found = PASS_LINE.search(line)
                if found:
                    self.read.append(int(found[1]))
                    self.passes.append((time.monotonic(), float(found[3]), int(found[2])))
                self.push_reads += PUSH_READ in line
                checked = CHECK_LINE.search(line)
                if checked:
                    self.checks.append((time.monotonic(), checked[1].lower()))

    def _watch(self) -> None:
        while self.proc.poll() is None:
            try:
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
                hwm = int(re.search(r"VmHWM:\s+(\d+)", status)[1])  # type: ignore[index]
                self.peak_rss_mb = max(self.peak_rss_mb, hwm / 1024)
            except (OSError, TypeError):
                pass
            time.sleep(0.5)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_passes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.passes) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"officehours made {len(self.passes)} passes, not {count}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def naive_pass(box: Sandbox, config_path: Path) -> Counter[str]:
    """The same workload the naive way: every calendar listed in full, every Zoom user
    read, on every pass."""
    config = load(config_path)
    engine = open_engine(config)
    try:
        run_pass(engine, config.instructors)  # warm: tokens and state as a service has them
        for instructor in config.instructors:
            engine.state.forget_instructor_events(instructor.key)
        engine.links.clear()
        started = time.monotonic()
        run_pass(engine, config.instructors)
        return tally(box, since=started)
    finally:
        engine.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="officehours-bench-"))
    box = Sandbox(workdir, page_size=250)
    for _, emulator in vendors(box):
        emulator.validate = False
        emulator.latency = args.latency
    now = datetime.now(UTC)
    print(f"seeding {args.instructors} instructors ...", file=sys.stderr, flush=True)
    emails = seed_campus(box, args.instructors, now, rng)
    apply_vendor_limits(box, args.zoom_plan)
    if args.tamper:
        box.zoom_events()  # [zoom] events: the stream a tampered room is secured by
    config = box.write_config(sync_interval_seconds=args.interval, concurrency=args.concurrency,
                              enforce_lead_minutes=LEAD_MINUTES, log_level="info")
    textfile = box.dir / "officehours.prom"  # as a campus with monitoring runs it
    config.write_text(config.read_text().replace(
        "[zoom]\n", f'[zoom]\nplan = "{args.zoom_plan}"\n')
        + f'\n[metrics]\ntextfile = "{textfile}"\n')
    n_google, n_graph = (len(emails) + 1) // 2, len(emails) // 2

    started = time.monotonic()
    process = Process(config, args.log)
    print(f"officehours run: first pass (its log: {args.log}) ...", file=sys.stderr, flush=True)
    process.wait_passes(1, timeout=3600)
    first_end, first_seconds, first_problems = process.passes[0]
    first = tally(box, until=first_end + 0.5)
    print(f"first pass: {first_seconds:.1f} s", file=sys.stderr, flush=True)

    process.wait_passes(2, timeout=args.interval * 3 + 600)  # steady from here on

    # reaction: instructors add office hours at random moments while `run` runs
    reaction_events: dict[str, tuple[str, float]] = {}
    additions = sorted((rng.uniform(0, args.interval), email)
                       for email in rng.sample(emails, args.reaction))
    # enforcement: sessions whose lead window opens a while after they were added
    session_emails = rng.sample([e for e in emails if e not in {a[1] for a in additions}],
                                args.sessions)
    windows: dict[str, float] = {}
    starts: dict[str, float] = {}
    for email in session_emails:
        box.zoom.user(email).pmi_waiting_room = False  # someone opens the Personal Room
        opens_in = args.interval + rng.uniform(10, 40)
        start = datetime.now(UTC) + timedelta(minutes=LEAD_MINUTES, seconds=opens_in)
        add_session(box, email, start)
        windows[email] = time.monotonic() + opens_in
        starts[email] = windows[email] + LEAD_MINUTES * 60

    def add_over_time() -> None:
        began = time.monotonic()
        for offset, email in additions:
            time.sleep(max(0.0, began + offset - time.monotonic()))
            reaction_events[email] = (add_session(box, email, now + timedelta(days=3)),
                                      time.monotonic())

    adder = threading.Thread(target=add_over_time, daemon=True)
    adder.start()
    print(f"measuring reaction to {len(additions)} new events and {len(session_emails)} "
          "pre-session checks ...", file=sys.stderr, flush=True)

    linked: dict[str, float] = {}
    secured: dict[str, float] = {}
    insecure_at_start: set[str] = set()
    checked_start: set[str] = set()
    deadline = max(starts.values(), default=time.monotonic()) + 5
    deadline = max(deadline, time.monotonic() + args.interval * 3 + 30)
    while time.monotonic() < deadline:
        for email, (event_id, _) in list(reaction_events.items()):
            if email not in linked and START_MARK in description(box, email, event_id):
                linked[email] = time.monotonic()
        for email in session_emails:
            if email not in secured and box.zoom.user(email).secure:
                secured[email] = time.monotonic()
            if email not in checked_start and time.monotonic() >= starts[email]:
                checked_start.add(email)
                if not box.zoom.user(email).secure:
                    insecure_at_start.add(email)
        time.sleep(0.25)

    # the steady-state pass: a whole pass after everything above settled
    settled = len(process.passes)
    process.wait_passes(settled + 2, timeout=args.interval * 3 + 600)
    end, steady_seconds, steady_problems = process.passes[settled + 1]
    since, until = end - steady_seconds - 0.2, end + 0.2
    steady = tally(box, since=since, until=until)
    zoom_pass, zoom_checks = zoom_by_kind(box, since, until, {
        who for at, who in process.checks if since - 60 <= at <= until})
    tampering = tamper(box, rng, [e for e in emails if e not in set(session_emails)
                                  and e not in reaction_events], args.tamper)
    pushing = push_phase(box, process, config, rng, [
        e for e in emails if e not in set(session_emails) and e not in reaction_events],
        args) if args.push else {"count": 0}
    cpu = process.cpu_seconds()
    process.stop()
    wall = time.monotonic() - started
    throttled = sum((e.throttled for _, e in vendors(box)), Counter())
    naive = naive_pass(box, config) if args.naive else None
    box.stop()

    reaction = [linked[e] - t for e, (_, t) in reaction_events.items() if e in linked]
    lateness = [max(0.0, secured[e] - windows[e]) for e in session_emails if e in secured]
    per_pass = DEFAULT_INTERVAL
    google_steady = sum(v for k, v in steady.items() if k.startswith("google"))
    graph_steady = sum(v for k, v in steady.items() if k.startswith("graph"))
    zoom_steady = sum(zoom_pass.values())
    result: dict[str, Any] = {
        "instructors": args.instructors, "google": n_google, "outlook": n_graph,
        "latency_ms": args.latency * 1000, "concurrency": args.concurrency,
        "zoom_plan": args.zoom_plan, "measured_on": now.strftime("%Y-%m-%d %H:%M UTC"),
        "measure_interval_s": args.interval, "projection_interval_s": DEFAULT_INTERVAL,
        "first_pass": {"seconds": first_seconds, "problems": first_problems,
                       "requests": dict(first)},
        "steady_pass": {"seconds": steady_seconds, "problems": steady_problems,
                        "requests": dict(steady),
                        "google_reads_per_instructor": steady["google list"] / n_google,
                        "graph_reads_per_instructor": steady["graph list"] / max(n_graph, 1),
                        "zoom_per_instructor": zoom_steady / args.instructors,
                        "zoom_of_the_pass": dict(zoom_pass),
                        "zoom_of_pre_session_checks": dict(zoom_checks),
                        "writes": steady["google write"] + steady["graph write"]},
        "projection": {
            "google_per_minute": google_steady * 60 / per_pass,
            "google_per_day": google_steady * 86400 / per_pass,
            "graph_per_minute": graph_steady * 60 / per_pass,
            "zoom_per_minute": zoom_steady * 60 / per_pass,
            "google_quota_per_minute": GOOGLE_PER_MINUTE,
            "google_billing_threshold_per_day": GOOGLE_PER_DAY},
        "reaction_s": {"count": len(reaction), "of": args.reaction,
                       "p50": pct(reaction, 0.5), "p99": pct(reaction, 0.99)},
        "enforcement": {"sessions": len(session_emails), "secured": len(secured),
                        "lateness_p50_s": pct(lateness, 0.5),
                        "lateness_p99_s": pct(lateness, 0.99),
                        "lateness_max_s": max(lateness, default=float("nan")),
                        "started_insecure": len(insecure_at_start)},
        "process": {"peak_rss_mb": process.peak_rss_mb, "cpu_seconds": cpu,
                    "wall_seconds": wall},
        "tamper": tampering,
        "push": pushing,
        "throttled_429": dict(throttled),
        "metrics": metrics_seen(textfile),
    }
    if naive is not None:
        naive_total = sum(naive.values())
        steady_total = sum(steady.values())
        result["naive_pass"] = {"requests": dict(naive), "total": naive_total,
                                "ratio_to_steady": naive_total / max(steady_total, 1)}
    return result


TAMPERS = (("pmi_waiting_room", False), ("pmi_password", ""),
           ("require_password_for_pmi_meetings", "none"))


def tamper(box: Sandbox, rng: random.Random, emails: list[str], count: int) -> dict[str, Any]:
    """Rooms made insecure in the portal at random moments over a minute ([zoom] events:
    each event re-checks the room): from the change to the room secure again, and the Zoom
    requests that cost (all of them in that time: no pass reads Zoom in steady state)."""
    if not count:
        return {"count": 0}
    print(f"tampering with {count} rooms over 60 s ...", file=sys.stderr, flush=True)
    chosen = sorted((rng.uniform(0, 60), email, rng.choice(TAMPERS))
                    for email in rng.sample(emails, count))
    began = time.monotonic()
    requests = len(box.zoom.log)
    at: dict[str, float] = {}
    secured: dict[str, float] = {}

    def look() -> None:  # every 50 ms, between tamperings too: each room's moment
        for done in [e for e in at if e not in secured and box.zoom.user(e).secure]:
            secured[done] = time.monotonic()
        time.sleep(0.05)

    for offset, email, (field, value) in chosen:
        while time.monotonic() < began + offset:
            look()
        setattr(box.zoom.user(email), field, value)
        at[email] = time.monotonic()
    deadline = time.monotonic() + 60
    while len(secured) < len(at) and time.monotonic() < deadline:
        look()
    took = [secured[e] - at[e] for e in secured]
    spent = box.zoom.log[requests:]
    return {"count": count, "secured": len(secured), "p50_s": pct(took, 0.5),
            "p99_s": pct(took, 0.99), "max_s": max(took, default=float("nan")),
            "zoom_requests": len(spent),
            "zoom_writes": sum(r.method != "GET" and "token" not in r.path for r in spent)}


def push_phase(box: Sandbox, process: Process, config: Path, rng: random.Random,
               emails: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """[push] turned on by a reload (SIGHUP), as an admin would: the time to subscribe every
    calendar; then new events added at random moments over a minute, timed from the
    change to the link (Google and Graph calling back through the proxy); the requests
    all of it cost; and a pass after it, which reads only calendars without push."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{probe.getsockname()[1]}"
    public = box.push(listen, PUSH_SAFETY)
    config.write_text(config.read_text() + f'\n[push]\npublic_url = "{public}"\n'
                      f'listen = "{listen}"\nsafety_interval_seconds = {PUSH_SAFETY}\n')
    print(f"[push] on by reload: subscribing {args.instructors} calendars ...",
          file=sys.stderr, flush=True)
    began, mark = time.monotonic(), time.monotonic()
    process.proc.send_signal(signal.SIGHUP)
    deadline = began + args.instructors * 0.2 + 300

    def subscribed() -> int:
        return len(box.google.live_channels()) + len(box.graph.subscriptions)

    while subscribed() < args.instructors and time.monotonic() < deadline:
        time.sleep(0.5)
    subscribe_seconds = time.monotonic() - began
    made = tally(box, since=mark)
    # a new event at a random moment of a minute for each of `args.reaction` instructors
    chosen = sorted((rng.uniform(0, 60), email) for email in rng.sample(emails, args.reaction))
    added: dict[str, tuple[str, float]] = {}
    linked: dict[str, float] = {}
    mark, delivered = time.monotonic(), len(box.deliveries.sent) if box.deliveries else 0
    reads = process.push_reads
    for offset, email in chosen:
        while time.monotonic() < mark + offset:
            _look_linked(box, added, linked)
        added[email] = (add_session(box, email, datetime.now(UTC) + timedelta(days=4)),
                        time.monotonic())
    end = time.monotonic() + 60
    while len(linked) < len(added) and time.monotonic() < end:
        _look_linked(box, added, linked)
    time.sleep(5)  # the echoes of the last links written (a notification each)
    spent = tally(box, since=mark)
    push_reads = process.push_reads - reads
    # the passes from here on: the first may still read calendars read before push was on
    process.wait_passes(len(process.passes) + 2, timeout=args.interval * 3 + 600)
    took = [linked[e] - t for e, (_, t) in added.items() if e in linked]
    reads_per_change = push_reads / max(len(added), 1)
    n = args.instructors
    # an all-Google campus at the defaults: each calendar read every safety interval,
    # read again for each change (as measured: the change and the echo of our own write),
    # and its channel replaced a day before its week ends (watch + stop, every 6 days)
    per_day = {"safety_reads": n * 86400 / PUSH_SAFETY,
               "change_reads": n * CHANGES_PER_DAY * reads_per_change,
               "subscriptions": n * 2 / 6}
    return {"count": len(added), "linked": len(linked), "p50_s": pct(took, 0.5),
            "p99_s": pct(took, 0.99), "max_s": max(took, default=float("nan")),
            "subscribe_seconds": subscribe_seconds, "subscribed": subscribed(),
            "subscribe_requests": {k: v for k, v in made.items() if not k.startswith("zoom")},
            "requests_for_changes": {k: v for k, v in spent.items() if v},
            "notifications": (len(box.deliveries.sent) if box.deliveries else 0) - delivered,
            "calendar_reads_per_change": reads_per_change,
            "pass_after_reads": process.read[-1],
            "google_per_day": per_day, "google_per_day_total": sum(per_day.values()),
            "graph_renewals_per_day": n / 6, "changes_per_day_assumed": CHANGES_PER_DAY}


def _look_linked(box: Sandbox, added: dict[str, tuple[str, float]],
                 linked: dict[str, float]) -> None:
    for email, (event_id, _) in list(added.items()):
        if email not in linked and START_MARK in description(box, email, event_id):
            linked[email] = time.monotonic()
    time.sleep(0.05)


def metrics_seen(textfile: Path) -> dict[str, float]:
    """What the service's [metrics] textfile says at the end (its own view of the run)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = textfile.read_text() if textfile.exists() else ""
    found = {(s.name, tuple(sorted(s.labels.values()))): s.value
             for f in text_string_to_metric_families(text) for s in f.samples}
    return {"bytes": len(text.encode()),
            "served": found.get(("officehours_instructors", ("served",)), 0.0),
            "passes": found.get(("officehours_passes_total", ()), 0.0),
            "pass_seconds": found.get(("officehours_pass_duration_seconds", ()), 0.0)}


def table(r: dict[str, Any]) -> str:
    s, p, e = r["steady_pass"], r["projection"], r["enforcement"]
    rows = [
        ("measured", f"{r['measured_on']}, Zoom {r['zoom_plan']} plan limits"),
        ("instructors (Google / Outlook)", f"{r['instructors']} ({r['google']} / {r['outlook']})"),
        ("latency per request, workers", f"{r['latency_ms']:.0f} ms, {r['concurrency']}"),
        ("first pass", f"{r['first_pass']['seconds']:.1f} s, "
                       f"{sum(r['first_pass']['requests'].values())} requests"),
        ("  by vendor and kind", ", ".join(f"{k} {v}" for k, v in
                                           sorted(r["first_pass"]["requests"].items()))),
        ("steady-state pass", f"{s['seconds']:.1f} s, {sum(s['requests'].values())} requests, "
                              f"{s['writes']} writes"),
        ("  calendar reads per instructor", f"Google {s['google_reads_per_instructor']:.2f}, "
                                            f"Outlook {s['graph_reads_per_instructor']:.2f}"),
        ("  Zoom requests per instructor", f"{s['zoom_per_instructor']:.3f} ("
         + (", ".join(f"{k} {v}" for k, v in sorted(s["zoom_of_the_pass"].items())) or "none")
         + ")"),
        ("  beside it, pre-session checks", ", ".join(
            f"{k} {v}" for k, v in sorted(s["zoom_of_pre_session_checks"].items())) or "none"),
        (f"projected at {r['projection_interval_s']} s interval",
         f"Google {p['google_per_minute']:.0f}/min (quota {p['google_quota_per_minute']}), "
         f"{p['google_per_day']:,.0f}/day (billing threshold "
         f"{p['google_billing_threshold_per_day']:,}); Graph {p['graph_per_minute']:.0f}/min; "
         f"Zoom {p['zoom_per_minute']:.1f}/min"),
        ("reaction to a new event", f"p50 {r['reaction_s']['p50']:.1f} s, p99 "
                                    f"{r['reaction_s']['p99']:.1f} s ({r['reaction_s']['count']}"
                                    f"/{r['reaction_s']['of']} linked; interval "
                                    f"{r['measure_interval_s']} s)"),
        ("enforcement lateness", f"p50 {e['lateness_p50_s']:.1f} s, "
                                 f"p99 {e['lateness_p99_s']:.1f} s, max "
                                 f"{e['lateness_max_s']:.1f} s, {e['secured']}/{e['sessions']} "
                                 f"secured, {e['started_insecure']} started insecure"),
        ("room tampered to secure (events)", "not measured" if not r["tamper"]["count"] else
         f"p50 {r['tamper']['p50_s']:.1f} s, p99 {r['tamper']['p99_s']:.1f} s, max "
         f"{r['tamper']['max_s']:.1f} s ({r['tamper']['secured']}/{r['tamper']['count']} "
         f"rooms; {r['tamper']['zoom_requests']} Zoom requests, "
         f"{r['tamper']['zoom_writes']} writes)"),
        ("[push]: new event to link", "not measured" if not r["push"]["count"] else
         f"p50 {r['push']['p50_s']:.1f} s, p99 {r['push']['p99_s']:.1f} s, max "
         f"{r['push']['max_s']:.1f} s ({r['push']['linked']}/{r['push']['count']} linked; "
         f"{r['push']['notifications']} notifications, "
         f"{r['push']['calendar_reads_per_change']:.1f} Google reads per change)"),
        ("[push]: subscribing, a pass after", "" if not r["push"]["count"] else
         f"{r['push']['subscribed']} in {r['push']['subscribe_seconds']:.0f} s ("
         + ", ".join(f"{k} {v}" for k, v in sorted(r["push"]["subscribe_requests"].items()))
         + f"); a pass then read {r['push']['pass_after_reads']} calendars (none "
           "but those without push or due for the safety read)"),
        ("[push]: all-Google campus per day", "" if not r["push"]["count"] else
         f"{r['push']['google_per_day_total']:,.0f} requests ("
         + ", ".join(f"{k.replace('_', ' ')} {v:,.0f}" for k, v in
                     r["push"]["google_per_day"].items())
         + f"; {r['push']['changes_per_day_assumed']} changes per calendar a day assumed); "
         f"Graph renewals {r['push']['graph_renewals_per_day']:,.0f}/day"),
        ("officehours process", f"peak RSS {r['process']['peak_rss_mb']:.0f} MB, CPU "
                                f"{r['process']['cpu_seconds']:.0f} s in "
                                f"{r['process']['wall_seconds']:.0f} s"),
        ("metrics textfile", f"{r['metrics']['bytes']} bytes; the service's own count: "
                             f"{r['metrics']['served']:.0f} served, {r['metrics']['passes']:.0f}"
                             f" passes, last {r['metrics']['pass_seconds']:.1f} s"),
        ("429s from emulators", ", ".join(f"{k} {v}" for k, v in r["throttled_429"].items())
         or "none"),
    ]
    if "naive_pass" in r:
        n = r["naive_pass"]
        rows.append(("naive pass (full listing, Zoom every pass)",
                     f"{n['total']} requests = {n['ratio_to_steady']:.0f}x the steady pass"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def broken_budgets(r: dict[str, Any]) -> list[str]:
    """The steady-state budgets this benchmark guards, each broken one named with its figure
    (a figure that could not be measured, NaN, counts as broken)."""
    s, e, rx = r["steady_pass"], r["enforcement"], r["reaction_s"]
    figures = [
        ("Google calendar reads per instructor", s["google_reads_per_instructor"], 1.0),
        ("Outlook calendar reads per instructor", s["graph_reads_per_instructor"], 1.0),
        ("Zoom requests per instructor in a steady pass", s["zoom_per_instructor"],
         ZOOM_BUDGET),
        ("calendar writes in a steady pass", s["writes"], 0),
        ("reaction to a new event, p99 s", rx["p99"], r["measure_interval_s"] + REACTION_SLACK),
        ("new events never linked", rx["of"] - rx["count"], 0),
        ("enforcement lateness, p99 s", e["lateness_p99_s"], LATENESS_BUDGET),
        ("sessions never secured", e["sessions"] - e["secured"], 0),
        ("sessions started insecure", e["started_insecure"], 0),
        ("peak RSS, MB", r["process"]["peak_rss_mb"], RSS_BUDGET_MB),
    ]
    if r["tamper"]["count"]:
        figures += [("rooms tampered and never secured", r["tamper"]["count"]
                     - r["tamper"]["secured"], 0),
                    ("room tampered to secure, p99 s", r["tamper"]["p99_s"], TAMPER_BUDGET)]
    if r["push"]["count"]:
        figures += [("[push] new events never linked", r["push"]["count"]
                     - r["push"]["linked"], 0),
                    ("[push] new event to link, p99 s", r["push"]["p99_s"], PUSH_BUDGET),
                    ("[push] calendars not subscribed", r["instructors"]
                     - r["push"]["subscribed"], 0),
                    ("[push] all-Google requests per day", r["push"]["google_per_day_total"],
                     PUSH_DAY_BUDGET)]
    return [f"{name}: {value:.3f} > {limit}" for name, value, limit in figures
            if not value <= limit]


def roster_read(members: int, latency: float) -> dict[str, Any]:
    """One read of a roster group of `members` from each vendor, as `run` makes it once per
    roster.refresh_minutes: seconds and requests (pages: 999 in Graph, 200 in Google)."""
    from daemon.app import Providers
    from daemon.http import Outbound

    with tempfile.TemporaryDirectory(prefix="officehours-roster-bench-") as directory:
        box = Sandbox(Path(directory))
        try:
            for emulator in (box.google, box.graph):
                emulator.latency = latency
            box.add_instructor("Admin", "admin@example.edu", 8100000000)
            box.add_microsoft_instructor("Owner", "owner@example.edu", 8100000001)
            people = [f"m{n:05d}@example.edu" for n in range(members)]
            box.graph.add_group("faculty", *[box.graph.add_user(p, p) for p in people])
            box.google.add_group("faculty@example.edu", *people)
            (account,) = box.google.delegated_scopes
            box.google.delegated_scopes[account] |= {
                "https://www.googleapis.com/auth/admin.directory.group.member.readonly"}
            config_path = box.write_config()
            config_path.write_text(config_path.read_text() + (
                '\n[roster]\ngoogle_group = "faculty@example.edu"\n'
                'google_group_admin = "admin@example.edu"\n'
                f'google_directory_url = "{box.google_server.url}/"\n'
                'entra_group_id = "faculty"\n'))
            config = load(config_path)
            providers = Providers(config, Outbound(box.ca.bundle))
            figures: dict[str, Any] = {"members": members}
            for vendor, source, emulator in (("graph", "entra:faculty", box.graph),
                                             ("google", "google:faculty@example.edu",
                                              box.google)):
                before = len(emulator.log)
                started = time.monotonic()
                read = providers.group_users(source)
                figures[vendor] = {"seconds": round(time.monotonic() - started, 2),
                                   "requests": len(emulator.log) - before,
                                   "members": len(read)}
            providers.close()
            return figures
        finally:
            box.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructors", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--interval", type=int, default=60,
                        help="sync interval while measuring (projections use 300 s)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reaction", type=int, default=50, help="new events to time")
    parser.add_argument("--sessions", type=int, default=50, help="sessions to enforce")
    parser.add_argument("--tamper", type=int, default=50,
                        help="rooms made insecure, with [zoom] events (0: events off)")
    parser.add_argument("--push", action=argparse.BooleanOptionalAction, default=True,
                        help="then [push] on by reload: subscriptions, new events linked "
                             "by notification, the requests a day it projects")
    parser.add_argument("--naive", action="store_true", help="also time the naive way")
    parser.add_argument("--zoom-plan", choices=("pro", "business", "enterprise"),
                        default="pro", help="Zoom's rate limits, in the emulator and the config")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log", type=Path, default=Path("bench-officehours.log"),
                        help="where the service's own log is kept")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--roster-only", action="store_true",
                        help="only time one read of a roster group of --instructors members")
    args = parser.parse_args()
    if args.roster_only:
        print(json.dumps(roster_read(args.instructors, args.latency), indent=2))
        return 0
    logging.basicConfig(level=logging.ERROR)  # the naive pass runs in this process
    args.reaction = min(args.reaction, args.instructors // 4)
    args.tamper = min(args.tamper, args.instructors // 4)
    args.sessions = min(args.sessions, args.instructors // 4)
    result = run(args)
    result["roster_read"] = roster_read(args.instructors, args.latency)
    print(table(result))
    r = result["roster_read"]
    print(f"roster read of {r['members']} members  Graph {r['graph']['requests']} requests "
          f"{r['graph']['seconds']} s; Google {r['google']['requests']} requests "
          f"{r['google']['seconds']} s")
    broken = broken_budgets(result)
    result["budgets_broken"] = broken
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\n(figures also in {args.json}; the service's log in {args.log})")
    for figure in broken:
        print(f"BUDGET BROKEN: {figure}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
