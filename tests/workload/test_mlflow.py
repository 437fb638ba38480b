"""The mlflow-tracking charm's workload, for real.

For each metadata store (SQLite; PostgreSQL from Debian's package; CrateDB
where ``CRATEDB_HOME`` or ``CRATEDB_URL`` gives one) and each artifact mode (proxied, direct): the
MLflow server from the rock's requirements runs under a real Pebble with the
charm's layer and env file, artifacts go to a real SeaweedFS configured by the
seaweedfs charm's builders, and a "notebook" process that has only the pod
default's environment logs a run with params, metrics, a file and a model.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from ops import pebble

from stack.local import cratedb_store
from stack.mariadb import MariaDB, mariadb_available
from stack.mlflow_server import MlflowServer, mt
from stack.pebble import free_port
from stack.postgres import Postgres, pg_bin
from stack.seaweed import SeaweedStore
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, record

MIB = 1024 * 1024
# What a database charm might hand out: every character that breaks naive URIs.
HOSTILE_PASSWORD = "p@ss:w/o'rd\"#?%$ x"
StoreKind = mt.state.StoreKind


def _need(thing: Any, reason: str, required_in_ci: bool = True) -> Any:
    if thing:
        return thing
    if required_in_ci and os.environ.get("CI") == "true":
        pytest.fail(f"CI requires the MLflow workload tests to run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def venv(mlflow_venv_dir: Path) -> Path:
    """The MLflow environment built from the rock's requirements file."""
    return mlflow_venv_dir


@pytest.fixture(scope="module")
def seaweed(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    """The artifact store, configured by the seaweedfs charm's builders."""
    store = SeaweedStore.start(
        module_pebble_factory("seaweedfs", env=bin_dir_on_path(weed_bin)), weed_bin
    )
    store.wait_serving()
    return store


@pytest.fixture(scope="module")
def mariadb(module_pebble_factory: PebbleFactory) -> Iterator[MariaDB]:
    """MariaDB with an ``mlflow`` database and a user with a hostile password (mysql-k8s's part)."""
    _need(mariadb_available(), "MariaDB missing (apt-get install mariadb-server)")
    db = MariaDB.start(module_pebble_factory("mariadb"))
    db.create_database("mlflow", "mlflow_user", HOSTILE_PASSWORD)
    yield db
    db.daemon.stop()
    db.cleanup()


@pytest.fixture(scope="module")
def postgres(module_pebble_factory: PebbleFactory) -> Iterator[Postgres]:
    """A PostgreSQL cluster with an ``mlflow`` database owned by a user with a hostile password."""
    binaries = _need(pg_bin(), "PostgreSQL server binaries missing (apt-get install postgresql)")
    pg = Postgres.start(module_pebble_factory("postgresql"), binaries)
    pg.create_database("mlflow", "mlflow_user", HOSTILE_PASSWORD)
    # One database per artifact mode: the Default experiment's artifact location
    # is fixed when the first server makes it (mlflow-artifacts:/0 when proxied).
    pg.psql('CREATE DATABASE "mlflow_direct" OWNER "mlflow_user"')
    yield pg
    pg.daemon.stop()
    pg.cleanup()


def _store_from_a_v0_answer(pg: Postgres) -> Any:
    """The store the mlflow-tracking charm configures from postgresql-k8s's v0 answer.

    The real charm runs in ops.testing with a flat v0 answer (the shape of
    ``tests/contract/v0_database_provider.py``) whose endpoint is this real
    PostgreSQL; the URI it writes to its env file is what the server gets.
    """
    from ops import testing

    from stack.charm_loader import charm_modules
    from tests.contract.chain import context
    from tests.contract.test_contracts import mlflow_state

    pg.create_database("mlflow_v0", "relation_id_9", HOSTILE_PASSWORD)
    endpoint = f"127.0.0.1:{pg.port}"
    user = testing.Secret(
        {
            "username": "relation_id_9",
            "password": HOSTILE_PASSWORD,
            "uris": f"postgresql://relation_id_9:{quote(HOSTILE_PASSWORD, safe='')}"
            f"@{endpoint}/mlflow_v0",
        },
        owner=None,
    )
    answer = {
        "database": "mlflow_v0",
        "endpoints": endpoint,
        "read-only-endpoints": endpoint,
        "version": "15.18",
        "secret-user": user.id,
        "data": json.dumps({"database": "mlflow_v0"}),
    }
    relation = testing.Relation(
        "postgresql", remote_app_name="postgresql-k8s", remote_app_data=answer
    )
    ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    state = mlflow_state(relation, secrets=[user], config={"database-name": "mlflow_v0"})
    ml = charm_modules("mlflow-tracking", "charm", "client")
    with pytest.MonkeyPatch.context() as patch:
        # The charm probes its own server on the pod's loopback: not this one.
        # Its probe of the database endpoint stays real.
        patch.setattr(ml.client.Probe, "server_ready", lambda self, port, ca=None: True)
        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)
    assert out.unit_status.message.startswith("metadata: PostgreSQL;"), out.unit_status
    root = out.get_container("mlflow-server").get_filesystem(ctx)
    [line] = [
        ln
        for ln in (root / "etc/mlflow/server.env").read_text().splitlines()
        if ln.startswith("MLFLOW_BACKEND_STORE_URI=")
    ]
    uri = line.removeprefix("MLFLOW_BACKEND_STORE_URI='").removesuffix("'")
    return mt.state.MetadataStore(
        kind=StoreKind.POSTGRESQL, uri=uri, host="127.0.0.1", port=pg.port, database="mlflow_v0"
    )


def _store(kind: str, mode: str, request: pytest.FixtureRequest, data_dir: Path) -> Any:
    if kind == "sqlite":
        return mt.workload.sqlite_store(str(data_dir / "mlflow.db"))
    if kind == "postgresql-v0":
        return _store_from_a_v0_answer(request.getfixturevalue("postgres"))
    if kind == "postgresql":
        pg: Postgres = request.getfixturevalue("postgres")
        # Exactly what the charm builds from a postgresql relation's answer.
        return mt.workload.build_store(
            StoreKind.POSTGRESQL,
            "mlflow" if mode == "proxied" else "mlflow_direct",
            "mlflow_user",
            HOSTILE_PASSWORD,
            f"127.0.0.1:{pg.port}",
            None,
        )
    if kind == "mysql":
        db: MariaDB = request.getfixturevalue("mariadb")
        return mt.workload.build_store(
            StoreKind.MYSQL,
            "mlflow",
            "mlflow_user",
            HOSTILE_PASSWORD,
            f"127.0.0.1:{db.port}",
            None,
        )
    url = request.getfixturevalue("cratedb_url")
    # A user made by the cratedb charm's own statements, as a relation would get.
    return cratedb_store(url, f"relation_{os.getpid()}", f"mlflow_{os.getpid()}")


@dataclass
class Stack:
    """A server configured by the charm, and the run a notebook logged into it."""

    kind: str
    mode: str
    server: MlflowServer
    seaweed: SeaweedStore
    bucket: str
    logged: dict[str, Any]


VARIANTS = [
    ("sqlite", "proxied"),
    ("sqlite", "direct"),
    ("postgresql", "proxied"),
    ("postgresql", "direct"),
    # Today's postgresql-k8s answers v0 only: the charm reads that answer.
    ("postgresql-v0", "proxied"),
    # mysql-k8s's protocol, spoken by Debian's MariaDB (docs/compatibility.md).
    ("mysql", "proxied"),
    ("cratedb", "proxied"),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=["-".join(v) for v in VARIANTS])
def stack(
    request: pytest.FixtureRequest,
    module_pebble_factory: PebbleFactory,
    venv: Path,
    seaweed: SeaweedStore,
) -> Stack:
    kind, mode = request.param
    daemon = module_pebble_factory(f"mlflow-{kind}-{mode}")
    store = _store(kind, mode, request, daemon.directory / "data")
    bucket = f"mlflow-{kind}-{mode}"
    creds = seaweed.relate(1000 + VARIANTS.index((kind, mode)), bucket)
    artifacts = mt.state.ArtifactStore(
        bucket=bucket,
        path="artifacts",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
    )
    # Auth on, as the charm's default: the notebook logs in with what the pod
    # default injects.
    server = MlflowServer.start(
        daemon, venv, store, artifacts, serve_artifacts=mode == "proxied", auth=True
    )
    count, rss = server.rss()
    record(
        f"mlflow [{kind}, {mode}] start (replan -> /health)",
        f"{server.started_in:.1f} s; process tree {count} processes, {rss / MIB:.0f} MiB RSS",
    )
    logged = server.notebook(venv, "log", f"experiment-{kind}-{mode}")
    return Stack(kind, mode, server, seaweed, bucket, logged)


def _bucket_keys(stack: Stack) -> list[str]:
    client = stack.seaweed.s3(stack.seaweed.admin)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _sqlite_runs(stack: Stack) -> list[tuple[str, str]]:
    path = stack.server.settings.store.uri.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        query = "SELECT run_uuid, status FROM runs WHERE run_uuid = ?"
        return list(db.execute(query, (stack.logged["run_id"],)))


def _login_env(stack: Stack) -> dict[str, str]:
    """The login the notebook must receive: the notebook user's with auth on, none off."""
    if stack.server.settings.auth is None:
        return {}
    user, password = stack.server.notebook_login
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


class TestNotebook:
    def test_notebook_gets_no_s3_key_when_artifacts_are_proxied(self, stack: Stack):
        env = stack.server.notebook_env()

        login = _login_env(stack)
        if stack.mode == "proxied":
            # No key: large uploads go through presigned URLs the server signs.
            assert env == {
                "MLFLOW_TRACKING_URI": stack.server.url,
                "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
                "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true",
                "MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE": str(16 * 1024 * 1024),
                "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(32 * 1024 * 1024),
                **login,
            }
        else:
            assert set(env) == {
                "MLFLOW_TRACKING_URI",
                "MLFLOW_S3_ENDPOINT_URL",
                "AWS_DEFAULT_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                *login,
            }

    def test_pod_default_carries_keys_only_as_secret_references(self, stack: Stack):
        pod_default, secret = stack.server.manifests()
        text = json.dumps(pod_default)
        creds = stack.server.settings.artifacts.credentials

        login = _login_env(stack)
        assert creds.access_key not in text
        assert creds.secret_key not in text
        assert not any(v in text for v in login.values())
        refs = {
            e["valueFrom"]["secretKeyRef"]["key"]
            for e in pod_default["spec"]["env"]
            if "valueFrom" in e
        }
        s3_keys = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert refs == set(login) | (s3_keys if stack.mode == "direct" else set())
        assert refs == set(secret["data"] if secret else ())

    def test_a_notebook_that_only_calls_start_run_logs_a_run_and_a_registered_model(
        self, stack: Stack, venv: Path
    ):
        name = f"first-run-{stack.kind}-{stack.mode}"

        done = stack.server.notebook(venv, "first-run", name)

        assert done == {
            "experiment_id": "0",
            "params": {"C": "0.25"},
            "loss_steps": 3,
            "notes": "first run\n",
            "version": "1",
            "predictions": [0, 1],
        }

    def test_run_params_metrics_file_and_model_read_back_through_the_server(
        self, stack: Stack, venv: Path
    ):
        checked = stack.server.notebook(
            venv, "check", stack.logged["run_id"], stack.logged["model_uri"]
        )

        assert checked == {
            "status": "FINISHED",
            "params": {"C": "0.5"},
            "loss_steps": 5,
            "notes": "trained on four points\n",
            "predictions": [0, 1],
        }

    def test_artifacts_land_in_the_seaweedfs_bucket(self, stack: Stack):
        keys = _bucket_keys(stack)
        run_id = stack.logged["run_id"]

        assert any(
            k.startswith("artifacts/") and k.endswith(f"{run_id}/artifacts/notes.txt")
            for k in keys
        ), keys
        assert any(k.endswith("/MLmodel") for k in keys), keys

    def test_run_is_in_the_metadata_store(self, stack: Stack, request: pytest.FixtureRequest):
        run_id = stack.logged["run_id"]
        if stack.kind == "sqlite":
            rows = _sqlite_runs(stack)
        elif stack.kind.startswith("postgresql"):
            pg: Postgres = request.getfixturevalue("postgres")
            assert run_id.isalnum()
            query = f"SELECT run_uuid, status FROM runs WHERE run_uuid = '{run_id}'"
            out = pg.psql(query, stack.server.settings.store.database)
            rows = [(line.split("|")[0], line.split("|")[1]) for line in out.splitlines()]
        elif stack.kind == "mysql":
            db: MariaDB = request.getfixturevalue("mariadb")
            assert run_id.isalnum()
            out = db.sql(
                f"SELECT run_uuid, status FROM runs WHERE run_uuid = '{run_id}'", "mlflow"
            )
            rows = [(line.split("\t")[0], line.split("\t")[1]) for line in out.splitlines()]
        else:
            pytest.skip("CrateDB tables are checked by the cratedb workload suite")

        assert rows == [(run_id, "FINISHED")]

    def test_the_server_wakes_the_charm_with_a_pebble_notice_once_it_answers(self, stack: Stack):
        # Each start records it (no hook waits for /health): Juju's
        # pebble-custom-notice event, then the charm's status reads Active.
        def occurrences() -> int:
            notices = stack.server.daemon.client.get_notices(
                types=[pebble.NoticeType.CUSTOM], keys=[mt.constants.READY_NOTICE]
            )
            return notices[0].occurrences if notices else 0

        daemon = stack.server.daemon
        daemon.wait_for(occurrences, timeout=15, what="the ready notice")
        before = occurrences()
        stack.server.restart()
        daemon.wait_for(lambda: occurrences() > before, timeout=15, what="a new ready notice")

    def test_everything_survives_a_server_restart(self, stack: Stack, venv: Path):
        seconds = stack.server.restart()
        record(f"mlflow [{stack.kind}, {stack.mode}] restart -> /health", f"{seconds:.1f} s")

        checked = stack.server.notebook(
            venv, "check", stack.logged["run_id"], stack.logged["model_uri"]
        )

        assert checked["status"] == "FINISHED"
        assert checked["notes"] == "trained on four points\n"
        assert checked["predictions"] == [0, 1]


class TestSecretsOutOfSight:
    def test_store_password_is_not_in_argv_or_the_pebble_plan(self, stack: Stack):
        if not stack.kind.startswith("postgresql"):
            pytest.skip("the hostile password belongs to the PostgreSQL variants")
        plan = stack.server.daemon.client.get_plan().to_yaml()
        assert HOSTILE_PASSWORD not in plan
        assert quote(HOSTILE_PASSWORD, safe="") not in plan
        for pid in stack.server.daemon.service_pids():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert "p@ss" not in cmdline
            assert "p%40ss" not in cmdline

    def test_env_file_is_readable_by_its_owner_only(self, stack: Stack):
        assert os.stat(stack.server.settings.env_file).st_mode & 0o777 == 0o600


def test_log_metric_timing_charm_defaults_vs_plain_mlflow_server(
    module_pebble_factory: PebbleFactory, venv: Path
):
    """1,000 sequential log_metric calls, same SQLite store kind, same run of the suite."""
    calls = 1000
    charm_daemon = module_pebble_factory("mlflow-bench-charm")
    charm = MlflowServer.start(
        charm_daemon,
        venv,
        mt.workload.sqlite_store(str(charm_daemon.directory / "data" / "mlflow.db")),
        mt.state.LOCAL_ARTIFACTS,
    )
    charm_result = charm.notebook(venv, "bench", str(calls))
    charm_count, charm_rss = charm.rss()

    plain_daemon = module_pebble_factory("mlflow-bench-plain")
    port = free_port()
    db = plain_daemon.directory / "plain.db"
    plain_daemon.apply(
        {
            "services": {
                "plain-mlflow": {
                    "override": "replace",
                    "command": (
                        f"{venv / 'bin' / 'mlflow'} server --backend-store-uri sqlite:///{db} "
                        f"--host 127.0.0.1 --port {port}"
                    ),
                    "working-dir": str(plain_daemon.directory),
                    "startup": "enabled",
                }
            }
        },
        label="plain",
    )
    plain = MlflowServer(daemon=plain_daemon, settings=charm.settings)
    plain.settings = mt.workload.ServerSettings(
        store=mt.workload.sqlite_store(str(db)), artifacts=mt.state.LOCAL_ARTIFACTS, port=port
    )
    plain.wait_ready(timeout=180)
    plain_result = plain.notebook(venv, "bench", str(calls))
    plain_count, plain_rss = plain.rss()

    assert charm_result["logged"] == plain_result["logged"] == calls
    record(
        f"{calls} log_metric calls, SQLite: charm defaults vs plain `mlflow server`",
        f"{charm_result['seconds']:.1f} s vs {plain_result['seconds']:.1f} s "
        f"(p50 {charm_result['p50_ms']:.1f} vs {plain_result['p50_ms']:.1f} ms, "
        f"p95 {charm_result['p95_ms']:.1f} vs {plain_result['p95_ms']:.1f} ms)",
    )
    record(
        "server process tree after the calls: charm defaults vs plain",
        f"{charm_count} processes {charm_rss / MIB:.0f} MiB vs "
        f"{plain_count} processes {plain_rss / MIB:.0f} MiB",
    )
