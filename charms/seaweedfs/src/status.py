"""What the unit says about itself: every status that applies, for collect-status.

It reads the world through the charm's public readers, the same ones the
reconcile and the actions use, so the status never disagrees with what the
charm does. ops shows the most severe one (Blocked before Maintenance before
Waiting before Active).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ops

import ownership
from cluster import drain_moves, node_slots, under_replicated, with_slots
from constants import S3_RELATION
from container import WeedShell
from exceptions import CharmError, WaitingError, WorkloadError
from state import BucketRequest
from workload import WeedSettings

if TYPE_CHECKING:
    from charm import SeaweedfsCharm


def unit_statuses(charm: SeaweedfsCharm) -> list[ops.StatusBase]:
    """Every status that applies to the unit now."""
    statuses: list[ops.StatusBase] = []
    try:
        config = charm.typed_config()
        charm.peer()
        charm.require_container()
        charm.storage_location()
    except CharmError as err:
        return [err.status]
    if charm.reconcile_error is not None:
        statuses.append(charm.reconcile_error.status)
    if moved_to := charm.membership(config).moving().get(charm.unit.name):
        # Ahead of the reconcile's own (Waiting) message: say it here too.
        why = f": {charm.reconcile_error}" if charm.reconcile_error is not None else ""
        statuses.append(
            ops.MaintenanceStatus(
                f"moving the one-unit store to the cluster (old master state kept in "
                f"{moved_to}); the other units wait{why}"
            )
        )
    if charm.drain_problem:
        statuses.append(ops.BlockedStatus(charm.drain_problem))
    requests = charm.bucket_requests()
    for req in requests:
        if not req.valid:
            statuses.append(
                ops.BlockedStatus(f"{req.app} (relation {req.relation_id}): {req.problem}")
            )
    valid = [req for req in requests if req.valid]
    ledger = charm.ledger()
    if charm.unit.is_leader():
        statuses += _ownership_statuses(charm, ledger, requests)
    settings = charm.weed_settings(config, len(valid))
    if settings.cluster is None:
        statuses.append(ops.WaitingStatus("waiting for the leader to choose the masters"))
        return statuses
    if waited := charm.unit_moving_a_store(charm.membership(config)):
        statuses.append(ops.WaitingStatus(f"waiting for {waited} to move its one-unit store over"))
        return statuses
    try:
        charm.require_certificate()
    except WaitingError as err:
        # The unit waits for its certificate: that, not a start, is what it is doing.
        statuses.append(err.status)
        return statuses
    statuses += _workload_statuses(charm, settings, len(valid))
    buckets = len({req.bucket for req in valid if ownership.is_served(ledger, _ask(req))})
    kept = len(ownership.retained(ledger))
    retained = f" ({kept} retained)" if kept else ""
    summary = _store_summary(charm, settings)
    statuses.append(
        ops.ActiveStatus(
            f"S3 at {charm.endpoint_url(config)}; {buckets} bucket(s){retained}; {summary}"
        )
    )
    return statuses


def _ownership_statuses(
    charm: SeaweedfsCharm, ledger: dict[str, ownership.Claim], requests: list[BucketRequest]
) -> list[ops.StatusBase]:
    """A Blocked status per request refused because another owns its bucket."""
    outcome = ownership.settle(
        ledger,
        (_ask(req) for req in requests if req.valid),
        (rel.id for rel in charm.model.relations[S3_RELATION]),
        holds_data=lambda _bucket: False,
        undecided=(req.relation_id for req in requests if not req.valid),
    )
    return [
        ops.BlockedStatus(f"{req.app} (relation {req.relation_id}): {why}")
        for req in requests
        if (why := outcome.refused.get((req.relation_id, req.bucket)))
    ]


def _store_summary(charm: SeaweedfsCharm, settings: WeedSettings) -> str:
    """``N/M units serve; leader seaweedfs/K`` from the masters' own view."""
    assert settings.cluster is not None
    door = charm.weed_client(settings)
    members = charm.membership(charm.typed_config()).members()
    status = door.dir_status()
    serving = len(node_slots(status)) if status else 0
    raft = door.cluster_status() or {}
    leader = str(raft.get("Leader", ""))
    leader_unit = next((m.unit for m in members.values() if leader.startswith(m.master)), "none")
    return f"{serving}/{len(members)} unit(s) serve; master leader {leader_unit}"


def _workload_statuses(
    charm: SeaweedfsCharm, settings: WeedSettings, buckets: int
) -> list[ops.StatusBase]:
    if not charm.service_running():
        return [ops.MaintenanceStatus("starting SeaweedFS")]
    door = charm.weed_client(settings)
    if not door.s3_ready():
        return [ops.WaitingStatus("waiting for SeaweedFS to start")]
    statuses: list[ops.StatusBase] = []
    raft = door.cluster_status()
    if raft is not None and not raft.get("Leader"):
        statuses.append(ops.WaitingStatus("the masters have no leader yet; electing"))
    layout = settings.volumes
    if buckets > layout.bucket_capacity:
        statuses.append(
            ops.BlockedStatus(
                f"data storage too small for {buckets} buckets "
                f"(room for {layout.bucket_capacity}); grow the data storage"
            )
        )
    volumes = door.volume_status()
    if volumes is not None and volumes.free_volumes == 0 and volumes.starved_buckets:
        statuses.append(
            ops.BlockedStatus(
                f"out of space: bucket(s) {', '.join(volumes.starved_buckets)} "
                "cannot take writes; grow the data storage"
            )
        )
    if charm.unit.is_leader():
        statuses += _replication_statuses(charm, settings)
    return statuses


def _replication_statuses(charm: SeaweedfsCharm, settings: WeedSettings) -> list[ops.StatusBase]:
    """Volumes short of copies, and a scale-down the remaining units cannot hold."""
    assert settings.cluster is not None
    status = charm.weed_client(settings).dir_status()
    if status is None:
        return []
    statuses: list[ops.StatusBase] = []
    members = list(charm.membership(charm.typed_config()).members().values())
    if short := under_replicated(status, settings.cluster.replication):
        # Copies are made once every unit serves (_keep_replication): not while one is away.
        away = len(members) - len(node_slots(status))
        doing = f"{away} unit(s) not serving" if away > 0 else "copies being made"
        statuses.append(ops.WaitingStatus(f"{len(short)} volume(s) under-replicated; {doing}"))
    planned = charm.app.planned_units()
    if planned >= len(members):
        return statuses
    # Scaling down: Kubernetes removes the highest-numbered pods first.
    try:
        topology = with_slots(WeedShell(charm.container, settings).topology(), node_slots(status))
    except WorkloadError:
        return statuses
    for member in members[planned:]:
        drain = drain_moves(topology, member.volume)
        if drain.problem:
            statuses.append(ops.BlockedStatus(f"scaling down: {member.unit}: {drain.problem}"))
    return statuses


def _ask(request: BucketRequest) -> ownership.Ask:
    return ownership.Ask(request.relation_id, request.app, request.bucket)
