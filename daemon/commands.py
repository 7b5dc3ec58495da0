"""What each `officehours` command does (cli.py parses the line and turns errors into
messages and exit codes; reports.py shows the state)."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, load
from .logs import setup_logging
from .model import Instructor, same_person
from .result import Result
from .roster import Change, compare, serving

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 78


def loaded(args: argparse.Namespace, secrets: bool = True) -> Config:
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
    from . import metrics
    from .app import open_engine
    from .nodes import one_writer
    from .runtime.passes import offboard_leavers, run_pass

    config = loaded(args)
    with one_writer(config, args.dry_run) as fence:
        engine = open_engine(config, dry_run=args.dry_run, fence=fence)
        try:
            began = time.monotonic()
            serving = offboard_leavers(engine.config, engine, datetime.now(UTC))
            results = run_pass(engine, serving.instructors)
            if not args.dry_run:
                metrics.pass_ended(time.monotonic() - began)
                metrics.publish(config, engine.state, True, fence.epoch if fence else None,
                                datetime.now(UTC))
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

    config = loaded(args)
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

    config = loaded(args, secrets=False)
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

    config = loaded(args)
    engine = open_engine(config, dry_run=True)  # reads only, state included
    try:
        return doctor.run(config, engine, sample=args.sample)
    finally:
        engine.close()


def cmd_run(args: argparse.Namespace) -> int:
    from .service import Service

    return Service(args.config).run()


def cmd_roster(args: argparse.Namespace) -> int:
    from .app import roster_groups, writing

    config = loaded(args, secrets=False)
    if config.roster is None:
        print(f"{config.path}: no [roster] section: the instructors are the "
              "[[instructors]] list", file=sys.stderr)
        return EXIT_CONFIG
    sources = config.roster
    if sources.entra_group_id or sources.google_group:  # read with the apps' secrets
        config = loaded(args)
    with writing(config) as state, roster_groups(config) as groups:
        members, change = compare(state, sources, config.instructors, groups)
        if args.accept:
            if members is None or not members:  # nothing readable: nothing to accept
                print(f"nothing to accept: {change.held}; the roster in force stays",
                      file=sys.stderr)
                return EXIT_FAILED
            served = serving(config, state, datetime.now(UTC), accept=True, groups=groups)
            print(f"roster applied: {len(served.instructors)} instructor(s) served from the "
                  "next pass (a running service picks it up)")
            return EXIT_OK
        applied = state.roster()
        held = state.held()
    _say_roster(config, applied, held, change, args.json)
    return EXIT_FAILED if change.held else EXIT_OK


def _say_roster(config: Config, applied: dict[str, tuple[dict[str, str], str | None]],
                held: tuple[str, str] | None, change: Change, as_json: bool) -> None:
    """The roster in force, what the next read would do, and a read held now."""
    sources = config.roster
    assert sources is not None
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
    if as_json:
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


def cmd_unit(args: argparse.Namespace) -> int:
    from .deploy import credential_name, render_unit, unit_state_problem

    config = loaded(args, secrets=False)
    if args.socket is not None:
        return _socket_unit(config, args.socket)
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


def _socket_unit(config: Config, address: str) -> int:
    from .deploy import render_socket
    from .values import SYSTEMD_SOCKET, listen_address

    try:
        listen_address(address)
    except ValueError as err:
        print(f"--socket: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if address == SYSTEMD_SOCKET:
        print('--socket: give the address to listen on, e.g. 127.0.0.1:8787', file=sys.stderr)
        return EXIT_CONFIG
    if config.push is None or config.push.listen != SYSTEMD_SOCKET:
        print(f'{config.path}: push.listen: set listen = "systemd" for the service to take '
              "the socket's connections", file=sys.stderr)
        return EXIT_CONFIG
    print(render_socket(address), end="")
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

    config = loaded(args, secrets=False)
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
