"""A throwaway PostgreSQL cluster (Debian's postgresql package: initdb and pg_ctl) in a
temporary directory, for the tests and `make failover`; removed on exit.

initdb refuses root, so as root the cluster belongs to the `postgres` user (runuser).
Password authentication over TCP on 127.0.0.1 (scram-sha-256), as a campus database has.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .server import CertificateAuthority

USER, PASSWORD = "officehours", "s3cret-db-password"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, None when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing() -> str | None:
    """Why no cluster can be made here, or None."""
    if binaries() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to become the postgres user"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    port: int
    root: Path
    password_file: Path

    def url(self, database: str = "officehours", port: int | None = None) -> str:
        return f"postgresql://{USER}@127.0.0.1:{port or self.port}/{database}"

    def psql(self, sql: str, database: str = "officehours") -> str:
        return subprocess.run(
            [str(Path(str(binaries())) / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p",
             str(self.port), "-U", USER, "-d", database, "-c", sql],
            env={**os.environ, "PGPASSWORD": PASSWORD}, check=True, capture_output=True,
            text=True).stdout

    def create_database(self, name: str) -> str:
        self.psql(f"CREATE DATABASE {name}", database="postgres")
        return self.url(name)


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def cluster(tls: CertificateAuthority | None = None) -> Iterator[Cluster]:
    """`tls`: the server also speaks TLS, with a certificate from this authority."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError(missing())
    root = Path(tempfile.mkdtemp(prefix="officehours-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True}
    try:
        subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", USER,
                                  "--pwfile", str(pwfile), "--auth-local=scram-sha-256",
                                  "--auth-host=scram-sha-256", "-E", "UTF8",
                                  "--no-sync"]), **quiet)  # type: ignore[call-overload]
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        if tls is not None:
            tls.write_leaf(data / "server.crt", data / "server.key")
            if os.geteuid() == 0:
                for name in ("server.crt", "server.key"):
                    shutil.chown(data / name, "postgres")
            options += " -c ssl=on"
        subprocess.run(_as_owner([
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
            options, "start"]), **quiet)  # type: ignore[call-overload]
        made = Cluster(port, root, root / "db-password")
        made.password_file.write_text(PASSWORD + "\n")
        made.password_file.chmod(0o600)  # a secret: check-config refuses one others can read
        made.psql("CREATE DATABASE officehours", database="postgres")
        yield made
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                                  "immediate", "stop"]), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)


class Proxy:
    """A TCP proxy in front of the cluster that can stop forwarding (`cut`) while keeping
    every connection open: a database gone silent, which no TCP keepalive notices."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def cut(self) -> None:
        self._forwarding.clear()

    def heal(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        self._closed = True
        self._forwarding.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._forwarding.wait()
        try:
            server = socket.create_connection(("127.0.0.1", self._target))
        except OSError:
            return
        self._sockets.append(server)
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                self._forwarding.wait()
                if self._closed:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
