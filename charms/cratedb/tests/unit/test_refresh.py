"""Rolling refresh: which version jumps CrateDB supports, when the next pod may go, the charm.

``refresh.py`` is pure and tested on its own. The charm is run in ops.testing
with its two doors replaced: SQL (``FakeCrate``, as everywhere here) and the
StatefulSet (``FakeStatefulSet`` below, standing in for ``k8s.StatefulSetDoor``;
the partition and the pods' controller revisions as Kubernetes reports them).
The real rolling upgrade 6.4.0 -> 6.4.1 of three real nodes is in
tests/workload/test_cratedb_refresh.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from ops import testing

import rollout
from charm import CrateDBCharm
from constants import CONTAINER, PEER_RELATION, SERVICE, VERSION_KEY
from helpers import FakeCrate, container, make_state, peer_relation, running_state
from refresh import (
    ClusterCheck,
    CrateVersion,
    Rollout,
    next_partition,
    pre_refresh_problems,
    rolling_upgrade_problem,
    version_problem,
)
from state import Health

Ctx = testing.Context
V = CrateVersion.parse
GREEN3 = ClusterCheck(Health.GREEN, nodes=3, planned_units=3)


class TestVersions:
    def test_the_version_is_read_from_what_crate_v_prints(self):
        assert V("Version: 6.4.1, Build: 45bfa80/NA, JVM: 25.0.3\n") == CrateVersion(6, 4, 1)
        assert str(V("6.4.0")) == "6.4.0"
        with pytest.raises(ValueError, match="no CrateDB version"):
            V("crate: command not found")

    @pytest.mark.parametrize(
        ("running", "image"),
        [("6.4.0", "6.4.1"), ("6.4.1", "6.4.1"), ("6.3.2", "6.4.0"), ("5.10.1", "6.0.0")],
    )
    def test_rolling_upgrades_crate_documents_are_allowed(self, running: str, image: str):
        assert rolling_upgrade_problem(V(running), V(image)) is None

    @pytest.mark.parametrize(
        ("running", "image", "why"),
        [
            ("6.4.1", "6.4.0", "downgrades are refused"),
            ("6.2.3", "6.4.0", "skips a feature release: refresh to 6.3.x first"),
            ("5.9.8", "6.0.0", "not a rolling upgrade CrateDB supports"),
            ("5.10.1", "7.0.0", "not a rolling upgrade CrateDB supports"),
        ],
    )
    def test_other_jumps_are_refused_saying_why(self, running: str, image: str, why: str):
        problem = rolling_upgrade_problem(V(running), V(image))
        assert problem is not None
        assert why in problem

    def test_a_node_never_starts_an_older_crate_than_its_data_last_ran(self):
        problem = version_problem(V("6.4.0"), V("6.4.1"), [V("6.4.0")])
        assert problem == (
            "this node's data was last run by CrateDB 6.4.1 and the image has 6.4.0: "
            "downgrades are refused; juju refresh with an image of CrateDB 6.4.1 or later"
        )

    def test_a_new_node_and_a_refreshed_one_are_checked_against_the_oldest_peer(self):
        assert version_problem(V("6.4.1"), None, []) is None
        assert version_problem(V("6.4.1"), V("6.4.0"), [V("6.4.0"), V("6.4.1")]) is None
        problem = version_problem(V("6.4.1"), None, [V("6.2.0"), V("6.4.0")])
        assert problem is not None
        assert problem.endswith("juju refresh with an image CrateDB 6.2.0 can roll to")


class TestPreRefreshCheck:
    def test_a_whole_green_cluster_on_one_version_may_refresh(self):
        assert pre_refresh_problems(GREEN3) == []

    def test_every_reason_not_to_is_named(self):
        check = ClusterCheck(
            Health.YELLOW,
            nodes=2,
            planned_units=3,
            moving_shards=4,
            versions=("6.4.0", "6.4.1"),
            allocation_restricted=True,
        )
        assert pre_refresh_problems(check) == [
            "the cluster is YELLOW, not GREEN",
            "2 of 3 nodes have joined",
            "4 shard(s) are relocating or initializing",
            "nodes run different versions (6.4.0, 6.4.1)",
            "shard allocation is restricted (a node is restarting)",
        ]


def rolled(partition: int, *refreshed: int, units: int = 3) -> Rollout:
    return Rollout(
        partition=partition,
        update_revision="new",
        pod_revisions={n: "new" if n in refreshed else "old" for n in range(units)},
    )


class TestPartition:
    def test_idle_the_partition_is_closed_at_the_unit_count(self):
        assert next_partition(rolled(0, 0, 1, 2), GREEN3, 3).partition == 3

    def test_a_new_template_waits_for_the_pre_refresh_check(self):
        move = next_partition(rolled(3), GREEN3, 3)
        assert (move.partition, move.message) == (
            3,
            "refresh pending: run the pre-refresh-check action to start it",
        )

    def test_the_next_pod_goes_only_once_the_last_one_is_back_and_green(self):
        assert next_partition(rolled(2), GREEN3, 3).partition == 2  # unit 2 being replaced
        yellow = ClusterCheck(Health.YELLOW, nodes=3, planned_units=3)
        paused = next_partition(rolled(2, 2), yellow, 3)
        assert (paused.partition, paused.message) == (
            2,
            "refresh paused after unit 2: the cluster is YELLOW, not GREEN",
        )
        restricted = ClusterCheck(Health.GREEN, 3, 3, allocation_restricted=True)
        assert next_partition(rolled(2, 2), restricted, 3).partition == 2
        mixed = ClusterCheck(Health.GREEN, 3, 3, versions=("6.4.0", "6.4.1"))
        move = next_partition(rolled(2, 2), mixed, 3)
        assert (move.partition, move.message) == (1, "refreshing unit 1")
        assert next_partition(rolled(0, 0, 2), GREEN3, 3).partition == 0


@dataclass
class FakeStatefulSet:
    """``k8s.StatefulSetDoor`` as Kubernetes would answer it."""

    rollout: Rollout | None = None
    partitions: list[int] = field(default_factory=list)

    def read(self) -> Rollout | None:
        return self.rollout

    def set_partition(self, partition: int) -> None:
        self.partitions.append(partition)


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> FakeStatefulSet:
    fake = FakeStatefulSet()
    monkeypatch.setattr(rollout, "StatefulSetDoor", lambda app, namespace: fake)
    return fake


def three_units(
    leader: bool = True,
    mine: str | None = None,
    peers_version: str = "6.4.0",
    image: str = "6.4.0",
    running: bool = True,
) -> testing.State:
    peer = peer_relation({1: "b", 2: "c"})
    units = {n: {**data, VERSION_KEY: peers_version} for n, data in peer.peers_data.items()}
    peer = testing.PeerRelation(
        PEER_RELATION,
        local_app_data={"bootstrap-node": "cratedb-0", "bootstrapped": "true"},
        local_unit_data={VERSION_KEY: mine} if mine else {},
        peers_data=units,
    )
    state = make_state(
        peer=peer, leader=leader, planned_units=3, workload=container(image_version=image)
    )
    if not running:
        return state
    # The node's layer applied by an earlier hook, and its service running.
    layer = testing.Context(CrateDBCharm).run(testing.CharmEvents.config_changed(), state)
    return running_state(dataclasses.replace(layer, unit_status=testing.UnknownStatus()))


class TestCharm:
    def test_a_stopping_node_restricts_allocation_first(self, ctx: Ctx, crate: FakeCrate):
        crate.nodes = 3
        ctx.run(ctx.on.stop(), three_units())
        assert crate.statements == [
            "SET GLOBAL TRANSIENT \"cluster.routing.allocation.enable\" = 'new_primaries'"
        ]

    def test_a_lone_node_stops_without_touching_allocation(self, ctx: Ctx, crate: FakeCrate):
        ctx.run(ctx.on.stop(), running_state(make_state()))
        assert crate.statements == []

    def test_an_image_older_than_the_nodes_data_is_refused_and_not_started(
        self, ctx: Ctx, sts: FakeStatefulSet
    ):
        state = three_units(mine="6.4.1", peers_version="6.4.1", image="6.4.0", running=False)
        out = ctx.run(ctx.on.upgrade_charm(), state)
        assert out.unit_status == testing.BlockedStatus(
            "this node's data was last run by CrateDB 6.4.1 and the image has 6.4.0: "
            "downgrades are refused; juju refresh with an image of CrateDB 6.4.1 or later"
        )
        assert SERVICE not in out.get_container(CONTAINER).plan.services

    def test_an_image_that_skips_a_feature_release_is_refused(self, ctx: Ctx):
        state = three_units(mine="6.2.1", peers_version="6.2.1", image="6.4.1", running=False)
        out = ctx.run(ctx.on.upgrade_charm(), state)
        assert out.unit_status.name == "blocked"
        assert "skips a feature release: refresh to 6.3.x first" in out.unit_status.message

    def test_a_refreshed_node_starts_and_records_its_version(self, ctx: Ctx, crate: FakeCrate):
        state = three_units(mine="6.4.0", image="6.4.1", running=False)
        out = ctx.run(ctx.on.upgrade_charm(), state)
        assert SERVICE in out.get_container(CONTAINER).plan.services
        crate.nodes, crate.versions = 3, {"cratedb-0": "6.4.1", "cratedb-1": "6.4.0"}
        after = ctx.run(ctx.on.update_status(), running_state(out))
        [peer] = after.get_relations(PEER_RELATION)
        recorded: dict[str, str] = dict(peer.local_unit_data)
        assert recorded[VERSION_KEY] == "6.4.1"

    def test_allocation_is_restored_once_every_node_is_back(self, ctx: Ctx, crate: FakeCrate):
        crate.nodes, crate.restricted = 2, True
        ctx.run(ctx.on.update_status(), three_units(leader=False))
        assert not any("allocation" in s for s in crate.statements)
        crate.nodes = 3
        ctx.run(ctx.on.update_status(), three_units(leader=False))
        assert crate.statements == ['RESET GLOBAL "cluster.routing.allocation.enable"']

    def test_idle_the_leader_closes_the_partition(
        self, ctx: Ctx, crate: FakeCrate, sts: FakeStatefulSet
    ):
        crate.nodes = 3
        state = three_units()
        sts.rollout = rolled(0, 0, 1, 2)
        out = ctx.run(ctx.on.update_status(), state)
        assert sts.partitions == [3]
        assert out.unit_status.name == "active"

    def test_a_pending_refresh_blocks_naming_the_action(
        self, ctx: Ctx, crate: FakeCrate, sts: FakeStatefulSet
    ):
        crate.nodes = 3
        sts.rollout = rolled(3)
        out = ctx.run(ctx.on.update_status(), three_units())
        assert sts.partitions == []
        assert out.unit_status == testing.BlockedStatus(
            "refresh pending: check the cluster and start it with "
            "juju run cratedb/leader pre-refresh-check"
        )

    def test_pre_refresh_check_opens_the_highest_unit_when_the_cluster_is_ready(
        self, ctx: Ctx, crate: FakeCrate, sts: FakeStatefulSet
    ):
        crate.nodes = 3
        sts.rollout = rolled(3)
        ctx.run(ctx.on.action("pre-refresh-check"), three_units())
        assert sts.partitions == [2]
        assert ctx.action_results == {
            "ok": True,
            "versions": "6.4.0",
            "next": "unit 2 refreshes first, then one unit at a time once GREEN",
        }

    def test_pre_refresh_check_refuses_a_cluster_that_is_not_ready(
        self, ctx: Ctx, crate: FakeCrate, sts: FakeStatefulSet
    ):
        crate.nodes, crate.health, crate.moving = 3, Health.YELLOW, 2
        sts.rollout = rolled(3)
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("pre-refresh-check"), three_units())
        assert failed.value.message == (
            "not ready to refresh: the cluster is YELLOW, not GREEN; "
            "2 shard(s) are relocating or initializing"
        )
        assert sts.partitions == []

    def test_the_leader_lets_the_next_unit_go_once_green(
        self, ctx: Ctx, crate: FakeCrate, sts: FakeStatefulSet
    ):
        crate.nodes = 3
        crate.versions = {"cratedb-0": "6.4.0", "cratedb-1": "6.4.0", "cratedb-2": "6.4.1"}
        state = three_units()
        sts.rollout = rolled(2, 2)
        out = ctx.run(ctx.on.update_status(), state)
        assert sts.partitions == [1]
        assert out.unit_status == testing.MaintenanceStatus("refreshing unit 1")
