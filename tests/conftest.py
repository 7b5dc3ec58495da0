"""Shared fixtures: a sandbox domain on loopback, and the real CLI in a subprocess."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from officehours_sandbox import postgres
from officehours_sandbox.domain import Sandbox, checked
from officehours_sandbox.waiting import wait_for as wait_for

ZONE = ZoneInfo("America/New_York")
# a real private key (EC: quick to make) for credential files that must parse
TEST_KEY = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption()).decode()


def at(when: datetime) -> dict[str, str]:
    return {"dateTime": when.astimezone(ZONE).isoformat(), "timeZone": ZONE.key}


def clean_env() -> dict[str, str]:
    """The environment of a subprocess: no proxies, no CA overrides from the caller."""
    drop = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
            "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
            "OFFICEHOURS_CONFIG", "NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM")
    return {k: v for k, v in os.environ.items() if k not in drop}


class Running:
    """`officehours run` with `config`, its log in a file read while it runs (a restart
    appends to it)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.start()

    def start(self) -> None:
        with self.log.open("a") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "--config", str(self.config), "run"],
                stdout=subprocess.DEVNULL, stderr=stderr, env=clean_env())

    def said(self, text: str) -> int:
        """How many times the log says `text` so far."""
        return self.log.read_text().count(text)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)
        assert self.process.returncode == 0, self.log.read_text()[-3000:]
        return self.log.read_text()


def officehours(config: Path | None, *args: str, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    """The CLI as an admin types it, run in this process: starting Python and importing
    the vendors' libraries was most of a short test's time. Its environment is `env`
    (default: clean_env()) for the call, its output captured, and the logging it sets up
    undone after. Where a real process is the point (signals, kill -9, the service), the
    tests use `officehours_process`, `spawn` or `sigkill_after`."""
    from daemon.cli import main

    argv = [*(["--config", str(config)] if config is not None else []), *args]
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env or clean_env())
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: --help, usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for handler in root.handlers[:]:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, saved_level in levels.items():
            logging.getLogger(name).setLevel(saved_level)
    return subprocess.CompletedProcess(["officehours", *argv], code, out.getvalue(),
                                       err.getvalue())


def officehours_process(config: Path | None, *args: str, timeout: float = 60,
                        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own."""
    command = [sys.executable, "-m", "daemon.cli"]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env())


def spawn(config: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(), **kwargs)


def sigkill_after(config: Path, emulators: list[Any], nth: int,
                  method: str | None = None) -> bool:
    """Run `sync` and SIGKILL it right after the vendor has handled its n-th request (of
    `method`, if given): the request took effect, its answer never arrives. Returns
    whether the pass got that far."""
    reached, release = threading.Event(), threading.Event()
    count = [0]
    lock = threading.Lock()

    def hang_after(request: Any, response: Any) -> None:
        if method is not None and request.method != method:
            return
        with lock:
            count[0] += 1
            mine = count[0] == nth
        if mine:
            reached.set()
            release.wait(10)

    for emulator in emulators:
        emulator.after_hooks.append(hang_after)
    process = spawn(config, "sync")
    try:
        reached.wait(30)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
        release.set()
        for emulator in emulators:
            emulator.after_hooks.remove(hang_after)
    return reached.is_set()




@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with checked(tmp_path) as box:
        yield box


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


HOUR = timedelta(hours=1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster]:
    """One throwaway PostgreSQL cluster per test worker; a database per test (pg_url).

    Skips, saying why, where PostgreSQL is not installed, except in CI (.ci/run sets
    OFFICEHOURS_REQUIRE_POSTGRES, having installed it): there a missing one fails."""
    why = postgres.missing()
    if why:
        if os.environ.get("OFFICEHOURS_REQUIRE_POSTGRES"):
            pytest.fail(why)
        pytest.skip(why)
    with postgres.cluster() as made:
        yield made


@pytest.fixture
def pg_url(pg_cluster: postgres.Cluster) -> str:
    """A fresh database of the test's own in the worker's cluster."""
    return pg_cluster.create_database(f"t{uuid.uuid4().hex[:12]}")
