"""The metadata-store relations under ops.testing: CrateDB, PostgreSQL, MySQL, v1 and v0."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ops import testing

from constants import CONTAINER
from helpers import (
    FakeNetwork,
    command,
    container,
    database_relation,
    env_file,
    env_file_or_empty,
    env_line,
    make_state,
    request_id,
    service_env,
    v0_database_relation,
)

Ctx = testing.Context[Any]


class TestMetadataStores:
    def test_cratedb_runs_mlflow_cratedb_on_the_relation_uri(self, ctx: Ctx, cratedb_ready):
        relation, secret = cratedb_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert out.unit_status.message.startswith("metadata: CrateDB;")
        assert command(out).startswith("mlflow-cratedb server ")
        assert env_line(ctx, out, "MLFLOW_BACKEND_STORE_URI") == (
            "MLFLOW_BACKEND_STORE_URI="
            "'crate://relation_7:s3cr3t@cratedb-0.cratedb-endpoints:4200/?schema=mlflow'\n"
        )
        assert service_env(out)["CHARM_METADATA_STORE"] == "cratedb"

    def test_postgresql_uri_names_the_psycopg2_driver(self, ctx: Ctx, postgresql_ready):
        relation, secret = postgresql_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert command(out).startswith("mlflow server ")
        assert "'postgresql+psycopg2://relation_7:s3cr3t@pg-primary.svc:5432/mlflow'" in env_file(
            ctx, out
        )

    def test_mysql_uri_names_the_pymysql_driver(self, ctx: Ctx, mysql_ready):
        relation, secret = mysql_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert "'mysql+pymysql://relation_7:s3cr3t@mysql-primary.svc:3306/mlflow'" in env_file(
            ctx, out
        )

    def test_password_withheld_across_models_comes_from_uris(self, ctx: Ctx):
        relation, secret = database_relation(
            "cratedb",
            "cratedb",
            "cratedb.other-model.svc:4200",
            password=None,
            uris="crate://relation_7:from%2Furis@cratedb.other-model.svc:4200/?schema=mlflow",
        )

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert "relation_7:from%2Furis@cratedb.other-model.svc:4200" in env_file(ctx, out)

    def test_password_with_hostile_characters_is_quoted_in_uri_and_env_file(self, ctx: Ctx):
        relation, secret = database_relation(
            "postgresql", "pg", "pg:5432", password="a'b\"c@d:e/f#g h\\i"
        )

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert env_line(ctx, out, "MLFLOW_BACKEND_STORE_URI") == (
            "MLFLOW_BACKEND_STORE_URI="
            "'postgresql+psycopg2://relation_7:a%27b%22c%40d%3Ae%2Ff%23g%20h%5Ci@pg:5432/mlflow'\n"
        )

    def test_credentials_never_reach_the_command_line_or_status(self, ctx: Ctx, cratedb_ready):
        relation, secret = cratedb_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert "s3cr3t" not in command(out)
        assert "s3cr3t" not in json.dumps(service_env(out))
        assert "s3cr3t" not in out.unit_status.message
        assert not any("s3cr3t" in log.message for log in ctx.juju_log)

    def test_relation_before_the_answer_keeps_the_running_server_and_says_so(
        self, ctx: Ctx, cratedb_bare
    ):
        before = ctx.run(ctx.on.config_changed(), make_state())
        state = testing.State(**{**before.__dict__, "relations": {cratedb_bare}})

        out = ctx.run(ctx.on.relation_changed(cratedb_bare, remote_unit=0), state)

        assert out.unit_status == testing.WaitingStatus(
            "cratedb: waiting for cratedb to answer (server still on embedded SQLite)"
        )
        assert out.get_container(CONTAINER).plan == before.get_container(CONTAINER).plan

    def test_two_stores_block_and_leave_the_server_alone(
        self, ctx: Ctx, cratedb_ready, postgresql_ready
    ):
        (crate, crate_secret), (pg, pg_secret) = cratedb_ready, postgresql_ready
        state = make_state(crate, pg, secrets=(crate_secret, pg_secret))

        out = ctx.run(ctx.on.relation_changed(pg, remote_unit=0), state)

        assert out.unit_status == testing.BlockedStatus(
            "two metadata stores related: cratedb (cratedb) and postgresql (postgresql-k8s); remove one"
        )
        assert out.get_container(CONTAINER).plan.services == {}

    def test_removing_the_store_relation_returns_to_sqlite(self, ctx: Ctx, cratedb_ready):
        relation, secret = cratedb_ready
        on_crate = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        out = ctx.run(ctx.on.relation_broken(on_crate.get_relation(relation.id)), on_crate)

        assert out.unit_status.message.startswith("metadata: embedded SQLite;")
        assert command(out).startswith("mlflow server ")

    def test_image_without_the_driver_blocks_naming_the_rock(self, ctx: Ctx, postgresql_ready):
        relation, secret = postgresql_ready
        state = make_state(
            relation, secrets=(secret,), workload=container(modules="mlflow_cratedb")
        )

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)

        assert out.unit_status == testing.BlockedStatus(
            "the workload image lacks psycopg2 for PostgreSQL; use the project's rock (see README)"
        )

    def test_unreachable_store_is_waiting_not_blocked(
        self, ctx: Ctx, network: FakeNetwork, postgresql_ready
    ):
        relation, secret = postgresql_ready
        network.unreachable.add("pg-primary.svc:5432")

        out = ctx.run(ctx.on.update_status(), make_state(relation, secrets=(secret,)))

        assert out.unit_status == testing.WaitingStatus(
            "PostgreSQL at pg-primary.svc:5432 unreachable; retrying"
        )
        assert command(out).startswith("mlflow server ")

    def test_leader_writes_the_request_when_the_relation_has_none(self, ctx: Ctx, cratedb_ready):
        relation, secret = cratedb_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        sent = json.loads(out.get_relation(relation.id).local_app_data["requests"])
        assert [(r["resource"], r["request-id"]) for r in sent] == [("mlflow", request_id()[0])]

    def test_database_name_changed_after_relating_blocks_with_the_fix(
        self, ctx: Ctx, cratedb_ready
    ):
        relation, secret = cratedb_ready
        related = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )
        state = testing.State(**{**related.__dict__, "config": {"database-name": "other"}})

        out = ctx.run(ctx.on.config_changed(), state)

        assert out.unit_status == testing.BlockedStatus(
            "cratedb: database-name changed to 'other' after relating; "
            "remove and re-add the cratedb relation to switch"
        )

    def test_rotated_password_reaches_the_env_file_and_restarts_the_server(
        self, ctx: Ctx, cratedb_ready
    ):
        relation, secret = cratedb_ready
        before = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )
        # The provider set a new revision; the charm's label (set by the library) stays.
        rotated = dataclasses.replace(
            before.get_secret(id=secret.id),
            latest_content={"username": "relation_7", "password": "n3w-pw"},
        )
        state = testing.State(**{**before.__dict__, "secrets": {rotated}})

        out = ctx.run(ctx.on.secret_changed(rotated), state)

        assert "relation_7:n3w-pw@" in env_file(ctx, out)
        assert (
            service_env(out)["CHARM_ENV_FILE_SHA256"]
            != service_env(before)["CHARM_ENV_FILE_SHA256"]
        )


class TestLegacyV0Providers:
    """postgresql-k8s and mysql-k8s answer only the v0 protocol: they must work."""

    def test_both_requests_are_written_in_one_hook(self, ctx: Ctx, postgresql_bare):
        out = ctx.run(ctx.on.relation_created(postgresql_bare), make_state(postgresql_bare))

        local = out.get_relation(postgresql_bare.id).local_app_data
        assert local["version"] == "v1"
        assert [r["resource"] for r in json.loads(local["requests"])] == ["mlflow"]
        assert local["database"] == "mlflow"
        assert {"username", "password", "tls", "tls-ca"} <= set(
            json.loads(local["requested-secrets"])
        )

    def test_a_provider_that_never_answers_keeps_sqlite_and_says_who_it_waits_for(
        self, ctx: Ctx, postgresql_bare
    ):
        before = ctx.run(ctx.on.config_changed(), make_state())
        state = dataclasses.replace(before, relations=frozenset({postgresql_bare}))

        out = ctx.run(ctx.on.relation_changed(postgresql_bare, remote_unit=0), state)

        assert out.unit_status == testing.WaitingStatus(
            "postgresql: waiting for postgresql-k8s to answer (server still on embedded SQLite)"
        )
        assert out.get_container(CONTAINER).plan == before.get_container(CONTAINER).plan

    def test_only_bookkeeping_in_the_answer_is_still_waiting(self, ctx: Ctx, postgresql_bare):
        relation = dataclasses.replace(
            postgresql_bare, remote_app_data={"data": json.dumps({"database": "mlflow"})}
        )

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status == testing.WaitingStatus(
            "postgresql: waiting for postgresql-k8s to create 'mlflow' (server not started yet)"
        )

    def test_postgresql_answer_runs_mlflow_on_its_database(self, ctx: Ctx, postgresql_v0_ready):
        relation, secrets = postgresql_v0_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=tuple(secrets)),
        )

        assert out.unit_status.message.startswith("metadata: PostgreSQL;"), out.unit_status
        assert command(out).startswith("mlflow server ")
        assert env_line(ctx, out, "MLFLOW_BACKEND_STORE_URI") == (
            "MLFLOW_BACKEND_STORE_URI='postgresql+psycopg2://relation_id_7:v0-s3cr3t@"
            "postgresql-k8s-primary.model.svc.cluster.local:5432/mlflow'\n"
        )

    def test_mysql_answer_with_a_trailing_dot_fqdn_runs_mlflow(self, ctx: Ctx, mysql_v0_ready):
        relation, secrets = mysql_v0_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=tuple(secrets)),
        )

        assert out.unit_status.message.startswith("metadata: MySQL;"), out.unit_status
        assert (
            "'mysql+pymysql://relation_id_7:v0-s3cr3t@"
            "mysql-k8s-primary.model.svc.cluster.local.:3306/mlflow'"
        ) in env_file(ctx, out)

    def test_tls_answer_pushes_the_ca_and_verifies_against_it(self, ctx: Ctx):
        relation, secrets = v0_database_relation(
            "postgresql", "postgresql-k8s", "pg:5432", tls_ca="-----BEGIN CERTIFICATE-----\nX"
        )

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=tuple(secrets)),
        )

        root = out.get_container(CONTAINER).get_filesystem(ctx)
        assert (root / "etc/mlflow/db-ca.pem").read_text() == "-----BEGIN CERTIFICATE-----\nX"
        assert "sslmode=verify-ca&sslrootcert=%2Fetc%2Fmlflow%2Fdb-ca.pem" in env_file(ctx, out)

    def test_rotated_password_restarts_the_server_with_it(self, ctx: Ctx, postgresql_v0_ready):
        relation, secrets = postgresql_v0_ready
        before = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=tuple(secrets)),
        )
        user = before.get_secret(id=secrets[0].id)
        rotated = dataclasses.replace(
            user, latest_content={"username": "relation_id_7", "password": "r0tated"}
        )

        out = ctx.run(
            ctx.on.secret_changed(rotated),
            dataclasses.replace(before, secrets=frozenset({rotated})),
        )

        assert "relation_id_7:r0tated@" in env_file(ctx, out)
        assert (
            service_env(out)["CHARM_ENV_FILE_SHA256"]
            != service_env(before)["CHARM_ENV_FILE_SHA256"]
        )

    def test_removing_the_relation_returns_to_sqlite(self, ctx: Ctx, postgresql_v0_ready):
        relation, secrets = postgresql_v0_ready
        on_pg = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=tuple(secrets)),
        )

        out = ctx.run(ctx.on.relation_broken(on_pg.get_relation(relation.id)), on_pg)

        assert out.unit_status.message.startswith("metadata: embedded SQLite;")

    def test_plain_credentials_block_naming_the_upgrade(self, ctx: Ctx, postgresql_bare):
        relation = dataclasses.replace(
            postgresql_bare,
            remote_app_data={"endpoints": "pg:5432", "username": "u", "password": "in-clear"},
        )

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status == testing.BlockedStatus(
            "postgresql: postgresql-k8s sent the password in plain relation data, which this "
            "charm refuses; upgrade postgresql-k8s to a revision that uses Juju secrets"
        )
        assert "in-clear" not in env_file_or_empty(ctx, out)

    def test_v0_and_v1_stores_at_once_still_block(
        self, ctx: Ctx, postgresql_v0_ready, cratedb_ready
    ):
        (pg, pg_secrets), (crate, crate_secret) = postgresql_v0_ready, cratedb_ready

        out = ctx.run(
            ctx.on.relation_changed(pg, remote_unit=0),
            make_state(pg, crate, secrets=(*pg_secrets, crate_secret)),
        )

        assert out.unit_status == testing.BlockedStatus(
            "two metadata stores related: cratedb (cratedb) and postgresql (postgresql-k8s); "
            "remove one"
        )

    def test_database_name_changed_after_a_v0_request_blocks_with_the_fix(
        self, ctx: Ctx, postgresql_v0_ready
    ):
        relation, secrets = postgresql_v0_ready
        related = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=tuple(secrets)),
        )

        out = ctx.run(
            ctx.on.config_changed(),
            dataclasses.replace(related, config={"database-name": "other"}),
        )

        assert out.unit_status == testing.BlockedStatus(
            "postgresql: database-name changed to 'other' after relating; "
            "remove and re-add the postgresql relation to switch"
        )
