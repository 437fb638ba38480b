"""What the unit says about itself: every status that applies, for collect-status.

It reads the world through the charm's public readers, the same ones the
reconcile and the actions use, so the status never disagrees with what the
charm does. ops shows the most severe one (Blocked before Waiting before
Maintenance before Active).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ops

import ownership
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
    if charm.unit.is_leader():
        statuses += _refused_clients(charm)
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
            f"{status.health.name} · {status.nodes} node(s) · CrateDB {status.version}{retained}"
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
