"""check-config: every problem at once, each naming file and key path, exit 78, no traceback."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY, clean_env, officehours

from daemon.config import load

GOOD = """
[service]
state_dir = "{dir}/state"
title = ["Office Hours", "Student Hours"]

[zoom]
account_id = "acct"
client_id = "cid"
client_secret_file = "{dir}/zoom-secret"

[google]
credentials_file = "{dir}/google.json"

[[instructors]]
name = "Ada Lovelace"
email = "ada@example.edu"
provider = "google"
"""


SERVICE_ACCOUNT = {"type": "service_account", "client_email": "oh@p.iam.gserviceaccount.com",
                   "private_key": TEST_KEY, "token_uri":
                   "https://oauth2.googleapis.com/token"}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    for name, text in (("zoom-secret", "secret"), ("google.json", json.dumps(SERVICE_ACCOUNT))):
        (tmp_path / name).write_text(text)
        os.chmod(tmp_path / name, 0o600)
    return tmp_path


def write(directory: Path, text: str) -> Path:
    path = directory / "config.toml"
    path.write_text(text.replace("{dir}", str(directory)))
    return path


def test_good_config_passes(config_dir: Path) -> None:
    result = officehours(write(config_dir, GOOD), "check-config")
    assert result.returncode == 0, result.stderr
    assert "1 instructor(s)" in result.stdout


def test_config_may_follow_the_command(config_dir: Path) -> None:
    result = officehours(None, "check-config", "--config", str(write(config_dir, GOOD)))
    assert result.returncode == 0, result.stderr
    run_help = " ".join(officehours(None, "run", "--help").stdout.split())
    assert "SIGHUP (systemctl reload) re-reads the configuration" in run_help


def test_config_path_from_environment(config_dir: Path) -> None:
    env = {**clean_env(), "OFFICEHOURS_CONFIG": str(write(config_dir, GOOD))}
    assert officehours(None, "check-config", env=env).returncode == 0


def test_relative_secret_paths_are_read_from_credentials_directory(config_dir: Path) -> None:
    text = GOOD.replace('"{dir}/zoom-secret"', '"zoom-secret"')
    env = {**clean_env(), "CREDENTIALS_DIRECTORY": str(config_dir)}
    assert officehours(write(config_dir, text), "check-config", env=env).returncode == 0


BROKEN = [
    ("toml-syntax", lambda t: t.replace('account_id = "acct"', "account_id = acct"),
     "line 7"),
    ("unknown-key", lambda t: t.replace("[service]", "[service]\nsync_interval = 5"),
     "service.sync_interval: unknown key (did you mean 'sync_interval_seconds'?)"),
    ("unknown-section", lambda t: t + "\n[zooom]\n", "zooom: unknown key (did you mean 'zoom'?)"),
    ("wrong-type", lambda t: t.replace("[service]", '[service]\nsync_interval_seconds = "300"'),
     "service.sync_interval_seconds: must be an integer, not a string"),
    ("zero-interval", lambda t: t.replace("[service]", "[service]\nsync_interval_seconds = 0"),
     "service.sync_interval_seconds: must be >= 1"),
    ("missing-email", lambda t: t.replace('email = "ada@example.edu"', ""),
     "instructors[0].email: missing (required)"),
    ("bad-provider", lambda t: t.replace('provider = "google"', 'provider = "outlook"'),
     "instructors[0].provider: must be one of 'google', 'microsoft'"),
    ("missing-secret", lambda t: t.replace("zoom-secret", "nope"),
     "zoom.client_secret_file: "),
    ("http-url", lambda t: t.replace('client_id = "cid"',
                                     'client_id = "cid"\napi_base_url = "http://zoom.test"'),
     "zoom.api_base_url: must be an https:// URL"),
    ("no-google-section", lambda t: t.split("[google]")[0] + t.split('google.json"')[1],
     "google: missing section"),
    ("duplicate-instructor", lambda t: t + t[t.index("[[instructors]]"):].replace(
        "ada@", "ADA@"), "instructors[1].email: duplicate of instructors[0].email"),
    ("empty-title", lambda t: t.replace('["Office Hours", "Student Hours"]', "[]"),
     "service.title: must be a string or a non-empty list"),
    ("template-without-url", lambda t: t + '\n[links]\ntemplate = "Zoom: {meeting_id}"\n',
     "links.template: must contain {url}"),
    ("missing-zoom", lambda t: t.replace("[zoom]", "[zoomed]"), "zoom: missing section"),
    ("secret-is-a-directory", lambda t: t.replace("{dir}/zoom-secret", "{dir}"),
     "zoom.client_secret_file: "),
    ("name-not-a-string", lambda t: t.replace('name = "Ada Lovelace"', "name = 5"),
     "instructors[0].name: must be a string, not an integer"),
    ("email-not-an-email", lambda t: t.replace('"ada@example.edu"', '"ada"'),
     "instructors[0].email: must be an email address"),
    ("url-without-host", lambda t: t.replace('[google]', '[google]\napi_base_url = "https://"'),
     "google.api_base_url: must be an https:// URL"),
    ("bad-send-updates", lambda t: t.replace('[google]', '[google]\nsend_updates = "some"'),
     "google.send_updates: must be one of"),
    ("ca-bundle-missing", lambda t: t.replace("[service]", '[service]\nca_bundle = "/no/ca.pem"'),
     "service.ca_bundle: /no/ca.pem does not exist"),
    ("ca-bundle-not-pem", lambda t: t.replace("[service]",
                                              '[service]\nca_bundle = "{dir}/zoom-secret"'),
     "zoom-secret is not a PEM bundle of certificates"),
    ("instructors-not-tables", lambda t: t.split("[[instructors]]")[0].replace(
        "[service]", 'instructors = "ada"\n[service]'), "instructors: must be an array of tables"),
    ("microsoft-without-credential", lambda t: t + '\n[microsoft]\ntenant_id = "t"\n'
     'client_id = "c"\n', "microsoft.client_secret_file: missing (required)"),
    ("include-passcode-word", lambda t: t + '\n[links]\ninclude_passcode = "yes"\n',
     "links.include_passcode: must be \"auto\", true or false, not 'yes'"),
    ("placeholder", lambda t: t.replace('account_id = "acct"', 'account_id = "..."'),
     "zoom.account_id: is still the example's placeholder \"...\": fill it in"),
    ("double-at", lambda t: t.replace('"ada@example.edu"', '"ada@@example.edu"'),
     "instructors[0].email: must be an email address, not 'ada@@example.edu'"),
    ("domain-without-dot", lambda t: t.replace('"ada@example.edu"', '"ada@example"'),
     "instructors[0].email: must be an email address, not 'ada@example'"),
    ("zoom-user-with-space", lambda t: t.replace('provider = "google"',
                                                 'provider = "google"\nzoom_user = "a b"'),
     "instructors[0].zoom_user: must be an email address or a Zoom user id"),
    ("no-instructors", lambda t: t.split("[[instructors]]")[0],
     "instructors: none given: add an [[instructors]] table"),
    ("state-dir-is-a-file", lambda t: t.replace('"{dir}/state"', '"{dir}/zoom-secret"'),
     "service.state_dir: {dir}/zoom-secret exists and is not a directory"),
    ("state-dir-cannot-be-created", lambda t: t.replace('"{dir}/state"',
                                                        '"{dir}/zoom-secret/state"'),
     "service.state_dir: {dir}/zoom-secret/state does not exist and cannot be created here"),
    ("google-key-not-json", lambda t: t.replace("google.json", "zoom-secret"),
     "google.credentials_file: {dir}/zoom-secret is not JSON"),
    ("certificate-not-pem", lambda t: t + '\n[microsoft]\ntenant_id = "t"\nclient_id = "c"\n'
     'client_certificate_file = "{dir}/zoom-secret"\n',
     "microsoft.client_certificate_file: {dir}/zoom-secret holds no unencrypted PEM private "
     "key"),
]


@pytest.mark.parametrize(("written", "policy"), [
    ("", "auto"), ('include_passcode = "auto"', "auto"), ("include_passcode = true", True),
    ("include_passcode = false", False)])
def test_include_passcode_is_auto_unless_set(config_dir: Path, written: str,
                                             policy: object) -> None:
    config = load(write(config_dir, GOOD + f"\n[links]\n{written}\n"))
    assert config.links.include_passcode == policy


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in BROKEN],
                         ids=[name for name, _, _ in BROKEN])
def test_broken_config_exits_78_naming_the_key(config_dir: Path, mutate: object,
                                               expected: str) -> None:
    path = write(config_dir, mutate(GOOD))  # type: ignore[operator]
    result = officehours(path, "check-config")
    assert result.returncode == 78
    assert expected.replace("{dir}", str(config_dir)) in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file: run as a user to check")
def test_unreadable_secret_is_refused(config_dir: Path) -> None:
    os.chmod(config_dir / "zoom-secret", 0o000)
    result = officehours(write(config_dir, GOOD), "check-config")
    assert result.returncode == 78 and "not readable by this user" in result.stderr


def test_world_readable_secret_is_refused_with_the_fix(config_dir: Path) -> None:
    os.chmod(config_dir / "zoom-secret", 0o644)
    result = officehours(write(config_dir, GOOD), "check-config")
    assert result.returncode == 78
    assert "readable by others; run: chmod o-rwx" in result.stderr


def test_every_problem_is_reported_at_once(config_dir: Path) -> None:
    text = GOOD.replace("[service]", "[service]\nenforce_lead_minutes = -1\ncolour = 1")
    text = text.replace('provider = "google"', 'provider = 3')
    result = officehours(write(config_dir, text), "check-config")
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert {"service.enforce_lead_minutes", "service.colour", "instructors[0].provider"} == {
        line.split(": ")[1] for line in lines}


def test_missing_config_file(tmp_path: Path) -> None:
    result = officehours(tmp_path / "absent.toml", "check-config")
    assert result.returncode == 78 and "file not found" in result.stderr


def test_help_explains_commands_and_exit_codes() -> None:
    result = officehours(None, "--help")
    assert result.returncode == 0
    for word in ("sync", "run", "check-config", "status", "remove-links", "demo", "78"):
        assert word in result.stdout
    sync_help = officehours(None, "sync", "--help").stdout
    assert "--dry-run" in sync_help


def test_example_config_is_valid_and_shows_every_key(tmp_path: Path) -> None:
    from daemon import config

    example = Path(__file__).parent.parent / "config.example.toml"
    for name in ("zoom-secret", "google.json", "ms-secret"):
        (tmp_path / name).write_text(json.dumps(SERVICE_ACCOUNT))
        os.chmod(tmp_path / name, 0o600)
    env = {**clean_env(), "CREDENTIALS_DIRECTORY": str(tmp_path)}
    result = officehours(example, "check-config", env=env)
    # valid but for the values an admin must fill in, each named
    assert result.returncode == 78, result.stderr
    assert sorted(line.split(": ")[1] for line in result.stderr.splitlines()) == [
        "microsoft.client_id", "microsoft.tenant_id", "zoom.account_id", "zoom.client_id"]
    # every key declared is shown, under its section, with its declared default (a value
    # the example gives, commented out or not, converts to the default the program uses)
    shown = example_keys(example.read_text())
    for section, declaration in config.SECTIONS.items():
        for key, default in config.declared(declaration).items():
            assert (section, key) in shown, f"{section}.{key} is not in config.example.toml"
            field = next(f for f in dataclasses.fields(declaration)
                         if (f.metadata["name"] or f.name) == key)
            value = shown[section, key]
            if default not in (config.REQUIRED, None) and value != "...":
                assert field.metadata["convert"](value) == default, (section, key, value)
    declared = {(s, k) for s, d in config.SECTIONS.items() for k in config.declared(d)}
    assert set(shown) <= declared, set(shown) - declared  # no key the program does not know


def example_keys(text: str) -> dict[tuple[str, str], Any]:
    """(section, key) -> value of every `key = value` line of the example, commented out
    or not, under the `[section]` (or `# [section]`) above it."""
    found: dict[tuple[str, str], Any] = {}
    section = ""
    for line in text.splitlines():
        bare = line.removeprefix("# ").strip()
        heading = re.fullmatch(r"\[\[?(\w+)\]\]?", bare.split("#")[0].strip())
        if heading:
            section = heading.group(1)
            continue
        assignment = re.match(r"(\w+) = (.+)$", bare)
        if assignment and not line.startswith("#  "):
            try:
                value = tomllib.loads(f"v = {assignment.group(2)}")["v"]
            except tomllib.TOMLDecodeError:
                continue  # prose that looks like an assignment
            found[section, assignment.group(1)] = value
    return found


def test_check_config_without_secrets_is_what_a_reload_checks(tmp_path: Path) -> None:
    """The unit's ExecReload runs it where the credentials are the service's: a TOML
    mistake fails the reload, an unreadable secret is the service's own to report."""
    from officehours_sandbox.domain import Sandbox

    box = Sandbox(tmp_path)
    try:
        box.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
        config = box.write_config()
        for secret in box.credentials.iterdir():
            secret.unlink()
        assert officehours(config, "check-config").returncode == 78
        assert officehours(config, "check-config", "--without-secrets").returncode == 0
        config.write_text(config.read_text() + "\n[bogus]\n")
        broken = officehours(config, "check-config", "--without-secrets")
        assert broken.returncode == 78 and "bogus" in broken.stderr
    finally:
        box.stop()


def test_check_config_parses_the_google_key_as_the_service_will(config_dir: Path) -> None:
    """A key whose private_key does not parse passed check-config, and the service then
    exited 78 with 'Could not deserialize key data', naming no file."""
    key = config_dir / "google.json"
    key.write_text(json.dumps({**SERVICE_ACCOUNT,
                               "private_key": "-----BEGIN PRIVATE KEY-----\n..."}))
    os.chmod(key, 0o600)
    result = officehours(write(config_dir, GOOD), "check-config")
    assert result.returncode == 78
    assert "google.credentials_file" in result.stderr and "does not parse" in result.stderr
