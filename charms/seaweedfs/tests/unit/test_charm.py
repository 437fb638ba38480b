"""The seaweedfs charm under ops.testing: events, relations, statuses, actions."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import ops
import pytest
from ops import testing

from charm import SeaweedfsCharm
from client import VolumeStatus
from constants import (
    ADMIN_SECRET_LABEL,
    CONTAINER,
    IDENTITY_SECRET_PREFIX,
    PEER_RELATION,
    S3_RELATION,
    SERVICE,
)
from helpers import (
    WEED_SHELL,
    FakeWorkload,
    container,
    dir_status,
    identities,
    make_state,
    s3_request,
    secret_content,
    shell_scripts,
    weed_shell,
    with_security,
)

Ctx = testing.Context[Any]


def _identity(ctx: Ctx, out: testing.State, name: str) -> dict[str, Any]:
    return next(i for i in identities(ctx, out)["identities"] if i["name"] == name)


def _secret(out: testing.State, label: str) -> testing.Secret:
    return next(s for s in out.secrets if s.label == label)


def _command(out: testing.State) -> str:
    plan = out.get_container(CONTAINER).plan
    return plan.services[SERVICE].command


class TestStartup:
    def test_waits_for_the_container(self, ctx: Ctx):
        out = ctx.run(
            ctx.on.config_changed(), make_state(workload_container=container(connect=False))
        )

        assert out.unit_status == testing.WaitingStatus("waiting for the seaweedfs container")

    def test_waits_for_the_data_storage(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(storage=False))

        assert out.unit_status == testing.WaitingStatus("waiting for the data storage to attach")

    def test_waits_for_the_peer_relation(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(peer=False))

        assert out.unit_status == testing.WaitingStatus("waiting for the peer relation")

    def test_pebble_ready_starts_weed_with_a_volume_plan_sized_from_storage(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        workload.capacity_bytes = 100 * 1024**3
        state = make_state()

        out = ctx.run(ctx.on.pebble_ready(state.get_container(CONTAINER)), state)

        command = _command(out)
        assert command.startswith("weed -config_dir=/etc/seaweedfs/security server -dir=/data ")
        # Sized for two copies of everything, whatever the unit count (see plan_volumes).
        assert "-master.volumeSizeLimitMB=360" in command
        assert "-volume.max=256" in command
        me = "seaweedfs-0.seaweedfs-endpoints.test-model.svc.cluster.local"
        assert f"-ip={me}" in command
        assert "-master=true" in command
        assert f"-master.peers={me}:9333" in command
        assert "-master.defaultReplication=000" in command
        assert (
            out.get_container(CONTAINER).service_statuses[SERVICE]
            == ops.pebble.ServiceStatus.ACTIVE
        )
        assert out.opened_ports == {testing.TCPPort(8333)}

    def test_leader_creates_admin_keys_in_an_app_secret_and_pushes_identities(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        admin = _secret(out, ADMIN_SECRET_LABEL)
        assert admin.owner == "app"
        content = secret_content(out, admin.id)
        assert _identity(ctx, out, "charm-admin")["credentials"] == [
            {"accessKey": content["access-key"], "secretKey": content["secret-key"]}
        ]
        assert len(content["access-key"]) == 20
        assert len(content["secret-key"]) == 40

    def test_active_status_names_the_endpoint_and_bucket_count(self, ctx: Ctx, s3_ready):
        out = ctx.run(ctx.on.config_changed(), make_state(s3_ready))

        assert out.unit_status.name == "active"
        assert out.unit_status == testing.ActiveStatus(
            "S3 at http://seaweedfs.test-model.svc.cluster.local:8333; 1 bucket(s); "
            "1/1 unit(s) serve; master leader seaweedfs/0"
        )

    def test_waits_while_s3_does_not_answer(self, ctx: Ctx, workload: FakeWorkload, s3_ready):
        workload.ready = False

        out = ctx.run(ctx.on.config_changed(), make_state(s3_ready))

        assert out.unit_status == testing.WaitingStatus("waiting for SeaweedFS to start")
        # Nothing is promised to the requirer before the store answers.
        assert "endpoint" not in out.get_relation(s3_ready.id).local_app_data

    def test_non_leader_waits_until_the_leader_created_the_admin_keys(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(leader=False))

        assert out.unit_status == testing.WaitingStatus(
            "waiting for the leader to create the S3 admin keys"
        )
        assert out.secrets == frozenset()

    def test_a_second_hook_changes_nothing(self, ctx: Ctx, s3_ready):
        first = ctx.run(ctx.on.config_changed(), make_state(s3_ready))
        calls_after_first = len(ctx.exec_history[CONTAINER])

        second = ctx.run(ctx.on.update_status(), first)

        assert second.secrets == first.secrets
        assert (
            second.get_relation(s3_ready.id).local_app_data
            == first.get_relation(s3_ready.id).local_app_data
        )
        assert second.get_container(CONTAINER).plan == first.get_container(CONTAINER).plan
        # Buckets known to exist are not listed again on every hook.
        assert len(ctx.exec_history[CONTAINER]) == calls_after_first


class TestConfig:
    @pytest.mark.parametrize(
        ("option", "value", "fragment"),
        [
            ("region", "", "region"),
            ("region", "US East", "region"),
            ("region", "x" * 40, "region"),
            ("cluster-domain", "not a domain", "cluster-domain"),
            ("cluster-domain", "-bad.local", "cluster-domain"),
            ("endpoint", "ftp://host", "endpoint"),
            ("endpoint", "http://host/path", "endpoint"),
            ("endpoint", "http://host:8333; rm -rf /", "endpoint"),
            ("volume-size-limit-mb", 1, "volume-size-limit-mb"),
            ("volume-size-limit-mb", 999999, "volume-size-limit-mb"),
            ("volume-size-limit-mb", -5, "volume-size-limit-mb"),
        ],
    )
    def test_bad_value_blocks_naming_the_option_and_changes_nothing(
        self, ctx: Ctx, option: str, value: Any, fragment: str
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(config={option: value}))

        assert out.unit_status.name == "blocked"
        assert f"invalid config '{fragment}'" in out.unit_status.message
        assert out.get_container(CONTAINER).plan.services == {}
        assert out.secrets == frozenset()

    def test_endpoint_override_is_what_clients_receive(self, ctx: Ctx, s3_ready):
        out = ctx.run(
            ctx.on.config_changed(),
            make_state(s3_ready, config={"endpoint": "https://s3.example.com/"}),
        )

        assert out.get_relation(s3_ready.id).local_app_data["endpoint"] == "https://s3.example.com"

    def test_region_is_what_clients_receive(self, ctx: Ctx, s3_ready):
        out = ctx.run(
            ctx.on.config_changed(), make_state(s3_ready, config={"region": "eu-west-2"})
        )

        assert out.get_relation(s3_ready.id).local_app_data["region"] == "eu-west-2"

    def test_volume_size_override_reaches_weed(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(config={"volume-size-limit-mb": 256}))

        assert "-master.volumeSizeLimitMB=256" in _command(out)

    def test_fixing_a_bad_value_recovers(self, ctx: Ctx):
        broken = ctx.run(ctx.on.config_changed(), make_state(config={"region": "BAD"}))

        fixed = ctx.run(
            ctx.on.config_changed(),
            testing.State(**{**broken.__dict__, "config": {"region": "us-west-1"}}),
        )

        assert fixed.unit_status.name == "active"


class TestBucketRequests:
    def test_ready_request_gets_its_bucket_endpoint_and_keys_in_a_granted_secret(
        self, ctx: Ctx, s3_ready
    ):
        out = ctx.run(ctx.on.relation_changed(s3_ready), make_state(s3_ready))

        data = out.get_relation(s3_ready.id).local_app_data
        assert data["bucket"] == "mlflow"
        assert data["s3-uri-style"] == "path"
        assert data["endpoint"].endswith(":8333")
        assert "access-key" not in data
        assert "secret-key" not in data
        shared = out.get_secret(id=data["secret-extra"])
        assert shared.remote_grants == {s3_ready.id: {"mlflow-tracking"}}
        keys = secret_content(out, shared.id)
        identity = _identity(ctx, out, f"relation-{s3_ready.id}")
        assert identity["credentials"] == [
            {"accessKey": keys["access-key"], "secretKey": keys["secret-key"]}
        ]
        assert identity["actions"] == [
            "Read:mlflow",
            "Write:mlflow",
            "List:mlflow",
            "Tagging:mlflow",
        ]
        assert shell_scripts(ctx) == ["s3.bucket.list\n", "s3.bucket.create -name mlflow\n"]

    def test_existing_bucket_is_reused_not_recreated(self, ctx: Ctx, s3_ready):
        state = make_state(
            s3_ready, workload_container=container(execs=frozenset({weed_shell("mlflow")}))
        )

        ctx.run(ctx.on.relation_changed(s3_ready), state)

        assert shell_scripts(ctx) == ["s3.bucket.list\n"]

    def test_bare_relation_gets_nothing_until_the_requirer_speaks(self, ctx: Ctx, s3_bare):
        out = ctx.run(ctx.on.relation_changed(s3_bare), make_state(s3_bare))

        assert set(out.get_relation(s3_bare.id).local_app_data) <= {"version"}
        assert not [
            s for s in out.secrets if s.label and s.label.startswith(IDENTITY_SECRET_PREFIX)
        ]
        assert out.unit_status.name == "active"

    def test_no_bucket_requested_gets_one_named_after_the_app(self, ctx: Ctx):
        rel = s3_request(bucket="", app="Cratedb_Backups")

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.get_relation(rel.id).local_app_data["bucket"] == "cratedb-backups"

    def test_requested_path_is_echoed(self, ctx: Ctx):
        rel = s3_request(bucket="mlflow", path="/artifacts/prod/")

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.get_relation(rel.id).local_app_data["path"] == "artifacts/prod"

    @pytest.mark.parametrize(
        "bucket", ["UPPER", "a", "bad_name", "x" * 64, "evil\ns3.bucket.delete"]
    )
    def test_invalid_bucket_blocks_and_tells_the_requirer_on_the_relation(
        self, ctx: Ctx, bucket: str
    ):
        rel = s3_request(bucket=bucket)

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status.name == "blocked"
        assert f"mlflow-tracking (relation {rel.id}): bucket name" in out.unit_status.message
        data = out.get_relation(rel.id).local_app_data
        assert "bucket name" in data["error"]
        assert "secret-extra" not in data
        assert shell_scripts(ctx) == []
        assert all(i["name"] == "charm-admin" for i in identities(ctx, out)["identities"])

    @pytest.mark.parametrize("path", ["../escape", "a/../../b", "x" * 600, "tab\there"])
    def test_invalid_path_is_refused(self, ctx: Ctx, path: str):
        rel = s3_request(path=path)

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status.name == "blocked"
        assert "path" in out.get_relation(rel.id).local_app_data["error"]

    def test_legacy_v0_requirer_is_refused_by_default_naming_the_option_and_the_risk(
        self, ctx: Ctx
    ):
        rel = s3_request(v0=True)

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status == testing.BlockedStatus(
            f"mlflow-tracking (relation {rel.id}): speaks the legacy s3 protocol (v0), whose "
            "keys sit in plain relation data that anyone who can read the model can read; "
            "to accept that, set legacy-s3-requirers=true"
        )
        data = out.get_relation(rel.id).local_app_data
        assert not {"access-key", "secret-key", "secret-extra"} & set(data)

    def test_a_relation_asking_for_a_bucket_served_to_another_is_refused(self, ctx: Ctx):
        first = s3_request(bucket="shared", app="first-app")
        served = ctx.run(ctx.on.relation_changed(first), make_state(first))
        second = s3_request(bucket="shared", app="second-app")

        out = ctx.run(
            ctx.on.relation_changed(second),
            dataclasses.replace(served, relations=frozenset({*served.relations, second})),
        )

        assert "secret-extra" in out.get_relation(first.id).local_app_data
        error = out.get_relation(second.id).local_app_data["error"]
        assert error == "'shared' belongs to another application; ask for another"
        assert "secret-extra" not in out.get_relation(second.id).local_app_data
        assert out.unit_status == ops.BlockedStatus(
            f"second-app (relation {second.id}): 'shared' is served to first-app "
            f"(relation {first.id})"
        )

    def test_two_relations_asking_at_once_for_a_new_bucket_are_both_refused(self, ctx: Ctx):
        first = s3_request(bucket="shared", app="first-app")
        second = s3_request(bucket="shared", app="second-app")

        out = ctx.run(ctx.on.relation_changed(second), make_state(first, second))

        for rel in (first, second):
            data = out.get_relation(rel.id).local_app_data
            assert "several applications at once" in data["error"]
            assert "secret-extra" not in data
        assert identities(ctx, out)["identities"][0]["name"] == "charm-admin"
        assert len(identities(ctx, out)["identities"]) == 1

    def test_each_relation_gets_its_own_identity_and_bucket(self, ctx: Ctx):
        a = s3_request(bucket="bucket-a", app="app-a")
        b = s3_request(bucket="bucket-b", app="app-b")

        out = ctx.run(ctx.on.relation_changed(b), make_state(a, b))

        ia = _identity(ctx, out, f"relation-{a.id}")
        ib = _identity(ctx, out, f"relation-{b.id}")
        assert ia["credentials"] != ib["credentials"]
        assert all(action.endswith(":bucket-a") for action in ia["actions"])
        assert all(action.endswith(":bucket-b") for action in ib["actions"])
        assert out.unit_status.message.find("; 2 bucket(s);") > 0

    def test_relation_premature_for_the_library_is_retried_later_without_error(self, ctx: Ctx):
        # Requirer wrote its bucket (protocol initiator) but the library refuses
        # writes until "version" is there in some flows: nothing crashes.
        rel = testing.Relation(
            S3_RELATION,
            remote_app_name="early",
            remote_app_data={"requested-secrets": json.dumps(["access-key", "secret-key"])},
        )

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status.name == "active"


class TestLegacyS3Requirers:
    """v0 requirers (postgresql-k8s and mysql-k8s backups) when the operator opts in."""

    ON: ClassVar[dict[str, Any]] = {"legacy-s3-requirers": True}

    def _served(self, ctx: Ctx) -> tuple[testing.Relation, testing.State]:
        rel = s3_request(bucket="relation-7", app="postgresql-k8s", v0=True)
        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel, config=self.ON))
        return rel, out

    def test_opted_in_a_v0_requirer_gets_everything_in_plain_data(self, ctx: Ctx):
        rel, out = self._served(ctx)

        data: dict[str, str] = dict(out.get_relation(rel.id).local_app_data)
        creds = _identity(ctx, out, f"relation-{rel.id}")["credentials"]
        assert data["access-key"] == creds[0]["accessKey"]
        assert data["secret-key"] == creds[0]["secretKey"]
        assert data["bucket"] == "relation-7"
        assert data["endpoint"] == f"http://seaweedfs.{out.model.name}.svc.cluster.local:8333"
        assert (data["region"], data["s3-uri-style"], data.get("path", "")) == (
            "us-east-1",
            "path",
            "",
        )
        assert "error" not in data
        assert out.unit_status.name == "active"

    def test_its_identity_is_scoped_to_its_own_bucket(self, ctx: Ctx):
        rel, out = self._served(ctx)

        identity = _identity(ctx, out, f"relation-{rel.id}")
        assert {a.split(":", 1)[1] for a in identity["actions"]} == {"relation-7"}

    def test_rotation_replaces_the_plain_keys(self, ctx: Ctx):
        rel, out = self._served(ctx)
        before: dict[str, str] = dict(out.get_relation(rel.id).local_app_data)

        rotated = ctx.run(ctx.on.action("rotate-credentials", params={"relation-id": rel.id}), out)

        after: dict[str, str] = dict(rotated.get_relation(rel.id).local_app_data)
        creds = _identity(ctx, rotated, f"relation-{rel.id}")["credentials"]
        assert after["secret-key"] != before["secret-key"]
        assert creds == [{"accessKey": after["access-key"], "secretKey": after["secret-key"]}]

    def test_turning_the_option_off_revokes_the_keys_and_removes_them_from_the_databag(
        self, ctx: Ctx
    ):
        rel, out = self._served(ctx)
        off = dataclasses.replace(out, config={"legacy-s3-requirers": False})

        refused = ctx.run(ctx.on.config_changed(), off)

        data: dict[str, str] = dict(refused.get_relation(rel.id).local_app_data)
        assert not {"access-key", "secret-key"} & set(data)
        assert "legacy-s3-requirers=true" in data["error"]
        tombstone = _identity(ctx, refused, f"relation-{rel.id}")
        assert tombstone["credentials"] == []
        assert refused.unit_status.name == "blocked"

    def test_relation_broken_revokes_the_identity(self, ctx: Ctx):
        rel, out = self._served(ctx)

        gone = ctx.run(ctx.on.relation_broken(out.get_relation(rel.id)), out)

        assert _identity(ctx, gone, f"relation-{rel.id}")["credentials"] == []


class TestRelationBroken:
    def test_broken_relation_revokes_the_identity_and_keeps_the_bucket(self, ctx: Ctx, s3_ready):
        related = ctx.run(ctx.on.relation_changed(s3_ready), make_state(s3_ready))
        identity_secret = _secret(related, f"{IDENTITY_SECRET_PREFIX}{s3_ready.id}")

        out = ctx.run(ctx.on.relation_broken(related.get_relation(s3_ready.id)), related)

        assert identity_secret.id not in {s.id for s in out.secrets}
        tombstone = _identity(ctx, out, f"relation-{s3_ready.id}")
        assert tombstone == {"name": f"relation-{s3_ready.id}", "credentials": [], "actions": []}
        assert not any("delete" in script for script in shell_scripts(ctx))
        assert "; 0 bucket(s) (1 retained);" in out.unit_status.message

    def test_identity_change_is_applied_live_without_a_restart(self, ctx: Ctx, s3_ready):
        state = ctx.run(ctx.on.config_changed(), make_state(s3_ready))
        layers = state.get_container(CONTAINER).layers

        out = ctx.run(ctx.on.relation_changed(state.get_relation(s3_ready.id)), state)

        assert out.get_container(CONTAINER).layers == layers
        assert any("S3 identities reloaded" in log.message for log in ctx.juju_log)


def _peer_with(*units: int, masters: list[str] | None = None, **app: str) -> testing.PeerRelation:
    """The peer relation with units 1.. reporting their stable addresses."""
    data = {
        n: {"address": f"seaweedfs-{n}.seaweedfs-endpoints.test-model.svc.cluster.local"}
        for n in units
    }
    app_data = dict(app)
    if masters is not None:
        app_data["masters"] = json.dumps(masters)
    return testing.PeerRelation(PEER_RELATION, peers_data=data, local_app_data=app_data)


def _address(n: int) -> str:
    return f"seaweedfs-{n}.seaweedfs-endpoints.test-model.svc.cluster.local"


class TestCluster:
    def test_three_units_run_three_masters_and_every_unit_knows_them(self, ctx: Ctx):
        peer = _peer_with(1, 2)

        out = ctx.run(ctx.on.config_changed(), make_state(peer, planned_units=3))

        app_data: dict[str, str] = dict(out.get_relation(peer.id).local_app_data)
        masters = json.loads(app_data["masters"])
        assert masters == ["seaweedfs/0", "seaweedfs/1", "seaweedfs/2"]
        command = _command(out)
        assert f"-master.peers={_address(0)}:9333,{_address(1)}:9333,{_address(2)}:9333" in command
        assert "-master=true" in command
        # Repairs between pods: SeaweedFS refuses private remote ends without this.
        assert "-volume.allowUntrustedRemoteEndpoints" in command

    def test_a_unit_without_a_master_runs_volume_filer_and_s3_pointed_at_the_masters(
        self, ctx: Ctx
    ):
        admin = testing.Secret({"access-key": "A" * 20, "secret-key": "s" * 40}, owner="app")
        peer = _peer_with(
            0, masters=["seaweedfs/0"], **{"secret-ids": json.dumps({"admin": admin.id})}
        )
        state = with_security(
            dataclasses.replace(
                make_state(peer, leader=False, planned_units=2), secrets=frozenset({admin})
            )
        )
        ctx_unit1 = testing.Context(SeaweedfsCharm, unit_id=1)

        out = ctx_unit1.run(ctx_unit1.on.config_changed(), state)

        command = _command(out)
        assert "-master=false" in command
        assert f"-master.peers={_address(0)}:9333" in command
        assert f"-ip={_address(1)}" in command
        assert set(out.get_container(CONTAINER).plan.checks) == {"s3-ready"}
        # Identities on every unit: this one serves S3 with the same admin key.
        assert _identity(ctx_unit1, out, "charm-admin")["credentials"] == [
            {"accessKey": "A" * 20, "secretKey": "s" * 40}
        ]

    def test_a_non_leader_waits_until_the_leader_chose_the_masters(self, ctx: Ctx):
        admin = testing.Secret({"access-key": "A" * 20, "secret-key": "s" * 40}, owner="app")
        peer = _peer_with(1, masters=None, **{"secret-ids": json.dumps({"admin": admin.id})})
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
            make_state(_peer_with(1), workload_container=container(running=True), planned_units=2),
        )
        peer = two.get_relation(next(r.id for r in two.relations if r.endpoint == PEER_RELATION))
        grown = testing.PeerRelation(
            PEER_RELATION,
            id=peer.id,
            local_app_data=dict(peer.local_app_data),
            local_unit_data=dict(peer.local_unit_data),
            peers_data={1: {"address": _address(1)}, 2: {"address": _address(2)}},
        )
        state = dataclasses.replace(two, relations=frozenset({grown}), planned_units=3)

        out = ctx.run(ctx.on.config_changed(), state)

        assert any("no restart" in log.message for log in ctx.juju_log)
        assert f"{_address(2)}:9333" in _command(out)

    def test_the_leader_gives_every_volume_two_copies_once_every_unit_reports(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        workload.dir_status = dir_status(
            f"{_address(0)}:8080", f"{_address(1)}:8080", f"{_address(2)}:8080"
        )
        peer = _peer_with(1, 2)

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
        peer = _peer_with(1, 2)

        out = ctx.run(ctx.on.config_changed(), make_state(peer, planned_units=3))

        assert not any("replication" in script for script in shell_scripts(ctx))
        assert "replication" not in dict(out.get_relation(peer.id).local_app_data)

    def test_under_replicated_volumes_are_shown_while_copies_are_made(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        status = dir_status(f"{_address(0)}:8080", f"{_address(1)}:8080")
        nodes = status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"]
        nodes[0]["VolumeIds"] = " 1-3"
        nodes[1]["VolumeIds"] = " 1"
        workload.dir_status = status
        peer = _peer_with(1, replication="001")

        out = ctx.run(ctx.on.config_changed(), make_state(peer, planned_units=2))

        assert out.unit_status == testing.WaitingStatus(
            "2 volume(s) under-replicated; copies being made"
        )
        # Every unit serves: one came back with an empty disk, and the leader makes the copies.
        assert "lock\nvolume.fix.replication -apply\nunlock\n" in shell_scripts(ctx)
        assert not any("volume.configure.replication" in s for s in shell_scripts(ctx))

    def test_no_copies_are_made_while_a_unit_is_away(self, ctx: Ctx, workload: FakeWorkload):
        status = dir_status(f"{_address(0)}:8080")
        status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"][0]["VolumeIds"] = " 1-2"
        workload.dir_status = status
        peer = _peer_with(1, replication="001")

        out = ctx.run(ctx.on.update_status(), make_state(peer, planned_units=2))

        assert out.unit_status == testing.WaitingStatus(
            "2 volume(s) under-replicated; 1 unit(s) not serving"
        )
        # Its copies come back with it: copying them elsewhere now would only double them.
        assert not any("volume.fix.replication" in s for s in shell_scripts(ctx))

    def test_whole_volumes_need_no_repair(self, ctx: Ctx, workload: FakeWorkload):
        status = dir_status(f"{_address(0)}:8080", f"{_address(1)}:8080")
        for node in status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"]:
            node["VolumeIds"] = " 1-2"
        workload.dir_status = status
        peer = _peer_with(1, replication="001")

        ctx.run(ctx.on.update_status(), make_state(peer, planned_units=2))

        assert shell_scripts(ctx) == []

    def test_a_departing_unit_moves_its_volumes_and_leaves_the_raft_group(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        me, other = f"{_address(0)}:8080", f"{_address(1)}:8080"
        workload.dir_status = dir_status(me, other)
        listing = (
            f"      DataNode {me} hdd(volume:1/100 active:1 free:99 remote:0)\n"
            "          volume Id:7, Size:10, ReplicaPlacement:000, Collection:b, Version:3\n"
        )
        execs = frozenset({testing.Exec(WEED_SHELL, stdout=listing)})
        peer = _peer_with(1, masters=["seaweedfs/0", "seaweedfs/1"])
        state = with_security(
            make_state(peer, workload_container=container(execs=execs), planned_units=1)
        )

        peer = state.get_relation(peer.id)
        # (this Scenario reports the remote unit as the departing one: 0 is this unit)
        ctx.run(ctx.on.relation_departed(peer, remote_unit=0, departing_unit=0), state)

        scripts = "".join(shell_scripts(ctx))
        assert f"volume.move -source {me} -target {other} -volumeId 7" in scripts
        assert f"volumeServer.leave -node {me} -apply" in scripts
        assert f"cluster.raft.remove -id {_address(0)}:9333.19333" in scripts

    def test_scaling_down_onto_units_without_room_blocks_before_anything_moves(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        me, leaving = f"{_address(0)}:8080", f"{_address(1)}:8080"
        status = dir_status(me, leaving)
        status["Topology"]["DataCenters"][0]["Racks"][0]["DataNodes"][0]["Volumes"] = 100
        workload.dir_status = status
        listing = (
            f"      DataNode {leaving} hdd(volume:1/100 active:1 free:99 remote:0)\n"
            "          volume Id:9, Size:10, ReplicaPlacement:000, Collection:b, Version:3\n"
        )
        execs = frozenset({testing.Exec(WEED_SHELL, stdout=listing)})
        peer = _peer_with(1, masters=["seaweedfs/0"], replication="000")
        state = make_state(peer, workload_container=container(execs=execs), planned_units=1)

        out = ctx.run(ctx.on.update_status(), state)

        assert out.unit_status == testing.BlockedStatus(
            "scaling down: seaweedfs/1: the remaining units have no room for 1 volume(s) of "
            "this unit; grow their data storage or add a unit before removing this one"
        )
        assert not any("volume.move" in script for script in shell_scripts(ctx))


class TestVolumeStatus:
    def test_starved_buckets_block_with_what_to_do(
        self, ctx: Ctx, workload: FakeWorkload, s3_ready
    ):
        workload.volumes = VolumeStatus(
            max_volumes=14, free_volumes=0, starved_buckets=("mlflow",)
        )

        out = ctx.run(ctx.on.update_status(), make_state(s3_ready))

        assert out.unit_status == testing.BlockedStatus(
            "out of space: bucket(s) mlflow cannot take writes; grow the data storage"
        )

    def test_storage_too_small_for_the_buckets_served_blocks(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        workload.capacity_bytes = 256 * 1024**2
        rels = [s3_request(bucket=f"bucket-{n}", app=f"app-{n}") for n in range(5)]

        out = ctx.run(ctx.on.update_status(), make_state(*rels))

        assert out.unit_status == testing.BlockedStatus(
            "data storage too small for 5 buckets (room for 3); grow the data storage"
        )

    def test_master_not_answering_volume_status_is_not_an_error(
        self, ctx: Ctx, workload: FakeWorkload
    ):
        workload.volumes = None

        out = ctx.run(ctx.on.update_status(), make_state())

        assert out.unit_status.name == "active"


class TestActions:
    def _related(self, ctx: Ctx, *rels: testing.Relation) -> testing.State:
        state = make_state(*rels)
        for rel in rels:
            state = ctx.run(ctx.on.relation_changed(state.get_relation(rel.id)), state)
        return state

    def test_rotate_one_relation_changes_only_its_keys(self, ctx: Ctx):
        a = s3_request(bucket="bucket-a", app="app-a")
        b = s3_request(bucket="bucket-b", app="app-b")
        state = self._related(ctx, a, b)
        before_a = _identity(ctx, state, f"relation-{a.id}")["credentials"]
        before_b = _identity(ctx, state, f"relation-{b.id}")["credentials"]

        out = ctx.run(ctx.on.action("rotate-credentials", params={"relation-id": a.id}), state)

        assert ctx.action_results == {"rotated-relations": str(a.id)}
        after_a = _identity(ctx, out, f"relation-{a.id}")["credentials"]
        assert after_a != before_a
        assert _identity(ctx, out, f"relation-{b.id}")["credentials"] == before_b
        shared = secret_content(out, out.get_relation(a.id).local_app_data["secret-extra"])
        assert after_a == [{"accessKey": shared["access-key"], "secretKey": shared["secret-key"]}]
        later = ctx.run(ctx.on.update_status(), out)
        assert _identity(ctx, later, f"relation-{a.id}")["credentials"] == after_a

    def test_rotate_without_a_relation_id_rotates_every_relation(self, ctx: Ctx):
        a = s3_request(bucket="bucket-a", app="app-a")
        b = s3_request(bucket="bucket-b", app="app-b")
        state = self._related(ctx, a, b)

        ctx.run(ctx.on.action("rotate-credentials"), state)

        assert ctx.action_results == {
            "rotated-relations": ",".join(sorted([str(a.id), str(b.id)]))
        }

    def test_rotate_an_unknown_relation_fails_listing_the_known_ones(self, ctx: Ctx, s3_ready):
        state = self._related(ctx, s3_ready)

        with pytest.raises(
            testing.ActionFailed,
            match=rf"relation 999 has no S3 identity; relations with one: \[{s3_ready.id}\]",
        ):
            ctx.run(ctx.on.action("rotate-credentials", params={"relation-id": 999}), state)

    def test_rotate_on_a_non_leader_fails(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed, match="leader"):
            ctx.run(ctx.on.action("rotate-credentials"), make_state(leader=False))

    def test_rotate_admin_keys(self, ctx: Ctx):
        state = self._related(ctx)
        state = ctx.run(ctx.on.config_changed(), state)
        before = _identity(ctx, state, "charm-admin")["credentials"]

        out = ctx.run(ctx.on.action("rotate-credentials", params={"admin": True}), state)

        assert _identity(ctx, out, "charm-admin")["credentials"] != before

    def test_create_bucket(self, ctx: Ctx):
        state = ctx.run(ctx.on.config_changed(), make_state())

        ctx.run(ctx.on.action("create-bucket", params={"name": "backups"}), state)

        assert ctx.action_results == {
            "bucket": "backups",
            "created": True,
            "for": "nobody yet (grant-retained)",
        }
        assert "s3.bucket.create -name backups\n" in shell_scripts(ctx)

    def test_create_bucket_rejects_an_invalid_name_before_touching_weed(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed, match="bucket name 'Bad Name'"):
            ctx.run(ctx.on.action("create-bucket", params={"name": "Bad Name"}), make_state())
        assert shell_scripts(ctx) == []

    def test_create_bucket_reports_a_weed_shell_failure(self, ctx: Ctx):
        failing = testing.Exec(WEED_SHELL, return_code=1, stderr="no master")
        state = ctx.run(
            ctx.on.config_changed(),
            make_state(workload_container=container(execs=frozenset({failing}))),
        )

        with pytest.raises(testing.ActionFailed, match="did not accept an admin command"):
            ctx.run(ctx.on.action("create-bucket", params={"name": "backups"}), state)

    def test_list_buckets_names_the_relation_each_serves(self, ctx: Ctx, s3_ready):
        state = ctx.run(ctx.on.config_changed(), make_state(s3_ready))
        listing = container(execs=frozenset({weed_shell("mlflow", "spare")}))
        state = dataclasses.replace(state, containers=frozenset({listing}))

        ctx.run(ctx.on.action("list-buckets"), state)

        assert ctx.action_results == {
            "buckets": (
                f"mlflow: served to mlflow-tracking (relation {s3_ready.id})\n"
                "spare: not in the ledger (held by nobody)"
            )
        }

    def test_get_admin_credentials_reveals_the_admin_keys(self, ctx: Ctx):
        state = ctx.run(ctx.on.config_changed(), make_state())
        admin = secret_content(state, _secret(state, ADMIN_SECRET_LABEL).id)

        ctx.run(ctx.on.action("get-admin-credentials"), state)

        assert ctx.action_results is not None
        assert ctx.action_results["access-key"] == admin["access-key"]
        assert ctx.action_results["secret-key"] == admin["secret-key"]
        assert str(ctx.action_results["endpoint"]).endswith(":8333")


class TestSecretsStayOutOfSight:
    def test_no_key_appears_in_databags_status_or_logs(self, ctx: Ctx, s3_ready):
        out = ctx.run(ctx.on.relation_changed(s3_ready), make_state(s3_ready))

        keys = {
            value for secret in out.secrets for value in secret_content(out, secret.id).values()
        }
        assert keys
        visible = [out.unit_status.message, *(log.message for log in ctx.juju_log)]
        for rel in out.relations:
            if isinstance(rel, testing.Relation):
                visible += [
                    *dict(rel.local_app_data).values(),
                    *dict(rel.local_unit_data).values(),
                ]
        for key in keys:
            assert not any(key in text for text in visible)


def test_storage_attached_event_reconciles(ctx: Ctx):
    state = make_state()

    out = ctx.run(ctx.on.storage_attached(next(iter(state.storages))), state)

    assert SERVICE in out.get_container(CONTAINER).plan.services


class TestEveryObservedEvent:
    """Each event the charm observes ends in a known status, never an exception."""

    @pytest.mark.parametrize(
        "event",
        [
            "pebble_ready",
            "pebble_check_failed",
            "pebble_check_recovered",
            "config_changed",
            "upgrade_charm",
            "update_status",
            "leader_elected",
            "storage_attached",
            "peer_relation_created",
            "peer_relation_changed",
            "peer_relation_departed",
            "s3_relation_changed",
            "s3_relation_broken",
        ],
    )
    @pytest.mark.parametrize("leader", [True, False])
    def test_event_ends_in_a_known_status(self, ctx: Ctx, s3_ready, event: str, leader: bool):
        state = make_state(s3_ready, leader=leader)
        workload = state.get_container(CONTAINER)
        peer = next(r for r in state.relations if isinstance(r, testing.PeerRelation))
        check = testing.CheckInfo("s3-ready", level=ops.pebble.CheckLevel.READY)
        if event.startswith("pebble_check"):
            running = container(running=True)
            workload = testing.Container(
                CONTAINER,
                can_connect=True,
                layers=running.layers,
                service_statuses=running.service_statuses,
                check_infos={check},
                execs={weed_shell()},
            )
            state = testing.State(**{**state.__dict__, "containers": {workload}})
        if event.startswith("peer_relation"):
            peer = testing.PeerRelation(PEER_RELATION, peers_data={1: {}})
            state = testing.State(**{**state.__dict__, "relations": {s3_ready, peer}})
        events = {
            "pebble_ready": lambda: ctx.on.pebble_ready(workload),
            "pebble_check_failed": lambda: ctx.on.pebble_check_failed(workload, check),
            "pebble_check_recovered": lambda: ctx.on.pebble_check_recovered(workload, check),
            "config_changed": ctx.on.config_changed,
            "upgrade_charm": ctx.on.upgrade_charm,
            "update_status": ctx.on.update_status,
            "leader_elected": ctx.on.leader_elected,
            "storage_attached": lambda: ctx.on.storage_attached(next(iter(state.storages))),
            "peer_relation_created": lambda: ctx.on.relation_created(peer),
            "peer_relation_changed": lambda: ctx.on.relation_changed(peer, remote_unit=1),
            "peer_relation_departed": lambda: ctx.on.relation_departed(peer, remote_unit=1),
            "s3_relation_changed": lambda: ctx.on.relation_changed(s3_ready),
            "s3_relation_broken": lambda: ctx.on.relation_broken(s3_ready),
        }

        out = ctx.run(events[event](), state)

        assert out.unit_status.name in {"active", "waiting", "blocked", "maintenance"}
        assert out.unit_status.message


def test_requirer_writing_provider_fields_is_refused_not_crashed(ctx: Ctx):
    # Found by the property-based test: a secret id where only the provider writes one.
    relation = testing.Relation(
        S3_RELATION,
        remote_app_name="confused",
        remote_app_data={
            "version": "1",
            "bucket": "fine-bucket",
            "requested-secrets": json.dumps(["access-key", "secret-key"]),
            "secret-extra": "secret://0000/garbage",
        },
    )

    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

    assert out.unit_status.name == "blocked"
    assert "malformed request" in out.unit_status.message
