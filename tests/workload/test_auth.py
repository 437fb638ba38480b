"""MLflow's basic-auth app as the charm runs it by default, on the real server.

The local stack (SeaweedFS + MLflow on SQLite, artifacts proxied) from the
charms' builders, with auth on as the mlflow-tracking charm's default: the
config file, the users created by the charm's own script through Pebble
before the first start, and a notebook that has only what the pod default and
its Secret inject.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from stack.local import LocalStack
from stack.mlflow_server import (
    APP,
    NOTEBOOK,
    MlflowServer,
    mt,
    resolve_pod_default_env,
    run_json_script,
)
from tests.workload.conftest import PebbleFactory, record

MLFLOW_DEFAULT_ADMIN = ("admin", "password1234")  # MLflow's well-known default
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"


def _experiment(server: MlflowServer, login: tuple[str, str], name: str) -> str:
    status, body = server.api("/api/2.0/mlflow/experiments/create", login, {"name": name})
    assert status == 200, body
    return str(body["experiment_id"])


def test_unauthenticated_or_wrong_calls_get_401_and_health_stays_open(local: LocalStack):
    server = local.mlflow
    user, password = server.notebook_login

    assert server.api(SEARCH)[0] == 401
    assert server.api(SEARCH, (user, password + "x"))[0] == 401
    assert server.api(SEARCH, ("nobody", password))[0] == 401
    assert server.api(SEARCH, (user, password))[0] == 200
    # Pebble's check and the charm's readiness wait need no login; the UI and
    # Prometheus's /metrics do (a scrape job needs the login).
    assert server.healthy()
    assert server.api("/")[0] == 401
    assert server.api("/metrics")[0] == 401
    assert server.api("/metrics", (user, password))[0] == 200


def test_mlflows_default_admin_password_was_never_valid(local: LocalStack):
    server = local.mlflow

    assert server.api("/api/2.0/mlflow/users/get?username=admin", MLFLOW_DEFAULT_ADMIN)[0] == 401
    status, body = server.api("/api/2.0/mlflow/users/get?username=admin", server.admin)
    assert status == 200
    assert body["user"]["is_admin"] is True


def test_the_notebook_logs_runs_and_artifacts_with_only_what_the_pod_default_injects(
    local: LocalStack,
):
    pod_default, secret = local.mlflow.manifests()
    refs = {e["name"] for e in pod_default["spec"]["env"] if "valueFrom" in e}
    assert refs == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert local.mlflow.notebook_login[1] not in str(pod_default)
    assert secret is not None

    logged = local.mlflow.notebook(local.venv, "log", "auth-notebook")
    checked = local.mlflow.notebook(local.venv, "check", logged["run_id"], logged["model_uri"])

    assert checked["notes"] == "trained on four points\n"
    assert checked["predictions"] == [0, 1]
    status, run = local.mlflow.api(
        f"/api/2.0/mlflow/runs/get?run_id={logged['run_id']}", local.mlflow.notebook_login
    )
    assert status == 200
    assert run["run"]["info"]["user_id"] == "notebook"


def test_a_second_user_can_read_but_not_edit_the_notebooks_experiment_under_read(
    local: LocalStack,
):
    server = local.mlflow
    second = ("second-user", "second-user-password-0123")
    status, body = server.api(
        "/api/2.0/mlflow/users/create",
        server.admin,
        {"username": second[0], "password": second[1]},
    )
    assert status == 200, body
    experiment = _experiment(server, server.notebook_login, f"owned-by-notebook-{time.time()}")
    rename = {"experiment_id": experiment, "new_name": f"renamed-{time.time()}"}

    read = server.api(f"/api/2.0/mlflow/experiments/get?experiment_id={experiment}", second)
    edit = server.api("/api/2.0/mlflow/experiments/update", second, rename)
    run = server.api("/api/2.0/mlflow/runs/create", second, {"experiment_id": experiment})
    owner_edit = server.api("/api/2.0/mlflow/experiments/update", server.notebook_login, rename)

    assert read[0] == 200
    assert edit[0] == 403
    assert run[0] == 403
    assert owner_edit[0] == 200


def test_admin_password_rotation_applies_without_a_restart_and_the_old_one_stops_working(
    local: LocalStack,
):
    server = local.mlflow
    pid = server.main_pid()
    who = "/api/2.0/mlflow/users/get?username=admin"
    assert server.api(who, server.admin)[0] == 200  # the old login, now in a worker's cache

    started = time.monotonic()
    old, new = server.rotate_admin_password()
    applied = time.monotonic() - started

    assert server.api(who, ("admin", new))[0] == 200
    # A worker that cached the old login trusts it for auth-cache-seconds at most.
    assert server.settings.auth is not None
    cache = server.settings.auth.cache_seconds
    while server.api(who, ("admin", old))[0] != 401:
        assert time.monotonic() - started < cache + 15, f"old password valid after {cache} + 15 s"
        time.sleep(1)
    refused = time.monotonic() - started
    assert server.main_pid() == pid
    record(
        "MLflow admin password rotation (no restart)",
        f"new password valid after {applied:.1f} s, old one refused after {refused:.1f} s "
        f"(auth-cache-seconds {cache})",
    )


@pytest.fixture(scope="module")
def direct(
    local: LocalStack, module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path
) -> MlflowServer:
    """A second server, artifacts direct to S3, auth on (the notebook holds S3 keys too)."""
    daemon = module_pebble_factory("mlflow-auth-direct")
    store = mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db"))
    return MlflowServer.start(
        daemon,
        mlflow_venv_dir,
        store,
        local.mlflow.settings.artifacts,
        serve_artifacts=False,
        auth=True,
    )


def test_direct_apply_manifests_give_the_notebook_its_login_and_s3_keys(
    direct: MlflowServer, local: LocalStack
):
    # What the charm applies itself with pod-defaults-namespace-selector: the same
    # Secret and PodDefault, applied to each selected namespace.
    env = mt.client_env.client_env(
        direct.url,
        direct.settings.artifacts,
        serve_artifacts=False,
        login=direct.notebook_login,
    )
    secret = mt.manifests.client_secret(APP, env)
    pod_default = mt.manifests.pod_default(APP, env)
    assert secret is not None
    assert sorted(secret["data"]) == [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_USERNAME",
    ]
    injected = resolve_pod_default_env(pod_default, secret)

    home = direct.daemon.directory / "notebook-home"
    logged: dict[str, Any] = run_json_script(
        local.venv, NOTEBOOK, ["log", "auth-direct"], injected, home, 300
    )

    assert logged["artifact_uri"].startswith("s3://")
    anonymous = direct.api(f"/api/2.0/mlflow/runs/get?run_id={logged['run_id']}")
    assert anonymous[0] == 401
