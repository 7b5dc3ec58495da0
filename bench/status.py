"""How long `officehours status` takes for a campus: a state as a pass leaves it for N
roster instructors (every status recorded, a tenth failing), then `status`, `status
--json` and `status --failing` as an admin runs them (a new process each, output to a
pipe). Prints the figures; exits 1 when one is over the budget (2 s at 5,000).

    python bench/status.py [--instructors 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.store.sqlite import State

BUDGET = 2.0  # seconds, for 5,000 instructors (issue 19)


def campus(root: Path, count: int) -> Path:
    """A config with a roster of `count`, and its state as after a pass."""
    (root / "zoom-secret").write_text("unused\n")
    (root / "roster.csv").write_text("name,email,provider\n" + "".join(
        f"Instructor {n},i{n}@campus.example.edu,google\n" for n in range(count)))
    config = root / "config.toml"
    config.write_text(
        f'[service]\nstate_dir = "{root / "state"}"\n'
        f'[zoom]\naccount_id = "a"\nclient_id = "c"\nclient_secret_file = "{root}/zoom-secret"\n'
        '[google]\ncredentials_file = "unused.json"\n'
        f'[roster]\ncsv_file = "{root / "roster.csv"}"\n')
    (root / "state").mkdir()
    state = State.open(root / "state")
    now = datetime.now(UTC)
    members = [{"name": f"Instructor {n}", "email": f"i{n}@campus.example.edu",
                "provider": "google", "calendar_id": "primary",
                "zoom_user": f"i{n}@campus.example.edu"} for n in range(count)]
    state.apply_roster(members, now)
    meets = json.dumps({"passcode": True, "passcode_in_link": True, "waiting_room": True})
    for n, member in enumerate(members):
        start = now + timedelta(hours=1 + n % 72)
        state.record_status(
            member["email"], member["name"], last_pass=now.isoformat(),
            last_error="Zoom kept the PMI insecure" if n % 10 == 0 else None,
            zoom_state="secure" if n % 10 else "refused: waiting room locked",
            zoom_checked=now.isoformat(), next_session=start.isoformat(),
            next_session_end=(start + timedelta(hours=1)).isoformat(), pmi=meets)
    state.close()
    return config


def timed(config: Path, *args: str) -> float:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(config),
                           "status", *args], capture_output=True, text=True)
    took = time.monotonic() - began
    if done.returncode not in (0, 1) or "Traceback" in done.stderr:
        raise SystemExit(f"status {' '.join(args)} failed: {done.stderr[-500:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructors", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = campus(Path(folder), args.instructors)
        budget = BUDGET * args.instructors / 5000
        broken = []
        print(f"status for {args.instructors} instructors ({args.runs} runs each, a new "
              "process each, output to a pipe)")
        for variant in ((), ("--json",), ("--failing",)):
            runs = [timed(config, *variant) for _ in range(args.runs)]
            name = " ".join(("status", *variant))
            print(f"{name:<20} median {statistics.median(runs):.2f} s   max {max(runs):.2f} s")
            if statistics.median(runs) > budget:
                broken.append(f"{name}: {statistics.median(runs):.2f} s > {budget:.1f} s")
    for line in broken:
        print(f"OVER BUDGET: {line}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
