"""Two or more nodes, as the commands see them: `sync` taking the lead for its pass, and
`state migrate` moving the whole state between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .app import open_shared, open_state, read_state, state_dsn
from .config import Config, StateConfig
from .leader import Lease, TermFence, node_name
from .store import Shared, StateError
from .store.sql import SqlStore


@contextmanager
def one_writer(config: Config, dry_run: bool) -> Iterator[TermFence | None]:
    """With [state] url, `sync` takes the lead for its pass, as a service node would: it
    runs only while no node leads, and a node waits for it."""
    if config.state is None or dry_run:
        yield None
        return
    import psycopg

    from .store.postgres import PostgresState, reason

    # the schema first, as `run` makes it: a new database has no leader row yet (opening
    # it migrates; its errors already say whether the database cannot be reached)
    PostgresState(state_dsn(config)).close()
    lease = Lease(state_dsn(config, "officehours-sync"), node_name(config.state.node),
                  config.state.lease_seconds)
    try:
        lease.step()
    except psycopg.Error as err:
        raise StateError(f"the state database cannot be reached: {reason(err)}") from None
    if not lease.leading():
        other = lease.other
        lease.stop()
        raise StateError(f"{other.node if other else 'another node'} leads (epoch "
                         f"{other.epoch if other else '?'}): its passes write; `sync` runs "
                         "only while no node leads")
    lease.start()
    try:
        yield TermFence(lease, lease.epoch)  # this term only: a lead lost is not retaken
    finally:
        lease.stop()


def migrate(config: Config, to: str, password_file: Path | None, force: bool) -> str:
    """Copy the whole state from where `config` keeps it to `to` (a postgresql:// URL, or
    "sqlite": the file in service.state_dir); what was copied where. StateError when
    the copy must not happen."""
    source = read_state(config)
    if source is None:
        raise StateError("nothing to migrate: the state is empty (no pass has run)")
    target: SqlStore | None = None
    try:
        found = source.leader() if isinstance(source, Shared) else None
        if found is not None and found.live:
            raise StateError(f"{found.node} leads (epoch {found.epoch}): stop the service on every "
                             "node first (systemctl stop officehours), so that nothing is "
                             "written during the copy")
        if to == "sqlite":
            target = open_state(replace(config, state=None))
            where = str(config.service.state_dir / "state.sqlite3")
        else:
            shared = config.state or StateConfig(url=to, password_file=None)
            target = open_shared(replace(config, state=replace(
                shared, url=to, password_file=password_file or shared.password_file)))
            where = to
        if target.statuses() and not force:
            raise StateError(f"{where} already holds a state: --force replaces it")
        rows = source.dump()
        target.load(rows)
    finally:
        source.close()
        if target is not None:
            target.close()
    then = "remove the [state] section" if to == "sqlite" else f'set [state] url = "{to}"'
    return (f"copied to {where}: {len(rows['instructors'])} instructors, "
            f"{len(rows['events'])} events, {len(rows['audit'])} audit lines. Now {then} in "
            "the configuration and start the service (on every node).")
