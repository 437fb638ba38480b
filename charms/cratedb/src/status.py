"""What the unit says about itself: every status that applies, for collect-status.

It reads the world through the charm's public readers, the same ones the
reconcile and the actions use, so the status never disagrees with what the
charm does. ops shows the most severe one (Blocked before Waiting before
Maintenance before Active).
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

import ops

import ownership
from constants import S3_RELATION
from container import Workload
from exceptions import CharmError, WorkloadError
from scale import replica_problem
from state import Health

if TYPE_CHECKING:
    from charm import CrateDBCharm


def unit_statuses(charm: CrateDBCharm) -> list[ops.StatusBase]:
    """Every status that applies to the unit now."""
    try:
        charm.typed_config()
        charm.peer()
        charm.require_workload()
    except CharmError as err:
        return [err.status]
    statuses: list[ops.StatusBase] = []
    if charm.reconcile_error is not None:
        statuses.append(charm.reconcile_error.status)
    if charm.drain_problem:
        statuses.append(ops.BlockedStatus(charm.drain_problem))
    backed_up = ""
    if charm.unit.is_leader():
        statuses += _refused_clients(charm)
        backup_statuses, backed_up = _scheduled_backups(charm)
        statuses += backup_statuses
        statuses += charm.rollouts.statuses()
    status = charm.cluster_status()
    if status is None:
        statuses.append(ops.WaitingStatus("waiting for CrateDB to start"))
        return statuses
    planned = charm.app.planned_units()
    try:
        replicas = charm.sql.max_replicas()
    except WorkloadError:
        replicas = 0
    if problem := replica_problem(replicas, planned):
        statuses.append(ops.BlockedStatus(problem))
    if status.health is Health.RED:
        statuses.append(
            ops.BlockedStatus(f"cluster health RED on {status.nodes} node(s): check sys.health")
        )
    if status.nodes < planned:
        statuses.append(ops.WaitingStatus(f"{status.nodes} of {planned} nodes joined"))
    kept = len(ownership.retained(charm.ledger()))
    retained = f" · {kept} schema(s) retained" if kept else ""
    statuses.append(
        ops.ActiveStatus(
            f"{status.health.name} · {status.nodes} node(s) · CrateDB {status.version}"
            f"{retained}{backed_up}"
        )
    )
    return statuses


def _refused_clients(charm: CrateDBCharm) -> list[ops.StatusBase]:
    """A Blocked status per client request the leader refuses, naming the client and why."""
    requests = charm.provider.read_requests()
    refused = charm.settle(requests, look=False).refused
    statuses: list[ops.StatusBase] = []
    for request in requests:
        why = request.problem or refused.get((request.relation_id, request.schema))
        if why:
            statuses.append(
                ops.BlockedStatus(f"{request.app} (relation {request.relation_id}): {why}")
            )
    return statuses


def _scheduled_backups(charm: CrateDBCharm) -> tuple[list[ops.StatusBase], str]:
    """A Blocked status when scheduled backups cannot run or failed; the last success, if any."""
    config = charm.typed_config()
    if not config.backup_schedule:
        return [], ""
    if charm.model.get_relation(S3_RELATION) is None:
        return [ops.BlockedStatus(charm.scheduled.missing_s3())], ""
    outcome = charm.scheduled.outcome(Workload(charm.container))
    if outcome is None:
        return [], ""
    last = ""
    if outcome.last_success is not None:
        last = f" · last backup {outcome.last_success.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if outcome.failed:
        return [
            ops.BlockedStatus(
                f"scheduled backup failed: {outcome.error}; fix the S3 side it names "
                "(retried every 5 minutes), or run create-backup to see it now"
            )
        ], last
    return [], last
