"""State database: migrations from every earlier schema, and refusing a newer one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import officehours
from store_contract import StoreContract

from daemon.model import Room
from daemon.store import StateError, Store
from daemon.store.migrations import MIGRATIONS, SCHEMA_VERSION
from daemon.store.sqlite import State


def database_at(path: Path, version: int) -> None:
    """A database as officehours left it at schema `version`, with some data in it."""
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:version]:
        db.executescript(migration)
    db.execute(f"PRAGMA user_version = {version}")
    if version >= 1:
        db.execute("INSERT INTO sync_tokens VALUES ('ada@example.edu', 'primary', 'tok')")
        db.execute("INSERT INTO instructors (instructor, name, last_pass) "
                   "VALUES ('ada@example.edu', 'Ada', '2026-11-01T10:00:00+00:00')")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_every_earlier_schema_is_migrated_on_open(tmp_path: Path, version: int) -> None:
    path = tmp_path / "state.sqlite3"
    database_at(path, version)
    state = State(path)
    assert state.schema_version == SCHEMA_VERSION
    if version >= 1:  # nothing lost on the way
        assert state.sync_token("ada@example.edu", "primary") == "tok"
        assert state.statuses()["ada@example.edu"].last_pass == "2026-11-01T10:00:00+00:00"
    state.record_status("ada@example.edu", "Ada", error_logged_for="2026-12-01T10:00:00+00:00")
    assert state.error_logged_for("ada@example.edu") == "2026-12-01T10:00:00+00:00"
    state.close()
    assert State(path).schema_version == SCHEMA_VERSION  # and opening again changes nothing


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    database_at(path, SCHEMA_VERSION)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer than this officehours understands"):
        State(path)


def test_cli_reports_a_newer_state_database_without_traceback(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    database_at(state_dir / "state.sqlite3", SCHEMA_VERSION)
    db = sqlite3.connect(state_dir / "state.sqlite3")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    secret = tmp_path / "zoom-secret"
    secret.write_text("x")
    secret.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nstate_dir = "{state_dir}"\n[zoom]\naccount_id = "a"\n'
                      f'client_id = "c"\nclient_secret_file = "{secret}"\n'
                      '[microsoft]\ntenant_id = "t"\nclient_id = "c"\n'
                      f'client_secret_file = "{secret}"\n[[instructors]]\nname = "M"\n'
                      'email = "m@example.edu"\nprovider = "microsoft"\n')
    result = officehours(config, "sync")
    assert result.returncode == 78  # no restart helps: systemd must stop retrying
    assert "state database: the state database has schema 99" in result.stderr
    assert "Traceback" not in result.stderr


class TestSqliteStore(StoreContract):
    """The SQLite store, in a state directory as the service keeps it."""

    def make(self, tmp_path: Path) -> Store:
        return State.open(tmp_path / "state")

    def reopen(self, store: Store, tmp_path: Path) -> Store | None:
        store.close()
        return State.open(tmp_path / "state")


class TestSqliteScratch(StoreContract):
    """The in-memory copy that --dry-run works on."""

    def make(self, tmp_path: Path) -> Store:
        return State.scratch_copy(tmp_path / "nothing-yet")


def test_a_room_checked_before_version_8_keeps_its_state_as_a_value(tmp_path: Path) -> None:
    """The room's state became a value beside its text: an upgrade must not make a refused
    room look unchecked (status's exit code and the metrics read the value)."""
    path = tmp_path / "state.sqlite3"
    database_at(path, 7)
    db = sqlite3.connect(path)
    for who, text in (("a@x.edu", "refused: Zoom kept it insecure"),
                      ("b@x.edu", "NOT secure until 2026-12-08 00:00 UTC: daily limit"),
                      ("c@x.edu", "repaired (was insecure (waiting_room))"),
                      ("d@x.edu", "secure"), ("e@x.edu", None)):
        db.execute("INSERT INTO instructors (instructor, name, zoom_state) VALUES (?, ?, ?)",
                   (who, who, text))
    db.commit()
    db.close()
    rooms = {k: s.room for k, s in State(path).statuses().items()}
    assert rooms == {"ada@example.edu": None, "a@x.edu": Room.REFUSED,
                     "b@x.edu": Room.NOT_SECURE, "c@x.edu": Room.REPAIRED,
                     "d@x.edu": Room.SECURE, "e@x.edu": None}
