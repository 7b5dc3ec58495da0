"""The PostgreSQL store: the state contract on a real PostgreSQL (a throwaway cluster),
the same migrations as SQLite, and epoch fencing of every write."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_contract import StoreContract

from daemon.pgstate import FixedEpoch, PostgresState, conninfo_for
from daemon.sandbox import postgres
from daemon.state import SCHEMA_VERSION, Fenced, State, StateError
from daemon.store import Store

T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def dsn(url: str, cluster: postgres.Cluster) -> str:
    return conninfo_for(url, postgres.PASSWORD, None, "officehours-test")


class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, pg_url: str, pg_cluster: postgres.Cluster) -> None:
        self.dsn = dsn(pg_url, pg_cluster)

    def make(self, tmp_path: Path) -> Store:
        return PostgresState(self.dsn)

    def reopen(self, store: Store, tmp_path: Path) -> Store | None:
        store.close()
        return PostgresState(self.dsn)


def test_same_schema_as_sqlite(pg_url: str, pg_cluster: postgres.Cluster,
                               tmp_path: Path) -> None:
    """One list of migrations: the same tables and columns on both backends."""
    store = PostgresState(dsn(pg_url, pg_cluster))
    assert store.schema_version == SCHEMA_VERSION
    columns = pg_cluster.psql(
        "SELECT table_name || '.' || column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name != 'schema_version'",
        database=pg_url.rsplit("/", 1)[1]).split()
    lite = State.open(tmp_path)
    expected = {f"{t}.{c[1]}" for (t,) in lite._rows(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        for c in lite._rows(f"PRAGMA table_info({t})")}
    assert set(columns) == expected
    PostgresState(dsn(pg_url, pg_cluster)).close()  # a second open migrates nothing
    store.close()


def test_a_write_under_an_older_epoch_is_refused(pg_url: str,
                                                 pg_cluster: postgres.Cluster) -> None:
    database = pg_url.rsplit("/", 1)[1]
    PostgresState(dsn(pg_url, pg_cluster)).close()
    pg_cluster.psql("UPDATE leader SET epoch = 7", database=database)
    current = PostgresState(dsn(pg_url, pg_cluster), fence=FixedEpoch(7))
    stale = PostgresState(dsn(pg_url, pg_cluster), fence=FixedEpoch(6))
    current.audit(T0, "ada@example.edu", "event:s1", "add-link", {})
    with pytest.raises(Fenced):
        stale.audit(T0, "ada@example.edu", "event:s1", "add-link", {})
    with pytest.raises(Fenced):
        stale.save_sync_token("ada@example.edu", "primary", "t")
    assert stale.sync_token("ada@example.edu", "primary") is None  # nothing got through
    assert pg_cluster.psql("SELECT epoch FROM audit", database=database).split() == ["7"]
    current.close()
    stale.close()


def test_an_unreachable_database_is_a_message(pg_cluster: postgres.Cluster) -> None:
    url = pg_cluster.url(port=postgres.free_port())
    with pytest.raises(StateError, match="cannot be reached") as caught:
        PostgresState(dsn(url, pg_cluster))
    assert postgres.PASSWORD not in str(caught.value)


def test_a_wrong_password_is_a_message_without_it(pg_url: str,
                                                  pg_cluster: postgres.Cluster) -> None:
    with pytest.raises(StateError, match="password authentication failed") as caught:
        PostgresState(conninfo_for(pg_url, "wrong-password", None, "t"))
    assert "wrong-password" not in str(caught.value)
