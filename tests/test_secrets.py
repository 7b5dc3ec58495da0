"""No secret in any log line, error, state or status output: a full pass at debug level
over Google, Outlook and Zoom, with faults on."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import HOUR, at, officehours, spawn, wait_for
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.faults import ALL_KINDS, ZOOM_KINDS, Chaos

from daemon.app import open_engine
from daemon.config import load
from daemon.runtime.passes import run_pass

ADA, MARY = "ada@example.edu", "mary@example.edu"
QUICK = tuple(k for k in ALL_KINDS if k != "timeout")


def faulty_passes(config: Path, passes: int) -> list[str]:
    """Passes in this process at debug level, every logger included (more than the CLI
    shows), retries not waiting: the log of a service meeting faults."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        loaded = load(config)
        engine = open_engine(loaded, sleep=lambda seconds: None)
        try:
            for _ in range(passes):
                results = run_pass(engine, loaded.instructors)
                stream.write("\n".join(str(r.error) for r in results) + "\n")
        finally:
            engine.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return [stream.getvalue()]


@pytest.mark.parametrize(("google_credentials", "embedded"), [
    ("service_account", True), ("authorized_user", True), ("service_account", False)])
def test_no_secret_anywhere(sandbox: Sandbox, now: datetime, google_credentials: str,
                            embedded: bool) -> None:
    """`embedded` False: the account does not put the passcode in join links, so by design
    the passcode goes into the invites (links.include_passcode = "auto"); still nowhere
    else: not in logs, state, status or dry-run output."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789, embed_password_in_join_link=embedded)
    sandbox.add_microsoft_instructor("Mary Somerville", MARY, 8555555555,
                                     embed_password_in_join_link=embedded)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now - timedelta(minutes=5)),
                             end=at(now + HOUR))
    sandbox.graph.add_event(MARY, now - timedelta(minutes=5), now + HOUR,
                            subject="Office Hours")
    key = json.loads((sandbox.credentials / "google.json").read_text())
    secrets = [sandbox.zoom_secret, sandbox.graph_secret,
               key["private_key"].splitlines()[5]]  # a line from inside the PEM
    if google_credentials == "authorized_user":
        info = sandbox.google.add_authorized_user(ADA)
        info["token_uri"] = info["token_uri"].format(url=sandbox.google_server.url)
        (sandbox.credentials / "google.json").write_text(json.dumps(info))
        secrets += [info["refresh_token"], info["client_secret"]]
    config = sandbox.write_config(log_level="debug")
    dry_first = officehours(config, "sync", "--dry-run")  # everything still to do
    outputs = [dry_first.stdout, dry_first.stderr]
    assert "would change" in dry_first.stdout
    for seed, emulator in enumerate((sandbox.google, sandbox.graph)):
        emulator.chaos = Chaos(seed=seed, rate=0.3, kinds=QUICK)
    sandbox.zoom.chaos = Chaos(seed=7, rate=0.3,
                               kinds=tuple(k for k in ZOOM_KINDS if k != "timeout"))

    outputs += faulty_passes(config, 3)  # faults may fail a pass; by the third all is done
    for emulator in (sandbox.google, sandbox.graph, sandbox.zoom):
        emulator.chaos = None
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    dry = officehours(config, "sync", "--dry-run")
    outputs += [result.stdout, result.stderr, officehours(config, "status").stdout,
                officehours(config, "status", "--json").stdout, dry.stdout, dry.stderr]
    assert "DEBUG" in "".join(outputs)
    state_files = b"".join(p.read_bytes() for p in (sandbox.dir / "state").iterdir())

    for emulator in (sandbox.google, sandbox.graph, sandbox.zoom):
        secrets += emulator.issued_tokens
    (ada_event,) = sandbox.google.events[ADA]
    (mary_event,) = sandbox.graph.events[MARY]
    invites = {ADA: sandbox.google.event(ADA, ada_event)["description"],
               MARY: sandbox.graph.event(MARY, mary_event)["body"]["content"]}
    for email in (ADA, MARY):
        user = sandbox.zoom.user(email)
        assert user.secure and user.pmi_password
        assert (f"Passcode: {user.pmi_password}" in invites[email]) is not embedded
        secrets += [user.pmi_password]
        if embedded:
            secrets += [user.join_url.split("pwd=")[1]]
    text = "\n".join(outputs)
    if embedded:
        assert "pwd=***" in text  # join URLs were logged, masked
    for secret in secrets:
        assert secret and secret not in text, "a secret reached the output"
        assert secret.encode() not in state_files, "a secret reached the state database"


def test_the_service_holding_secrets_cannot_be_dumped(sandbox: Sandbox, now: datetime) -> None:
    """A core dump of the service would hold the Graph secret and every access token: the
    running service has no core limit and is not dumpable (checked from inside a process
    that read its secrets the way the service does, since root sees through both)."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    config = sandbox.write_config()
    process = spawn(config, "run")
    try:
        wait_for(lambda: sandbox.google.log, what="the service to have read its secrets")
        limits = Path(f"/proc/{process.pid}/limits").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core
    probe = subprocess.run([sys.executable, "-c", (
        "import ctypes; from daemon.app import read_secret; from pathlib import Path; "
        f"read_secret(Path({str(sandbox.credentials / 'zoom-secret')!r}), 'k'); "
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")],  # PR_GET_DUMPABLE
        capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "0", probe.stderr
