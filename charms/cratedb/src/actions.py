"""The charm's actions: create-backup, list-backups, restore-backup, rotate-credentials.

Backups are CrateDB snapshots in the bucket the ``s3-parameters`` relation
gives; each action (re)defines the repository first, since keys may have
rotated. Failures say what went wrong; snapshots are never deleted here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import ops
from database import generate_password
from sql import (
    create_repository,
    create_snapshot,
    drop_repository,
    restore_snapshot,
    set_password,
)

from exceptions import CharmError

if TYPE_CHECKING:
    from charm import CrateDBCharm


class Actions(ops.Object):
    """Observes the four actions of ``charm``."""

    def __init__(self, charm: CrateDBCharm):
        super().__init__(charm, "actions")
        self._charm = charm
        observe = charm.framework.observe
        observe(charm.on.create_backup_action, self._on_create_backup)
        observe(charm.on.list_backups_action, self._on_list_backups)
        observe(charm.on.restore_backup_action, self._on_restore_backup)
        observe(charm.on.rotate_credentials_action, self._on_rotate_credentials)

    def _ensure_repository(self, event: ops.ActionEvent) -> None:
        sql = self._charm.sql
        target = self._charm.backups.target()
        if sql.repository_exists():
            # Keys may have rotated: redefine (snapshots stay in the bucket).
            sql.execute(drop_repository())
        event.log(f"repository '{target.bucket}/{target.base_path}' at {target.endpoint}")
        sql.execute(create_repository(target))

    def _on_create_backup(self, event: ops.ActionEvent) -> None:
        sql = self._charm.sql
        name = str(
            event.params.get("name") or datetime.now(UTC).strftime("snapshot-%Y%m%d-%H%M%S")
        )
        try:
            self._ensure_repository(event)
            event.log(f"creating snapshot {name} of every table")
            started = time.monotonic()
            sql.execute(create_snapshot(name))
        except (CharmError, ValueError) as err:
            event.fail(str(err))
            return
        rows = [r for r in sql.snapshots() if r[0] == name]
        state = rows[0][1] if rows else "UNKNOWN"
        if state != "SUCCESS":
            event.fail(f"snapshot {name} ended {state}")
            return
        event.set_results(
            {"snapshot": name, "state": state, "seconds": f"{time.monotonic() - started:.1f}"}
        )

    def _on_list_backups(self, event: ops.ActionEvent) -> None:
        try:
            self._ensure_repository(event)
            rows = self._charm.sql.snapshots()
        except CharmError as err:
            event.fail(str(err))
            return
        lines = [
            f"{name}  {state}  started={started}  tables={tables}"
            for name, state, started, _, tables in rows
        ]
        event.set_results({"count": len(rows), "snapshots": "\n".join(lines) or "none"})

    def _on_restore_backup(self, event: ops.ActionEvent) -> None:
        name = str(event.params["name"])
        tables = [t.strip() for t in str(event.params.get("tables") or "").split(",") if t.strip()]
        try:
            statement = restore_snapshot(name, tables)
            self._ensure_repository(event)
            event.log(f"restoring {', '.join(tables) or 'every table'} from {name}")
            self._charm.sql.execute(statement)
        except (CharmError, ValueError) as err:
            event.fail(str(err))
            return
        event.set_results({"snapshot": name, "restored": ",".join(tables) or "all"})

    def _on_rotate_credentials(self, event: ops.ActionEvent) -> None:
        charm = self._charm
        if not charm.unit.is_leader():
            event.fail(f"run it on the leader unit (juju run {charm.app.name}/leader ...)")
            return
        wanted = int(event.params["relation-id"])
        request = next(
            (
                r
                for r in charm.provider.read_requests()
                if r.relation_id == wanted and not r.problem
            ),
            None,
        )
        if request is None:
            event.fail(f"relation {wanted} has no CrateDB user")
            return
        try:
            status = charm.cluster_status()
            tls = charm.node_tls()
            password = generate_password()
            charm.sql.execute(set_password(request.username, password))
            charm.answer(
                request,
                password,
                status.version if status else "",
                tls.ca if tls is not None else None,
            )
        except CharmError as err:
            event.fail(str(err))
            return
        event.set_results({"user": request.username, "rotated": True})
