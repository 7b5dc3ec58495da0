"""The audit log, in the SQL both backends speak: every change the program made to a
calendar or a room, written as pending before the vendor write and settled after it."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any


class AuditRows:
    """Mixed into SqlStore: `transaction`, `_rows` and `epoch` are the backend's."""

    @property
    def epoch(self) -> int | None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def audit(self, at: datetime, instructor: str, target: str, action: str,
              detail: dict[str, Any]) -> int:
        """One line of the audit log; its id (see settle_audit)."""
        with self.transaction() as db:
            row = db.execute("INSERT INTO audit (at, instructor, target, action, detail, epoch) "
                             "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                             (at.isoformat(), instructor, target, action, json.dumps(detail),
                              self.epoch)).fetchone()
        return int(row[0])

    def settle_audit(self, entry: int, done: bool) -> None:
        """A line written as pending before a vendor write: confirmed once the write is
        done, taken out when the vendor refused it. A line the program could not settle
        (killed, or its disk full after the write) stays, marked pending: the audit log
        never lacks a write that may have happened."""
        with self.transaction() as db:
            if not done:
                db.execute("DELETE FROM audit WHERE id=?", (entry,))
                return
            (detail,) = db.execute("SELECT detail FROM audit WHERE id=?", (entry,)).fetchone()
            settled = {k: v for k, v in json.loads(detail).items() if k != "pending"}
            db.execute("UPDATE audit SET detail=? WHERE id=?", (json.dumps(settled), entry))

    def audit_log(self, instructor: str | None = None, since: datetime | None = None,
                  ) -> list[tuple[str, str, str, str, dict[str, Any]]]:
        """What the program changed, oldest first: (at, instructor, target, action, detail)."""
        rows = self._rows("SELECT at, instructor, target, action, detail FROM audit ORDER BY id")
        return [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows
                if (instructor is None or r[1] == instructor)
                and (since is None or datetime.fromisoformat(r[0]) >= since)]
