"""A store written by an older (or newer) MLflow, under ops.testing: what the charm does first.

The boundary stubbed is the container's exec: ``schema.py`` answers with the
store's revision (``helpers.schema_state``), ``cp`` and ``mlflow db upgrade``
with their exit codes. The real programs run in tests/workload/test_upgrades.py.
"""

from __future__ import annotations

import json
from typing import Any

import ops
import pytest
from ops import testing

from constants import CONTAINER, PEER_RELATION, SERVICE, STORE_SCHEMA_KEY
from helpers import HEAD, container, make_state, schema_state
from workload import db_upgrade_argv

Ctx = testing.Context[Any]
OLD = "0584bdc529eb"  # a revision MLflow 2.22 writes
SQLITE_FILE = "/var/lib/mlflow/mlflow.db"
COPY = f"{SQLITE_FILE}.before-{HEAD}-from-{OLD}"


def commands(ctx: Ctx) -> list[list[str]]:
    return [list(c.command) for c in ctx.exec_history[CONTAINER]]


def upgrades(ctx: Ctx) -> int:
    return commands(ctx).count(db_upgrade_argv("mlflow"))


def serving(out: testing.State) -> bool:
    statuses = out.get_container(CONTAINER).service_statuses
    return statuses.get(SERVICE) == ops.pebble.ServiceStatus.ACTIVE


class TestSqlite:
    def test_an_older_schema_is_copied_aside_then_migrated_and_served(self, ctx: Ctx):
        out = ctx.run(
            ctx.on.upgrade_charm(), make_state(workload=container(schema=schema_state(OLD)))
        )

        ran = commands(ctx)
        copy = ran.index(["cp", "-p", SQLITE_FILE, COPY])
        assert ran.index(db_upgrade_argv("mlflow")) > copy
        assert upgrades(ctx) == 1
        assert serving(out)
        assert out.unit_status.name == "active"

    def test_a_failed_migration_puts_the_copy_back_and_says_so(self, ctx: Ctx):
        state = make_state(workload=container(schema=schema_state(OLD), upgrade_rc=1))

        out = ctx.run(ctx.on.upgrade_charm(), state)

        ran = commands(ctx)
        assert ran[-1] == ["cp", "-p", COPY, SQLITE_FILE]
        assert out.unit_status == testing.BlockedStatus(
            f"mlflow db upgrade failed on embedded SQLite ({OLD} -> {HEAD}); the store is back "
            f"as it was (copy kept at {COPY}); see juju debug-log"
        )
        assert not serving(out)

    def test_a_store_at_the_images_schema_is_served_without_a_migration(self, ctx: Ctx):
        out = ctx.run(ctx.on.upgrade_charm(), make_state())

        assert upgrades(ctx) == 0
        assert not [c for c in commands(ctx) if c[0] == "cp"]
        assert serving(out)

    def test_a_new_store_is_left_to_the_server_to_set_up(self, ctx: Ctx):
        new = schema_state(None, tables=False)

        out = ctx.run(ctx.on.config_changed(), make_state(workload=container(schema=new)))

        assert upgrades(ctx) == 0
        assert serving(out)


class TestDatabases:
    def test_an_older_postgresql_schema_blocks_naming_the_backup_and_the_action(
        self, ctx: Ctx, postgresql_ready
    ):
        relation, secret = postgresql_ready
        state = make_state(
            relation, secrets=(secret,), workload=container(schema=schema_state(OLD))
        )

        out = ctx.run(ctx.on.upgrade_charm(), state)

        assert out.unit_status == testing.BlockedStatus(
            f"the PostgreSQL store's schema must be migrated ({OLD} -> {HEAD}): back it up "
            "(juju run postgresql-k8s/leader create-backup), then juju run "
            "mlflow-tracking/leader migrate-store"
        )
        assert upgrades(ctx) == 0
        assert not serving(out)

    def test_the_action_migrates_and_the_server_starts(self, ctx: Ctx, mysql_ready):
        relation, secret = mysql_ready
        state = make_state(
            relation, secrets=(secret,), workload=container(schema=schema_state(OLD))
        )
        blocked = ctx.run(ctx.on.upgrade_charm(), state)

        out = ctx.run(ctx.on.action("migrate-store"), blocked)

        assert ctx.action_results == {"result": f"migrated {OLD} -> {HEAD}"}
        upgrade = next(
            c for c in ctx.exec_history[CONTAINER] if c.command == db_upgrade_argv("mlflow")
        )
        assert upgrade.environment["MLFLOW_BACKEND_STORE_URI"].startswith("mysql+pymysql://")
        assert serving(out)

    def test_a_failed_migration_fails_the_action_saying_how_to_restore(
        self, ctx: Ctx, postgresql_ready
    ):
        relation, secret = postgresql_ready
        workload = container(schema=schema_state(OLD), upgrade_rc=1)
        state = make_state(relation, secrets=(secret,), workload=workload)

        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("migrate-store"), state)

        assert failed.value.message == (
            f"mlflow db upgrade failed on PostgreSQL ({OLD} -> {HEAD}): restore the backup you "
            "took (postgresql-k8s's restore action) before the previous image serves again; "
            "see juju debug-log"
        )
        assert not any("s3cr3t" in log.message for log in ctx.juju_log)

    def test_the_action_on_a_store_at_the_images_schema_changes_nothing(
        self, ctx: Ctx, postgresql_ready
    ):
        relation, secret = postgresql_ready

        ctx.run(ctx.on.action("migrate-store"), make_state(relation, secrets=(secret,)))

        assert ctx.action_results == {"result": f"nothing to migrate: the store is at {HEAD}"}
        assert upgrades(ctx) == 0

    def test_the_action_runs_on_the_leader_only(self, ctx: Ctx, postgresql_ready):
        relation, secret = postgresql_ready
        state = make_state(relation, secrets=(secret,), leader=False)

        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("migrate-store"), state)

        assert "juju run mlflow-tracking/leader migrate-store" in failed.value.message

    def test_an_mlflow_cratedb_2_store_blocks_naming_crates_backup_then_is_brought_forward(
        self, ctx: Ctx, cratedb_ready
    ):
        relation, secret = cratedb_ready
        old = json.dumps(
            {"current": "mlflow-cratedb 2.x", "head": "mlflow-cratedb 3.12.0", "tables": True}
        )
        state = make_state(relation, secrets=(secret,), workload=container(schema=old))

        blocked = ctx.run(ctx.on.upgrade_charm(), state)

        assert blocked.unit_status == testing.BlockedStatus(
            "the CrateDB store's schema must be migrated (mlflow-cratedb 2.x -> mlflow-cratedb "
            "3.12.0): back it up (juju run cratedb/leader create-backup), then juju run "
            "mlflow-tracking/leader migrate-store"
        )
        assert not serving(blocked)
        out = ctx.run(ctx.on.action("migrate-store"), blocked)
        tables = next(c for c in ctx.exec_history[CONTAINER] if "upgrade" in c.command)
        assert tables.command[-2:] == ["/etc/mlflow/cratedb_schema.py", "upgrade"]
        assert tables.environment["MLFLOW_BACKEND_STORE_URI"].startswith("crate://")
        assert upgrades(ctx) == 0  # never mlflow db upgrade on CrateDB
        assert serving(out)

    def test_a_failed_cratedb_copy_fails_the_action_saying_what_is_kept(
        self, ctx: Ctx, cratedb_ready
    ):
        relation, secret = cratedb_ready
        old = json.dumps(
            {"current": "mlflow-cratedb 2.x", "head": "mlflow-cratedb 3.12.0", "tables": True}
        )
        state = make_state(
            relation, secrets=(secret,), workload=container(schema=old, upgrade_rc=1)
        )
        blocked = ctx.run(ctx.on.upgrade_charm(), state)

        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("migrate-store"), blocked)

        assert "registered_models: 3 rows, 2 copied" in failed.value.message
        assert "keep their old rows as <table>__premigration" in failed.value.message
        assert "cratedb's restore-backup" in failed.value.message


class TestUnits:
    def test_a_unit_other_than_the_leader_waits_and_serves_nothing(
        self, ctx: Ctx, postgresql_ready
    ):
        relation, secret = postgresql_ready
        state = make_state(
            relation, secrets=(secret,), leader=False, workload=container(schema=schema_state(OLD))
        )

        out = ctx.run(ctx.on.upgrade_charm(), state)

        assert out.unit_status == testing.WaitingStatus(
            f"waiting for the leader to migrate the store ({OLD} -> {HEAD})"
        )
        assert upgrades(ctx) == 0
        assert not serving(out)

    def test_the_leader_records_the_schema_it_serves_for_the_other_units(self, ctx: Ctx):
        peer = testing.PeerRelation(PEER_RELATION)
        state = make_state(peer, workload=container(schema=schema_state(OLD)))

        out = ctx.run(ctx.on.upgrade_charm(), state)

        recorded = out.get_relation(peer.id).local_app_data
        assert recorded is not None
        assert recorded[STORE_SCHEMA_KEY] == HEAD

    def test_a_store_written_by_a_newer_mlflow_blocks_and_is_left_alone(self, ctx: Ctx):
        newer = schema_state("ffffffffffff", known=False)

        out = ctx.run(ctx.on.upgrade_charm(), make_state(workload=container(schema=newer)))

        assert out.unit_status == testing.BlockedStatus(
            f"the store's schema ffffffffffff is newer than this image's MLflow ({HEAD}): "
            "refresh mlflow-tracking back to the image that wrote it"
        )
        assert upgrades(ctx) == 0
        assert not [c for c in commands(ctx) if c[0] == "cp"]
        assert not serving(out)
