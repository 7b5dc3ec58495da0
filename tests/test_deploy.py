"""What an admin installs: the unit written for their configuration (its credentials are
exactly what the configuration names), check-config seeing what the service will see, and
the example configuration, all from the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_KEY, clean_env, officehours

ROOT = Path(__file__).parent.parent
KEY = {"type": "service_account", "client_email": "oh@p.iam.gserviceaccount.com",
       "private_key": TEST_KEY, "token_uri": "https://t.example/"}
CAMPUSES = {  # which providers the instructors use -> the credentials the unit must load
    "google": ({"google"}, ["google.json", "zoom-secret"]),
    "outlook": ({"microsoft"}, ["ms-secret", "zoom-secret"]),
    "mixed": ({"google", "microsoft"}, ["google.json", "ms-secret", "zoom-secret"]),
}


def campus(directory: Path, providers: set[str]) -> Path:
    """A config naming its secrets by credential name, as the README says."""
    text = ('[service]\nstate_dir = "/var/lib/officehours"\n'  # the unit's StateDirectory
            '[zoom]\naccount_id = "a"\nclient_id = "c"\nclient_secret_file = "zoom-secret"\n')
    if "google" in providers:
        text += '[google]\ncredentials_file = "google.json"\n'
    if "microsoft" in providers:
        text += '[microsoft]\ntenant_id = "t"\nclient_id = "c"\nclient_secret_file = "ms-secret"\n'
    for n, provider in enumerate(sorted(providers)):
        text += (f'[[instructors]]\nname = "I{n}"\nemail = "i{n}@example.edu"\n'
                 f'provider = "{provider}"\n')
    credentials = directory / "credentials"
    credentials.mkdir(exist_ok=True)
    for name, content in (("zoom-secret", "s"), ("ms-secret", "s"), ("google.json",
                                                                     json.dumps(KEY))):
        (credentials / name).write_text(content)
        os.chmod(credentials / name, 0o600)
    path = directory / "config.toml"
    path.write_text(text)
    return path


def loaded(unit_text: str) -> list[str]:
    return sorted(line.split("=", 1)[1].split(":", 1)[0] for line in unit_text.splitlines()
                  if line.startswith("LoadCredential="))


@pytest.mark.parametrize("kind", CAMPUSES)
def test_the_unit_delivers_exactly_what_the_config_names(tmp_path: Path, kind: str) -> None:
    providers, expected = CAMPUSES[kind]
    config = campus(tmp_path, providers)
    result = officehours(config, "unit")
    assert result.returncode == 0, result.stderr
    assert loaded(result.stdout) == expected
    assert f"--config {config} run" in result.stdout
    assert "@" + "CREDENTIALS@" not in result.stdout


@pytest.mark.parametrize("kind", CAMPUSES)
def test_check_config_fails_when_the_unit_would_not_deliver_a_secret(
        tmp_path: Path, kind: str) -> None:
    """Run as the README says (no CREDENTIALS_DIRECTORY): the installed unit decides."""
    providers, expected = CAMPUSES[kind]
    config = campus(tmp_path, providers)
    unit = tmp_path / "officehours.service"
    unit.write_text(officehours(config, "unit").stdout.replace(
        "/etc/officehours/credentials", str(tmp_path / "credentials")))
    result = officehours(config, "check-config", "--unit", str(unit))
    assert result.returncode == 0, result.stderr
    missing = expected[0]  # the unit as shipped before had ms-secret commented out
    unit.write_text("\n".join(line for line in unit.read_text().splitlines()
                              if not line.startswith(f"LoadCredential={missing}:")))
    result = officehours(config, "check-config", "--unit", str(unit))
    assert result.returncode == 78
    assert f"the unit {unit} delivers no credential {missing!r}" in result.stderr
    absent = officehours(config, "check-config", "--unit", str(tmp_path / "none.service"))
    assert absent.returncode == 78 and "no unit at" in absent.stderr


def test_a_secret_path_the_service_cannot_read_is_refused_by_unit(tmp_path: Path) -> None:
    config = campus(tmp_path, {"google"})
    config.write_text(config.read_text().replace('"zoom-secret"',
                                                 f'"{tmp_path}/credentials/zoom-secret"'))
    result = officehours(config, "unit")
    assert result.returncode == 78 and "is not a credential name" in result.stderr


def test_the_shipped_unit_is_the_one_written_for_the_example_config(tmp_path: Path) -> None:
    example = campus(tmp_path, {"google", "microsoft"})
    written = officehours(example, "unit").stdout
    shipped = (ROOT / "systemd" / "officehours.service").read_text()
    assert shipped == written.replace(str(example), "/etc/officehours/config.toml").replace(
        str(Path(sys.prefix) / "bin" / "officehours"), "/opt/officehours/venv/bin/officehours")


def test_example_config_comes_with_the_package() -> None:
    result = officehours(None, "example-config", env=clean_env())
    assert result.returncode == 0
    assert result.stdout == (ROOT / "config.example.toml").read_text()


def test_the_unit_of_a_two_node_config_delivers_the_database_password(tmp_path: Path) -> None:
    config = campus(tmp_path, {"google"})
    config.write_text(config.read_text() + '[state]\nurl = "postgresql://oh@db.example.edu/oh"'
                      '\npassword_file = "db-password"\n')
    (tmp_path / "credentials" / "db-password").write_text("pw\n")
    os.chmod(tmp_path / "credentials" / "db-password", 0o600)
    result = officehours(config, "unit")
    assert result.returncode == 0, result.stderr
    assert loaded(result.stdout) == ["db-password", "google.json", "zoom-secret"]
    unit = tmp_path / "officehours.service"
    unit.write_text(result.stdout.replace("/etc/officehours/credentials",
                                          str(tmp_path / "credentials")))
    assert officehours(config, "check-config", "--unit", str(unit)).returncode == 0
    (tmp_path / "credentials" / "db-password").unlink()
    missing = officehours(config, "check-config", "--unit", str(unit))
    assert missing.returncode == 78 and "state.password_file" in missing.stderr


def test_the_unit_is_written_for_the_state_dir_and_check_config_holds_them_together(
        tmp_path: Path) -> None:
    """`state_dir = "/srv/officehours"` passed check-config and `unit` wrote the usual
    unit; the service then exited 78 (ProtectSystem=strict, StateDirectory= only)."""
    config = campus(tmp_path, {"google"})
    unit = tmp_path / "officehours.service"
    unit.write_text(officehours(config, "unit").stdout.replace(
        "/etc/officehours/credentials", str(tmp_path / "credentials")))
    srv = tmp_path / "srv"
    config.write_text(config.read_text().replace('"/var/lib/officehours"', f'"{srv}"'))
    refused = officehours(config, "unit")
    assert refused.returncode == 78 and "service.state_dir" in refused.stderr
    assert "/var/lib/NAME" in refused.stderr and refused.stdout == ""
    checked = officehours(config, "check-config", "--unit", str(unit))
    assert checked.returncode == 78 and "service.state_dir" in checked.stderr
    assert f"lets the service write only /var/lib/officehours, not {srv}" in checked.stderr
    # another name under /var/lib: the unit's StateDirectory= follows it
    config.write_text(config.read_text().replace(f'"{srv}"', '"/var/lib/oh-campus"'))
    written = officehours(config, "unit").stdout
    assert "StateDirectory=oh-campus\n" in written and "StateDirectory=officehours" not in written
    assert officehours(config, "check-config", "--unit", str(unit)).returncode == 78
    unit.write_text(written.replace("/etc/officehours/credentials", str(tmp_path / "credentials")))
    assert officehours(config, "check-config", "--unit", str(unit)).returncode == 0


def test_the_unit_lets_the_service_write_the_metrics_textfile(tmp_path: Path) -> None:
    config = campus(tmp_path, {"google"})
    textfile = tmp_path / "node-exporter" / "officehours.prom"
    config.write_text(config.read_text() + f'[metrics]\ntextfile = "{textfile}"\n')
    missing = officehours(config, "check-config")
    assert missing.returncode == 78 and "metrics.textfile" in missing.stderr
    textfile.parent.mkdir()
    written = officehours(config, "unit").stdout
    assert f"ReadWritePaths={textfile.parent}\n" in written
    unit = tmp_path / "officehours.service"
    unit.write_text(written.replace("/etc/officehours/credentials", str(tmp_path / "credentials")))
    assert officehours(config, "check-config", "--unit", str(unit)).returncode == 0
    unit.write_text(unit.read_text().replace(f"ReadWritePaths={textfile.parent}\n", ""))
    stale = officehours(config, "check-config", "--unit", str(unit))
    assert stale.returncode == 78 and "metrics.textfile" in stale.stderr
    config.write_text(config.read_text().replace("officehours.prom", "officehours.txt"))
    unnamed = officehours(config, "check-config")  # node_exporter reads only *.prom
    assert unnamed.returncode == 78 and "ending in .prom" in unnamed.stderr


def test_unit_socket_prints_the_socket_of_socket_activation(tmp_path: Path) -> None:
    """[push] listen = "systemd": `unit --socket` prints officehours.socket, which systemd
    accepts beside the service (test_push.py serves the socket it passes)."""
    config = campus(tmp_path, {"google"})
    config.write_text(config.read_text() + '[push]\npublic_url = "https://oh.example.edu/push"'
                      '\nlisten = "systemd"\n')
    socket_unit = officehours(config, "unit", "--socket", "127.0.0.1:8787")
    assert socket_unit.returncode == 0, socket_unit.stderr
    assert "ListenStream=127.0.0.1:8787\n" in socket_unit.stdout
    assert officehours(config, "unit", "--socket", "nowhere").returncode == 78
    config.write_text(config.read_text().replace('listen = "systemd"',
                                                 'listen = "127.0.0.1:8787"'))
    bound = officehours(config, "unit", "--socket", "127.0.0.1:8787")
    assert bound.returncode == 78 and 'listen = "systemd"' in bound.stderr
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # .ci/run installs it
        unit = tmp_path / "officehours.socket"
        unit.write_text(socket_unit.stdout)
        service = tmp_path / "officehours.service"
        service.write_text("[Service]\nExecStart=/bin/true\n")
        verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True,
                                  text=True, cwd=tmp_path)
        assert verified.returncode == 0, verified.stderr
