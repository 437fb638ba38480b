"""The mlflow-tracking charm under ops.testing: stores, artifacts, pod defaults, statuses."""

from __future__ import annotations

import base64
import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

import ops
import pytest
from ops import testing

from constants import CONTAINER, SERVICE
from fake_kubernetes import FakeCluster
from helpers import (
    APP,
    MINIO_KEYS,
    FakeNetwork,
    command,
    container,
    database_relation,
    env_file,
    env_line,
    istio_relation,
    make_state,
    object_storage_relation,
    request_id,
    s3_relation,
    sent_manifests,
    traefik_relation,
    v0_database_relation,
)
from workload import db_upgrade_argv, ensure_bucket_argv

Ctx = testing.Context[Any]
AUTH_INI = "etc/mlflow/basic_auth.ini"
# CrateDB runs only with auth=false (MLflow's auth does not work on it: see auth.py).
NO_AUTH = {"auth": False}


def _env(out: testing.State) -> dict[str, str]:
    return dict(out.get_container(CONTAINER).plan.services[SERVICE].environment)


class TestStandalone:
    def test_runs_on_embedded_sqlite_with_proxied_local_artifacts(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: local storage (proxied)"
        )
        cmd = command(out)
        assert cmd.startswith("mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000")
        assert "--serve-artifacts --artifacts-destination /var/lib/mlflow/artifacts" in cmd
        assert (
            env_line(ctx, out, "MLFLOW_BACKEND_STORE_URI")
            == "MLFLOW_BACKEND_STORE_URI='sqlite:////var/lib/mlflow/mlflow.db'\n"
        )
        assert out.opened_ports == {testing.TCPPort(5000)}

    def test_the_server_runs_under_the_supervisor_the_charm_pushed(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        service = out.get_container(CONTAINER).plan.services[SERVICE].command
        assert shlex.split(service)[:12] == [
            "python3",
            "/etc/mlflow/supervise.py",
            "/tmp/mlflow-server.pgid",
            "--env-file",
            "/etc/mlflow/server.env",
            "--ready-url",
            "http://127.0.0.1:5000/health",
            "--ready-notice",
            "mlflow-tracking.charm/server-ready",
            "--pebble",
            "/charm/bin/pebble",
            "--",
        ]
        root = out.get_container(CONTAINER).get_filesystem(ctx)
        # The supervisor reads the env file with envfile.py, pushed beside it.
        for script in ("supervise.py", "envfile.py"):
            pushed = (root / "etc" / "mlflow" / script).read_text()
            assert pushed == (Path(__file__).parents[2] / "src" / script).read_text()

    def test_job_consumers_are_off_and_workers_default_to_two(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        assert _env(out)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
        assert "--workers 2" in command(out)

    def test_health_check_restarts_the_server(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        plan = out.get_container(CONTAINER).plan
        assert plan.checks["mlflow-ready"].http == {"url": "http://127.0.0.1:5000/health"}
        assert plan.services[SERVICE].on_check_failure == {"mlflow-ready": "restart"}

    def test_service_names_are_allowed_hosts(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        hosts = command(out).split("--allowed-hosts ")[1].split()[0].strip("'").split(",")
        assert f"{APP}.{out.model.name}.svc.cluster.local:*" in hosts
        assert "*" not in hosts

    def test_metrics_only_when_the_image_has_the_exporter(self, ctx: Ctx):
        without = make_state(workload=container(modules="mlflow_cratedb,httptools"))

        out = ctx.run(ctx.on.config_changed(), without)

        assert "--expose-prometheus" not in command(out)
        assert "--expose-prometheus /tmp/mlflow-metrics" in command(
            ctx.run(ctx.on.config_changed(), make_state())
        )

    def test_waits_for_the_container(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(workload=container(connect=False)))

        assert out.unit_status == testing.WaitingStatus("waiting for the mlflow-server container")

    def test_waits_for_storage(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(storage=False))

        assert out.unit_status == testing.WaitingStatus("waiting for the mlflow storage to attach")

    def test_waits_while_mlflow_does_not_answer(self, ctx: Ctx, network: FakeNetwork):
        network.server_ready = False

        out = ctx.run(ctx.on.config_changed(), make_state())

        assert out.unit_status == testing.WaitingStatus("waiting for MLflow to answer /health")
        # The hook asked once and returned: it does not wait for the server.
        assert len(network.probed_with) == 1

    def test_the_servers_ready_notice_turns_the_status_active(
        self, ctx: Ctx, network: FakeNetwork
    ):
        network.server_ready = False
        started = ctx.run(ctx.on.config_changed(), make_state())
        network.server_ready = True
        notice = testing.Notice(key="mlflow-tracking.charm/server-ready")
        workload = dataclasses.replace(started.get_container(CONTAINER), notices=[notice])
        state = dataclasses.replace(started, containers=frozenset({workload}))

        out = ctx.run(ctx.on.pebble_custom_notice(workload, notice), state)

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: local storage (proxied)"
        )

    def test_image_is_probed_once_not_on_every_hook(self, ctx: Ctx):
        first = ctx.run(ctx.on.config_changed(), make_state())
        probes = len(ctx.exec_history[CONTAINER])

        ctx.run(ctx.on.update_status(), first)

        # The image probe, and the users applied once (leader).
        assert probes == 2
        assert len(ctx.exec_history[CONTAINER]) == 2

    def test_a_second_hook_changes_nothing(self, ctx: Ctx):
        first = ctx.run(ctx.on.config_changed(), make_state())

        second = ctx.run(ctx.on.update_status(), first)

        assert second.get_container(CONTAINER).plan == first.get_container(CONTAINER).plan
        assert env_file(ctx, second) == env_file(ctx, first)


class TestConfig:
    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("bucket", "Bad_Bucket"),
            ("bucket", "ab"),
            ("bucket-path", "../escape"),
            ("database-name", "sys"),
            ("database-name", "Robert'); DROP TABLE runs;--"),
            ("database-name", ""),
            ("workers", 0),
            ("workers", 33),
            ("allowed-hosts", "good.example.com,bad host"),
            ("cluster-domain", "not a domain"),
            ("pod-defaults-namespace-selector", "a b"),
        ],
    )
    def test_bad_value_blocks_naming_the_option_and_starts_nothing(
        self, ctx: Ctx, option: str, value: Any
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(config={option: value}))

        assert out.unit_status.name == "blocked"
        assert out.unit_status.message.startswith(f"invalid config '{option}'")
        assert out.get_container(CONTAINER).plan.services == {}

    def test_workers_and_job_execution_reach_the_server(self, ctx: Ctx):
        config = {"workers": 4, "enable-job-execution": True}

        out = ctx.run(ctx.on.config_changed(), make_state(config=config))

        assert "--workers 4" in command(out)
        assert _env(out)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"

    def test_extra_allowed_hosts_are_added(self, ctx: Ctx):
        out = ctx.run(
            ctx.on.config_changed(), make_state(config={"allowed-hosts": "mlflow.example.com"})
        )

        assert "mlflow.example.com" in command(out)


class TestMetadataStores:
    def test_cratedb_runs_mlflow_cratedb_on_the_relation_uri(self, ctx: Ctx, cratedb_ready):
        relation, secret = cratedb_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,), config=NO_AUTH),
        )

        assert out.unit_status.message.startswith("metadata: CrateDB;")
        assert command(out).startswith("mlflow-cratedb server ")
        assert env_line(ctx, out, "MLFLOW_BACKEND_STORE_URI") == (
            "MLFLOW_BACKEND_STORE_URI="
            "'crate://relation_7:s3cr3t@cratedb-0.cratedb-endpoints:4200/?schema=mlflow'\n"
        )
        assert _env(out)["CHARM_METADATA_STORE"] == "cratedb"

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
            make_state(relation, secrets=(secret,), config=NO_AUTH),
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
            make_state(relation, secrets=(secret,), config=NO_AUTH),
        )

        assert "s3cr3t" not in command(out)
        assert "s3cr3t" not in json.dumps(_env(out))
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
            make_state(relation, secrets=(secret,), config=NO_AUTH),
        )
        # The provider set a new revision; the charm's label (set by the library) stays.
        rotated = dataclasses.replace(
            before.get_secret(id=secret.id),
            latest_content={"username": "relation_7", "password": "n3w-pw"},
        )
        state = testing.State(**{**before.__dict__, "secrets": {rotated}})

        out = ctx.run(ctx.on.secret_changed(rotated), state)

        assert "relation_7:n3w-pw@" in env_file(ctx, out)
        assert _env(out)["CHARM_ENV_FILE_SHA256"] != _env(before)["CHARM_ENV_FILE_SHA256"]


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
        assert _env(out)["CHARM_ENV_FILE_SHA256"] != _env(before)["CHARM_ENV_FILE_SHA256"]

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


def env_file_or_empty(ctx: Ctx, out: testing.State) -> str:
    try:
        return env_file(ctx, out)
    except FileNotFoundError:
        return ""


class TestArtifacts:
    def test_s3_relation_moves_artifacts_to_the_bucket(self, ctx: Ctx, s3_ready):
        relation, secret = s3_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert "--serve-artifacts --artifacts-destination s3://mlflow-tracking" in command(out)
        env = env_file(ctx, out)
        assert "AWS_ACCESS_KEY_ID='AKEY1234567890'" in env
        assert "AWS_SECRET_ACCESS_KEY='SKEY-very-secret'" in env
        assert "MLFLOW_S3_ENDPOINT_URL='http://seaweedfs.model.svc.cluster.local:8333'" in env
        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: s3://mlflow-tracking (proxied)"
        )

    def test_direct_mode_points_clients_at_the_bucket(self, ctx: Ctx):
        relation, secret = s3_relation(path="team-a")
        state = make_state(relation, secrets=(secret,), config={"serve-artifacts": False})

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)

        assert (
            "--no-serve-artifacts --default-artifact-root s3://mlflow-tracking/team-a"
            in command(out)
        )

    def test_direct_mode_without_an_s3_store_blocks_and_starts_no_server(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(config={"serve-artifacts": False}))

        assert out.unit_status == testing.BlockedStatus(
            "serve-artifacts=false needs an S3 store (notebooks would keep artifacts in "
            "their own pods): relate s3-credentials or object-storage, or set "
            "serve-artifacts=true"
        )
        assert out.get_container(CONTAINER).plan.services == {}

    def test_removing_s3_in_direct_mode_blocks_and_keeps_the_running_server(self, ctx: Ctx):
        relation, secret = s3_relation()
        on_s3 = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,), config={"serve-artifacts": False}),
        )

        out = ctx.run(ctx.on.relation_broken(on_s3.get_relation(relation.id)), on_s3)

        assert out.unit_status.name == "blocked"
        assert "relate s3-credentials or object-storage" in out.unit_status.message
        # The server keeps the bucket it had; it is not moved to local storage.
        assert "--default-artifact-root s3://mlflow-tracking" in command(out)

    def test_configured_bucket_and_path_are_requested(self, ctx: Ctx, s3_bare):
        state = make_state(s3_bare, config={"bucket": "ml-artifacts", "bucket-path": "prod"})

        out = ctx.run(ctx.on.config_changed(), state)

        sent = out.get_relation(s3_bare.id).local_app_data
        assert (sent["bucket"], sent["path"]) == ("ml-artifacts", "prod")

    def test_bare_s3_relation_waits(self, ctx: Ctx, s3_bare):
        out = ctx.run(ctx.on.relation_changed(s3_bare, remote_unit=0), make_state(s3_bare))

        assert out.unit_status.name == "waiting"
        assert out.unit_status.message.startswith("s3-credentials: waiting for seaweedfs")

    def test_provider_refusal_is_shown(self, ctx: Ctx):
        relation, secret = s3_relation(extra={"error": "bucket name 'X' must be lowercase"})

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert out.unit_status == testing.BlockedStatus(
            "s3-credentials: seaweedfs refused the bucket request: bucket name 'X' must be lowercase"
        )

    def test_unreachable_s3_is_waiting_and_metadata_keeps_working(
        self, ctx: Ctx, network: FakeNetwork, s3_ready
    ):
        relation, secret = s3_ready
        network.unreachable.add("http://seaweedfs.model.svc.cluster.local:8333")

        out = ctx.run(ctx.on.update_status(), make_state(relation, secrets=(secret,)))

        assert out.unit_status == testing.WaitingStatus(
            "S3 endpoint unreachable; artifact calls fail until it answers"
        )
        assert SERVICE in out.get_container(CONTAINER).plan.services

    def test_tls_ca_chain_is_written_and_used(self, ctx: Ctx):
        relation, secret = s3_relation(
            extra={
                "tls-ca-chain": json.dumps(
                    ["-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----"]
                )
            }
        )

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        # In the layer: the env file never overrides a variable the image already sets.
        environment = out.get_container(CONTAINER).plan.services[SERVICE].environment
        assert environment["AWS_CA_BUNDLE"] == "/etc/mlflow/s3-ca.pem"
        assert "AWS_CA_BUNDLE" not in env_file(ctx, out)
        root = out.get_container(CONTAINER).get_filesystem(ctx)
        assert "BEGIN CERTIFICATE" in (root / "etc/mlflow/s3-ca.pem").read_text()


class TestMinioObjectStorage:
    """Charmed Kubeflow's minio on ``object-storage``, instead of s3-credentials."""

    def _bucket_calls(self, ctx: Ctx) -> list[Any]:
        return [
            c for c in ctx.exec_history.get(CONTAINER, []) if c.command == ensure_bucket_argv()
        ]

    def test_minio_answer_moves_artifacts_to_a_bucket_it_creates(
        self, ctx: Ctx, object_storage_ready
    ):
        out = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready),
        )

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: s3://mlflow-tracking (proxied)"
        )
        env = env_file(ctx, out)
        assert "MLFLOW_S3_ENDPOINT_URL='http://minio.kubeflow:9000'" in env
        assert f"AWS_SECRET_ACCESS_KEY='{MINIO_KEYS['secret-key']}'" in env
        [call] = self._bucket_calls(ctx)
        assert call.environment["CHARM_BUCKET"] == "mlflow-tracking"
        assert call.environment["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.kubeflow:9000"
        sent = out.get_relation(object_storage_ready.id).local_app_data
        assert sent == {"_supported_versions": "- v1\n"}

    def test_configured_bucket_and_path_are_used(self, ctx: Ctx, object_storage_ready):
        state = make_state(object_storage_ready, config={"bucket": "team-ml", "bucket-path": "p"})

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status.message.endswith("artifacts: s3://team-ml/p (proxied)")
        assert self._bucket_calls(ctx)[0].environment["CHARM_BUCKET"] == "team-ml"

    def test_the_bucket_is_checked_once_not_on_every_hook(self, ctx: Ctx, object_storage_ready):
        first = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready),
        )
        ctx.run(ctx.on.update_status(), first)

        assert len(self._bucket_calls(ctx)) == 1

    def test_secure_minio_gives_an_https_endpoint(self, ctx: Ctx):
        relation = object_storage_relation(secure=True, namespace=None)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert "MLFLOW_S3_ENDPOINT_URL='https://minio:9000'" in env_file(ctx, out)

    def test_refused_keys_block_naming_what_to_check(self, ctx: Ctx, object_storage_ready):
        state = make_state(object_storage_ready, workload=container(bucket_rc=3))

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status == testing.BlockedStatus(
            "minio refused its own keys for bucket 'mlflow-tracking'; "
            "check minio's access-key and secret-key"
        )

    def test_unreachable_minio_is_waiting_and_retried(self, ctx: Ctx, object_storage_ready):
        state = make_state(object_storage_ready, workload=container(bucket_rc=4))

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status == testing.WaitingStatus(
            "could not reach http://minio.kubeflow:9000 to create bucket 'mlflow-tracking'; "
            "retrying"
        )

    def test_bare_relation_waits_and_sends_the_versions(self, ctx: Ctx, object_storage_bare):
        out = ctx.run(
            ctx.on.relation_created(object_storage_bare), make_state(object_storage_bare)
        )

        assert out.get_relation(object_storage_bare.id).local_app_data == {
            "_supported_versions": "- v1\n"
        }
        assert out.unit_status == testing.WaitingStatus(
            "object-storage: waiting for minio to answer (server not started yet)"
        )

    def test_data_off_the_schema_blocks_and_names_the_fix(self, ctx: Ctx):
        import yaml

        relation = object_storage_relation()
        bad = dict(relation.remote_app_data)
        bad["data"] = yaml.safe_dump({"service": "minio", "port": "nine"})
        relation = dataclasses.replace(relation, remote_app_data=bad)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status == testing.BlockedStatus(
            "object-storage: minio sent object-storage data that does not match its schema; "
            "check minio's config, then remove and re-add the relation"
        )

    def test_both_artifact_relations_block_naming_both(
        self, ctx: Ctx, object_storage_ready, s3_ready
    ):
        s3, secret = s3_ready
        state = make_state(object_storage_ready, s3, secrets=(secret,))

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status == testing.BlockedStatus(
            "two artifact stores related: s3-credentials (seaweedfs) and object-storage (minio); "
            "remove one"
        )
        assert out.get_container(CONTAINER).plan.services == {}

    def test_keys_stay_out_of_status_logs_and_command_line(self, ctx: Ctx, object_storage_ready):
        out = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready, config={"serve-artifacts": False}),
        )

        secret_key = MINIO_KEYS["secret-key"]
        assert secret_key not in out.unit_status.message
        assert secret_key not in command(out)
        assert not any(secret_key in log.message for log in ctx.juju_log)

    def test_direct_mode_hands_notebooks_the_minio_keys_by_secret_reference(
        self, ctx: Ctx, object_storage_ready, pod_defaults_relation, secrets_relation
    ):
        state = make_state(
            object_storage_ready,
            pod_defaults_relation,
            secrets_relation,
            config={"serve-artifacts": False},
        )

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        [pod_default] = sent_manifests(out, pod_defaults_relation)
        [secret] = sent_manifests(out, secrets_relation)
        assert MINIO_KEYS["secret-key"] not in json.dumps(pod_default)
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data["AWS_SECRET_ACCESS_KEY"] == MINIO_KEYS["secret-key"]

    def test_removing_minio_returns_artifacts_to_local_storage(
        self, ctx: Ctx, object_storage_ready
    ):
        on_minio = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready),
        )

        out = ctx.run(
            ctx.on.relation_broken(on_minio.get_relation(object_storage_ready.id)), on_minio
        )

        assert out.unit_status.message.endswith("artifacts: local storage (proxied)")


class TestIngress:
    """traefik-k8s (ingress v2) and istio-ingress-k8s (istio_ingress_route)."""

    def test_leader_asks_traefik_for_a_stripped_prefix_route_to_port_5000(
        self, ctx: Ctx, ingress_bare
    ):
        out = ctx.run(
            ctx.on.relation_joined(ingress_bare, remote_unit=0), make_state(ingress_bare)
        )

        relation = out.get_relation(ingress_bare.id)
        app = {k: json.loads(v) for k, v in relation.local_app_data.items()}
        assert app == {
            "model": "test-model",
            "name": APP,
            "port": 5000,
            "scheme": "http",
            "strip-prefix": True,
            "redirect-https": False,
        }
        unit = {
            k: json.loads(v) for k, v in relation.local_unit_data.items() if k in ("host", "ip")
        }
        assert unit["host"] == (f"{APP}-0.{APP}-endpoints.test-model.svc.cluster.local")
        assert unit["ip"]

    def test_a_non_leader_writes_only_its_own_address(self, ctx: Ctx, ingress_bare):
        out = ctx.run(
            ctx.on.relation_joined(ingress_bare, remote_unit=0),
            make_state(ingress_bare, leader=False),
        )

        relation = out.get_relation(ingress_bare.id)
        assert "host" in relation.local_unit_data
        assert dict(relation.local_app_data) == {}

    def test_the_ingress_host_is_allowed_and_its_origin_may_post(self, ctx: Ctx, ingress_ready):
        out = ctx.run(
            ctx.on.relation_changed(ingress_ready, remote_unit=0), make_state(ingress_ready)
        )

        argv = shlex.split(command(out))
        hosts = argv[argv.index("--allowed-hosts") + 1].split(",")
        assert "ingress.example.com" in hosts
        origins = argv[argv.index("--cors-allowed-origins") + 1]
        assert origins == "http://ingress.example.com"

    def test_status_shows_where_the_ui_opens_with_its_trailing_slash(
        self, ctx: Ctx, ingress_ready
    ):
        out = ctx.run(
            ctx.on.relation_changed(ingress_ready, remote_unit=0), make_state(ingress_ready)
        )

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: local storage (proxied); "
            "UI at http://ingress.example.com/test-model-mlflow-tracking/"
        )

    def test_get_client_env_offers_the_ingress_url_to_clients_outside(
        self, ctx: Ctx, ingress_ready, s3_ready
    ):
        s3, secret = s3_ready
        state = make_state(ingress_ready, s3, secrets=(secret,))

        ctx.run(ctx.on.action("get-client-env"), state)

        assert ctx.action_results is not None
        assert ctx.action_results["external-exports"].splitlines() == [
            "export MLFLOW_TRACKING_PASSWORD=notebook-pw-0123456789abcdef",
            "export MLFLOW_TRACKING_URI=http://ingress.example.com/test-model-mlflow-tracking",
            "export MLFLOW_TRACKING_USERNAME=notebook",
        ]
        assert ctx.action_results["ui-url"] == (
            "http://ingress.example.com/test-model-mlflow-tracking/"
        )
        assert f"MLFLOW_TRACKING_URI=http://{APP}.test-model.svc" in ctx.action_results["exports"]

    def test_subdomain_routing_gives_a_url_without_a_prefix(self, ctx: Ctx):
        relation = traefik_relation("https://test-model-mlflow-tracking.example.com/")

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        argv = shlex.split(command(out))
        assert "test-model-mlflow-tracking.example.com" in argv[argv.index("--allowed-hosts") + 1]
        assert out.unit_status.message.endswith(
            "UI at https://test-model-mlflow-tracking.example.com/"
        )

    def test_a_malformed_answer_blocks_naming_what_to_check(self, ctx: Ctx):
        relation = dataclasses.replace(traefik_relation(), remote_app_data={"ingress": "{}"})

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status == testing.BlockedStatus(
            "ingress: traefik sent an ingress URL this charm cannot use (the ingress field is "
            "not a JSON object with a url); check traefik's external hostname"
        )

    def test_before_traefik_answers_mlflow_serves_in_the_cluster(self, ctx: Ctx, ingress_bare):
        out = ctx.run(
            ctx.on.relation_changed(ingress_bare, remote_unit=0), make_state(ingress_bare)
        )

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: local storage (proxied)"
        )
        assert "--cors-allowed-origins" not in command(out)

    def test_istio_gets_a_prefix_route_rewritten_to_the_root(self, ctx: Ctx):
        relation = istio_relation(external_host=None)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        config = json.loads(out.get_relation(relation.id).local_app_data["config"])
        [route] = config["http_routes"]
        assert config["model"] == "test-model"
        assert route["matches"][0]["path"]["value"] == "/test-model-mlflow-tracking/"
        assert route["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"] == "/"
        assert [(b["service"], b["port"]) for b in route["backends"]] == [(APP, 5000)]

    def test_istio_answer_gives_the_url_and_its_host_is_allowed(self, ctx: Ctx):
        relation = istio_relation(tls=True)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status.message.endswith(
            "UI at https://gateway.example.com/test-model-mlflow-tracking/"
        )
        argv = shlex.split(command(out))
        assert argv[argv.index("--cors-allowed-origins") + 1] == "https://gateway.example.com"

    def test_both_ingresses_block_naming_both(self, ctx: Ctx, ingress_ready):
        istio = istio_relation()

        out = ctx.run(
            ctx.on.relation_changed(istio, remote_unit=0), make_state(ingress_ready, istio)
        )

        assert out.unit_status == testing.BlockedStatus(
            "ingress: two ingresses related: ingress (traefik) and istio-ingress-route "
            "(istio-ingress); remove one"
        )


class TestScale:
    def test_sqlite_and_local_artifacts_block_more_than_one_unit(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(planned_units=2))

        assert out.unit_status.name == "blocked"
        assert "embedded SQLite serves one unit" in out.unit_status.message

    def test_external_store_and_s3_allow_more_units(self, ctx: Ctx, postgresql_ready, s3_ready):
        (pg, pg_secret), (s3, s3_secret) = postgresql_ready, s3_ready
        state = make_state(pg, s3, secrets=(pg_secret, s3_secret), planned_units=3)

        out = ctx.run(ctx.on.config_changed(), state)

        assert out.unit_status.name == "active"
        assert env_file(ctx, out).count("postgresql+psycopg2://") == 1  # users: same database
        root = out.get_container(CONTAINER).get_filesystem(ctx)
        assert "database_uri = postgresql+psycopg2://" in (root / AUTH_INI).read_text()

    def test_cratedb_with_auth_runs_the_cratedb_basic_auth_app(self, ctx: Ctx, cratedb_ready):
        crate, crate_secret = cratedb_ready
        state = make_state(crate, secrets=(crate_secret,))

        out = ctx.run(ctx.on.config_changed(), state)

        assert out.unit_status.name == "active"
        assert command(out).startswith("mlflow-cratedb server --app-name cratedb-basic-auth ")
        service = out.get_container(CONTAINER).plan.services[SERVICE]
        assert service.environment["PYTHONPATH"] == "/etc/mlflow/apps"
        root = out.get_container(CONTAINER).get_filesystem(ctx)
        apps = root / "etc" / "mlflow" / "apps"
        assert (apps / "cratedb_app.py").exists()
        entry_points = (apps / "charm_mlflow_apps-1.0.dist-info" / "entry_points.txt").read_text()
        assert "cratedb-basic-auth = cratedb_app:create_auth_app" in entry_points

    def test_cratedb_without_auth_allows_more_units(self, ctx: Ctx, cratedb_ready, s3_ready):
        (crate, crate_secret), (s3, s3_secret) = cratedb_ready, s3_ready
        state = make_state(
            crate, s3, secrets=(crate_secret, s3_secret), planned_units=3, config={"auth": False}
        )

        out = ctx.run(ctx.on.config_changed(), state)

        assert out.unit_status.name == "active"


class TestPodDefaults:
    def test_proxied_mode_sends_a_pod_default_without_any_s3_key(
        self, ctx: Ctx, s3_ready, pod_defaults_relation, secrets_relation
    ):
        relation, secret = s3_ready
        state = make_state(relation, pod_defaults_relation, secrets_relation, secrets=(secret,))

        out = ctx.run(ctx.on.relation_created(pod_defaults_relation), state)

        [pod_default] = sent_manifests(out, pod_defaults_relation)
        assert pod_default["kind"] == "PodDefault"
        assert pod_default["spec"]["selector"] == {"matchLabels": {f"access-{APP}": "true"}}
        env = {e["name"]: e.get("value") for e in pod_default["spec"]["env"]}
        assert env == {
            "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true",
            "MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE": str(16 * 1024 * 1024),
            "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(32 * 1024 * 1024),
            "MLFLOW_TRACKING_URI": f"http://{APP}.{out.model.name}.svc.cluster.local:5000",
            # The login, by reference only.
            "MLFLOW_TRACKING_USERNAME": None,
            "MLFLOW_TRACKING_PASSWORD": None,
        }
        [k8s_secret] = sent_manifests(out, secrets_relation)
        assert sorted(k8s_secret["data"]) == [
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_USERNAME",
        ]

    def test_proxied_mode_without_auth_sends_no_secret(
        self, ctx: Ctx, s3_ready, pod_defaults_relation, secrets_relation
    ):
        relation, secret = s3_ready
        state = make_state(
            relation,
            pod_defaults_relation,
            secrets_relation,
            secrets=(secret,),
            config={"auth": False},
        )

        out = ctx.run(ctx.on.relation_created(pod_defaults_relation), state)

        [pod_default] = sent_manifests(out, pod_defaults_relation)
        assert not [e for e in pod_default["spec"]["env"] if "valueFrom" in e]
        assert sent_manifests(out, secrets_relation) == []

    def test_direct_mode_sends_keys_in_a_secret_and_only_references_in_the_pod_default(
        self, ctx: Ctx, s3_ready, pod_defaults_relation, secrets_relation
    ):
        relation, secret = s3_ready
        state = make_state(
            relation,
            pod_defaults_relation,
            secrets_relation,
            secrets=(secret,),
            config={"serve-artifacts": False},
        )

        out = ctx.run(ctx.on.config_changed(), state)

        [k8s_secret] = sent_manifests(out, secrets_relation)
        assert (
            base64.b64decode(k8s_secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode()
            == "SKEY-very-secret"
        )
        [pod_default] = sent_manifests(out, pod_defaults_relation)
        assert "SKEY-very-secret" not in json.dumps(pod_default)
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in pod_default["spec"]["env"]
            if "valueFrom" in e
        }
        assert refs == {
            name: {"name": f"{APP}-credentials", "key": name}
            for name in (
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "MLFLOW_TRACKING_USERNAME",
                "MLFLOW_TRACKING_PASSWORD",
            )
        }
        assert (
            base64.b64decode(k8s_secret["data"]["MLFLOW_TRACKING_PASSWORD"]).decode()
            == "notebook-pw-0123456789abcdef"
        )
        assert "notebook-pw-0123456789abcdef" not in json.dumps(pod_default)
        plain = {e["name"]: e["value"] for e in pod_default["spec"]["env"] if "value" in e}
        assert plain["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs.model.svc.cluster.local:8333"

    def test_non_leader_sends_nothing(self, ctx: Ctx, pod_defaults_relation):
        out = ctx.run(ctx.on.config_changed(), make_state(pod_defaults_relation, leader=False))

        assert out.get_relation(pod_defaults_relation.id).local_app_data == {}

    def test_direct_kubernetes_mode_applies_to_selected_namespaces(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.namespaces["other-ns"] = {}
        config = {"pod-defaults-namespace-selector": "user.kubeflow.org/enabled=true"}

        ctx.run(ctx.on.config_changed(), make_state(config=config))

        assert sorted(kubernetes.objects) == [
            ("PodDefault", "user-ns", f"{APP}-access"),
            ("Secret", "user-ns", f"{APP}-credentials"),
        ]

    def test_direct_kubernetes_mode_without_trust_blocks_with_the_command(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.refuse = 403
        config = {"pod-defaults-namespace-selector": "user.kubeflow.org/enabled=true"}

        out = ctx.run(ctx.on.config_changed(), make_state(config=config))

        assert out.unit_status == testing.BlockedStatus(
            f"not allowed to apply pod defaults: run 'juju trust {APP} --scope=cluster'"
        )
        assert SERVICE in out.get_container(CONTAINER).plan.services


class TestUpgrade:
    def test_leader_migrates_a_postgresql_schema_on_upgrade(self, ctx: Ctx, postgresql_ready):
        relation, secret = postgresql_ready

        ctx.run(ctx.on.upgrade_charm(), make_state(relation, secrets=(secret,)))

        upgrades = [
            c for c in ctx.exec_history[CONTAINER] if c.command == db_upgrade_argv("mlflow")
        ]
        assert len(upgrades) == 1
        assert (
            upgrades[0]
            .environment["MLFLOW_BACKEND_STORE_URI"]
            .startswith("postgresql+psycopg2://")
        )

    def test_cratedb_is_never_migrated(self, ctx: Ctx, cratedb_ready):
        relation, secret = cratedb_ready

        ctx.run(ctx.on.upgrade_charm(), make_state(relation, secrets=(secret,), config=NO_AUTH))

        assert not [
            c
            for c in ctx.exec_history[CONTAINER]
            if c.command[:2] == ["sh", "-c"] and "db upgrade" in c.command[2]
        ]

    def test_failed_migration_blocks_without_leaking_the_uri(self, ctx: Ctx, postgresql_ready):
        relation, secret = postgresql_ready
        state = make_state(relation, secrets=(secret,), workload=container(upgrade_rc=1))

        out = ctx.run(ctx.on.upgrade_charm(), state)

        assert out.unit_status == testing.BlockedStatus(
            "mlflow db upgrade failed on PostgreSQL; see juju debug-log"
        )
        assert not any("s3cr3t" in log.message for log in ctx.juju_log)


class TestClientEnvAction:
    def test_proxied_mode_prints_no_s3_key(self, ctx: Ctx, s3_ready):
        relation, secret = s3_ready

        ctx.run(ctx.on.action("get-client-env"), make_state(relation, secrets=(secret,)))

        assert ctx.action_results is not None
        assert f"export MLFLOW_TRACKING_URI=http://{APP}." in ctx.action_results["exports"]
        assert "AWS" not in ctx.action_results["exports"]

    def test_a_given_tracking_uri_means_outside_the_cluster_and_only_that(
        self, ctx: Ctx, s3_ready
    ):
        relation, secret = s3_ready

        ctx.run(
            ctx.on.action("get-client-env", params={"tracking-uri": "http://localhost:5000"}),
            make_state(relation, secrets=(secret,)),
        )

        assert ctx.action_results == {
            "exports": "export MLFLOW_TRACKING_PASSWORD=notebook-pw-0123456789abcdef\n"
            "export MLFLOW_TRACKING_URI=http://localhost:5000\n"
            "export MLFLOW_TRACKING_USERNAME=notebook"
        }

    def test_direct_mode_prints_s3_settings_and_a_given_uri(self, ctx: Ctx, s3_ready):
        relation, secret = s3_ready
        state = make_state(relation, secrets=(secret,), config={"serve-artifacts": False})

        ctx.run(
            ctx.on.action("get-client-env", params={"tracking-uri": "http://localhost:5000"}),
            state,
        )

        assert ctx.action_results is not None
        assert ctx.action_results["exports"].splitlines() == [
            "export AWS_ACCESS_KEY_ID=AKEY1234567890",
            "export AWS_DEFAULT_REGION=us-east-1",
            "export AWS_SECRET_ACCESS_KEY=SKEY-very-secret",
            "export MLFLOW_S3_ENDPOINT_URL=http://seaweedfs.model.svc.cluster.local:8333",
            "export MLFLOW_TRACKING_PASSWORD=notebook-pw-0123456789abcdef",
            "export MLFLOW_TRACKING_URI=http://localhost:5000",
            "export MLFLOW_TRACKING_USERNAME=notebook",
        ]


@pytest.mark.parametrize("leader", [True, False])
@pytest.mark.parametrize(
    "event",
    [
        "pebble_ready",
        "config_changed",
        "upgrade_charm",
        "update_status",
        "leader_elected",
        "storage_attached",
    ],
)
def test_every_lifecycle_event_on_a_bare_unit_starts_mlflow_on_embedded_sqlite(
    ctx: Ctx, event: str, leader: bool
):
    state = make_state(leader=leader)
    events = {
        "pebble_ready": lambda: ctx.on.pebble_ready(state.get_container(CONTAINER)),
        "storage_attached": lambda: ctx.on.storage_attached(next(iter(state.storages))),
    }
    trigger = events.get(event, getattr(ctx.on, event))

    out = ctx.run(trigger(), state)

    assert out.unit_status == ops.ActiveStatus(
        "metadata: embedded SQLite; artifacts: local storage (proxied)"
    )
    assert SERVICE in out.get_container(CONTAINER).plan.services
