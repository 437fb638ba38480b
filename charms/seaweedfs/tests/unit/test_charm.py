"""The seaweedfs charm under ops.testing: start-up, config, events, secrets out of sight."""

from __future__ import annotations

import dataclasses
import shlex
import time
from typing import Any

import ops
import pytest
from ops import testing

from client import VolumeStatus
from constants import (
    ADMIN_SECRET_LABEL,
    CONTAINER,
    PEER_RELATION,
    READY_NOTICE,
    READY_SERVICE,
    SERVICE,
)
from helpers import (
    FakeWorkload,
    container,
    identity_named,
    labelled_secret,
    make_state,
    s3_request,
    secret_content,
    weed_command,
    weed_shell,
)

Ctx = testing.Context[Any]


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

        command = weed_command(out)
        assert command.startswith("weed -config_dir=/etc/seaweedfs/security server -dir=/data ")
        # Sized for two copies of everything, whatever the unit count (see volume_layout).
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

        admin = labelled_secret(out, ADMIN_SECRET_LABEL)
        assert admin.owner == "app"
        content = secret_content(out, admin.id)
        assert identity_named(ctx, out, "charm-admin")["credentials"] == [
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

    def test_a_hook_does_not_sleep_while_s3_does_not_answer(
        self, ctx: Ctx, workload: FakeWorkload, s3_ready, monkeypatch: pytest.MonkeyPatch
    ):
        workload.ready = False

        def no_sleep(seconds: float) -> None:
            raise AssertionError(f"a hook slept {seconds} s waiting for the workload")

        monkeypatch.setattr(time, "sleep", no_sleep)
        state = make_state(s3_ready)

        out = ctx.run(ctx.on.pebble_ready(state.get_container(CONTAINER)), state)

        assert out.unit_status == testing.WaitingStatus("waiting for SeaweedFS to start")

    def test_the_ready_notice_brings_the_bucket_and_endpoint_once_s3_answers(
        self, ctx: Ctx, workload: FakeWorkload, s3_ready
    ):
        workload.ready = False
        started = ctx.run(ctx.on.config_changed(), make_state(s3_ready))
        assert "endpoint" not in started.get_relation(s3_ready.id).local_app_data

        # The ready service records its notice once S3 answers; Juju wakes the charm.
        workload.ready = True
        running = started.get_container(CONTAINER)
        notice = testing.Notice(key=READY_NOTICE)
        woken = dataclasses.replace(running, notices=[notice], execs=frozenset({weed_shell()}))
        state = dataclasses.replace(started, containers=frozenset({woken}))
        out = ctx.run(ctx.on.pebble_custom_notice(woken, notice), state)

        assert out.get_relation(s3_ready.id).local_app_data["bucket"] == "mlflow"
        assert out.get_relation(s3_ready.id).local_app_data["endpoint"].endswith(":8333")
        assert out.unit_status.name == "active"

    def test_a_serving_unit_runs_the_ready_notice_service_after_weed(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        ready = out.get_container(CONTAINER).plan.services[READY_SERVICE]
        assert ready.after == [SERVICE]
        assert (ready.startup, ready.on_success, ready.on_failure) == (
            "enabled",
            "ignore",
            "ignore",
        )
        argv = shlex.split(ready.command)
        assert argv[:2] == ["sh", "-c"]
        assert "http://127.0.0.1:8333/status" in argv[2]
        assert argv[2].endswith(f"exec /charm/bin/pebble notify {READY_NOTICE}")

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

        assert "-master.volumeSizeLimitMB=256" in weed_command(out)

    def test_fixing_a_bad_value_recovers(self, ctx: Ctx):
        broken = ctx.run(ctx.on.config_changed(), make_state(config={"region": "BAD"}))

        fixed = ctx.run(
            ctx.on.config_changed(),
            testing.State(**{**broken.__dict__, "config": {"region": "us-west-1"}}),
        )

        assert fixed.unit_status.name == "active"


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
            "pebble_custom_notice",
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
        notice = testing.Notice(key=READY_NOTICE)
        if event == "pebble_custom_notice":
            workload = dataclasses.replace(workload, notices=[notice])
            state = testing.State(**{**state.__dict__, "containers": {workload}})
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
            "pebble_custom_notice": lambda: ctx.on.pebble_custom_notice(workload, notice),
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
