"""`status` and `history`: the state as people and scripts read it (overview.py builds the
report; this renders it)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import UTC, datetime

from . import overview
from .commands import EXIT_FAILED, EXIT_OK, loaded
from .model import same_person
from .zoom.policy import describe_meets


def cmd_status(args: argparse.Namespace) -> int:
    from .app import reading

    config = loaded(args, secrets=False)
    with reading(config) as state:
        seen = overview.read(config, state, datetime.now(UTC))
    failing = seen.failing  # the exit code is the campus's, whatever the filters show
    wanted = None if args.instructor is None else same_person(args.instructor)
    seen.rows = [r for r in seen.rows if (not args.failing or r.failing)
                 and (args.source is None or r.source == args.source)
                 and (wanted is None or same_person(r.email) == wanted)]
    if args.json:
        print(json.dumps(seen.as_json(), indent=2))
        return EXIT_FAILED if failing else EXIT_OK
    if seen.stale_since:
        print(f"NO PASS RECORDED since {_when(seen.stale_since)}: the service is stopped, or "
              "its passes are held (journalctl -u officehours says why, e.g. a full disk)")
    print(", ".join(f"{n} {what}" for what, n in seen.counts().items())
          + (", roster HELD" if seen.held else ""))
    for said in _lead_lines(seen):
        print(said)
    if seen.events is not None:
        print(("Zoom events: connected since " if seen.events["up"] else "Zoom events: DOWN "
               "since ") + _when(seen.events["since"]) + ("" if seen.events["up"] else
                                                           " (rooms checked on schedule only)"))
    if seen.push is not None:
        polled = seen.push["polled"]
        reasons = sorted(set(polled.values()))
        why = "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
        print(f"Push: {seen.push['notified']} of {seen.push['notified'] + len(polled)} "
              f"calendars notified; {len(polled)} polled every interval"
              + (f" ({why})" if polled else ""))
    if seen.held:
        print(f"ROSTER HELD since {_when(seen.held[1])}: {seen.held[0]}; the previous roster "
              "stays in force (officehours roster shows it, officehours roster --accept "
              "applies it)")
    for line in _table(seen):
        print(line)
    return EXIT_FAILED if failing else EXIT_OK


def _table(seen: overview.Overview) -> list[str]:
    """One row per instructor shown, each with the lines that explain it."""
    lines: list[str] = []
    header = ("INSTRUCTOR", "LAST PASS", "NEXT SESSION", "ZOOM", "STUDENTS MEET")
    table: list[tuple[str, ...]] = [header]
    # names are cut only to fit a terminal's width, never in a pipe or a file
    room = shutil.get_terminal_size().columns - 100 if sys.stdout.isatty() else None
    for r in seen.rows:
        who = f"{r.instructor} <{r.email}>"
        if room is not None and len(who) > max(room, 24):
            who = who[:max(room, 24) - 1] + "…"
        taken_out = bool(r.offboarded)  # not served: no session of theirs is ours to show
        table.append((who, _when(r.last_pass),
                      "-" if taken_out else "under way" if r.session_under_way else _when(
                          r.next_session),
                      r.zoom, describe_meets(r.students_meet)
                      if r.students_meet and not taken_out else "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for line, shown in zip(table, [None, *seen.rows], strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if shown is not None and shown.leaves_at:
            lines.append(f"    left the roster: offboarded at {_when(shown.leaves_at)}")
        elif shown is not None and shown.source == "roster":
            lines.append("    from the roster")
        if shown is not None and shown.last_error:
            lines.append(f"    last error: {shown.last_error}")
    return lines


def _lead_lines(seen: overview.Overview) -> list[str]:
    """Which node leads and every node's last heartbeat, with [state] url (on SQLite one
    node always leads: nothing to say)."""
    lead = seen.leader
    if not seen.shared:
        return []
    if lead is None:
        lines = ["leader: none yet (no node has led)"]
    elif not lead["lease_running"]:
        lines = [f"leader: NONE: the lease of {lead['node']} (epoch {lead['epoch']}) ran "
                 "out; a standby takes it"]
    elif not lead["renewing"]:
        lines = [f"leader: {lead['node']}, epoch {lead['epoch']}, NOT RENEWING: its lease "
                 f"was last renewed {lead['seconds_since_renewal']:.0f} s ago; a standby "
                 "takes over when it runs out"]
    else:
        lines = [f"leader: {lead['node']} since {_when(lead['since'])}, epoch {lead['epoch']}"]
    lines += [f"node {n.node}: {n.role}, last heartbeat {_when(n.last_heartbeat)} "
              f"({n.seconds_since:.0f} s ago)" for n in seen.nodes]
    return lines


def _when(value: str | None) -> str:
    """A moment as CONTRACT.md shows times: the date with the year, the time, the zone."""
    if not value:
        return "never" if value is None else "-"
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def cmd_history(args: argparse.Namespace) -> int:
    from .app import reading

    config = loaded(args, secrets=False)
    with reading(config) as state:
        entries = state.audit_log(same_person(args.instructor) if args.instructor else None,
                                  args.since) if state else []
    if args.json:
        print(json.dumps([{"at": at, "instructor": who, "target": target, "action": action,
                           "detail": detail} for at, who, target, action, detail in entries],
                         indent=2))
        return EXIT_OK
    for at, who, target, action, detail in entries:
        what = detail.get("change") or ", ".join(f"{k} {v}" for k, v in detail.items())
        pending = "  (PENDING: the write may not have been done)" if detail.get(
            "pending") else ""
        print(f"{_when(at)}  {who}  {action}  {target}  {what}{pending}")
    if not entries:
        print("nothing recorded" + (" for that instructor" if args.instructor else "")
              + (" in that time" if args.since else ""))
    return EXIT_OK
