"""The charm's actions: backups, client passwords, and the schemas of clients that left.

create-backup, list-backups, restore-backup; rotate-credentials;
list-schemas, grant-retained and purge-retained (see ``ownership``).

Backups are CrateDB snapshots in the bucket the ``s3-parameters`` relation
gives; each action (re)defines the repository first, since keys may have
rotated. Failures say what went wrong; snapshots are never deleted here.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import ops

import ownership
from exceptions import CharmError
from sql import create_snapshot, drop_relation, restore_snapshot
from state import DatabaseRequest

if TYPE_CHECKING:
    from charm import CrateDBCharm

logger = logging.getLogger(__name__)


class Actions(ops.Object):
    """Observes the actions of ``charm``."""

    def __init__(self, charm: CrateDBCharm):
        super().__init__(charm, "actions")
        self._charm = charm
        observe = charm.framework.observe
        observe(charm.on.create_backup_action, self._on_create_backup)
        observe(charm.on.list_backups_action, self._on_list_backups)
        observe(charm.on.restore_backup_action, self._on_restore_backup)
        observe(charm.on.rotate_credentials_action, self._on_rotate_credentials)
        observe(charm.on.list_schemas_action, self._on_list_schemas)
        observe(charm.on.grant_retained_action, self._on_grant_retained)
        observe(charm.on.purge_retained_action, self._on_purge_retained)

    def _ensure_repository(self, event: ops.ActionEvent) -> None:
        target = self._charm.scheduled.ensure_repository(force=True)
        event.log(f"repository '{target.bucket}/{target.base_path}' at {target.endpoint}")

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

    def _leader(self, event: ops.ActionEvent) -> bool:
        if self._charm.unit.is_leader():
            return True
        event.fail(f"run it on the leader unit (juju run {self._charm.app.name}/leader ...)")
        return False

    def _on_rotate_credentials(self, event: ops.ActionEvent) -> None:
        charm = self._charm
        if not self._leader(event):
            return
        wanted = int(event.params["relation-id"])
        ledger = charm.ledger()
        mine = [
            r
            for r in charm.provider.read_requests()
            if r.relation_id == wanted and not r.problem and ownership.is_served(ledger, _ask(r))
        ]
        if not mine:
            event.fail(f"relation {wanted} has no CrateDB user")
            return
        try:
            status = charm.cluster_status()
            tls = charm.node_tls()
            charm.answer_relation(
                mine,
                status.version if status else "",
                tls.ca if tls is not None else None,
                new_password=True,
            )
        except CharmError as err:
            event.fail(str(err))
            return
        event.set_results({"user": mine[0].username, "rotated": True})

    def _on_grant_retained(self, event: ops.ActionEvent) -> None:
        name, to = str(event.params["schema"]), str(event.params["to"])
        if not self._leader(event):
            return
        charm = self._charm
        try:
            ledger = ownership.hand_over(charm.ledger(), name, to)
        except ValueError as err:
            event.fail(str(err))
            return
        charm.save_ledger(ledger)
        logger.info("retained schema %s handed over to %s by the operator", name, to)
        charm.reconcile()
        event.set_results({"schema": name, "to": to, "now": charm.ledger()[name].describe()})

    def _on_purge_retained(self, event: ops.ActionEvent) -> None:
        name = str(event.params["schema"])
        if not self._leader(event):
            return
        charm = self._charm
        try:
            ledger = ownership.forget(charm.ledger(), name)
            tables = charm.sql.tables_in(name)
            for table, view in tables:
                charm.sql.execute(drop_relation(name, table, view=view))
        except (ValueError, CharmError) as err:
            event.fail(str(err))
            return
        charm.save_ledger(ledger)
        logger.info("retained schema %s purged: %d table(s) dropped", name, len(tables))
        event.set_results({"schema": name, "dropped": ",".join(t for t, _ in tables) or "none"})

    def _on_list_schemas(self, event: ops.ActionEvent) -> None:
        ledger = self._charm.ledger()
        lines = [f"{name}: {claim.describe()}" for name, claim in sorted(ledger.items())]
        event.set_results({"schemas": "\n".join(lines) or "none"})


def _ask(request: DatabaseRequest) -> ownership.Ask:
    return ownership.Ask(request.relation_id, request.app, request.schema)
