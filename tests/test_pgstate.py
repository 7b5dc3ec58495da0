"""The PostgreSQL store: the state contract on a real PostgreSQL (a throwaway cluster),
the same migrations as SQLite, and epoch fencing of every write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import HOUR, at, officehours, wait_for
from officehours_sandbox import postgres
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import CertificateAuthority
from store_contract import StoreContract

from daemon.app import open_state
from daemon.config import load
from daemon.leader import FixedEpoch, Lease
from daemon.reconcile import START_MARK
from daemon.store import Fenced, StateError, Store
from daemon.store.migrations import SCHEMA_VERSION
from daemon.store.postgres import PostgresState, conninfo_for
from daemon.store.sqlite import State

T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
ADA = "ada@example.edu"


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
    """One list of migrations: the same tables and columns on both backends, but for
    PostgreSQL's own (the lease, the heartbeats)."""
    store = PostgresState(dsn(pg_url, pg_cluster))
    assert store.schema_version == SCHEMA_VERSION
    columns = pg_cluster.psql(
        "SELECT table_name || '.' || column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name NOT IN ('schema_version', 'leader', "
        "'nodes')",
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
    overtaken = FixedEpoch(6)
    stale = PostgresState(dsn(pg_url, pg_cluster), fence=overtaken)
    current.audit(T0, "ada@example.edu", "event:s1", "add-link", {})
    overtaken.check()  # nothing seen yet
    with pytest.raises(Fenced):
        stale.audit(T0, "ada@example.edu", "event:s1", "add-link", {})
    with pytest.raises(Fenced):  # seen: the fence refuses calendar and Zoom writes too
        overtaken.check()
    with pytest.raises(Fenced):
        stale.save_sync_token("ada@example.edu", "primary", "t")
    assert current.sync_token("ada@example.edu", "primary") is None  # nothing got through
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


def test_state_migrate_to_postgresql_and_back(sandbox: Sandbox, pg_url: str,
                                              pg_cluster: postgres.Cluster,
                                              now: datetime) -> None:
    """SQLite -> PostgreSQL -> SQLite: the shared state carries what was written (a pass
    on it writes nothing again), and the copy back equals the original."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                             end=at(now + 4 * HOUR), recurrence=["RRULE:FREQ=WEEKLY"])
    lite = sandbox.write_config()
    assert officehours(lite, "sync").returncode == 0
    original = State.open(sandbox.dir / "state")
    before = original.dump()
    original.close()
    shared = sandbox.write_config(state={"url": pg_url,
                                         "password_file": str(pg_cluster.password_file)})
    shared = shared.rename(shared.with_name("shared.toml"))
    lite = sandbox.write_config()
    moved = officehours(lite, "state", "migrate", "--to", pg_url, "--password-file",
                        str(pg_cluster.password_file))
    assert moved.returncode == 0 and "1 instructors" in moved.stdout, moved.stderr
    writes = len(sandbox.google.writes())
    assert officehours(shared, "sync").returncode == 0
    assert len(sandbox.google.writes()) == writes  # what was written came along
    status = officehours(shared, "status")
    assert "Ada Lovelace" in status.stdout and "leader:" in status.stdout, status
    refused = officehours(shared, "state", "migrate", "--to", "sqlite")
    assert refused.returncode == 1 and "--force" in refused.stderr
    back = officehours(shared, "state", "migrate", "--to", "sqlite", "--force")
    assert back.returncode == 0, back.stderr
    returned = State.open(sandbox.dir / "state")
    after = returned.dump()
    returned.close()
    assert after["events"] == before["events"]
    assert after["audit"] == before["audit"]  # ids too: the next line follows them
    assert [r[:2] for r in after["sync_tokens"]] == [r[:2] for r in before["sync_tokens"]]
    assert [r[:2] for r in after["instructors"]] == [r[:2] for r in before["instructors"]]


def test_state_migrate_refuses_while_a_node_leads(sandbox: Sandbox, pg_url: str,
                                                  pg_cluster: postgres.Cluster) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    PostgresState(dsn(pg_url, pg_cluster)).close()
    pg_cluster.psql("UPDATE leader SET node = 'vm/1', epoch = 3, since = now(), "
                    "expires = now() + interval '1 hour'", database=pg_url.rsplit("/", 1)[1])
    store = PostgresState(dsn(pg_url, pg_cluster))
    store.record_status(ADA, "Ada")
    store.close()
    shared = sandbox.write_config(state={"url": pg_url,
                                         "password_file": str(pg_cluster.password_file)})
    refused = officehours(shared, "state", "migrate", "--to", "sqlite")
    assert refused.returncode == 1 and "vm/1" in refused.stderr and "stop the service" in \
        refused.stderr
    synced = officehours(shared, "sync")  # a pass belongs to the node that leads
    assert synced.returncode == 1 and "vm/1 leads" in synced.stderr


def test_a_password_in_the_state_url_is_refused(sandbox: Sandbox) -> None:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    config = sandbox.write_config(state={"url": "postgresql://oh:hunter2@db.example.edu/oh"})
    checked = officehours(config, "check-config")
    assert checked.returncode == 78 and "state.url" in checked.stderr
    assert "hunter2" not in checked.stderr + checked.stdout


def test_tls_to_the_database_trusts_the_ca_bundle(sandbox: Sandbox, tmp_path: Path) -> None:
    """sslmode=verify-full in the URL: the server's certificate is checked against
    service.ca_bundle (here the sandbox's CA); another CA fails with libpq's reason."""
    if postgres.missing():
        pytest.skip(postgres.missing())
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    with postgres.cluster(tls=sandbox.ca) as cluster:
        url = cluster.url() + "?sslmode=verify-full"
        state = {"url": url, "password_file": str(cluster.password_file)}
        store = open_state(load(sandbox.write_config(state=state)))
        assert isinstance(store, PostgresState)
        assert store._rows("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [
            (True,)]
        store.close()
        other = CertificateAuthority(tmp_path)
        with pytest.raises(StateError, match="certificate verify failed"):
            open_state(load(sandbox.write_config(state=state, ca_bundle=str(other.bundle))))


def test_admin_commands_and_a_dry_run_on_the_shared_state(sandbox: Sandbox, pg_url: str,
                                                          pg_cluster: postgres.Cluster,
                                                          now: datetime) -> None:
    """`sync --dry-run` works on a copy (nothing reaches the database or a calendar);
    `roster --accept` and `reinstate` write the shared state."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                             end=at(now + 4 * HOUR))
    config = sandbox.write_config(state={"url": pg_url,
                                         "password_file": str(pg_cluster.password_file)})
    dry = officehours(config, "sync", "--dry-run")
    assert dry.returncode == 0 and "link block inserted" in dry.stdout, dry
    assert sandbox.google.writes() == []
    assert officehours(config, "status").stdout.count("never") >= 1  # no pass recorded
    (sandbox.dir / "roster.csv").write_text("name,email,provider\nBob,bob@example.edu,google\n")
    config.write_text(config.read_text() + f'\n[roster]\ncsv_file = "{sandbox.dir}/roster.csv"'
                      "\n")
    accepted = officehours(config, "roster", "--accept")
    assert accepted.returncode == 0, accepted.stderr
    store = PostgresState(dsn(pg_url, pg_cluster))
    try:
        assert set(store.roster()) == {"bob@example.edu"}
        store.offboard(ADA, T0)
    finally:
        store.close()
    back = officehours(config, "reinstate", "--instructor", ADA)
    assert back.returncode == 0 and ADA in back.stdout


def test_a_shared_database_lost_and_made_anew_links_no_offboarded_instructor(
        sandbox: Sandbox, pg_url: str, pg_cluster: postgres.Cluster, now: datetime) -> None:
    """The node keeps the offboardings beside its own state directory too: a shared database
    found empty takes them back (a populated one is the truth)."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    event = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                                     end=at(now + 4 * HOUR))
    PostgresState(dsn(pg_url, pg_cluster)).close()  # the schema, as `run` makes it
    config = sandbox.write_config(state={"url": pg_url,
                                         "password_file": str(pg_cluster.password_file)})
    assert officehours(config, "sync").returncode == 0
    assert officehours(config, "remove-links", "--instructor", ADA).returncode == 0
    database = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql("TRUNCATE instructors, offboarded, roster, events, sync_tokens, audit",
                    database=database)  # lost: restored from nothing, say
    assert officehours(config, "sync").returncode == 0
    assert START_MARK not in sandbox.google.event(ADA, event).get("description", "")
    assert officehours(config, "reinstate", "--instructor", ADA).returncode == 0
    assert officehours(config, "sync").returncode == 0
    assert START_MARK in sandbox.google.event(ADA, event).get("description", "")


def test_a_first_sync_on_an_empty_shared_database_makes_the_schema(
        sandbox: Sandbox, pg_url: str, pg_cluster: postgres.Cluster, now: datetime) -> None:
    """The README's fresh database, then `sync` before any `run`: it used to fail every
    time with 'relation "leader" does not exist', called "cannot be reached"."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    event = sandbox.google.add_event(ADA, summary="Office Hours", start=at(now + 3 * HOUR),
                                     end=at(now + 4 * HOUR))
    config = sandbox.write_config(state={"url": pg_url,
                                         "password_file": str(pg_cluster.password_file)})
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert START_MARK in sandbox.google.event(ADA, event).get("description", "")


def test_status_lists_every_node_and_a_leader_that_stopped_renewing(
        sandbox: Sandbox, pg_url: str, pg_cluster: postgres.Cluster) -> None:
    """For a lease after a leader was SIGKILLed, status showed it leading as usual and
    listed no standby: now every node with its last heartbeat, and the silent leader
    marked NOT RENEWING (two renewals missed) before its lease runs out."""
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    PostgresState(dsn(pg_url, pg_cluster)).close()  # the schema, as `run` makes it
    config = sandbox.write_config(state={"url": pg_url, "lease_seconds": 10,
                                         "password_file": str(pg_cluster.password_file)})
    first = Lease(dsn(pg_url, pg_cluster), "oh1/101", 10)
    second = Lease(dsn(pg_url, pg_cluster), "oh2/202", 10)
    first.step()
    second.step()
    assert first.leading() and not second.leading()

    def shown() -> dict[str, Any]:
        status = officehours(config, "status", "--json")
        return json.loads(status.stdout)  # type: ignore[no-any-return]

    seen = shown()
    assert seen["leader"]["node"] == "oh1/101" and seen["leader"]["renewing"]
    assert {(n["node"], n["role"]) for n in seen["nodes"]} == {
        ("oh1/101", "leader"), ("oh2/202", "standby")}
    text = officehours(config, "status").stdout
    assert "leader: oh1/101 since" in text and "node oh2/202: standby, last heartbeat" in text

    # oh1 is killed: no more renewals (no hand-over either); oh2 beats on
    assert first._db is not None
    first._db.close()
    silent = wait_for(lambda: (second.step(), shown())[1]["leader"]["renewing"] is False,
                      timeout=9, what="the leader marked as not renewing")
    assert silent
    text = officehours(config, "status").stdout
    assert "oh1/101, epoch 1, NOT RENEWING" in text, text
    assert "node oh1/101: leader (not renewing)" in text
    second.stop()  # a clean stop leaves the list
    assert [n["node"] for n in shown()["nodes"]] == ["oh1/101"]
