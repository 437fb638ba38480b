"""The mlflow-tracking charm alone under ops.testing: the server, its config, scale, upgrades, statuses."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

import ops
import pytest
from ops import testing

from constants import CONTAINER, SERVICE
from helpers import (
    APP,
    FakeNetwork,
    command,
    container,
    env_file,
    env_line,
    make_state,
    service_env,
)

Ctx = testing.Context[Any]
AUTH_INI = "etc/mlflow/basic_auth.ini"


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
            assert (
                pushed == (Path(__file__).parents[2] / "src" / "in_container" / script).read_text()
            )

    def test_job_consumers_are_off_and_workers_default_to_two(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        assert service_env(out)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
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
        without = make_state(workload=container(modules="mlflow_cratedb,httptools,flask_wtf"))

        out = ctx.run(ctx.on.config_changed(), without)

        assert "--expose-prometheus" not in command(out)
        assert "--expose-prometheus /tmp/mlflow-metrics" in command(
            ctx.run(ctx.on.config_changed(), make_state())
        )

    def test_an_image_without_flask_wtf_blocks_with_auth_on_and_serves_with_auth_off(
        self, ctx: Ctx
    ):
        # Upstream `pip install mlflow` lacks Flask-WTF; MLflow's basic-auth needs it.
        upstream = container(modules="psycopg2,pymysql")

        blocked = ctx.run(ctx.on.config_changed(), make_state(workload=upstream))
        open_server = ctx.run(
            ctx.on.config_changed(), make_state(workload=upstream, config={"auth": False})
        )

        assert blocked.unit_status == testing.BlockedStatus(
            "the workload image lacks Flask-WTF for MLflow's basic-auth: use an image with "
            "mlflow[auth] (the project's rock has it), or set auth=false"
        )
        assert SERVICE not in blocked.get_container(CONTAINER).plan.services
        assert open_server.unit_status.name == "active"

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

        # The image probe, the store's schema read before the first start, and the
        # users applied once (leader); the running server's hooks run nothing.
        assert probes == 3
        assert len(ctx.exec_history[CONTAINER]) == 3

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
        assert service_env(out)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"

    def test_extra_allowed_hosts_are_added(self, ctx: Ctx):
        out = ctx.run(
            ctx.on.config_changed(), make_state(config={"allowed-hosts": "mlflow.example.com"})
        )

        assert "mlflow.example.com" in command(out)


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
