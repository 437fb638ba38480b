"""The charm's side of a rolling refresh: the stop hook, the version gate, the partition.

``refresh.py`` decides; this applies its decisions through the charm's doors
(SQL on the unit's own node, ``crate -v`` in the container, the StatefulSet
through ``k8s.py``) and answers the ``pre-refresh-check`` action.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import ops

from constants import VERSION_KEY
from container import Workload
from exceptions import CharmError, WorkloadError
from k8s import StatefulSetDoor
from refresh import (
    ClusterCheck,
    CrateVersion,
    next_partition,
    pre_refresh_problems,
    version_problem,
)
from sql import restore_allocation, restrict_allocation
from state import ClusterStatus

if TYPE_CHECKING:
    from charm import CrateDBCharm

logger = logging.getLogger(__name__)


class Rollouts(ops.Object):
    """Refreshes the cluster one node at a time, the way CrateDB documents it."""

    def __init__(self, charm: CrateDBCharm):
        super().__init__(charm, "rollouts")
        self._charm = charm
        # What the leader said of the refresh in this hook (for the status).
        self.message = ""
        self.pending = False
        charm.framework.observe(charm.on.stop, self._on_stop)
        charm.framework.observe(charm.on.pre_refresh_check_action, self._on_pre_refresh_check)

    def door(self) -> StatefulSetDoor:
        """The application's StatefulSet."""
        return StatefulSetDoor(self._charm.app.name, self._charm.model.name)

    # -- before the node starts ---------------------------------------------

    def gate(self, workload: Workload, peer: ops.Relation) -> CrateVersion:
        """The image's CrateDB version; CharmError when this node must not start it."""
        try:
            image = CrateVersion.parse(workload.crate_version())
        except ValueError as err:
            raise CharmError(f"cannot tell the image's CrateDB version: {err}") from None
        mine = peer.data[self._charm.unit].get(VERSION_KEY)
        others = [
            CrateVersion.parse(v) for unit in peer.units if (v := peer.data[unit].get(VERSION_KEY))
        ]
        if problem := version_problem(image, CrateVersion.parse(mine) if mine else None, others):
            raise CharmError(problem)
        return image

    # -- once it runs ------------------------------------------------------

    def settle(self, status: ClusterStatus, node_name: str, peer: ops.Relation) -> None:
        """Record the node's version; restore allocation once every node is back (any unit)."""
        sql = self._charm.sql
        versions = sql.node_versions()
        if node_name in versions:
            peer.data[self._charm.unit][VERSION_KEY] = versions[node_name]
        if sql.allocation_restricted() and status.nodes >= self._charm.app.planned_units():
            sql.execute(restore_allocation())
            logger.info("every node is back: shard allocation restored")

    def check(self, status: ClusterStatus) -> ClusterCheck:
        """What the cluster says of itself, read through the local node."""
        sql = self._charm.sql
        return ClusterCheck(
            health=status.health,
            nodes=status.nodes,
            planned_units=self._charm.app.planned_units(),
            moving_shards=sql.moving_shards(),
            versions=tuple(sql.node_versions().values()),
            allocation_restricted=sql.allocation_restricted(),
        )

    def roll(self, status: ClusterStatus) -> None:
        """Leader: move the StatefulSet's partition as ``next_partition`` says."""
        if not self._charm.unit.is_leader():
            return
        rollout = self.door().read()
        if rollout is None:
            return
        planned = self._charm.app.planned_units()
        move = next_partition(rollout, self.check(status), planned)
        self.message, self.pending = move.message, rollout.in_progress
        if move.partition != rollout.partition:
            self.door().set_partition(move.partition)

    def statuses(self) -> list[ops.StatusBase]:
        """The leader's word on a refresh under way (nothing when none is)."""
        if not self.pending or not self.message:
            return []
        if self.message.startswith("refresh pending"):
            app = self._charm.app.name
            return [
                ops.BlockedStatus(
                    f"refresh pending: check the cluster and start it with "
                    f"juju run {app}/leader pre-refresh-check"
                )
            ]
        return [ops.MaintenanceStatus(self.message)]

    # -- events ------------------------------------------------------------

    def _on_stop(self, _event: ops.StopEvent) -> None:
        """The pod is going: keep the cluster from copying this node's shards meanwhile."""
        charm = self._charm
        status = charm.cluster_status()
        if status is None or status.nodes < 2:
            return
        try:
            charm.sql.execute(restrict_allocation())
            logger.info("node stopping: allocation restricted to new primaries until it is back")
        except WorkloadError as err:
            logger.warning("could not restrict allocation before stopping: %s", err)

    def _on_pre_refresh_check(self, event: ops.ActionEvent) -> None:
        charm = self._charm
        if not charm.unit.is_leader():
            event.fail(f"run it on the leader unit (juju run {charm.app.name}/leader ...)")
            return
        status = charm.cluster_status()
        if status is None:
            event.fail("CrateDB does not answer on the leader: wait for it, then check again")
            return
        try:
            check = self.check(status)
            if problems := pre_refresh_problems(check):
                event.fail("not ready to refresh: " + "; ".join(problems))
                return
            door = self.door()
            rollout = door.read()
            first = charm.app.planned_units() - 1
            if rollout is not None and rollout.partition > first:
                door.set_partition(first)
        except CharmError as err:
            event.fail(str(err))
            return
        event.set_results(
            {
                "ok": True,
                "versions": ", ".join(sorted(set(check.versions))),
                "next": f"unit {first} refreshes first, then one unit at a time once GREEN",
            }
        )
