"""The `officehours` command line: the parser, and the one place where errors become
messages and exit codes (commands.py does each command, reports.py shows the state)."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import __version__
from .commands import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    cmd_check_config,
    cmd_demo,
    cmd_doctor,
    cmd_example_config,
    cmd_example_monitoring,
    cmd_reinstate,
    cmd_remove_links,
    cmd_roster,
    cmd_run,
    cmd_state_migrate,
    cmd_sync,
    cmd_unit,
)
from .config import ConfigError, default_config_path
from .reports import cmd_history, cmd_status
from .store import Fenced, StateError

DESCRIPTION = """\
officehours puts each instructor's Zoom Personal Meeting ID (PMI) link into the
"Office Hours" events they organize (Google Calendar or Microsoft 365), and makes
sure the PMI requires a passcode and has the waiting room on before each session.

Exit codes: 0 all good; 1 at least one instructor failed (the others were still
processed); 78 the configuration is unusable."""


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


Add = Callable[[str, object, str, str], argparse.ArgumentParser]


def _setup_commands(add: Add) -> None:
    """Installing and checking: the configuration, the unit, examples, the demo."""
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
    unit = add("unit", cmd_unit, "print the systemd unit for this configuration",
               "Print the systemd unit that runs this installation with this configuration: "
               "LoadCredential= for exactly the secrets it names (from /etc/officehours/"
               "credentials), the hardening, the notify protocol. Install it with: "
               "officehours --config FILE unit | sudo tee "
               "/etc/systemd/system/officehours.service")
    unit.add_argument("--socket", metavar="HOST:PORT", default=None,
                      help='print officehours.socket instead, for [push] listen = "systemd" '
                           "(socket activation): the receiver's address")
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
    add("demo", cmd_demo, "the whole pipeline against built-in local emulators",
        "Start local Google Calendar and Zoom emulators with a seeded domain, run a real "
        "pass, and show what changed in each calendar and in Zoom.")


def _pass_commands(add: Add) -> None:
    """The passes: one now, or the service."""
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


def _people_commands(add: Add) -> None:
    """Who is served: the roster, offboarding and back, the state's home."""
    roster_cmd = add("roster", cmd_roster, "the roster: who it serves, what the next read "
                     "would change", "Show the instructors from [[instructors]] and from the "
                     "[roster] source, who is leaving, and what the next read would add or "
                     "take out, without applying it. A read that failed, was empty or dropped "
                     "more than roster.max_drop_percent is held until --accept. Exit 1 while "
                     "a read is held or would be.")
    roster_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    roster_cmd.add_argument("--accept", action="store_true",
                            help="apply the roster file as it is now, whatever it drops")
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


def _report_commands(add: Add) -> None:
    """Looking: the live checks, the state, the audit log."""
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

    _pass_commands(add)
    _setup_commands(add)
    _people_commands(add)
    _report_commands(add)
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
