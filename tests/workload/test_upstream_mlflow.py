"""The charm on an upstream MLflow (no mlflow-cratedb), and the rock's stores moved to it.

The image is a second venv built by scripts/setup.sh from
tests/workload/venvs/mlflow-upstream.txt: MLflow 3.17.2 from PyPI (3.18.0
cannot be installed here: its mlflow-tracing 3.18.0 is not served) with the drivers
a user's image would add for its store (psycopg2-binary, PyMySQL) and boto3,
without mlflow-cratedb. The charm's own builders configure it exactly as they
configure the rock (supervise.py, env file, basic-auth, metrics listener); a
notebook with only the pod defaults logs a run and a model and reads them back.
Then a store the rock's MLflow 3.12 wrote is moved to 3.17 through the charm's
upgrade path: next month's image, last month's runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stack.mlflow_server import MlflowServer, mt, run_json_script
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, fresh_store, need, record
from tests.workload.test_upgrades import SNAPSHOT, read_with_the_charms_server

StoreKind = mt.state.StoreKind


@pytest.fixture(scope="module")
def upstream_venv() -> Path:
    venv = Path(os.environ.get("MLFLOW_UPSTREAM_VENV", ""))
    return need(
        venv if (venv / "bin" / "mlflow").exists() else None,
        "upstream MLflow venv missing (set MLFLOW_UPSTREAM_VENV; scripts/setup.sh builds it)",
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_an_upstream_mlflow_image_serves_a_notebook_with_auth_on(
    kind: str,
    upstream_venv: Path,
    mlflow_venv_dir: Path,
    pebble_factory: PebbleFactory,
    request: pytest.FixtureRequest,
):
    daemon = pebble_factory(
        f"upstream-{kind}", env=bin_dir_on_path(str(upstream_venv / "bin" / "python"))
    )
    data = daemon.directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    store = fresh_store(kind, f"upstream_{kind}", request, data)
    # What the charm's image probe finds in this image decides as it does in the charm.
    found = mt.container.Workload(daemon.container).capabilities()
    assert not found.has("mlflow_cratedb")
    assert found.has(store.kind.driver_module) if store.kind.driver_module else True
    server = MlflowServer.configure(
        daemon,
        upstream_venv,
        store,
        mt.state.LOCAL_ARTIFACTS,
        auth=True,
        metrics=found.has("prometheus_flask_exporter"),
    )
    state, migrated = server.settle_schema()
    assert (state.tables, migrated) == (False, False)  # a new store: the server sets it up
    server.apply()
    server.wait_ready()
    assert server.settings.executable.endswith("/mlflow")

    # The notebook's client is the rock's MLflow (3.12) with scikit-learn.
    logged = server.notebook(mlflow_venv_dir, "log", f"upstream-{kind}")
    checked = server.notebook(mlflow_venv_dir, "check", logged["run_id"], logged["model_uri"])
    assert checked["notes"] == "trained on four points\n"
    assert checked["predictions"] == [0, 1]
    record(f"upstream MLflow 3.17.2 on {kind}", "a notebook's run and model read back (auth on)")


def test_a_store_the_rock_wrote_is_moved_to_the_upstream_image(
    upstream_venv: Path,
    mlflow_venv_dir: Path,
    pebble_factory: PebbleFactory,
    request: pytest.FixtureRequest,
):
    daemon = pebble_factory("rock-then-upstream")
    store = fresh_store("postgresql", "rock_then_upstream", request, daemon.directory)
    rock = MlflowServer.configure(
        daemon, mlflow_venv_dir, store, mt.state.LOCAL_ARTIFACTS, auth=True
    )
    rock.settle_schema()
    rock.apply()
    rock.wait_ready()
    user, password = rock.admin
    env = {
        "MLFLOW_TRACKING_URI": rock.url,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
    }
    before = run_json_script(
        mlflow_venv_dir, SNAPSHOT, ["write"], env, daemon.directory / "c", 600
    )
    daemon.client.stop_services([mt.constants.SERVICE], timeout=120)

    # The image refreshed: a new pod (a new Pebble), the same settings and auth
    # secret, upstream MLflow's binaries.
    pod = pebble_factory("upstream-pod")
    upstream = MlflowServer.configure(
        pod,
        upstream_venv,
        store,
        mt.state.LOCAL_ARTIFACTS,
        auth=rock.settings.auth,
        metrics=False,  # the upstream image has no prometheus-flask-exporter
        # The unit's storage outlives the pod: the same data and artifacts.
        data_dir=rock.settings.data_dir,
        local_artifacts_dir=rock.settings.local_artifacts_dir,
    )
    old = upstream.schema_state()
    if old.behind:
        with pytest.raises(mt.exceptions.CharmError):
            upstream.settle_schema(database_app="postgresql-k8s")
        upstream.settle_schema(approved=old.step_name, database_app="postgresql-k8s")
    upstream.apply()
    upstream.wait_ready()

    assert read_with_the_charms_server(upstream, mlflow_venv_dir, "read") == before
    new = read_with_the_charms_server(upstream, mlflow_venv_dir, "new")
    assert new["status"] == "FINISHED"
    record(
        "rock (MLflow 3.12) -> upstream 3.17.2 on PostgreSQL",
        f"{old.step_name if old.behind else 'same schema'}; every run read back",
    )
