"""`make failover`: two nodes on a throwaway PostgreSQL, the leader killed with SIGKILL
at random points of its passes, N rounds (sandbox/officehours_sandbox/failover.py); then the steady
pass's database round trips per instructor on PostgreSQL and on SQLite. Prints one
table; writes JSON. Needs Debian's postgresql package (initdb, pg_ctl).

    python bench/failover.py                          # 20 rounds, lease 10 s (the default)
    python bench/failover.py --rounds 3 --lease 3     # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
from pathlib import Path

from officehours_sandbox import postgres
from officehours_sandbox.campus import now_utc, seed_campus
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.failover import drill

from daemon.app import open_engine
from daemon.config import load
from daemon.runtime.passes import run_pass


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def round_trips(work: Path, instructors: int) -> dict[str, float]:
    """Statements per instructor in a steady pass (nothing to write), on each backend."""
    logging.disable(logging.WARNING)
    figures: dict[str, float] = {}
    work.mkdir(parents=True)
    with postgres.cluster() as cluster:
        box = Sandbox(work)
        try:
            seed_campus(box, instructors, now_utc(), random.Random(7), other_events=5)
            shared = {"url": cluster.url(), "password_file": str(cluster.password_file)}
            for backend, state in (("sqlite", None), ("postgresql", shared)):
                config = load(box.write_config(state=state, state_dir=str(work / backend)))
                engine = open_engine(config)
                try:
                    run_pass(engine, config.instructors)  # converge: every link written
                    run_pass(engine, config.instructors)
                    before = engine.state.round_trips  # type: ignore[attr-defined]
                    results = run_pass(engine, config.instructors)
                    assert not any(r.changes or r.error for r in results), results
                    after = engine.state.round_trips  # type: ignore[attr-defined]
                finally:
                    engine.close()
                figures[backend] = (after - before) / instructors
        finally:
            box.stop()
            logging.disable(logging.NOTSET)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--lease", type=int, default=10, help="[state] lease_seconds")
    parser.add_argument("--instructors", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("failover-results.json"))
    args = parser.parse_args()
    why = postgres.missing()
    if why:
        print(f"make failover needs PostgreSQL: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="officehours-failover-") as work:
        report = drill(Path(work) / "drill", args.rounds, args.instructors, args.lease,
                       args.seed)
        trips = round_trips(Path(work) / "trips", 40)
    times = report.failover_seconds
    rows = [
        ("rounds (leader killed with SIGKILL)", f"{report.rounds}"),
        ("lease_seconds", f"{args.lease}"),
        ("failover p50 / p99 / max", f"{percentile(times, .5):.1f} s / "
         f"{percentile(times, .99):.1f} s / {max(times):.1f} s"),
        ("duplicate blocks", f"{report.duplicates}"),
        ("lost instructor edits", f"{report.lost_edits}"),
        ("sessions started insecure", f"{report.insecure_starts} of "
         f"{report.sessions_watched}"),
        ("epochs rise, audit log in order", f"{report.epochs_in_order} "
         f"({report.epochs[0]}..{report.epochs[-1]})"),
        ("steady pass, statements per instructor",
         f"SQLite {trips['sqlite']:.1f}, PostgreSQL {trips['postgresql']:.1f} round trips"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    args.json.write_text(json.dumps({
        "rounds": report.rounds, "lease_seconds": args.lease, "failover_seconds": times,
        "failover_p50": percentile(times, .5), "failover_p99": percentile(times, .99),
        "duplicates": report.duplicates, "lost_edits": report.lost_edits,
        "insecure_starts": report.insecure_starts, "sessions": report.sessions_watched,
        "epochs": report.epochs, "epochs_in_order": report.epochs_in_order,
        "round_trips_per_instructor": trips}, indent=2))
    # each round: one standby takeover within the lease and a poll or two of its end, and
    # one session watched at its start
    ok = (report.duplicates == report.lost_edits == report.insecure_starts == 0
          and report.epochs_in_order and report.rounds == args.rounds
          and report.sessions_watched == args.rounds and max(times) < args.lease + 2.5
          and report.epochs == sorted(set(report.epochs)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
