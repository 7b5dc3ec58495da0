"""The `officehours` command, and the one place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import Config, ConfigError, default_config_path, load
from .logs import setup_logging
from .model import Instructor, same_person
from .store import Fenced, StateError

if TYPE_CHECKING:  # the engine (and the vendors' libraries) only for commands that run it
    from .engine import Result

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 78
log = logging.getLogger("daemon")

DESCRIPTION = """\
officehours puts each instructor's Zoom Personal Meeting ID (PMI) link into the
"Office Hours" events they organize (Google Calendar or Microsoft 365), and makes
sure the PMI requires a passcode and has the waiting room on before each session.

Exit codes: 0 all good; 1 at least one instructor failed (the others were still
processed); 78 the configuration is unusable."""


def _config(args: argparse.Namespace, secrets: bool = True) -> Config:
    config = load(args.config, secrets=secrets)
    setup_logging(config.service.log_level)
    return config


def cmd_check_config(args: argparse.Namespace) -> int:
    from .roster import problems

    config = (load(args.config, secrets=False) if args.without_secrets
              else load(args.config, unit=args.unit))
    setup_logging(config.service.log_level)
    found = problems(config)
    if found:
        raise ConfigError(found)
    members, held = _roster_file_verdict(config)
    counts = {p: sum(i.provider == p for i in config.instructors) for p in ("google", "microsoft")}
    print(f"{config.path}: OK, {len(config.instructors)} instructor(s) "
          f"(google {counts['google']}, microsoft {counts['microsoft']})" + (
              f" and {members} roster member(s) in {config.roster.csv_file}"
              if members is not None and config.roster else ""))
    if held:
        print(f"{config.path}: roster.csv_file: `run` would HOLD this read, the roster last "
              f"applied staying in force: {held} (officehours roster shows it, officehours "
              "roster --accept applies it)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _roster_file_verdict(config: Config) -> tuple[int | None, str | None]:
    """A roster that is a file alone, on SQLite: its members, and whether `run` would hold
    the read against the roster last applied (no network: groups and a shared database
    are for `roster` and doctor)."""
    from .app import reading
    from .roster import file_verdict

    roster = config.roster
    if roster is None or roster.csv_file is None or roster.entra_group_id or \
            roster.google_group or config.state is not None:
        return None, None
    with reading(config) as state:
        return file_verdict(config, state)


def _report(results: list[Result], dry_run: bool) -> int:
    failed = 0
    for result in results:
        who = f"{result.instructor.name} <{result.instructor.email}>"
        if result.offboarded:
            print(f"{who}: not served: taken out by remove-links (officehours reinstate "
                  f"--instructor {result.instructor.email} serves them again)")
            continue
        verb = "would change" if dry_run else "changed"
        zoom = f", Zoom {result.zoom}" if result.zoom else ""
        if result.error:  # one line per person: the failure, and what was done before it
            failed += 1
            done = f" ({len(result.changes)} event(s) {verb} first)" if result.changes else ""
            print(f"{who}: FAILED: {result.error}{zoom}{done}", file=sys.stderr)
        else:
            print(f"{who}: {len(result.changes)} event(s) {verb}{zoom}")
        for line in result.changes:
            print(f"    {line}")
    print(f"{len(results)} instructor(s), {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    from . import metrics, overview
    from .app import open_engine
    from .nodes import one_writer
    from .runtime.passes import offboard_leavers, run_pass

    config = _config(args)
    with one_writer(config, args.dry_run) as fence:
        engine = open_engine(config, dry_run=args.dry_run, fence=fence)
        try:
            began = time.monotonic()
            serving = offboard_leavers(engine.config, engine, datetime.now(UTC))
            results = run_pass(engine, serving.instructors)
            if config.metrics is not None and not args.dry_run:
                metrics.pass_ended(time.monotonic() - began)
                metrics.write(config.metrics.textfile, overview.read(
                    config, engine.state, datetime.now(UTC)), True, fence.epoch if fence else None)
        finally:
            engine.close()
    code = _report(results, args.dry_run)
    if serving.held:
        print(f"roster read held, the previous roster stays in force: {serving.held} "
              "(officehours roster shows it; officehours roster --accept applies it)",
              file=sys.stderr)
        return EXIT_FAILED
    return code


def cmd_remove_links(args: argparse.Namespace) -> int:
    from .app import open_engine

    config = _config(args)
    everyone = _everyone(config) if args.instructor is None else list(config.instructors)
    chosen = [i for i in everyone
              if args.instructor is None or i.key == same_person(args.instructor)]
    if args.instructor is not None and not chosen:  # gone from the config: the state knows
        remembered = _remembered(config, same_person(args.instructor))
        if remembered is None:
            print(f"{config.path}: no instructor with email {args.instructor!r} in the "
                  "configuration or the state", file=sys.stderr)
            return EXIT_CONFIG
        chosen = [remembered]
    engine = open_engine(replace(config, instructors=tuple(chosen)), dry_run=args.dry_run)
    try:
        results = [engine.remove_links(i) for i in chosen]
    finally:
        engine.close()
    if not args.dry_run:
        print("Not served until `officehours reinstate --instructor EMAIL`, even while "
              "listed in the configuration.")
    return _report(results, args.dry_run)


def _everyone(config: Config) -> list[Instructor]:
    """Everyone the program serves or has served, once each: [[instructors]], the roster's
    CSV as it reads now, the roster as last applied (leavers included), and every address
    the state knows (CONTRACT.md: remove-links without --instructor)."""
    from .app import reading
    from .roster import RosterError, read_csv

    found = {i.key: i for i in config.instructors}
    if config.roster is not None and config.roster.csv_file is not None:
        with contextlib.suppress(RosterError):  # unreadable: the state still knows them
            found.update((m.key, m) for m in read_csv(config.roster.csv_file)
                         if m.key not in found)
    known: list[dict[str, str]] = []
    with reading(config) as state:
        if state is not None:
            known = [served for served, _ in state.roster().values()]
            known += [s for key in state.statuses() if (s := state.served_as(key)) is not None]
    for served in known:
        member = Instructor(**served)
        found.setdefault(member.key, member)
    return list(found.values())


def _remembered(config: Config, key: str) -> Instructor | None:
    """An instructor as their last pass was served, from the state."""
    from .app import reading

    with reading(config) as state:
        served = state.served_as(key) if state else None
    return Instructor(**served) if served else None


def cmd_reinstate(args: argparse.Namespace) -> int:
    from .app import writing

    config = _config(args, secrets=False)
    with writing(config) as state:
        back = state.reinstate(same_person(args.instructor) if args.instructor else None)
    for key in back:
        print(f"{key}: served again from the next pass (a running service picks it up)")
    if not back:
        print("nobody was taken out by remove-links" if args.instructor is None else
              f"{args.instructor} was not taken out by remove-links")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor
    from .app import open_engine

    config = _config(args)
    engine = open_engine(config, dry_run=True)  # reads only, state included
    try:
        return doctor.run(config, engine, sample=args.sample)
    finally:
        engine.close()


def cmd_run(args: argparse.Namespace) -> int:
    from .service import Service

    return Service(args.config).run()


def cmd_status(args: argparse.Namespace) -> int:
    from . import overview
    from .app import reading
    from .zoom.policy import describe_meets

    config = _config(args, secrets=False)
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
    if seen.held:
        print(f"ROSTER HELD since {_when(seen.held[1])}: {seen.held[0]}; the previous roster "
              "stays in force (officehours roster shows it, officehours roster --accept "
              "applies it)")
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
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if shown is not None and shown.leaves_at:
            print(f"    left the roster: offboarded at {_when(shown.leaves_at)}")
        elif shown is not None and shown.source == "roster":
            print("    from the roster")
        if shown is not None and shown.last_error:
            print(f"    last error: {shown.last_error}")
    return EXIT_FAILED if failing else EXIT_OK


def _lead_lines(seen: Any) -> list[str]:
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


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def _since(text: str) -> datetime:
    """--since: an ISO date or time, or a span back from now such as 30m, 12h or 7d."""
    spans = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in spans and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{spans[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date, a time or a span like 7d, 12h or 30m") from None
    return moment if moment.tzinfo else moment.astimezone()


def cmd_history(args: argparse.Namespace) -> int:
    from .app import reading

    config = _config(args, secrets=False)
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


def cmd_roster(args: argparse.Namespace) -> int:
    from . import roster
    from .app import roster_groups, writing

    config = _config(args, secrets=False)
    if config.roster is None:
        print(f"{config.path}: no [roster] section: the instructors are the "
              "[[instructors]] list", file=sys.stderr)
        return EXIT_CONFIG
    sources = config.roster
    if sources.entra_group_id or sources.google_group:  # read with the apps' secrets
        config = _config(args)
    with writing(config) as state, roster_groups(config) as groups:
        members, change = roster.compare(state, sources, config.instructors, groups)
        if args.accept:
            if members is None or not members:  # nothing readable: nothing to accept
                print(f"nothing to accept: {change.held}; the roster in force stays",
                      file=sys.stderr)
                return EXIT_FAILED
            serving = roster.serving(config, state, datetime.now(UTC), accept=True,
                                     groups=groups)
            print(f"roster applied: {len(serving.instructors)} instructor(s) served from the "
                  "next pass (a running service picks it up)")
            return EXIT_OK
        applied = state.roster()
        held = state.held()
    report: dict[str, Any] = {
        "source": " and ".join(s for s in (
            str(sources.csv_file) if sources.csv_file else "",
            f"Entra group {sources.entra_group_id}" if sources.entra_group_id else "",
            f"Google Group {sources.google_group}" if sources.google_group else "") if s),
        "instructors": [i.email for i in config.instructors],
        "roster": sorted(k for k, (_, left) in applied.items() if left is None),
        "leaving": sorted(k for k, (_, left) in applied.items() if left is not None),
        "next_read": {"joins": change.joins, "leaves": change.leaves, "held": change.held},
        "held_now": held[0] if held else None,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{len(report['instructors'])} from [[instructors]], {len(report['roster'])} "
              f"from {report['source']}, {len(report['leaving'])} leaving")
        for email in report["roster"]:
            print(f"  {email}")
        print(f"the next read would add {change.joins or 'nobody'}, "
              f"take out {change.leaves or 'nobody'}"
              + (f"; it would be HELD: {change.held}" if change.held else ""))
        if held and change.held:
            print(f"HELD now: {held[0]} (officehours roster --accept applies the read)")
        elif held:  # the verdict of the read made just now is what counts
            print(f"held earlier ({held[0]}); the source reads well now: the next pass "
                  "applies it")
    return EXIT_FAILED if change.held else EXIT_OK


def cmd_unit(args: argparse.Namespace) -> int:
    from .deploy import credential_name, render_unit, unit_state_problem

    config = _config(args, secrets=False)
    names = []
    for key, path in config.secret_files():
        name = credential_name(path)
        if name is None:
            print(f"{config.path}: {key}: {path} is not a credential name: the service "
                  "(DynamicUser) cannot read it; give the file's name and put the file in "
                  "/etc/officehours/credentials", file=sys.stderr)
            return EXIT_CONFIG
        names.append(name)
    state_dir = config.service.state_dir.absolute()
    problem = unit_state_problem(state_dir)
    if problem is not None:
        print(f"{config.path}: service.state_dir: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    executable = Path(sys.prefix) / "bin" / "officehours"
    extra = (config.metrics.textfile.parent,) if config.metrics else ()
    print(render_unit(names, executable, config.path.absolute(), state_dir, extra), end="")
    return EXIT_OK


def cmd_example_config(args: argparse.Namespace) -> int:
    from .deploy import shipped

    print(shipped("config.example.toml"), end="")
    return EXIT_OK


def cmd_example_monitoring(args: argparse.Namespace) -> int:
    from .deploy import shipped

    print(shipped("officehours-dashboard.json" if args.dashboard else "officehours-alerts.yml"),
          end="")
    return EXIT_OK


def cmd_state_migrate(args: argparse.Namespace) -> int:
    """Copy the whole state from where the configuration keeps it to --to."""
    from .nodes import migrate
    from .values import postgres_url

    config = _config(args, secrets=False)
    if args.to != "sqlite":
        try:
            postgres_url(args.to)
        except ValueError as err:
            print(f"--to: {err} (or `sqlite`)", file=sys.stderr)
            return EXIT_CONFIG
    print(migrate(config, args.to, args.password_file, args.force))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    if find_spec("officehours_sandbox") is None:  # a server install has no emulators
        print("officehours demo runs against the emulators of the officehours-sandbox "
              "package, which a server install does not have: `make demo` in a checkout "
              "(or pip install ./sandbox from it)", file=sys.stderr)
        return EXIT_FAILED
    # its own process: the runtime imports nothing of the emulators (they import it)
    return subprocess.call([sys.executable, "-m", "officehours_sandbox.demo"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="officehours", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"officehours {__version__}")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="configuration file (default: $OFFICEHOURS_CONFIG, "
                             "then /etc/officehours/config.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: object, help: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description)
        sub.set_defaults(func=func)
        if name != "demo":  # `officehours status --config FILE` works too
            sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                             help="configuration file (as before the command)")
        return sub

    sync = add("sync", cmd_sync, "one pass over every instructor, then exit",
               "Read every instructor's calendar, put the PMI link into each Office Hours "
               "event, and secure the PMI of instructors whose session is within "
               "service.enforce_lead_minutes (or under way). Exit 1 if any instructor failed.")
    sync.add_argument("--dry-run", action="store_true",
                      help="print what would change; write nothing to calendars, Zoom or state")
    add("run", cmd_run, "the service: sync on a schedule, secure Zoom before each session",
        "Run until SIGTERM/SIGINT: a pass every service.sync_interval_seconds, and a Zoom "
        "check service.enforce_lead_minutes before each session. SIGHUP (systemctl reload) "
        "re-reads the configuration; a configuration that does not load is logged and the "
        "old one stays in force. Speaks systemd's notify protocol (READY, STATUS, WATCHDOG).")
    check = add("check-config", cmd_check_config, "validate the configuration; no network",
                "Validate the file and the files it names, as the service will see them: "
                "secrets must exist, parse, be readable, and not be readable by others; a "
                "credential name must be delivered by the installed unit's LoadCredential= "
                "(or found in $CREDENTIALS_DIRECTORY when set). Exit 0 when usable, 78 with "
                "every problem listed otherwise.")
    check.add_argument("--without-secrets", action="store_true",
                       help="check everything but the secret files' contents (the unit's "
                            "ExecReload: a reload runs where the credentials are the service's)")
    check.add_argument("--unit", type=Path, default=None, metavar="FILE",
                       help="the unit that delivers the credentials (default: "
                            "/etc/systemd/system/officehours.service)")
    add("unit", cmd_unit, "print the systemd unit for this configuration",
        "Print the systemd unit that runs this installation with this configuration: "
        "LoadCredential= for exactly the secrets it names (from /etc/officehours/"
        "credentials), the hardening, the notify protocol. Install it with: "
        "officehours --config FILE unit | sudo tee /etc/systemd/system/officehours.service")
    roster_cmd = add("roster", cmd_roster, "the roster: who it serves, what the next read "
                     "would change", "Show the instructors from [[instructors]] and from the "
                     "[roster] source, who is leaving, and what the next read would add or "
                     "take out, without applying it. A read that failed, was empty or dropped "
                     "more than roster.max_drop_percent is held until --accept. Exit 1 while "
                     "a read is held or would be.")
    roster_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    roster_cmd.add_argument("--accept", action="store_true",
                            help="apply the roster file as it is now, whatever it drops")
    add("example-config", cmd_example_config, "print the example configuration",
        "Print the example configuration, every key with its default and meaning.")
    monitoring = add(
        "example-monitoring", cmd_example_monitoring,
        "print Prometheus alert rules (or a Grafana dashboard) for [metrics] textfile",
        "Print the Prometheus alerting rules shipped for the metrics officehours writes "
        "([metrics] textfile, read by node_exporter's textfile collector), or with "
        "--dashboard a Grafana dashboard (JSON, to import). README.md, Metrics, lists "
        "every metric.")
    monitoring.add_argument("--dashboard", action="store_true",
                            help="the Grafana dashboard instead of the alert rules")
    doctor_cmd = add(
        "doctor", cmd_doctor, "live checks of credentials, calendars and Zoom, with fixes",
        "Check, per instructor ([[instructors]] and every roster member), everything a pass "
        "needs: the configuration and secret files, each token endpoint and the "
        "credentials, read and write access to each calendar (nothing is written), each "
        "Zoom user and PMI, and whether a setting the program must change is locked by the "
        "Zoom account. A terminal shows how far it got. Exit 0 only when every check passes.")
    doctor_cmd.add_argument("--sample", type=_positive, metavar="N",
                            help="check N instructors drawn at random, not all of them (a "
                                 "campus of thousands: a few calendar and Zoom reads each)")
    status = add("status", cmd_status, "per instructor: last pass, next session, Zoom state",
                 "Read the state database (safe while `run` runs; no secret needed) and show "
                 "one row per instructor: last pass, next session, the PMI's state at its "
                 "last check, and what a student meets there; first a summary line, and with "
                 "[state] url the leader and every node's last heartbeat. Exit 1 while any "
                 "instructor's last pass failed, their PMI could not be secured, a roster "
                 "read is held or no pass was recorded for long (the filters do not change "
                 "the exit code), for monitoring.")
    status.add_argument("--json", action="store_true",
                        help="machine-readable output: summary, leader, nodes, instructors")
    status.add_argument("--failing", action="store_true",
                        help="only the instructors whose last pass or room check failed")
    status.add_argument("--instructor", metavar="EMAIL", help="only this instructor")
    status.add_argument("--source", choices=("config", "roster"),
                        help="only those from [[instructors]], or from the roster")
    history = add("history", cmd_history, "what the program changed: the audit log",
                  "Show what the program wrote and repaired (events, Zoom settings), oldest "
                  "first, from the state database; safe while `run` runs.")
    history.add_argument("--instructor", metavar="EMAIL", help="only this instructor")
    history.add_argument("--since", type=_since, metavar="WHEN",
                         help="from this date or time (2026-11-01, 2026-11-01T08:00) or this "
                              "long ago (30m, 12h, 7d)")
    history.add_argument("--json", action="store_true", help="machine-readable output")
    remove = add("remove-links", cmd_remove_links, "take out everything the program wrote",
                 "Remove the program's block from descriptions and the locations it set, "
                 "leaving text the instructor added. For offboarding or uninstalling. The "
                 "instructor is then served no more, by a running service neither, until "
                 "`officehours reinstate`.")
    remove.add_argument("--instructor", metavar="EMAIL",
                        help="only this instructor (also one the configuration no longer "
                             "lists)")
    remove.add_argument("--dry-run", action="store_true", help="print, change nothing")
    reinstate = add("reinstate", cmd_reinstate, "serve again who remove-links took out",
                    "Undo the offboarding of remove-links: the instructor (or, without "
                    "--instructor, everyone taken out) is served again from the next pass, "
                    "by a running service too, as long as the configuration lists them.")
    reinstate.add_argument("--instructor", metavar="EMAIL", help="only this instructor")
    state = add("state", lambda a: EXIT_CONFIG, "the state database: move it",
                "Work on the program's state as a whole.")
    state_commands = state.add_subparsers(dest="state_command", required=True,
                                          metavar="ACTION")
    migrate = state_commands.add_parser(
        "migrate", help="copy the state to PostgreSQL, or back to SQLite",
        description="Copy everything the program keeps (sync tokens, what it wrote, status, "
                    "offboarding, roster, audit log) from where the configuration keeps it "
                    "now to --to, for a move from SQLite to PostgreSQL (two nodes) or back. "
                    "Stop the service first (on every node); then change [state] in the "
                    "configuration and start it again. The source is left as it was.")
    migrate.set_defaults(func=cmd_state_migrate)
    migrate.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                         help="configuration file (as before the command)")
    migrate.add_argument("--to", required=True, metavar="URL",
                         help="postgresql://user@host/database (no password in it), or "
                              "`sqlite` for the file in service.state_dir")
    migrate.add_argument("--password-file", type=Path, metavar="FILE",
                         help="the database password (default: state.password_file)")
    migrate.add_argument("--force", action="store_true",
                         help="replace a state the target already holds")
    add("demo", cmd_demo, "the whole pipeline against built-in local emulators",
        "Start local Google Calendar and Zoom emulators with a seeded domain, run a real "
        "pass, and show what changed in each calendar and in Zoom.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # `kill -USR1 PID` prints every thread's stack; not when stderr is no file (the CLI
    # called inside a test)
    with contextlib.suppress(AttributeError, ValueError, OSError):
        faulthandler.register(signal.SIGUSR1)
    args = build_parser().parse_args(argv)
    if args.config is None:
        args.config = default_config_path()
    if args.command != "demo":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        code: int = args.func(args)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except StateError as err:  # a command stops (78); the service exits 1 unless no restart
        print(f"state database: {err}", file=sys.stderr)  # can help, so systemd tries again
        stops = err.unusable or (err.stuck and args.command != "run")
        return EXIT_CONFIG if stops else EXIT_FAILED
    except Fenced as err:
        print(f"stopped: {err}; another node took the lead while this ran: what was done "
              "stays done, run the command again", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `status | head`: the reader has all it wanted; no traceback
        with contextlib.suppress(OSError):  # at exit, when Python flushes stdout again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
