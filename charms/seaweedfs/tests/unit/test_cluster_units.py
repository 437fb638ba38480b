"""Several units under ops.testing: masters, addresses, scaling up and down."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ops import testing

from charm import SeaweedfsCharm
from constants import (
    CONTAINER,
    PEER_RELATION,
)
from helpers import (
    WEED_SHELL,
    FakeWorkload,
    container,
    dir_status,
    identity_named,
    make_state,
    peer_with,
    shell_scripts,
    unit_address_of,
    weed_command,
    with_security,
)

Ctx = testing.Context[Any]


class TestCluster:
    def test_three_units_run_three_masters_and_every_unit_knows_them(self, ctx: Ctx):
        peer = peer_with(1, 2)

        out = ctx.run(ctx.on.config_changed(), make_state(peer, planned_units=3))

        app_data: dict[str, str] = dict(out.get_relation(peer.id).local_app_data)
        masters = json.loads(app_data["masters"])
        assert masters == ["seaweedfs/0", "seaweedfs/1", "seaweedfs/2"]
        command = weed_command(out)
        assert (
            f"-master.peers={unit_address_of(0)}:9333,{unit_address_of(1)}:9333,{unit_address_of(2)}:9333"
            in command
        )
        assert "-master=true" in command
        # Repairs between pods: SeaweedFS refuses private remote ends without this.
        assert "-volume.allowUntrustedRemoteEndpoints" in command

    def test_a_unit_without_a_master_runs_volume_filer_and_s3_pointed_at_the_masters(
        self, ctx: Ctx
    ):
        admin = testing.Secret({"access-key": "A" * 20, "secret-key": "s" * 40}, owner="app")
        peer = peer_with(
            0, masters=["seaweedfs/0"], **{"secret-ids": json.dumps({"admin": admin.id})}
        )
        state = with_security(
            dataclasses.replace(
                make_state(peer, leader=False, planned_units=2), secrets=frozenset({admin})
            )
        )
        ctx_unit1 = testing.Context(SeaweedfsCharm, unit_id=1)

        out = ctx_unit1.run(ctx_unit1.on.config_changed(), state)

        command = weed_command(out)
        assert "-master=false" in command
        assert f"-master.peers={unit_address_of(0)}:9333" in command
        assert f"-ip={unit_address_of(1)}" in command
        assert set(out.get_container(CONTAINER).plan.checks) == {"s3-ready"}
        # Identities on every unit: this one serves S3 with the same admin key.
        assert identity_named(ctx_unit1, out, "charm-admin")["credentials"] == [
            {"accessKey": "A" * 20, "secretKey": "s" * 40}
        ]

    def test_a_non_leader_waits_until_the_leader_chose_the_masters(self, ctx: Ctx):
        admin = testing.Secret({"access-key": "A" * 20, "secret-key": "s" * 40}, owner="app")
        peer = peer_with(1, masters=None, **{"secret-ids": json.dumps({"admin": admin.id})})
        state = with_security(
            dataclasses.replace(make_state(peer, leader=False), secrets=frozenset({admin}))
        )

        out = ctx.run(ctx.on.config_changed(), state)

        assert out.unit_status == testing.WaitingStatus(
            "waiting for the leader to choose the masters"
        )

    def test_growing_changes_only_start_flags_on_a_running_unit_and_does_not_restart_it(
        self, ctx: Ctx
    ):
        # From two units on: one unit's store restarts once when a second joins
        # (its white list goes, test_security), never again when the store grows.
        two = ctx.run(
            ctx.on.config_changed(),
            make_state(peer_with(1), workload_container=container(running=True), planned_units=2),
        )
        peer = two.get_relation(next(r.id for r in two.relations if r.endpoint == PEER_RELATION))
        grown = testing.PeerRelation(
            PEER_RELATION,
            id=peer.id,
            local_app_data=dict(peer.local_app_data),
            local_unit_data=dict(peer.local_unit_data),
            peers_data={1: {"address": unit_address_of(1)}, 2: {"address": unit_address_of(2)}},
        )
        state = dataclasses.replace(two, relations=frozenset({grown}), planned_units=3)

        out = ctx.run(ctx.on.config_changed(), state)

        assert any("no restart" in log.message for log in ctx.juju_log)
        assert f"{unit_address_of(2)}:9333" in weed_command(out)

    def test_the_leader_gives_every_volume_two_copies_once_every_unit_reports(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        workload.dir_status = dir_status(
            f"{unit_address_of(0)}:8080",
            f"{unit_address_of(1)}:8080",
            f"{unit_address_of(2)}:8080",
        )
        peer = peer_with(1, 2)

        out = ctx.run(ctx.on.config_changed(), make_state(peer, planned_units=3))

        assert any(
            "volume.configure.replication -replication 001" in script
            and "volume.fix.replication -apply" in script
            and "fs.configure -locationPrefix=/buckets/ -replication=001 -apply" in script
            for script in shell_scripts(ctx)
        )
        app_data: dict[str, str] = dict(out.get_relation(peer.id).local_app_data)
        assert app_data["replication"] == "001"

    def test_replication_waits_while_a_unit_has_not_reported(self, ctx: Ctx):
        peer = peer_with(1, 2)

        out = ctx.run(ctx.on.config_changed(), make_state(peer, planned_units=3))

        assert not any("replication" in script for script in shell_scripts(ctx))
        assert "replication" not in dict(out.get_relation(peer.id).local_app_data)

    def test_under_replicated_volumes_are_shown_while_copies_are_made(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        status = dir_status(f"{unit_address_of(0)}:8080", f"{unit_address_of(1)}:8080")
        nodes = status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"]
        nodes[0]["VolumeIds"] = " 1-3"
        nodes[1]["VolumeIds"] = " 1"
        workload.dir_status = status
        peer = peer_with(1, replication="001")

        out = ctx.run(ctx.on.config_changed(), make_state(peer, planned_units=2))

        assert out.unit_status == testing.WaitingStatus(
            "2 volume(s) under-replicated; copies being made"
        )
        # Every unit serves: one came back with an empty disk, and the leader makes the copies.
        assert "lock\nvolume.fix.replication -apply\nunlock\n" in shell_scripts(ctx)
        assert not any("volume.configure.replication" in s for s in shell_scripts(ctx))

    def test_no_copies_are_made_while_a_unit_is_away(self, ctx: Ctx, workload: FakeWorkload):
        status = dir_status(f"{unit_address_of(0)}:8080")
        status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"][0]["VolumeIds"] = " 1-2"
        workload.dir_status = status
        peer = peer_with(1, replication="001")

        out = ctx.run(ctx.on.update_status(), make_state(peer, planned_units=2))

        assert out.unit_status == testing.WaitingStatus(
            "2 volume(s) under-replicated; 1 unit(s) not serving"
        )
        # Its copies come back with it: copying them elsewhere now would only double them.
        assert not any("volume.fix.replication" in s for s in shell_scripts(ctx))

    def test_whole_volumes_need_no_repair(self, ctx: Ctx, workload: FakeWorkload):
        status = dir_status(f"{unit_address_of(0)}:8080", f"{unit_address_of(1)}:8080")
        for node in status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"]:
            node["VolumeIds"] = " 1-2"
        workload.dir_status = status
        peer = peer_with(1, replication="001")

        ctx.run(ctx.on.update_status(), make_state(peer, planned_units=2))

        assert shell_scripts(ctx) == []

    def test_a_departing_unit_moves_its_volumes_and_leaves_the_raft_group(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        me, other = f"{unit_address_of(0)}:8080", f"{unit_address_of(1)}:8080"
        workload.dir_status = dir_status(me, other)
        listing = (
            f"      DataNode {me} hdd(volume:1/100 active:1 free:99 remote:0)\n"
            "          volume Id:7, Size:10, ReplicaPlacement:000, Collection:b, Version:3\n"
        )
        execs = frozenset({testing.Exec(WEED_SHELL, stdout=listing)})
        peer = peer_with(1, masters=["seaweedfs/0", "seaweedfs/1"])
        state = with_security(
            make_state(peer, workload_container=container(execs=execs), planned_units=1)
        )

        peer = state.get_relation(peer.id)
        # (this Scenario reports the remote unit as the departing one: 0 is this unit)
        ctx.run(ctx.on.relation_departed(peer, remote_unit=0, departing_unit=0), state)

        scripts = "".join(shell_scripts(ctx))
        assert f"volume.move -source {me} -target {other} -volumeId 7" in scripts
        assert f"volumeServer.leave -node {me} -apply" in scripts
        assert f"cluster.raft.remove -id {unit_address_of(0)}:9333.19333" in scripts

    def test_scaling_down_onto_units_without_room_blocks_before_anything_moves(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        me, leaving = f"{unit_address_of(0)}:8080", f"{unit_address_of(1)}:8080"
        status = dir_status(me, leaving)
        status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"][0]["Volumes"] = 100
        workload.dir_status = status
        listing = (
            f"      DataNode {leaving} hdd(volume:1/100 active:1 free:99 remote:0)\n"
            "          volume Id:9, Size:10, ReplicaPlacement:000, Collection:b, Version:3\n"
        )
        execs = frozenset({testing.Exec(WEED_SHELL, stdout=listing)})
        peer = peer_with(1, masters=["seaweedfs/0"], replication="000")
        state = make_state(peer, workload_container=container(execs=execs), planned_units=1)

        out = ctx.run(ctx.on.update_status(), state)

        assert out.unit_status == testing.BlockedStatus(
            "scaling down: seaweedfs/1: the remaining units have no room for 1 volume(s) of "
            "this unit; grow their data storage or add a unit before removing this one"
        )
        assert not any("volume.move" in script for script in shell_scripts(ctx))
