"""The service under a real systemd: PID 1 of a Debian container (systemd-nspawn over a
debootstrapped tree), installed exactly as the README says (the README's offline install:
a wheelhouse gathered once a session where an index is reachable, installed with no
network at all; the unit written by `officehours unit`, secrets in
/etc/officehours/credentials), against the emulators on the host's loopback (the booted
container shares the host's network).

`make systemd-test` runs it (root, systemd-nspawn and debootstrap needed; .ci/run
installs them); `make test` skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from conftest import HOUR, at, clean_env, wait_for
from officehours_sandbox import postgres
from officehours_sandbox.domain import Sandbox

from daemon.reconcile import START_MARK

ROOT = Path(__file__).parent.parent
BASE = Path(os.environ.get("OFFICEHOURS_NSPAWN_BASE", "/var/tmp/officehours-nspawn/bookworm"))
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates"
OH = "/opt/officehours/venv/bin/officehours"
CONFIG = "/etc/officehours/config.toml"
ADA, MARY, GRACE = "ada@example.edu", "mary@example.edu", "grace@example.edu"
EMMY = "emmy@example.edu"
OUTLOOK = (MARY, EMMY)  # the sandbox's Microsoft 365 mailboxes; the others are Google's
README_WHEEL = "officehours_daemon-0.1.0-py3-none-any.whl"  # as the README names it
OFFLINE = "#### Offline install (no package index on the server)"

pytestmark = pytest.mark.skipif(
    os.environ.get("OFFICEHOURS_SYSTEMD_TEST") != "1",
    reason="boots a container under systemd: run `make systemd-test`")


def run(*command: str | Path, check: bool = True, **kwargs: object,
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            timeout=900, env=clean_env(), **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(f"{command} exited {result.returncode}:\n{result.stdout}\n"
                             f"{result.stderr}")
    return result  # type: ignore[no-any-return]


def base_tree() -> Path:
    """A minimal Debian tree with systemd and Python, made once and kept between runs."""
    if (BASE / "usr" / "bin" / "python3").exists():
        return BASE
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install debootstrap systemd-container")
    partial = BASE.with_name(BASE.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    made = run("debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm",
               partial, check=False)
    if made.returncode != 0:  # the machine, not the program: no mirror, no room
        pytest.skip(f"debootstrap could not build a Debian tree here: {made.stderr[-300:]}")
    partial.rename(BASE)
    return BASE


class Container:
    """A booted tree; commands run in it through nsenter (no machined on this host)."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        links = os.environ.get("PIP_FIND_LINKS", "")
        binds = [f"--bind-ro={links}"] if links and Path(links).is_dir() else []
        self.process = subprocess.Popen(
            ["systemd-nspawn", "-D", str(tree), "--register=no", "--keep-unit", *binds,
             "--boot"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.pid = wait_for(self._init_pid, timeout=60, what="the container's systemd")
            wait_for(lambda: self.sh("systemctl is-system-running", check=False).stdout.strip()
                     in ("running", "degraded"), timeout=90, what="the container to boot")
        except AssertionError as err:  # the machine cannot boot a container at all (a
            # failed service of ours leaves the system "degraded", which is accepted)
            self.process.kill()
            self.process.wait(timeout=10)
            pytest.skip(f"systemd-nspawn cannot boot a container on this machine: {err}")

    def _init_pid(self) -> int | None:
        for child in Path("/proc").glob("[0-9]*"):
            try:
                stat = (child / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    return int(child.name)
            except (OSError, ValueError, IndexError):
                continue
        return None

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p",
                   "/bin/sh", "-c", script, check=check)

    def show(self, *properties: str) -> dict[str, str]:
        out = self.sh("systemctl show officehours " + " ".join(f"-p {p}" for p in properties))
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def journal(self) -> str:
        return self.sh("journalctl -u officehours --no-pager -o cat | tail -60",
                       check=False).stdout

    def poweroff(self) -> None:
        self.sh("systemctl poweroff", check=False)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def booted(tree: Path) -> Iterator[Container]:
    """The tree booted; its journal printed when the test fails; powered off after."""
    container = Container(tree)
    try:
        yield container
    except BaseException:
        print(container.journal())
        raise
    finally:
        container.poweroff()


def in_chroot(tree: Path, script: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """A command in the tree before it boots (the host's CA bundle lets pip reach PyPI);
    `extra`: more systemd-nspawn options."""
    host_ca = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    options = [f"--bind-ro={host_ca}:/etc/host-ca.crt", "--setenv=PIP_CERT=/etc/host-ca.crt"]
    links = os.environ.get("PIP_FIND_LINKS", "")
    if links and Path(links).is_dir():  # a local wheel cache, when this machine has one
        options += [f"--bind-ro={links}", f"--setenv=PIP_FIND_LINKS={links}"]
    return run("systemd-nspawn", "-D", tree, "--register=no", "--keep-unit", "--pipe",
               "--quiet", *options, *extra, "/bin/sh", "-c", script)


def offline(tree: Path, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command in the tree before it boots, with no network but its own loopback: no
    package index is reachable, and no wheel cache of this machine is bound in."""
    return run("systemd-nspawn", "-D", tree, "--register=no", "--keep-unit", "--pipe",
               "--quiet", "--private-network", "/bin/sh", "-c", script, check=check)


def fresh_tree(tmp_path: Path) -> Path:
    """A copy of the base tree, with `sudo` as a stand-in (we are root already)."""
    tree = tmp_path / "tree"
    run("cp", "-a", "--reflink=auto", base_tree(), tree)
    sudo = tree / "usr" / "local" / "bin" / "sudo"
    sudo.write_text('#!/bin/sh\nexec "$@"\n')
    sudo.chmod(0o755)
    return tree


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, once a session."""
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=dist)
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def wheelhouse(wheel: Path) -> Path:
    """The README's wheelhouse, gathered as it says on a machine that reaches an index and
    runs the server's OS and Python: the base tree, networked, its changes thrown away."""
    gather = [line.replace(README_WHEEL, wheel.name)
              for line in readme_lines(OFFLINE, blocks=slice(0, 1))]
    assert gather, f"no wheelhouse command in the README's {OFFLINE!r}"
    in_chroot(base_tree(), " && ".join([
        "cd /root/dist", "python3 -m venv /tmp/pip", ". /tmp/pip/bin/activate", *gather]),
        "--volatile=overlay", f"--bind={wheel.parent}:/root/dist")
    return wheel.parent / "wheelhouse"


@pytest.fixture
def installed(tmp_path: Path, wheelhouse: Path) -> Iterator[tuple[Path, Sandbox]]:
    """A copy of the base tree with officehours installed as the README's offline install
    says: the wheelhouse copied to the server, installed from with no network."""
    tree = fresh_tree(tmp_path)
    shutil.copytree(wheelhouse, tree / "root" / "wheelhouse")
    reach = offline(tree, "python3 -c 'import socket; "
                          "socket.create_connection((\"pypi.org\", 443), 10)'", check=False)
    assert reach.returncode != 0, "the offline install's container reaches PyPI"
    install = readme_lines(OFFLINE, blocks=slice(1, None))
    assert any("--no-index" in line for line in install), install
    offline(tree, " && ".join(["cd /root", *install]))

    (tmp_path / "sandbox").mkdir()
    box = Sandbox(tmp_path / "sandbox")
    etc = tree / "etc" / "officehours"
    (etc / "credentials").mkdir(parents=True, mode=0o700)
    for secret in box.credentials.iterdir():
        shutil.copy(secret, etc / "credentials" / secret.name)
        (etc / "credentials" / secret.name).chmod(0o600)
    shutil.copy(box.ca.bundle, etc / "ca.pem")
    try:
        yield tree, box
    finally:
        box.stop()


def configure(tree: Path, box: Sandbox, **service: object) -> None:
    written = box.write_config(relative_secrets=True, ca_bundle="/etc/officehours/ca.pem",
                               state_dir="/var/lib/officehours", **service)
    (tree / "etc" / "officehours" / "config.toml").write_text(written.read_text())


def linked(box: Sandbox, email: str, event: str) -> bool:
    if email in OUTLOOK:
        return START_MARK in box.graph.event(email, event)["body"]["content"]
    return START_MARK in box.google.event(email, event).get("description", "")


def any_link(box: Sandbox, email: str, event: str) -> bool:
    """The program's block or the instructor's PMI link anywhere in the event (its
    location too)."""
    shown = box.graph.event(email, event) if email in OUTLOOK else box.google.event(
        email, event)
    text = json.dumps(shown, ensure_ascii=False)
    return START_MARK in text or f"/j/{box.zoom.user(email).pmi}" in text


def test_the_service_under_systemd(installed: tuple[Path, Sandbox], now: datetime) -> None:
    tree, box = installed
    box.add_instructor("Ada Lovelace", ADA, 8123456789)
    box.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    ada = box.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                               end=at(now + 2 * HOUR))
    mary = box.graph.add_event(MARY, now + HOUR, now + 2 * HOUR, subject="Office Hours")
    configure(tree, box, sync_interval_seconds=3)
    # the README's steps: the unit written for this config, check-config, enable
    in_chroot(tree, f"{OH} --config {CONFIG} unit > /etc/systemd/system/officehours.service"
                    f" && {OH} --config {CONFIG} check-config && systemctl enable officehours")
    # a shorter watchdog, so that its pings are seen within the test (a drop-in, as an
    # admin would write one)
    dropin = tree / "etc" / "systemd" / "system" / "officehours.service.d"
    dropin.mkdir(parents=True)
    (dropin / "watchdog.conf").write_text("[Service]\nWatchdogSec=4\n")

    with booted(tree) as container:
        # READY and STATUS reach systemd; the credentials arrive (Google and Microsoft);
        # TLS and Python run under the hardening
        wait_for(lambda: container.show("StatusText")["StatusText"].startswith(
            "2 instructors, 0 problems"), timeout=90, what="the first pass")
        assert container.show("ActiveState", "Type")["ActiveState"] == "active"
        assert linked(box, ADA, ada) and linked(box, MARY, mary), container.journal()
        assert box.zoom.user(ADA).secure and box.zoom.user(MARY).secure

        # the watchdog is fed
        first = int(container.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])
        wait_for(lambda: int(container.show("WatchdogTimestampMonotonic")[
            "WatchdogTimestampMonotonic"]) > first, timeout=20, what="a watchdog ping")

        # the DynamicUser's state persists across a restart: no calendar is read in full
        # again, nothing is written again
        state = tree / "var" / "lib" / "private" / "officehours" / "state.sqlite3"
        assert state.exists()
        writes = len(box.google.writes()) + len(box.graph.writes())
        container.sh("systemctl restart officehours")
        wait_for(lambda: container.show("StatusText")["StatusText"].startswith(
            "2 instructors"), timeout=60, what="a pass after the restart")
        assert len(box.google.writes()) + len(box.graph.writes()) == writes
        assert state.exists()

        # reload applies a new config, and keeps the old one when the new one is broken
        box.add_instructor("Grace Hopper", GRACE, 8234567890)
        grace = box.google.add_event(GRACE, summary="Office Hours", start=at(now + HOUR),
                                     end=at(now + 2 * HOUR))
        configure(tree, box, sync_interval_seconds=3)
        container.sh("systemctl reload officehours")
        wait_for(lambda: linked(box, GRACE, grace), timeout=60, what="the reloaded config")
        config = tree / "etc" / "officehours" / "config.toml"
        config.write_text(config.read_text() + "\n[bogus]\n")
        refused = container.sh("systemctl reload officehours", check=False)
        assert refused.returncode != 0  # the unit checks the config before signalling
        assert "bogus" in container.journal()  # check-config said which key
        assert container.show("ActiveState")["ActiveState"] == "active"
        configure(tree, box, sync_interval_seconds=3)  # the admin mends the config

        # a clean stop
        container.sh("systemctl stop officehours")
        stopped = container.show("Result", "ExecMainStatus", "ActiveState")
        assert stopped == {"Result": "success", "ExecMainStatus": "0",
                           "ActiveState": "inactive"}, container.journal()

        # the README's rollback: a state database an upgrade migrated further than this
        # version knows is refused with 78 and no restart loop; the copy taken before the
        # upgrade brings the service back
        live = "/var/lib/private/officehours/state.sqlite3"
        container.sh(f"cp -a {live} /root/officehours-state.before-upgrade")
        newer = sqlite3.connect(state)
        newer.execute("PRAGMA user_version = 99")
        newer.commit()
        newer.close()
        container.sh("systemctl start officehours", check=False)
        wait_for(lambda: container.show("ActiveState")["ActiveState"] == "failed",
                 timeout=30, what="the service to refuse the newer state")
        refused = container.show("ExecMainStatus", "NRestarts")
        assert refused == {"ExecMainStatus": "78", "NRestarts": "0"}, container.journal()
        assert "newer than this officehours understands" in container.journal()
        container.sh(f"cp -a /root/officehours-state.before-upgrade {live} && "
                     "systemctl reset-failed officehours && systemctl start officehours")
        wait_for(lambda: container.show("StatusText")["StatusText"].startswith(
            "3 instructors, 0 problems"), timeout=60, what="the service back on the copy")
        container.sh("systemctl stop officehours")

        # an uninstall that takes the state with it
        container.sh("systemctl clean --what=state officehours")
        assert not state.exists()
        journal = container.journal()
        assert "Traceback" not in journal and box.zoom_secret not in journal


def test_a_roster_campus_uninstalled_as_the_readme_says(installed: tuple[Path, Sandbox],
                                                       now: datetime) -> None:
    """Two instructors in [[instructors]] and two more only in a `[roster] csv_file` (one
    of each provider both times); once all four are served, the README's uninstall typed
    line by line leaves no link in anyone's office hours, and nothing of the program."""
    tree, box = installed
    box.add_instructor("Ada Lovelace", ADA, 8123456789)
    box.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
    box.google.add_calendar(GRACE)  # the roster's members: not in box.instructors, so
    box.zoom.add_user(GRACE, 8234567890)  # not in the config's [[instructors]]
    box.graph.add_mailbox(EMMY)
    box.zoom.add_user(EMMY, 8345678901)
    events = {email: box.google.add_event(email, summary="Office Hours",
                                          start=at(now + HOUR), end=at(now + 2 * HOUR))
              for email in (ADA, GRACE)}
    events |= {email: box.graph.add_event(email, now + HOUR, now + 2 * HOUR,
                                          subject="Office Hours") for email in OUTLOOK}
    etc = tree / "etc" / "officehours"
    (etc / "instructors.csv").write_text("name,email,provider\n"
                                         f"Grace Hopper,{GRACE},google\n"
                                         f"Emmy Noether,{EMMY},microsoft\n")
    configure(tree, box, sync_interval_seconds=3)
    config = etc / "config.toml"
    config.write_text(config.read_text()
                      + '\n[roster]\ncsv_file = "/etc/officehours/instructors.csv"\n')
    assert GRACE not in config.read_text() and EMMY not in config.read_text()
    in_chroot(tree, f"{OH} --config {CONFIG} unit > /etc/systemd/system/officehours.service"
                    f" && {OH} --config {CONFIG} check-config && systemctl enable officehours")

    with booted(tree) as container:
        wait_for(lambda: all(linked(box, email, event) for email, event in events.items()),
                 timeout=90, what="every instructor's link, the roster's members' too")
        uninstall = readme_lines("### Uninstall")
        assert any("remove-links" in line for line in uninstall), uninstall
        for line in uninstall:
            typed = container.sh(f"OH={OH}; {line} 2>&1", check=False)
            assert typed.returncode == 0, (line, typed.stdout)
        left = [email for email, event in events.items() if any_link(box, email, event)]
        assert left == [], container.journal()
        assert container.sh("systemctl cat officehours", check=False).returncode != 0
        assert not (tree / "opt" / "officehours").exists() and not etc.exists()
        assert not (tree / "var" / "lib" / "private" / "officehours").exists()
        journal = container.journal()
        assert "Traceback" not in journal and box.zoom_secret not in journal


def test_two_nodes_under_systemd(installed: tuple[Path, Sandbox], now: datetime) -> None:
    """The same unit and config on two booted containers, one PostgreSQL (the host's
    loopback, a throwaway cluster): one leads, the other is an active standby; the
    leader's process killed, the standby leads, and systemd's restart makes the old one
    the standby."""
    if postgres.missing():
        pytest.skip(str(postgres.missing()))
    tree, box = installed
    box.add_instructor("Ada Lovelace", ADA, 8123456789)
    ada = box.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                               end=at(now + 2 * HOUR))
    with postgres.cluster() as cluster:
        credentials = tree / "etc" / "officehours" / "credentials"
        shutil.copy(cluster.password_file, credentials / "db-password")
        (credentials / "db-password").chmod(0o600)
        configure(tree, box, sync_interval_seconds=2, state={
            "url": cluster.url(), "password_file": "db-password", "lease_seconds": 4})
        in_chroot(tree, f"{OH} --config {CONFIG} unit > /etc/systemd/system/officehours."
                        f"service && {OH} --config {CONFIG} check-config && "
                        "systemctl enable officehours")
        other = tree.with_name("tree-b")
        run("cp", "-a", "--reflink=auto", tree, other)
        (other / "etc" / "hostname").write_text("node-b\n")
        (tree / "etc" / "hostname").write_text("node-a\n")
        nodes = [Container(tree), Container(other)]
        try:
            def roles() -> list[str]:
                return [n.show("StatusText")["StatusText"] for n in nodes]

            wait_for(lambda: sorted(r.split(" ")[0] for r in roles()) == ["leading",
                                                                          "standby:"],
                     timeout=90, what="one leader and one standby")
            wait_for(lambda: linked(box, ADA, ada), timeout=30, what="the leader's pass")
            lead = next(n for n, r in zip(nodes, roles(), strict=True)
                        if r.startswith("leading"))
            standby = nodes[1 - nodes.index(lead)]
            wait_for(lambda: "at epoch 1" in standby.show("StatusText")["StatusText"],
                     timeout=10, what="the standby to name the leader")
            lead.sh("kill -9 $(systemctl show -p MainPID --value officehours)")
            wait_for(lambda: standby.show("StatusText")["StatusText"].startswith(
                "leading") and "(epoch 2)" in standby.show("StatusText")["StatusText"],
                timeout=30, what="the standby to lead")
            wait_for(lambda: lead.show("StatusText")["StatusText"].startswith("standby:"),
                     timeout=60, what="systemd to restart the killed node as a standby")
            assert int(lead.show("NRestarts")["NRestarts"]) == 1
            for node in nodes:
                journal = node.journal()
                assert "Traceback" not in journal and postgres.PASSWORD not in journal
        except BaseException:
            for node in nodes:
                print(node.journal())
            raise
        finally:
            for node in nodes:
                node.poweroff()


def readme_lines(heading: str, blocks: slice = slice(None)) -> list[str]:
    """The shell lines of the README's code blocks (`blocks` of them) in the section under
    `heading`."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n#", len(heading))]
    lines: list[str] = []
    for block in section.split("```sh\n")[1:][blocks]:
        for line in block.split("```")[0].splitlines():
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + line.strip()
            elif line.strip() and not line.startswith(" "):  # indented: a comment's rest
                lines.append(line)
    return lines


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_the_readmes_install_typed_line_by_line(tmp_path: Path, now: datetime,
                                               provider: str, wheel: Path) -> None:
    """The README's install section typed into a booted server, for a Google-only and an
    Outlook-only campus; then `status` and `doctor` as the README types them."""
    tree = fresh_tree(tmp_path)
    shutil.copy(wheel, tree / "root" / wheel.name)  # /tmp is a fresh tmpfs
    (tmp_path / "sandbox").mkdir()
    box = Sandbox(tmp_path / "sandbox")
    email = ADA if provider == "google" else MARY
    if provider == "google":
        box.add_instructor("Ada Lovelace", ADA, 8123456789)
        event = box.google.add_event(ADA, summary="Office Hours", start=at(now + HOUR),
                                     end=at(now + 2 * HOUR))
    else:
        box.add_microsoft_instructor("Mary Somerville", MARY, 8555555555)
        event = box.graph.add_event(MARY, now + HOUR, now + 2 * HOUR, subject="Office Hours")
    root = tree / "root"
    # what the admin brings: the secrets as the vendors hand them out, and the config
    # they will type in the editor (here: a stand-in for sudo and sudoedit, we are root)
    for name, source in (("zoom-secret", "zoom-secret"), ("service-account.json",
                                                           "google.json"),
                         ("ms-secret", "ms-secret")):
        shutil.copy(box.credentials / source, root / name)
    shutil.copy(box.ca.bundle, tree / "etc" / "ssl" / "certs" / "officehours-sandbox.pem")
    written = box.write_config(relative_secrets=True, state_dir="/var/lib/officehours",
                               ca_bundle="/etc/ssl/certs/officehours-sandbox.pem",
                               sync_interval_seconds=3)
    (root / "config.toml").write_text(written.read_text())
    host_ca = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    shutil.copy(host_ca, tree / "etc" / "ssl" / "certs" / "host-ca.crt")
    bin_dir = tree / "usr" / "local" / "bin"
    (bin_dir / "sudoedit").write_text('#!/bin/sh\ncp /root/config.toml "$1"\n')
    (bin_dir / "sudoedit").chmod(0o755)

    typed = [line.replace(README_WHEEL, wheel.name)
             for line in readme_lines("### 3. Install") if " -f " not in line + " "]
    script = ["set -ex", "cd /root", "export PIP_CERT=/etc/ssl/certs/host-ca.crt",
              f"export PIP_FIND_LINKS={os.environ.get('PIP_FIND_LINKS', '')}", *typed]
    (root / "install.sh").write_text("\n".join(script) + "\n")
    container = Container(tree)
    try:
        installing = container.sh("sh /root/install.sh 2>&1", check=False)
        assert installing.returncode == 0, installing.stdout
        wait_for(lambda: container.show("StatusText")["StatusText"].startswith(
            "1 instructors, 0 problems"), timeout=90, what="READY and the first pass")
        assert linked(box, email, event), container.journal()
        day_to_day = [line for line in readme_lines("Day to day")
                      if line.split("#")[0].split()[-1] in ("status", "doctor")]
        assert len(day_to_day) == 2, day_to_day
        for line in day_to_day:
            result = container.sh(f"OH={OH}; {line} 2>&1", check=False)
            assert result.returncode == 0, (line, result.stdout)
            assert "Ada Lovelace" in result.stdout or "Mary Somerville" in result.stdout
    except BaseException:
        print(container.journal())
        raise
    finally:
        container.poweroff()
        box.stop()
