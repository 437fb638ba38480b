"""The cratedb charm under ops.testing, with the SQL boundary recorded."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import ops
import pytest
from ops import testing

from charm import CrateDBCharm
from constants import CONTAINER, SERVICE
from helpers import (
    FakeCrate,
    container,
    flags,
    make_state,
    peer_relation,
    running_state,
    s3_relation,
    v0_request,
    v1_request,
)
from state import Health

Ctx = testing.Context[Any]


def _secret_for(out: testing.State, relation: testing.Relation) -> dict[str, str]:
    data: dict[str, str] = dict(out.get_relation(relation.id).local_app_data)
    if "requests" in data:
        secret_id = json.loads(data["requests"])[0]["secret-user"]
    else:
        secret_id = data["secret-user"]
    content: dict[str, str] = dict(out.get_secret(id=secret_id).latest_content or {})
    return content


class TestNode:
    def test_single_node_bootstraps_itself_with_host_based_auth(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        f = flags(out)
        assert f["cluster.name"] == "cratedb"
        assert f["node.name"] == "cratedb-0"
        assert f["cluster.initial_master_nodes"] == "cratedb-0"
        assert f["discovery.seed_hosts"].startswith("cratedb-0.cratedb-endpoints.")
        assert f["auth.host_based.enabled"] == "true"
        assert (f["auth.host_based.config.0.user"], f["auth.host_based.config.0.address"]) == (
            "crate",
            "_local_",
        )
        assert f["auth.host_based.config.0.method"] == "trust"
        assert f["auth.host_based.config.99.method"] == "password"
        assert out.get_container(CONTAINER).plan.services[SERVICE].user == "crate"

    def test_starts_on_a_stock_node_without_mmap(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        assert flags(out)["node.store.allow_mmap"] == "false"

    def test_allow_mmap_with_a_low_map_count_blocks_with_the_exact_command(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(config={"allow-mmap": True}))

        assert out.unit_status == testing.BlockedStatus(
            "vm.max_map_count is 65530: run 'sysctl -w vm.max_map_count=262144' "
            "on every Kubernetes node, or set allow-mmap=false"
        )

    def test_allow_mmap_with_enough_maps_is_used(self, ctx: Ctx):
        state = make_state(config={"allow-mmap": True}, workload=container(map_count="262144"))

        out = ctx.run(ctx.on.config_changed(), state)

        assert flags(out)["node.store.allow_mmap"] == "true"

    @pytest.mark.parametrize(
        ("memory", "heap"),
        [
            (str(4 * 1024**3), "2048m"),
            ("max", "1024m"),
            (str(256 * 1024**2), "256m"),
            (str(128 * 1024**3), "30500m"),
        ],
    )
    def test_heap_is_half_the_memory_limit_within_bounds(self, ctx: Ctx, memory: str, heap: str):
        out = ctx.run(ctx.on.config_changed(), make_state(workload=container(memory=memory)))

        assert (
            out.get_container(CONTAINER).plan.services[SERVICE].environment["CRATE_HEAP_SIZE"]
            == heap
        )

    def test_configured_heap_wins(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(config={"heap-size": "3g"}))

        assert (
            out.get_container(CONTAINER).plan.services[SERVICE].environment["CRATE_HEAP_SIZE"]
            == "3072m"
        )

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("heap-size", "lots"),
            ("heap-size", "0g"),
            ("cluster-domain", "bad domain"),
            ("backup-bucket", "B"),
            ("backup-path", "../x"),
        ],
    )
    def test_bad_config_blocks_naming_the_option(self, ctx: Ctx, option: str, value: str):
        out = ctx.run(ctx.on.config_changed(), make_state(config={option: value}))

        assert out.unit_status.name == "blocked"
        assert out.unit_status.message.startswith(f"invalid config '{option}'")
        assert out.get_container(CONTAINER).plan.services == {}

    def test_waits_for_the_container(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(workload=container(connect=False)))

        assert out.unit_status == testing.WaitingStatus("waiting for the cratedb container")

    def test_waits_while_cratedb_does_not_answer(self, ctx: Ctx, crate: FakeCrate):
        crate.down = True

        out = ctx.run(ctx.on.config_changed(), make_state(v1_request()))

        assert out.unit_status == testing.WaitingStatus("waiting for CrateDB to start")
        assert crate.statements == []

    def test_status_shows_health_and_node_count(self, ctx: Ctx, crate: FakeCrate):
        crate.health = Health.YELLOW

        out = ctx.run(ctx.on.update_status(), make_state())

        assert out.unit_status == testing.ActiveStatus("YELLOW · 1 node(s) · CrateDB 6.4.0")

    def test_red_health_blocks(self, ctx: Ctx, crate: FakeCrate):
        crate.health = Health.RED

        out = ctx.run(ctx.on.update_status(), make_state())

        assert out.unit_status == testing.BlockedStatus(
            "cluster health RED on 1 node(s): check sys.health"
        )


class TestCluster:
    def test_three_units_seed_each_other_and_wait_for_a_majority(self, ctx: Ctx, crate: FakeCrate):
        crate.nodes = 3
        peer = peer_relation(
            {
                1: "cratedb-1.cratedb-endpoints.m.svc.cluster.local",
                2: "cratedb-2.cratedb-endpoints.m.svc.cluster.local",
            }
        )

        out = ctx.run(ctx.on.config_changed(), make_state(peer=peer, planned_units=3))

        f = flags(out)
        seeds = f["discovery.seed_hosts"].split(",")
        assert len(seeds) == 3
        assert "cratedb-2.cratedb-endpoints.m.svc.cluster.local:4300" in seeds
        assert (f["gateway.expected_data_nodes"], f["gateway.recover_after_data_nodes"]) == (
            "3",
            "2",
        )

    def test_a_joining_unit_never_names_initial_masters(self, ctx: Ctx):
        peer = peer_relation({0: "cratedb-0.x"}, app_data={"bootstrap-node": "cratedb-0"})
        ctx_unit2 = testing.Context(CrateDBCharm, unit_id=2)

        out = ctx_unit2.run(
            ctx_unit2.on.config_changed(), make_state(peer=peer, leader=False, planned_units=3)
        )

        assert "cluster.initial_master_nodes" not in flags(out)
        assert flags(out)["node.name"] == "cratedb-2"

    def test_bootstrap_flag_leaves_at_the_next_start_without_a_restart(self, ctx: Ctx):
        first = ctx.run(ctx.on.config_changed(), make_state())
        assert "cluster.initial_master_nodes" in flags(first)

        second = ctx.run(ctx.on.update_status(), running_state(first))

        assert "cluster.initial_master_nodes" not in flags(second)
        assert any("no restart" in log.message for log in ctx.juju_log)

    def test_scaling_changes_membership_flags_without_a_restart(self, ctx: Ctx):
        one = running_state(ctx.run(ctx.on.config_changed(), make_state()))
        peer = peer_relation(
            {1: "cratedb-1.x"},
            app_data=dict(one.get_relation(next(r.id for r in one.relations)).local_app_data),
        )
        state = testing.State(**{**one.__dict__, "relations": {peer}, "planned_units": 2})

        out = ctx.run(ctx.on.relation_changed(peer, remote_unit=1), state)

        assert "cratedb-1.x:4300" in flags(out)["discovery.seed_hosts"]
        assert any("no restart" in log.message for log in ctx.juju_log)

    def test_departing_unit_moves_its_shards_off_first(self, crate: FakeCrate):
        # Unit 2 leaves (Scenario cannot name unit 0 as the departing one).
        ctx = testing.Context(CrateDBCharm, unit_id=2)
        crate.shards = {"cratedb-2": [5, 2, 0]}
        peer = peer_relation({0: "cratedb-0.x"}, app_data={"bootstrap-node": "cratedb-0"})
        state = running_state(
            ctx.run(ctx.on.config_changed(), make_state(peer=peer, leader=False))
        )

        ctx.run(
            ctx.on.relation_departed(state.get_relation(peer.id), remote_unit=0, departing_unit=2),
            state,
        )

        assert (
            crate.statements[0]
            == "SET GLOBAL TRANSIENT \"cluster.routing.allocation.exclude._name\" = 'cratedb-2'"
        )
        assert any("cratedb-2 drained" in log.message for log in ctx.juju_log)

    @pytest.mark.parametrize(
        ("shards", "ended"), [({"cratedb-2": [5]}, "timed out"), (None, "failed")]
    )
    def test_a_drain_that_does_not_finish_blocks_the_departing_unit_naming_the_way_out(
        self, crate: FakeCrate, shards: dict[str, list[int]] | None, ended: str
    ):
        ctx = testing.Context(CrateDBCharm, unit_id=2)
        peer = peer_relation({0: "cratedb-0.x"}, app_data={"bootstrap-node": "cratedb-0"})
        state = running_state(
            ctx.run(ctx.on.config_changed(), make_state(peer=peer, leader=False))
        )
        if shards is None:
            crate.down = True  # CrateDB stops answering during the drain
        else:
            crate.shards = shards  # never fewer: the drain times out

        out = ctx.run(
            ctx.on.relation_departed(state.get_relation(peer.id), remote_unit=0, departing_unit=2),
            state,
        )

        assert out.unit_status == ops.BlockedStatus(
            f"scaling down: cratedb-2 {ended} moving its shards away; data on it may have no "
            "other copy: scale back up (juju add-unit) or check sys.allocations"
        )

    def test_leader_clears_the_exclusion_once_the_node_is_gone(self, ctx: Ctx, crate: FakeCrate):
        peer = peer_relation({1: "cratedb-1.x"})
        state = running_state(
            ctx.run(ctx.on.config_changed(), make_state(peer=peer, planned_units=1))
        )

        ctx.run(
            ctx.on.relation_departed(state.get_relation(peer.id), remote_unit=1, departing_unit=1),
            state,
        )

        assert (
            "SET GLOBAL TRANSIENT \"cluster.routing.allocation.exclude._name\" = ''"
            in crate.statements
        )

    def test_replicas_that_cannot_fit_are_reported(self, ctx: Ctx, crate: FakeCrate):
        crate.replicas = 2
        crate.nodes = 2

        out = ctx.run(ctx.on.update_status(), make_state(planned_units=2))

        assert out.unit_status == testing.BlockedStatus(
            "tables want 2 replica(s), 2 node(s) cannot hold them: scale up or lower number_of_replicas"
        )


class TestClients:
    def test_new_request_gets_a_user_with_privileges_on_its_schema_only(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation = v1_request("mlflow")

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        user = f"relation_{relation.id}"
        creds = _secret_for(out, relation)
        assert crate.statements == [
            f"CREATE USER \"{user}\" WITH (password = '{creds['password']}')",
            f'GRANT DQL, DML, DDL ON SCHEMA "mlflow" TO "{user}"',
        ]
        assert not any("CLUSTER" in s or "ALL" in s for s in crate.statements)
        assert creds["username"] == user
        assert len(creds["password"]) == 32
        assert creds["uris"] == (
            f"crate://{user}:{creds['password']}@cratedb.{out.model.name}.svc.cluster.local:4200/?schema=mlflow"
        )

    def test_response_names_endpoint_and_version_and_keeps_the_password_out_of_the_databag(
        self, ctx: Ctx
    ):
        relation = v1_request()

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        [response] = json.loads(out.get_relation(relation.id).local_app_data["requests"])
        assert response["endpoints"] == f"cratedb.{out.model.name}.svc.cluster.local:4200"
        assert response["version"] == "6.4.0"
        assert response["password"] is None
        password = _secret_for(out, relation)["password"]
        assert password not in json.dumps(dict(out.get_relation(relation.id).local_app_data))

    def test_a_repeated_hook_issues_no_statement(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request()
        first = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        crate.statements.clear()

        ctx.run(ctx.on.update_status(), first)

        assert crate.statements == []

    def test_a_user_left_by_an_interrupted_hook_gets_a_new_password(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation = v1_request()
        crate.users.add(f"relation_{relation.id}")

        ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert crate.statements[0].startswith(
            f'ALTER USER "relation_{relation.id}" SET (password = '
        )

    def test_legacy_v0_client_is_answered_the_v0_way(self, ctx: Ctx):
        relation = v0_request("legacy")

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        data = out.get_relation(relation.id).local_app_data
        assert data["database"] == "legacy"
        assert data["endpoints"].endswith(":4200")
        assert _secret_for(out, relation)["username"] == f"relation_{relation.id}"

    @pytest.mark.parametrize(
        ("schema", "reason"),
        [
            ("sys", "is CrateDB's system schema"),
            ("information_schema", "is CrateDB's system schema"),
            ("doc", "is the shared default schema"),
            ("Bad-Name", "must be a lowercase identifier"),
            ('x"; DROP USER crate; --', "must be a lowercase identifier"),
            ("", "must be a lowercase identifier"),
        ],
    )
    def test_bad_schema_blocks_and_issues_nothing(
        self, ctx: Ctx, crate: FakeCrate, schema: str, reason: str
    ):
        relation = v1_request(schema)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status.name == "blocked"
        assert reason in out.unit_status.message
        assert crate.statements == []

    def test_a_schema_already_served_is_refused_to_the_second_client(
        self, ctx: Ctx, crate: FakeCrate
    ):
        first = v1_request("shared", app="app-one")
        served = ctx.run(ctx.on.relation_changed(first, remote_unit=0), make_state(first))
        second = v1_request("shared", app="app-two")

        out = ctx.run(
            ctx.on.relation_changed(second, remote_unit=0),
            dataclasses.replace(served, relations=frozenset({*served.relations, second})),
        )

        assert out.unit_status == ops.BlockedStatus(
            f"app-two (relation {second.id}): 'shared' is served to app-one (relation {first.id})"
        )
        assert (
            "belongs to another application" in out.get_relation(second.id).local_app_data["error"]
        )
        assert crate.grants == {f"relation_{first.id}": {"shared"}}

    def test_two_clients_asking_at_once_for_a_new_schema_are_both_refused(
        self, ctx: Ctx, crate: FakeCrate
    ):
        first = v1_request("shared", app="app-one")
        second = v1_request("shared", app="app-two")

        out = ctx.run(ctx.on.relation_changed(second, remote_unit=0), make_state(first, second))

        assert "app-one" in out.unit_status.message
        assert "app-two" in out.unit_status.message
        assert "at once" in out.unit_status.message
        assert crate.grants == {}

    def test_broken_relation_drops_the_user_and_keeps_the_data(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request()
        related = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        crate.statements.clear()

        ctx.run(ctx.on.relation_broken(related.get_relation(relation.id)), related)

        assert crate.statements == [f'DROP USER IF EXISTS "relation_{relation.id}"']

    def test_non_leader_creates_nothing(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request()
        peer = peer_relation(app_data={"bootstrap-node": "cratedb-0"})

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, leader=False, peer=peer),
        )

        assert crate.statements == []
        assert "requests" not in out.get_relation(relation.id).local_app_data

    def test_rotate_credentials_sets_a_new_password_and_shares_it(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation = v1_request()
        related = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        before = _secret_for(related, relation)["password"]
        crate.statements.clear()

        out = ctx.run(
            ctx.on.action("rotate-credentials", params={"relation-id": relation.id}), related
        )

        after = _secret_for(out, relation)
        assert after["password"] != before
        assert crate.statements == [
            f"ALTER USER \"relation_{relation.id}\" SET (password = '{after['password']}')"
        ]
        assert crate.passwords[f"relation_{relation.id}"] == after["password"]
        assert after["uris"].startswith(f"crate://relation_{relation.id}:{after['password']}@")

    def test_rotate_an_unknown_relation_fails(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed, match="relation 42 has no CrateDB user"):
            ctx.run(ctx.on.action("rotate-credentials", params={"relation-id": 42}), make_state())


class TestBackups:
    def test_backup_without_s3_fails_saying_what_to_relate(self, ctx: Ctx):
        with pytest.raises(
            testing.ActionFailed,
            match="no S3 related for backups: juju relate cratedb:s3-parameters seaweedfs",
        ):
            ctx.run(ctx.on.action("create-backup"), make_state())

    def test_backup_defines_a_path_style_s3_repository_and_snapshots_everything(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation, secret = s3_relation()

        ctx.run(
            ctx.on.action("create-backup", params={"name": "nightly-1"}),
            make_state(relation, secrets=(secret,)),
        )

        assert crate.statements == [
            "CREATE REPOSITORY \"backups\" TYPE s3 WITH (endpoint = 'seaweedfs.model.svc.cluster.local:8333', "
            "protocol = 'http', bucket = 'cratedb', base_path = 'cratedb', access_key = 'BACKUPKEY', "
            "secret_key = 'backup-secret', use_path_style_access = true)",
            'CREATE SNAPSHOT "backups"."nightly-1" ALL WITH (wait_for_completion = true)',
        ]
        assert ctx.action_results is not None
        assert ctx.action_results["snapshot"] == "nightly-1"
        assert ctx.action_results["state"] == "SUCCESS"
        assert any("creating snapshot nightly-1" in line for line in ctx.action_logs)

    def test_failed_snapshot_fails_the_action(self, ctx: Ctx, crate: FakeCrate):
        relation, secret = s3_relation()
        crate.snapshot_state = "PARTIAL"

        with pytest.raises(testing.ActionFailed, match="snapshot n1 ended PARTIAL"):
            ctx.run(
                ctx.on.action("create-backup", params={"name": "n1"}),
                make_state(relation, secrets=(secret,)),
            )

    def test_existing_repository_is_redefined_with_the_current_keys(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation, secret = s3_relation()
        crate.repository = True

        ctx.run(ctx.on.action("list-backups"), make_state(relation, secrets=(secret,)))

        assert crate.statements[0] == 'DROP REPOSITORY "backups"'
        assert crate.statements[1].startswith('CREATE REPOSITORY "backups" TYPE s3')

    def test_list_backups(self, ctx: Ctx, crate: FakeCrate):
        relation, secret = s3_relation()
        crate.snapshots_taken = ["a", "b"]

        ctx.run(ctx.on.action("list-backups"), make_state(relation, secrets=(secret,)))

        assert ctx.action_results is not None
        assert ctx.action_results["count"] == 2
        assert ctx.action_results["snapshots"].splitlines()[0].startswith("a  SUCCESS")

    def test_restore_selected_tables(self, ctx: Ctx, crate: FakeCrate):
        relation, secret = s3_relation()

        ctx.run(
            ctx.on.action(
                "restore-backup",
                params={"name": "nightly-1", "tables": "mlflow.runs, mlflow.metrics"},
            ),
            make_state(relation, secrets=(secret,)),
        )

        assert crate.statements[-1] == (
            'RESTORE SNAPSHOT "backups"."nightly-1" TABLE "mlflow"."runs", "mlflow"."metrics" '
            "WITH (wait_for_completion = true)"
        )

    @pytest.mark.parametrize("name", ["../x", "Bad Name", "x'; DROP", ""])
    def test_unsafe_snapshot_names_are_refused(self, ctx: Ctx, crate: FakeCrate, name: str):
        relation, secret = s3_relation()

        with pytest.raises(testing.ActionFailed, match="refusing unsafe snapshot name"):
            ctx.run(
                ctx.on.action("restore-backup", params={"name": name}),
                make_state(relation, secrets=(secret,)),
            )
        assert crate.statements == []


@pytest.mark.parametrize("leader", [True, False])
@pytest.mark.parametrize(
    "event",
    [
        "config_changed",
        "upgrade_charm",
        "update_status",
        "leader_elected",
        "pebble_ready",
        "storage_attached",
    ],
)
def test_every_lifecycle_event_ends_in_a_known_status(ctx: Ctx, event: str, leader: bool):
    peer = peer_relation(app_data={"bootstrap-node": "cratedb-0"})
    state = make_state(leader=leader, peer=peer)
    special = {
        "pebble_ready": lambda: ctx.on.pebble_ready(state.get_container(CONTAINER)),
        "storage_attached": lambda: ctx.on.storage_attached(next(iter(state.storages))),
    }

    out = ctx.run(special.get(event, getattr(ctx.on, event))(), state)

    assert out.unit_status.name in {"active", "waiting", "maintenance", "blocked"}
