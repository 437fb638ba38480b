"""A store written by MLflow 2.22.0 (Charmed MLflow's), brought forward by the charm's upgrade path.

Real programs only: MLflow 2.22.0's own server (its own venv, built by
scripts/setup.sh from tests/workload/venvs/mlflow-2.22.txt) writes two
experiments, three runs with whole metric histories, artifacts and a
registered model with two versions into SQLite, PostgreSQL (Debian's) and
MySQL (Debian's MariaDB); then the charm's own code decides and migrates
(``Workload.settle_schema`` through a real Pebble, ``schema.py`` and
``mlflow db upgrade`` with the rock's MLflow), and the rock's server, started
as the charm starts it (auth on), must serve every one of them unchanged and
take new runs.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stack.mariadb import MariaDB
from stack.mlflow_server import MlflowServer, generated_auth, mt, run_json_script
from stack.pebble import PebbleDaemon, free_port
from stack.postgres import Postgres
from tests.workload.conftest import STORE_PASSWORD, PebbleFactory, fresh_store, need, record

SNAPSHOT = Path(__file__).resolve().parents[2] / "stack" / "store_snapshot.py"
StoreKind = mt.state.StoreKind


@pytest.fixture(scope="module")
def old_venv() -> Path:
    """MLflow 2.22.0's own environment."""
    venv = Path(os.environ.get("MLFLOW_OLD_VENV", ""))
    return need(
        venv if (venv / "bin" / "mlflow").exists() else None,
        "MLflow 2.22 venv missing (set MLFLOW_OLD_VENV; scripts/setup.sh builds it)",
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def write_with_the_old_server(
    daemon: PebbleDaemon,
    old_venv: Path,
    store: Any,
    artifacts_dir: Path,
    executable: str = "mlflow",
) -> dict[str, Any]:
    """An old MLflow's own server and client write the store; the snapshot it reads back.

    MLflow 2.22.0 (``mlflow``), or mlflow-cratedb 2.14.1 (``mlflow-cratedb``).
    """
    port = free_port()
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(old_venv / "bin" / executable),
        "server",
        "--backend-store-uri",
        store.uri,
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    service = {
        "override": "replace",
        "command": " ".join(_quote(a) for a in command),
        "startup": "enabled",
        "environment": {"PATH": f"{old_venv / 'bin'}:/usr/bin:/bin"},
    }
    daemon.apply({"services": {"mlflow-2-22": service}}, label="mlflow-2-22")
    url = f"http://127.0.0.1:{port}"
    try:
        daemon.wait_for(lambda: _answers(url), timeout=120, what="MLflow 2.22 /health")
        home = daemon.directory / "old-client"
        snapshot = run_json_script(
            old_venv, SNAPSHOT, ["write"], {"MLFLOW_TRACKING_URI": url}, home, 600
        )
    finally:
        daemon.client.stop_services(["mlflow-2-22"], timeout=120)
    return snapshot


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def read_with_the_charms_server(server: MlflowServer, venv: Path, command: str) -> dict[str, Any]:
    user, password = server.admin
    env = {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
    }
    home = server.daemon.directory / "new-client"
    return run_json_script(venv, SNAPSHOT, [command], env, home, 600)


def _old_runs(snapshot: dict[str, Any]) -> int:
    return sum(len(e["runs"]) for e in snapshot["experiments"].values())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_a_store_written_by_mlflow_2_22_is_migrated_and_served_unchanged(
    kind: str,
    old_venv: Path,
    mlflow_venv_dir: Path,
    pebble_factory: PebbleFactory,
    request: pytest.FixtureRequest,
):
    daemon = pebble_factory(f"upgrade-{kind}")
    data = daemon.directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    store = fresh_store(kind, f"up_{kind}", request, data)
    server = MlflowServer.configure(
        daemon, mlflow_venv_dir, store, mt.state.LOCAL_ARTIFACTS, auth=True
    )
    before = write_with_the_old_server(
        daemon, old_venv, store, Path(server.settings.local_artifacts_dir)
    )
    assert _old_runs(before) == 3
    assert len(before["model"]["versions"]) == 2
    old_state = server.schema_state()
    assert old_state.behind, old_state

    started = time.monotonic()
    if kind == "sqlite":
        _, migrated = server.settle_schema()
    else:
        # The default loses nothing: Blocked, naming the backup, the store untouched.
        with pytest.raises(mt.exceptions.CharmError) as blocked:
            server.settle_schema(database_app=f"{kind}-k8s")
        assert str(blocked.value) == (
            f"the {store.kind.label} store's schema must be migrated ({old_state.step_name}): "
            f"back it up (juju run {kind}-k8s/leader create-backup), then juju run "
            "mlflow-tracking/leader migrate-store"
        )
        assert server.schema_state() == old_state
        # The operator's go (migrate-store) for exactly that step.
        _, migrated = server.settle_schema(approved=old_state.step_name)
    migration_s = time.monotonic() - started
    assert migrated
    assert server.schema_state().current == old_state.head
    if kind == "sqlite":
        copy = Path(mt.migration.sqlite_copy_path(str(data / "mlflow.db"), old_state))
        assert copy.stat().st_size > 0

    server.apply()
    server.wait_ready()
    after = read_with_the_charms_server(server, mlflow_venv_dir, "read")
    assert after == before
    new = read_with_the_charms_server(server, mlflow_venv_dir, "new")
    assert (new["status"], new["params"]) == ("FINISHED", {"upgraded": "yes"})
    record(
        f"MLflow 2.22.0 -> rock on {kind}",
        f"{old_state.step_name}; settle + migrate {migration_s:.1f} s; 3 runs, 2 model versions, "
        f"{sum(len(r['artifacts']) for e in after['experiments'].values() for r in e['runs'].values())}"
        " artifacts read back unchanged",
    )


def test_a_second_unit_waits_for_the_leader_then_serves_the_same_store(
    old_venv: Path,
    mlflow_venv_dir: Path,
    pebble_factory: PebbleFactory,
    request: pytest.FixtureRequest,
):
    leader_daemon = pebble_factory("upgrade-leader")
    other_daemon = pebble_factory("upgrade-other")
    store = fresh_store("postgresql", "up_units", request, leader_daemon.directory)
    leader = MlflowServer.configure(
        leader_daemon, mlflow_venv_dir, store, mt.state.LOCAL_ARTIFACTS, auth=True
    )
    shared = leader.settings.local_artifacts_dir  # stands in for the S3 bucket both units use
    other = MlflowServer.configure(
        other_daemon,
        mlflow_venv_dir,
        store,
        mt.state.LOCAL_ARTIFACTS,
        auth=leader.settings.auth,
        leader=False,
        local_artifacts_dir=shared,
    )
    before = write_with_the_old_server(leader_daemon, old_venv, store, Path(shared))
    old = leader.schema_state()

    with pytest.raises(mt.exceptions.WaitingError) as waiting:
        other.settle_schema(approved=old.step_name)  # only the leader migrates, go or not
    assert str(waiting.value) == f"waiting for the leader to migrate the store ({old.step_name})"
    assert leader.schema_state() == old

    leader.settle_schema(approved=old.step_name)
    leader.apply()
    leader.wait_ready()
    state, migrated = other.settle_schema()
    assert (state.current, migrated) == (old.head, False)
    other.apply()
    other.wait_ready()
    for server in (leader, other):
        assert read_with_the_charms_server(server, mlflow_venv_dir, "read") == before


def test_a_store_newer_than_the_image_is_refused_and_left_alone(
    mlflow_venv_dir: Path, pebble_factory: PebbleFactory, request: pytest.FixtureRequest
):
    daemon = pebble_factory("upgrade-newer")
    store = fresh_store("postgresql", "up_newer", request, daemon.directory)
    server = MlflowServer.configure(daemon, mlflow_venv_dir, store, mt.state.LOCAL_ARTIFACTS)
    pg: Postgres = request.getfixturevalue("bare_postgres")
    # A revision this MLflow does not know, as a newer MLflow would have left it.
    server.settle_schema()  # a new store: the server makes its tables
    server.apply()
    server.wait_ready()
    server.daemon.client.stop_services([mt.constants.SERVICE], timeout=120)
    pg.psql("UPDATE alembic_version SET version_num = 'ffffffffffff'", database="up_newer")

    with pytest.raises(mt.exceptions.CharmError) as blocked:
        server.settle_schema(approved="anything")
    assert "is newer than this image's MLflow" in str(blocked.value)
    assert (
        pg.psql("SELECT version_num FROM alembic_version", database="up_newer") == "ffffffffffff"
    )


@pytest.fixture(scope="module")
def seaweed(module_pebble_factory: PebbleFactory, weed_bin: str) -> Any:
    from stack.seaweed import SeaweedStore
    from tests.workload.conftest import bin_dir_on_path

    store = SeaweedStore.start(
        module_pebble_factory("seaweedfs-as-minio", env=bin_dir_on_path(weed_bin)), weed_bin
    )
    store.wait_serving()
    return store


def test_a_charmed_mlflow_deployment_is_served_by_this_charm_on_its_database_and_bucket(
    old_venv: Path,
    mlflow_venv_dir: Path,
    pebble_factory: PebbleFactory,
    bare_mariadb: MariaDB,
    seaweed: Any,
):
    # Charmed MLflow as canonical/mlflow-operator (17cfd54) runs it: MLflow 2.22.0,
    # `mlflow server --backend-store-uri mysql+pymysql://USER:PW@HOST:PORT/mlflow
    # --default-artifact-root s3://mlflow/`, the server and its notebooks holding
    # minio's keys and MLFLOW_S3_ENDPOINT_URL; mysql-k8s's database "mlflow".
    # Here: MariaDB for mysql-k8s, the real weed S3 API fed minio's answer.
    from tests.workload.test_minio import charm_artifacts, minio_answer

    bare_mariadb.create_database("mlflow", "charmed_mlflow", STORE_PASSWORD)
    old_store = mt.workload.build_store(
        StoreKind.MYSQL,
        "mlflow",
        "charmed_mlflow",
        STORE_PASSWORD,
        f"127.0.0.1:{bare_mariadb.port}",
        None,
    )
    root = seaweed.s3(seaweed.admin)
    root.create_bucket(Bucket="mlflow")  # Charmed MLflow creates its default bucket
    s3_env = {
        "MLFLOW_S3_ENDPOINT_URL": seaweed.endpoint,
        "AWS_ACCESS_KEY_ID": seaweed.admin.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.admin.secret_key,
    }
    daemon = pebble_factory("charmed-mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(old_venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", old_store.uri, "--default-artifact-root", "s3://mlflow/",
        "--workers", "1",
    ]  # fmt: skip
    service = {
        "override": "replace",
        "command": " ".join(_quote(a) for a in command),
        "startup": "enabled",
        "environment": {"PATH": f"{old_venv / 'bin'}:/usr/bin:/bin", **s3_env},
    }
    daemon.apply({"services": {"charmed-mlflow": service}}, label="charmed-mlflow")
    try:
        daemon.wait_for(lambda: _answers(url), timeout=120, what="Charmed MLflow's /health")
        before = run_json_script(
            old_venv,
            SNAPSHOT,
            ["write"],
            {"MLFLOW_TRACKING_URI": url, **s3_env},
            daemon.directory / "charmed-notebook",
            600,
        )
    finally:
        daemon.client.stop_services(["charmed-mlflow"], timeout=120)
    keys = [o["Key"] for o in root.list_objects_v2(Bucket="mlflow").get("Contents", [])]
    assert sum(k.endswith("/notes.txt") for k in keys) == 3, keys

    # This charm, related to the same minio (bucket mlflow, direct: notebooks get
    # minio's keys as Charmed MLflow's did) and to mysql-k8s (its own user on "mlflow").
    artifacts = charm_artifacts(
        minio_answer(seaweed), {"bucket": "mlflow", "serve-artifacts": False}
    )
    bare_mariadb.sql(
        f"CREATE USER 'relation_7'@'%' IDENTIFIED BY '{STORE_PASSWORD.replace(chr(39), chr(39) * 2)}'"
    )
    bare_mariadb.sql("GRANT ALL PRIVILEGES ON `mlflow`.* TO 'relation_7'@'%'")
    store = mt.workload.build_store(
        StoreKind.MYSQL,
        "mlflow",
        "relation_7",
        STORE_PASSWORD,
        f"127.0.0.1:{bare_mariadb.port}",
        None,
    )
    charm = pebble_factory("mlflow-tracking-after-charmed-mlflow")
    # Charmed MLflow had no login: every notebook edited every experiment. With
    # auth on (the default) the guide sets auth-default-permission=EDIT so that
    # the experiments made before the move stay writable to notebooks (READ, the
    # default, lets them read those and answers 403 to a new run in them).
    data = charm.directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    auth = generated_auth(store, data, default_permission="EDIT")
    server = MlflowServer.configure(
        charm, mlflow_venv_dir, store, artifacts, serve_artifacts=False, auth=auth
    )
    old = server.schema_state()
    with pytest.raises(mt.exceptions.CharmError):
        server.settle_schema(database_app="mysql-k8s")  # back it up first
    server.settle_schema(approved=old.step_name, database_app="mysql-k8s")
    server.apply()
    server.wait_ready()

    # A notebook with only what this charm's pod defaults inject.
    env = server.notebook_env()
    home = charm.directory / "notebook"
    after = run_json_script(mlflow_venv_dir, SNAPSHOT, ["read"], env, home, 600)
    assert after == before
    new = run_json_script(mlflow_venv_dir, SNAPSHOT, ["new"], env, home, 600)
    assert (new["status"], new["params"]) == ("FINISHED", {"upgraded": "yes"})
    record("Charmed MLflow (2.22, MySQL, minio) -> this charm", f"{old.step_name}; all read back")
