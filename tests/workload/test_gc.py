"""Garbage collection of deleted runs on the real server, with artifacts in the real `weed`.

MLflow with auth on and proxied artifacts, as the charm runs it by default; a
notebook logs two runs; one is deleted; ``mlflow gc`` runs the way the charm
runs it (``mlflow_gc.py`` with the gc env file, through Pebble): once, as the
``gc`` action does, and on the leader's schedule (the ``mlflow-gc`` service).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from stack.mlflow_server import MlflowServer, mt
from stack.seaweed import SeaweedStore
from tests.workload.conftest import PebbleFactory, record

BUCKET = "mlflow-gc"


@pytest.fixture(scope="module")
def seaweed(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    store = SeaweedStore.start(module_pebble_factory("seaweed-gc"), weed_bin, planned_buckets=1)
    store.wait_ready()
    return store


@pytest.fixture(scope="module")
def server(
    module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path, seaweed: SeaweedStore
) -> MlflowServer:
    creds = seaweed.relate(5001, BUCKET)
    artifacts = mt.state.ArtifactStore(
        bucket=BUCKET,
        path="artifacts",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
    )
    daemon = module_pebble_factory("mlflow-gc")
    return MlflowServer.start(
        daemon,
        mlflow_venv_dir,
        mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db")),
        artifacts,
        auth=True,
    )


def _keys(seaweed: SeaweedStore, run_id: str) -> list[str]:
    client = seaweed.s3(seaweed.admin)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sorted(
        obj["Key"] for page in pages for obj in page.get("Contents", []) if run_id in obj["Key"]
    )


def _run_status(server: MlflowServer, run_id: str) -> int:
    return server.api(f"/api/2.0/mlflow/runs/get?run_id={run_id}", server.admin)[0]


def _delete(server: MlflowServer, run_id: str) -> None:
    status, body = server.api(
        "/api/2.0/mlflow/runs/delete", server.notebook_login, {"run_id": run_id}
    )
    assert status == 200, body


def test_gc_deletes_a_deleted_run_and_its_objects_and_leaves_the_other_alone(
    server: MlflowServer, seaweed: SeaweedStore, mlflow_venv_dir: Path
):
    kept = server.notebook(mlflow_venv_dir, "log", "gc-experiment")["run_id"]
    gone = server.notebook(mlflow_venv_dir, "log", "gc-experiment")["run_id"]
    kept_keys, gone_keys = _keys(seaweed, kept), _keys(seaweed, gone)
    assert any(k.endswith("/notes.txt") for k in gone_keys), gone_keys
    assert any(k.endswith("/notes.txt") for k in kept_keys), kept_keys

    _delete(server, gone)
    # Deleted is not gone: the run can still be restored until gc runs.
    assert _run_status(server, gone) == 200
    assert _keys(seaweed, gone) == gone_keys

    started = time.monotonic()
    output = server.collect_garbage("0s")
    record(
        "mlflow gc (action, proxied, auth): one run and its artifacts",
        f"{time.monotonic() - started:.1f} s",
    )
    assert "exit 0" in output, output
    assert _run_status(server, gone) == 404
    assert _keys(seaweed, gone) == []
    assert _run_status(server, kept) == 200
    assert _keys(seaweed, kept) == kept_keys


def test_the_leaders_schedule_collects_without_anyone_asking(
    server: MlflowServer, seaweed: SeaweedStore, mlflow_venv_dir: Path
):
    run_id = server.notebook(mlflow_venv_dir, "log", "gc-scheduled")["run_id"]
    assert _keys(seaweed, run_id)
    # The charm's schedule, shortened for the test (the option's minimum is 1m).
    server.settings = dataclasses.replace(server.settings, gc_every=3.0, gc_older_than="0s")
    server.apply()
    _delete(server, run_id)
    seconds = server.daemon.wait_for(
        lambda: _run_status(server, run_id) == 404 and not _keys(seaweed, run_id),
        timeout=120,
        what="the scheduled gc",
    )
    record("mlflow gc on the schedule (every 3 s): run and objects gone after", f"{seconds:.1f} s")
