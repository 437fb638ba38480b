"""mlflow-tracking on Charmed Kubeflow's minio, with the real ``weed`` S3 standing in for MinIO.

The mlflow-tracking charm runs in ops.testing with an ``object-storage``
answer shaped as the minio charm sends it (serialized-data-interface layout,
minio's fields; see ``tests/contract/minio_provider.py``), pointing at a real
SeaweedFS S3 gateway on loopback. What the charm renders (the env file) and
the bucket script it would exec are then run for real: the script creates the
bucket through the S3 API with boto3 from the MLflow environment, and the
real MLflow server, started from the charm's layer, stores artifacts there in
proxied and direct mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from stack.charm_loader import charm_modules
from stack.mlflow_server import MlflowServer, mt
from stack.pebble import PebbleDaemon, free_port
from stack.seaweed import SeaweedStore
from tests.workload.conftest import PebbleFactory, bin_dir_on_path

ml = charm_modules("mlflow-tracking", "charm", "client", "workload")


@pytest.fixture(scope="module")
def seaweed(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    store = SeaweedStore.start(
        module_pebble_factory("seaweedfs-as-minio", env=bin_dir_on_path(weed_bin)), weed_bin
    )
    store.wait_serving()
    return store


@pytest.fixture(scope="module")
def mlflow_daemon(module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path) -> PebbleDaemon:
    """A Pebble whose PATH finds the MLflow image's python first, as in the rock."""
    return module_pebble_factory(
        "mlflow-on-minio", env=bin_dir_on_path(str(mlflow_venv_dir / "bin" / "python"))
    )


def minio_answer(seaweed: SeaweedStore, **overrides: Any) -> dict[str, str]:
    """What the minio charm writes, with weed's address and weed's admin keys as minio's root."""
    data = {
        "access-key": seaweed.admin.access_key,
        "secret-key": seaweed.admin.secret_key,
        "service": "127.0.0.1",
        "namespace": None,
        "port": seaweed.settings.ports.s3,
        "secure": False,
        **overrides,
    }
    return {"_supported_versions": "- v1\n", "data": yaml.safe_dump(data)}


def charm_artifacts(answer: dict[str, str], config: dict[str, Any], expect: str = "active") -> Any:
    """The artifact store the real charm configures from minio's answer."""
    from ops import testing

    from tests.contract.chain import context
    from tests.contract.test_contracts import mlflow_state

    relation = testing.Relation("object-storage", remote_app_name="minio", remote_app_data=answer)
    ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ml.client.Probe, "server_ready", lambda self, port, ca=None: True)
        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0), mlflow_state(relation, config=config)
        )
    assert out.unit_status.name == expect, out.unit_status
    root = out.get_container("mlflow-server").get_filesystem(ctx)
    env = dict(
        line.split("=", 1) for line in (root / "etc/mlflow/server.env").read_text().splitlines()
    )
    env = {k: v.strip("'") for k, v in env.items()}
    bucket = config.get("bucket", "mlflow-tracking")
    path = config.get("bucket-path", "")
    return mt.state.ArtifactStore(
        bucket=bucket,
        path=path,
        endpoint=env["MLFLOW_S3_ENDPOINT_URL"],
        region=env.get("AWS_DEFAULT_REGION", ""),
        credentials=mt.state.S3Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
    )


def run_bucket_script(daemon: PebbleDaemon, artifacts: Any) -> int:
    """The charm's bucket script, executed through Pebble as the charm executes it."""
    from ops import pebble

    try:
        daemon.container.exec(
            ml.workload.ensure_bucket_argv(),
            environment=ml.workload.bucket_env(artifacts),
            timeout=60,
        ).wait_output()
    except pebble.ExecError as err:
        return int(err.exit_code)
    return 0


def bucket_exists(seaweed: SeaweedStore, bucket: str) -> bool:
    try:
        seaweed.s3(seaweed.admin).head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True


@pytest.fixture(scope="module", params=["proxied", "direct"])
def on_minio(
    request: pytest.FixtureRequest,
    seaweed: SeaweedStore,
    mlflow_daemon: PebbleDaemon,
    module_pebble_factory: PebbleFactory,
    mlflow_venv_dir: Path,
) -> tuple[MlflowServer, Any, dict[str, Any]]:
    mode = request.param
    config = {
        "bucket": f"minio-{mode}",
        "bucket-path": "mlflow",
        "serve-artifacts": mode == "proxied",
    }
    artifacts = charm_artifacts(minio_answer(seaweed), config)
    assert not bucket_exists(seaweed, artifacts.bucket)
    assert run_bucket_script(mlflow_daemon, artifacts) == 0
    daemon = module_pebble_factory(f"mlflow-minio-{mode}")
    server = MlflowServer.start(
        daemon,
        mlflow_venv_dir,
        mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db")),
        artifacts,
        serve_artifacts=mode == "proxied",
    )
    logged = server.notebook(mlflow_venv_dir, "log", f"on-minio-{mode}")
    return server, artifacts, logged


def test_the_charm_creates_the_bucket_minio_does_not_have(on_minio, seaweed: SeaweedStore):
    _, artifacts, _ = on_minio

    assert bucket_exists(seaweed, artifacts.bucket)


def test_the_bucket_script_is_idempotent(on_minio, mlflow_daemon: PebbleDaemon):
    _, artifacts, _ = on_minio

    assert run_bucket_script(mlflow_daemon, artifacts) == 0


def test_a_notebook_logs_and_reads_back_artifacts_in_the_minio_bucket(
    on_minio, seaweed: SeaweedStore, mlflow_venv_dir: Path
):
    server, artifacts, logged = on_minio

    checked = server.notebook(mlflow_venv_dir, "check", logged["run_id"], logged["model_uri"])

    assert checked["notes"] == "trained on four points\n"
    assert checked["predictions"] == [0, 1]
    pages = seaweed.s3(seaweed.admin).get_paginator("list_objects_v2")
    keys = [
        obj["Key"]
        for page in pages.paginate(Bucket=artifacts.bucket)
        for obj in page.get("Contents", [])
    ]
    assert any(k.startswith("mlflow/") and k.endswith("/notes.txt") for k in keys), keys


def test_keys_minio_does_not_accept_give_the_refused_exit_code(
    seaweed: SeaweedStore, mlflow_daemon: PebbleDaemon
):
    artifacts = charm_artifacts(
        minio_answer(seaweed, **{"secret-key": "not-the-right-key-0000"}),
        {"bucket": "minio-refused"},
    )

    assert run_bucket_script(mlflow_daemon, artifacts) == ml.workload.BUCKET_ACCESS_DENIED
    assert not bucket_exists(seaweed, "minio-refused")


def test_an_endpoint_nobody_answers_gives_the_unreachable_exit_code(
    seaweed: SeaweedStore, mlflow_daemon: PebbleDaemon
):
    artifacts = charm_artifacts(
        minio_answer(seaweed, port=free_port()), {"bucket": "minio-gone"}, expect="waiting"
    )

    assert run_bucket_script(mlflow_daemon, artifacts) == ml.workload.BUCKET_UNREACHABLE
