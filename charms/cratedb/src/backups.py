"""The snapshot repository and the scheduled backups, as the leader keeps them.

The repository is (re)defined from the ``s3-parameters`` relation whenever
its target changes (keys rotated, another bucket) and before every backup
action. Scheduled backups run in the leader's container
(``in_container/backup_runner.py`` under Pebble): Juju offers a charm no
timer. Other units keep no runner, and no runner state the exporter could
report as theirs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import ops

from config import CharmConfig
from constants import (
    BACKUP_LAYER_LABEL,
    BACKUP_SERVICE,
    BACKUP_STATE_DIR,
    BACKUP_STATE_FILE,
    S3_RELATION,
)
from container import Workload
from exceptions import CharmError
from sql import create_repository, drop_repository
from state import BackupTarget
from workload import BackupScheduleSettings, backup_schedule_layer

if TYPE_CHECKING:
    from charm import CrateDBCharm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduleOutcome:
    """What the backup runner last said (its state file), as the status reads it."""

    failed: bool = False
    error: str = ""
    last_success: datetime | None = None
    last_snapshot: str = ""

    @classmethod
    def parse(cls, text: str | None) -> ScheduleOutcome | None:
        """From the runner's JSON; None when there is none (or it is unreadable)."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            success = str(raw.get("last_success") or "")
            return cls(
                failed=bool(raw.get("failed")),
                error=str(raw.get("error") or "")[:200],
                last_success=datetime.fromisoformat(success) if success else None,
                last_snapshot=str(raw.get("last_snapshot") or ""),
            )
        except (ValueError, AttributeError):
            return None


def target_digest(target: BackupTarget) -> str:
    """A digest of everything the repository is defined with (keys included, never stored)."""
    fields = (
        target.endpoint,
        target.bucket,
        target.base_path,
        target.region,
        target.access_key,
        target.secret_key,
    )
    return hashlib.sha256("\0".join(fields).encode()).hexdigest()


class ScheduledBackups(ops.Object):
    """The leader's repository and backup runner; every other unit's retired runner."""

    # The digest of the target the repository was last defined with.
    _stored = ops.StoredState()

    def __init__(self, charm: CrateDBCharm):
        super().__init__(charm, "scheduled-backups")
        self._charm = charm
        self._stored.set_default(repository="")

    def ensure_repository(self, force: bool = False) -> BackupTarget:
        """Define the repository for the related bucket when it changed (or always: ``force``)."""
        charm = self._charm
        target = charm.backups.target()
        digest = target_digest(target)
        sql = charm.sql
        exists = sql.repository_exists()
        if exists and not force and self._stored.repository == digest:
            return target
        if exists:
            # Keys may have rotated: redefine (snapshots stay in the bucket).
            sql.execute(drop_repository())
        sql.execute(create_repository(target))
        self._stored.repository = digest
        logger.info("snapshot repository at %s/%s", target.bucket, target.base_path)
        return target

    def reconcile(
        self, config: CharmConfig, workload: Workload, https: bool, scripts_changed: bool
    ) -> None:
        """Run the schedule on the leader when one is set (S3 related); retire it elsewhere."""
        charm = self._charm
        wanted = charm.unit.is_leader() and bool(config.backup_schedule)
        if not wanted:
            if workload.retire_side_service(BACKUP_LAYER_LABEL, BACKUP_SERVICE):
                logger.info("scheduled backups stopped on this unit")
            # A stale "failed" must not be reported by a unit that no longer runs them.
            workload.remove(BACKUP_STATE_FILE)
            return
        if charm.model.get_relation(S3_RELATION) is None:
            workload.retire_side_service(BACKUP_LAYER_LABEL, BACKUP_SERVICE)
            raise CharmError(self.missing_s3())
        self.ensure_repository()
        workload.make_writable_dir(BACKUP_STATE_DIR)
        settings = BackupScheduleSettings(
            schedule=config.backup_schedule, retention=config.backup_retention, https=https
        )
        if workload.apply_side_service(
            BACKUP_LAYER_LABEL, backup_schedule_layer(settings), scripts_changed
        ):
            logger.info(
                "scheduled backups: %s, retention %s",
                settings.schedule,
                settings.retention or "every snapshot kept",
            )

    def missing_s3(self) -> str:
        """The Blocked message of a schedule with nowhere to go."""
        app = self._charm.app.name
        return (
            f"backup-schedule is set but no S3 is related: juju relate {app}:{S3_RELATION} "
            "<an S3 provider, e.g. seaweedfs>, or set backup-schedule=''"
        )

    def outcome(self, workload: Workload) -> ScheduleOutcome | None:
        """What the runner last said on this unit (None: it has said nothing yet)."""
        return ScheduleOutcome.parse(workload.read_text(BACKUP_STATE_FILE))
