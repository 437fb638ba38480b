"""HTTPS on the real programs, with a CA made in the test (``stack.tls``, cryptography).

What the certificates relation gives each charm - a key, a certificate and
its CA - is served exactly as the charms' builders serve it: MLflow through
uvicorn, SeaweedFS's S3 gateway through weed. Clients trust the CA the way the
charms hand it out: notebooks through the PodDefault's mounted Secret
(``MLFLOW_TRACKING_SERVER_CERT_PATH``, ``AWS_CA_BUNDLE`` in direct mode), the
MLflow server through the s3 relation's ``tls-ca-chain`` (``AWS_CA_BUNDLE``).
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import SSLError

from stack.mlflow_server import MlflowServer, mt
from stack.seaweed import SeaweedStore, s3_client
from stack.tls import TestCA
from tests.workload.conftest import PebbleFactory, record

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("workload-test CA")


@pytest.fixture(scope="module")
def https_seaweed(module_pebble_factory: PebbleFactory, weed_bin: str, ca: TestCA) -> SeaweedStore:
    """SeaweedFS whose S3 gateway serves HTTPS only, as with the certificates relation."""
    store = SeaweedStore.start(
        module_pebble_factory("seaweed-https"), weed_bin, planned_buckets=2, tls=ca.issue()
    )
    store.wait_ready()
    return store


def _artifacts(seaweed: SeaweedStore, relation_id: int, bucket: str, ca: TestCA) -> Any:
    """What the mlflow-tracking charm reads from seaweedfs's s3 answer, tls-ca-chain included."""
    creds = seaweed.relate(relation_id, bucket)
    return mt.state.ArtifactStore(
        bucket=bucket,
        path="artifacts",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
        ca_chain=ca.pem,
    )


@pytest.fixture(scope="module")
def https_mlflow(
    module_pebble_factory: PebbleFactory,
    mlflow_venv_dir: Path,
    https_seaweed: SeaweedStore,
    ca: TestCA,
) -> MlflowServer:
    """MLflow over HTTPS, auth on, artifacts proxied into the HTTPS bucket."""
    daemon = module_pebble_factory("mlflow-https")
    server = MlflowServer.start(
        daemon,
        mlflow_venv_dir,
        mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db")),
        _artifacts(https_seaweed, 4001, "mlflow-https", ca),
        auth=True,
        tls=ca.issue(),
    )
    record("mlflow over HTTPS: start (replan -> /health)", f"{server.started_in:.1f} s")
    return server


def _get(url: str, context: ssl.SSLContext | None) -> int:
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return int(response.status)


def test_clients_that_trust_the_ca_connect_and_others_are_refused(
    https_mlflow: MlflowServer, https_seaweed: SeaweedStore, ca: TestCA
):
    trusting = ssl.create_default_context(cadata=ca.pem)
    assert _get(f"{https_mlflow.url}/health", trusting) == 200
    with pytest.raises(urllib.error.URLError) as refused:
        _get(f"{https_mlflow.url}/health", ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    # Plain HTTP to the HTTPS port gets no answer MLflow would serve.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        _get(f"http://127.0.0.1:{https_mlflow.settings.port}/health", None)

    admin = https_seaweed.admin
    assert "Buckets" in https_seaweed.s3(admin).list_buckets()
    with pytest.raises(SSLError):
        s3_client(https_seaweed.endpoint, admin).list_buckets()  # the public CAs only
    assert _get(f"{https_seaweed.endpoint}/status", trusting) == 200


def test_a_notebook_session_runs_over_https_end_to_end(
    https_mlflow: MlflowServer, https_seaweed: SeaweedStore, mlflow_venv_dir: Path
):
    env = https_mlflow.notebook_env()
    assert env["MLFLOW_TRACKING_URI"].startswith("https://")
    assert (
        Path(env["MLFLOW_TRACKING_SERVER_CERT_PATH"]).read_text() == https_mlflow.settings.tls.ca
    )
    # Proxied: the notebook holds no S3 key, and presigned transfers stay off
    # (MLflow would fetch them trusting only the public CAs).
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD" not in env

    logged = https_mlflow.notebook(mlflow_venv_dir, "log", "over-https")
    checked = https_mlflow.notebook(
        mlflow_venv_dir, "check", logged["run_id"], logged["model_uri"]
    )
    assert checked["notes"] == "trained on four points\n"
    assert checked["predictions"] == [0, 1]
    assert checked["loss_steps"] == 5
    keys = _keys(https_seaweed, "mlflow-https")
    assert any(k.endswith("/notes.txt") for k in keys), keys


def test_direct_mode_notebooks_reach_the_https_bucket_with_the_mounted_ca(
    module_pebble_factory: PebbleFactory,
    mlflow_venv_dir: Path,
    https_seaweed: SeaweedStore,
    ca: TestCA,
):
    daemon = module_pebble_factory("mlflow-https-direct")
    server = MlflowServer.start(
        daemon,
        mlflow_venv_dir,
        mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db")),
        _artifacts(https_seaweed, 4002, "mlflow-https-direct", ca),
        serve_artifacts=False,
        auth=True,
        tls=ca.issue(),
    )
    env = server.notebook_env()
    assert Path(env["AWS_CA_BUNDLE"]).read_text() == ca.pem
    logged = server.notebook(mlflow_venv_dir, "log", "direct-over-https")
    checked = server.notebook(mlflow_venv_dir, "check", logged["run_id"], logged["model_uri"])
    assert checked["notes"] == "trained on four points\n"
    assert any(k.endswith("/notes.txt") for k in _keys(https_seaweed, "mlflow-https-direct"))


def test_renewed_certificates_are_served_and_nothing_is_lost(
    https_mlflow: MlflowServer, https_seaweed: SeaweedStore, ca: TestCA
):
    login = https_mlflow.notebook_login
    status, before = https_mlflow.api(SEARCH, login)
    assert status == 200
    experiments = {e["name"] for e in before["experiments"]}

    renewed = ca.issue()
    seconds = https_mlflow.renew_certificate(renewed)
    record("mlflow: renewed certificate served after (restart)", f"{seconds:.1f} s")
    status, after = https_mlflow.api(SEARCH, login)
    assert status == 200
    assert {e["name"] for e in after["experiments"]} == experiments

    # SeaweedFS: the pair is pushed, weed re-reads it; no restart.
    pid = https_seaweed.weed_pid()
    objects = _keys(https_seaweed, "mlflow-https")
    s3_renewed = ca.issue()
    started = time.monotonic()
    https_seaweed.push_certificate(s3_renewed)
    https_seaweed.daemon.wait_for(
        lambda: https_seaweed.served_certificate() == s3_renewed.certificate.strip(),
        timeout=90,
        what="the gateway's renewed certificate",
    )
    record(
        "seaweedfs: renewed certificate served after (no restart, refresh 1m)",
        f"{time.monotonic() - started:.1f} s",
    )
    assert https_seaweed.weed_pid() == pid
    assert _keys(https_seaweed, "mlflow-https") == objects


def _keys(seaweed: SeaweedStore, bucket: str) -> list[str]:
    client = seaweed.s3(seaweed.admin)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
