"""Upgrades: a one-unit charm's store moved to its cluster identity; an older weed refused."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ops
import pytest
from ops import testing

from charm import SeaweedfsCharm
from cluster import choose_masters
from constants import (
    CONTAINER,
    MIGRATION_RECORD,
    MOVING_KEY,
    PEER_RELATION,
    READY_SERVICE,
    RECORDS_DIR,
    SERVICE,
    VERSION_RECORD,
)
from helpers import (
    ME,
    FakeWorkload,
    container,
    make_state,
    peer_with,
    unit_address_of,
    weed_command,
    weed_shell,
    weed_version,
    with_security,
)
from upgrades import (
    Migration,
    aside_path,
    downgrade_problem,
    highest_volume_id,
    raft_names,
    written_by_one_unit_charm,
)
from upgrades import (
    weed_version as parse_version,
)
from workload import Member

Ctx = testing.Context[Any]

# The one-unit charm's master, on the charm's ports: what its raft state names.
ONE_UNIT = "127.0.0.1:9333.19333"
MV = testing.Exec(["mv"])
OLDER_WEED = "version 30GB 4.47 0b2c1f3 linux amd64\n"
SERVED_BY_4_48 = "version 30GB 4.48 0c1e4a9 linux amd64\n"


def raft_log(*names: str) -> bytes:
    """A master's raft log as weed 4.48 writes it: a join per member, then volume ids."""
    entries = [
        b'raft:join"F{"name":"%s","connectionString":"%s"}'
        % (name.encode(), name.rpartition(".")[0].encode())
        for name in names
    ]
    entries.append(b'MaxVolumeId""{"maxVolumeId":4,"topologyId":"7ed7f998"}')
    return b"".join(b"%8x\n\x08\x01\x1a\t" % len(e) + e for e in entries)


def master_state(data: Path, *names: str) -> Path:
    """``m9333`` under ``data`` with its conf, log and a snapshot naming ``names``."""
    state = data / "m9333"
    (state / "snapshot").mkdir(parents=True)
    (state / "conf").write_text('{"commitIndex":4,"peers":[]}')
    (state / "log").write_bytes(raft_log(*names))
    peers = [{"name": n, "connectionString": n.rpartition(".")[0]} for n in names]
    (state / "snapshot" / "0_4.ss").write_text(
        "b8aee642\n" + json.dumps({"lastIndex": 4, "peers": peers, "state": "e30="})
    )
    return state


def my_peer_data(out: testing.State) -> dict[str, str]:
    """The unit's own databag in the peer relation."""
    return dict(out.get_relations(PEER_RELATION)[0].local_unit_data)


def data_mount(data: Path) -> dict[str, testing.Mount]:
    return {"data": testing.Mount(location="/data", source=data)}


class TestReadingTheMasterState:
    def test_names_come_from_the_log_the_snapshot_and_the_conf(self):
        texts = [raft_log(ONE_UNIT).decode("latin-1"), '{"peers":[{"name":"b:1.2"}]}']

        assert raft_names(texts) == {ONE_UNIT, "b:1.2"}

    @pytest.mark.parametrize(
        ("names", "moved"),
        [
            ({ONE_UNIT}, True),
            # A charm without this step started weed on it once under the DNS name.
            ({ONE_UNIT, ME.raft_id}, True),
            # It served a cluster (it grew under such a charm): left alone.
            ({ONE_UNIT, ME.raft_id, f"{unit_address_of(1)}:9333.19333"}, False),
            ({ME.raft_id}, False),
            (set(), False),
        ],
    )
    def test_only_the_one_unit_charms_own_state_is_moved(self, names: set[str], moved: bool):
        assert written_by_one_unit_charm(names, ME) is moved

    def test_a_unit_named_127_0_0_1_keeps_its_state(self):
        # The test harness runs units under 127.0.0.1: their state is their own.
        loopback = Member("seaweedfs/0", "127.0.0.1")

        assert not written_by_one_unit_charm({ONE_UNIT}, loopback)

    def test_the_state_goes_beside_itself_named_for_the_move_and_its_time(self):
        when = datetime(2026, 12, 4, 9, 30, 5, tzinfo=UTC)

        assert aside_path("/data/m9333", when) == "/data/m9333.one-unit-20261204T093005Z"

    def test_the_record_reads_back_and_nonsense_is_no_record(self):
        record = Migration(moved_to="/data/m9333.one-unit-x", sealed_at=5)

        assert Migration.load(record.dump()) == record
        assert Migration.load("{") is None
        assert Migration.load(None) is None

    def test_the_highest_volume_id_of_a_data_folder(self):
        files = ["artifacts_1.dat", "artifacts_12.idx", "3.dat", "vol_dir.uuid", "m9333", "7.vif"]

        assert highest_volume_id(files) == 12
        assert highest_volume_id([]) == 0


class TestVersions:
    @pytest.mark.parametrize(
        ("output", "version"),
        [
            ("version 8000GB 4.48 pypi linux amd64\n", "4.48"),
            (SERVED_BY_4_48, "4.48"),
            ("version 30GB 3.100 abc linux amd64", "3.100"),
            ("", None),
            ("weed: not found", None),
        ],
    )
    def test_the_version_weed_prints(self, output: str, version: str | None):
        assert parse_version(output) == version

    def test_an_older_weed_is_refused_naming_the_refresh_that_fixes_it(self):
        assert downgrade_problem("4.47", "4.48", "store") == (
            "weed 4.47 is older than weed 4.48, which last served this unit's data; "
            "run: juju refresh store --resource seaweedfs-image=<weed 4.48 or later>"
        )

    @pytest.mark.parametrize(
        ("image", "served"),
        [("4.48", "4.48"), ("4.48", "4.47"), ("3.100", "3.99"), ("4.48", None), (None, "4.48")],
    )
    def test_the_same_a_newer_or_an_unknown_weed_is_not_refused(
        self, image: str | None, served: str | None
    ):
        assert downgrade_problem(image, served, "seaweedfs") is None


class TestMastersWhileMoving:
    def test_the_moving_unit_runs_the_only_master(self):
        units = ["seaweedfs/0", "seaweedfs/1", "seaweedfs/2"]

        assert choose_masters([], units, moving=["seaweedfs/0"]) == ("seaweedfs/0",)
        assert choose_masters(["seaweedfs/0"], units) == tuple(units)

    def test_a_moving_unit_that_left_holds_nothing(self):
        assert choose_masters([], ["seaweedfs/1"], moving=["seaweedfs/0"]) == ("seaweedfs/1",)


class TestMovingAOneUnitStore:
    def test_its_master_state_is_moved_aside_before_weed_starts_under_the_dns_name(
        self, ctx: Ctx, workload: FakeWorkload, tmp_path: Path
    ):
        workload.ready = False  # weed starts; the hook does not wait for it
        state = master_state(tmp_path, ONE_UNIT)
        box = container(execs=frozenset({weed_shell(), MV}), mounts=data_mount(tmp_path))

        out = ctx.run(ctx.on.upgrade_charm(), make_state(workload_container=box))

        [move] = [c.command for c in ctx.exec_history[CONTAINER] if c.command[0] == "mv"]
        assert move[1] == "/data/m9333"
        assert re.fullmatch(r"/data/m9333\.one-unit-\d{8}T\d{6}Z", move[2])
        record = json.loads((tmp_path / RECORDS_DIR / MIGRATION_RECORD).read_text())
        assert record == {"moved_to": move[2], "sealed_at": 0}
        assert (state / "log").exists()  # the mock moved nothing; the charm deleted nothing
        assert f"-ip={ME.address}" in weed_command(out)
        assert my_peer_data(out)[MOVING_KEY] == move[2]
        assert out.unit_status == testing.MaintenanceStatus(
            f"moving the one-unit store to the cluster (old master state kept in {move[2]}); "
            "the other units wait: waiting for SeaweedFS to start"
        )

    def test_the_one_unit_charms_weed_in_a_pod_juju_kept_is_stopped_first(
        self, ctx: Ctx, tmp_path: Path
    ):
        master_state(tmp_path, ONE_UNIT)
        old = container(
            running=True, execs=frozenset({weed_shell(), MV}), mounts=data_mount(tmp_path)
        )
        layer = old.layers["seaweedfs"].to_dict()
        command = layer["services"][SERVICE]["command"]
        layer["services"][SERVICE]["command"] = re.sub(r" -master\.peers=\S+", "", command)
        old = dataclasses.replace(old, layers={"seaweedfs": ops.pebble.Layer(layer)})

        out = ctx.run(ctx.on.upgrade_charm(), make_state(workload_container=old))

        assert any(c.command[0] == "mv" for c in ctx.exec_history[CONTAINER])
        assert "-master.peers=" in weed_command(out)

    @pytest.mark.parametrize(
        "names",
        [
            pytest.param({ME.raft_id}, id="already-under-its-dns-name"),
            pytest.param(
                {ONE_UNIT, ME.raft_id, f"{unit_address_of(1)}:9333.19333"}, id="served-a-cluster"
            ),
        ],
    )
    def test_a_state_that_is_not_the_one_unit_charms_stays(
        self, ctx: Ctx, tmp_path: Path, names: set[str]
    ):
        master_state(tmp_path, *sorted(names))
        box = container(execs=frozenset({weed_shell(), MV}), mounts=data_mount(tmp_path))

        out = ctx.run(ctx.on.upgrade_charm(), make_state(workload_container=box))

        assert not [c for c in ctx.exec_history[CONTAINER] if c.command[0] == "mv"]
        assert not (tmp_path / RECORDS_DIR / MIGRATION_RECORD).exists()
        assert MOVING_KEY not in my_peer_data(out)
        assert out.unit_status.name == "active"


class TestSealing:
    def moving_state(self, tmp_path: Path, running: bool = True) -> testing.State:
        (tmp_path / RECORDS_DIR).mkdir()
        (tmp_path / RECORDS_DIR / MIGRATION_RECORD).write_text(
            Migration("/data/m9333.one-unit-x").dump()
        )
        for name in ("artifacts_1.dat", "artifacts_2.dat", "3.dat", "4.dat"):
            (tmp_path / name).touch()
        peer = testing.PeerRelation(
            PEER_RELATION, local_unit_data={MOVING_KEY: "/data/m9333.one-unit-x"}
        )
        box = container(running=running, mounts=data_mount(tmp_path))
        return make_state(peer, workload_container=box)

    def test_once_the_master_knows_the_units_volumes_one_grown_volume_seals_the_ids(
        self, ctx: Ctx, workload: FakeWorkload, tmp_path: Path
    ):
        assert workload.raft is not None
        workload.raft["MaxVolumeId"] = 4

        out = ctx.run(ctx.on.update_status(), self.moving_state(tmp_path))

        assert workload.grown == 1
        record = json.loads((tmp_path / RECORDS_DIR / MIGRATION_RECORD).read_text())
        assert record == {"moved_to": "/data/m9333.one-unit-x", "sealed_at": 5}
        assert MOVING_KEY not in my_peer_data(out)
        assert out.unit_status.name == "active"

    def test_it_waits_while_the_master_has_not_registered_them(
        self, ctx: Ctx, workload: FakeWorkload, tmp_path: Path
    ):
        assert workload.raft is not None
        workload.raft["MaxVolumeId"] = 2  # a heartbeat not in yet

        out = ctx.run(ctx.on.update_status(), self.moving_state(tmp_path))

        assert workload.grown == 0
        assert MOVING_KEY in my_peer_data(out)
        assert out.unit_status == testing.MaintenanceStatus(
            "moving the one-unit store to the cluster (old master state kept in "
            "/data/m9333.one-unit-x); the other units wait: "
            "waiting for the master to register this unit's volumes"
        )

    def test_a_pod_restarted_before_the_seal_says_it_again(self, ctx: Ctx, tmp_path: Path):
        state = self.moving_state(tmp_path, running=False)
        peer = dataclasses.replace(state.get_relations(PEER_RELATION)[0], local_unit_data={})
        state = dataclasses.replace(state, relations=frozenset({peer}))

        out = ctx.run(ctx.on.pebble_ready(state.get_container(CONTAINER)), state)

        assert my_peer_data(out)[MOVING_KEY] == "/data/m9333.one-unit-x"


class TestOtherUnitsWhileOneMoves:
    def test_a_unit_waits_and_starts_nothing(self, ctx: Ctx):
        admin = testing.Secret({"access-key": "A" * 20, "secret-key": "s" * 40}, owner="app")
        peer = peer_with(
            0, masters=["seaweedfs/0"], **{"secret-ids": json.dumps({"admin": admin.id})}
        )
        peer = dataclasses.replace(
            peer,
            peers_data={0: {**peer.peers_data[0], MOVING_KEY: "/data/m9333.one-unit-x"}},
        )
        state = with_security(
            dataclasses.replace(
                make_state(peer, leader=False, planned_units=2), secrets=frozenset({admin})
            )
        )
        unit1 = testing.Context(SeaweedfsCharm, unit_id=1)

        out = unit1.run(unit1.on.config_changed(), state)

        assert out.unit_status == testing.WaitingStatus(
            "waiting for seaweedfs/0 to move its one-unit store over"
        )
        assert SERVICE not in out.get_container(CONTAINER).plan.services

    def test_the_leader_keeps_the_moving_unit_the_only_master(
        self, ctx: Ctx, workload: FakeWorkload, tmp_path: Path
    ):
        workload.ready = False
        master_state(tmp_path, ONE_UNIT)
        box = container(execs=frozenset({weed_shell(), MV}), mounts=data_mount(tmp_path))
        peer = peer_with(1, 2)

        out = ctx.run(
            ctx.on.upgrade_charm(), make_state(peer, workload_container=box, planned_units=3)
        )

        masters = json.loads(out.get_relation(peer.id).local_app_data["masters"])
        assert masters == ["seaweedfs/0"]


class TestDowngrade:
    def served(self, tmp_path: Path, output: str) -> dict[str, testing.Mount]:
        (tmp_path / RECORDS_DIR).mkdir()
        (tmp_path / RECORDS_DIR / VERSION_RECORD).write_text(output)
        return data_mount(tmp_path)

    def test_an_older_weed_is_not_started_on_data_a_newer_one_served(
        self, ctx: Ctx, tmp_path: Path
    ):
        master_state(tmp_path, ONE_UNIT)
        box = container(
            execs=frozenset({weed_shell(), weed_version(OLDER_WEED), MV}),
            mounts=self.served(tmp_path, SERVED_BY_4_48),
        )

        out = ctx.run(ctx.on.pebble_ready(box), make_state(workload_container=box))

        assert out.unit_status == testing.BlockedStatus(
            "weed 4.47 is older than weed 4.48, which last served this unit's data; "
            "run: juju refresh seaweedfs --resource seaweedfs-image=<weed 4.48 or later>"
        )
        assert SERVICE not in out.get_container(CONTAINER).plan.services
        assert not [c for c in ctx.exec_history[CONTAINER] if c.command[0] == "mv"]

    def test_a_newer_weed_starts(self, ctx: Ctx, tmp_path: Path):
        box = container(mounts=self.served(tmp_path, OLDER_WEED))

        out = ctx.run(ctx.on.pebble_ready(box), make_state(workload_container=box))

        assert out.unit_status.name == "active"
        assert SERVICE in out.get_container(CONTAINER).plan.services

    def test_the_ready_service_records_the_weed_that_served_the_data(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        script = shlex.split(out.get_container(CONTAINER).plan.services[READY_SERVICE].command)[2]
        record = f"/data/{RECORDS_DIR}/{VERSION_RECORD}"
        assert f"weed version > {record}.new && mv {record}.new {record}" in script
        # After S3 answered, before the notice.
        assert script.index("until ") < script.index("weed version") < script.index("notify")
