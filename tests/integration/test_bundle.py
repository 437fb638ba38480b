"""The bundle on a real Juju controller on Kubernetes (pytest-operator).

Run where a controller is reachable, e.g. on MicroK8s:

    sudo snap install microk8s --classic && sudo microk8s enable dns hostpath-storage
    sudo snap install juju && juju bootstrap microk8s
    sudo snap install charmcraft --classic && make pack
    .cache/venvs/integration/bin/pytest tests/integration -o asyncio_mode=auto

Without a controller every test is collected and skipped, saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MODEL_TIMEOUT = 1800


def _controller() -> str | None:
    if not shutil.which("juju"):
        return None
    done = subprocess.run(
        ["juju", "show-controller", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return (
        next(iter(json.loads(done.stdout)), None) if done.returncode == 0 and done.stdout else None
    )


pytestmark = pytest.mark.skipif(
    _controller() is None,
    reason="needs a reachable Juju controller on Kubernetes (e.g. `juju bootstrap microk8s`); none here",
)


def _packed(charm: str) -> Path:
    path = REPO / "charms" / charm / f"{charm}_amd64.charm"
    if not path.exists():
        pytest.fail(f"{path} missing: run `make pack` (charmcraft) first")
    return path


async def _run_action(ops_test: Any, unit: str, action: str, **params: Any) -> dict[str, Any]:
    app = ops_test.model.applications[unit.split("/")[0]]
    target = next(u for u in app.units if u.name == unit)
    result = await (await target.run_action(action, **params)).wait()
    assert result.status == "completed", result.results
    return result.results


@pytest.mark.abort_on_fail
async def test_bundle_deploys_and_goes_active(ops_test: Any):
    bundle = yaml.safe_load((REPO / "bundle.yaml").read_text())
    for name, spec in bundle["applications"].items():
        spec["charm"] = str(_packed(Path(spec["charm"]).parent.name))
        assert name in {"seaweedfs", "cratedb", "mlflow-tracking"}
    rendered = ops_test.tmp_path / "bundle.yaml"
    rendered.write_text(yaml.safe_dump(bundle))

    await ops_test.model.deploy(str(rendered), trust=True)
    await ops_test.model.wait_for_idle(status="active", timeout=MODEL_TIMEOUT, raise_on_error=True)

    status = ops_test.model.applications["mlflow-tracking"].units[0].workload_status_message
    assert status.startswith("metadata: CrateDB;")
    assert "artifacts: s3://" in status


async def test_notebook_pod_logs_a_run_through_the_pod_default(ops_test: Any):
    namespace = f"{ops_test.model_name}-notebooks"
    await ops_test.model.applications["mlflow-tracking"].set_config(
        {"pod-defaults-namespace-selector": "mlflow-test=true"}
    )
    kubectl = ["kubectl"] if shutil.which("kubectl") else ["microk8s", "kubectl"]
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True)
    subprocess.run([*kubectl, "label", "namespace", namespace, "mlflow-test=true"], check=True)
    await ops_test.model.wait_for_idle(status="active", timeout=600)
    job = textwrap.dedent(
        f"""
        apiVersion: batch/v1
        kind: Job
        metadata: {{name: notebook, namespace: {namespace}}}
        spec:
          backoffLimit: 0
          template:
            metadata: {{labels: {{access-mlflow-tracking: "true"}}}}
            spec:
              restartPolicy: Never
              containers:
              - name: notebook
                image: ghcr.io/crate/mlflow-cratedb:3.12.0
                command: [python, -c]
                args:
                - |
                  import mlflow
                  mlflow.set_experiment("integration")
                  with mlflow.start_run() as run:
                      mlflow.log_param("p", 1)
                      mlflow.log_text("from a pod", "note.txt")
                  print("RUN", run.info.run_id)
        """
    )
    subprocess.run([*kubectl, "apply", "-f", "-"], input=job, text=True, check=True)
    subprocess.run(
        [
            *kubectl,
            "-n",
            namespace,
            "wait",
            "--for=condition=complete",
            "job/notebook",
            "--timeout=600s",
        ],
        check=True,
    )
    logs = subprocess.run(
        [*kubectl, "-n", namespace, "logs", "job/notebook"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run_id = logs.split("RUN", 1)[1].split()[0]

    admin = await _run_action(ops_test, "seaweedfs/0", "get-admin-credentials")
    buckets = await _run_action(ops_test, "seaweedfs/0", "list-buckets")
    assert "mlflow-tracking: mlflow-tracking" in buckets["buckets"]
    assert admin["endpoint"].endswith(":8333")
    rows = subprocess.run(
        [
            *kubectl,
            "-n",
            ops_test.model_name,
            "exec",
            "cratedb-0",
            "-c",
            "cratedb",
            "--",
            "sh",
            "-c",
            f'curl -s -XPOST localhost:4200/_sql -d \'{{"stmt": "SELECT status FROM mlflow.runs WHERE run_uuid = ?", "args": ["{run_id}"]}}\'',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(rows)["rows"] == [["FINISHED"]]


async def test_backup_is_taken_and_listed(ops_test: Any):
    created = await _run_action(ops_test, "cratedb/0", "create-backup", name="integration-1")
    listed = await _run_action(ops_test, "cratedb/0", "list-backups")

    assert created["state"] == "SUCCESS"
    assert "integration-1  SUCCESS" in listed["snapshots"]


async def test_cratedb_scales_from_three_to_two_without_losing_data(ops_test: Any):
    before = await _run_action(ops_test, "cratedb/0", "list-backups")
    await ops_test.model.applications["cratedb"].scale(2)
    await ops_test.model.wait_for_idle(apps=["cratedb"], status="active", timeout=MODEL_TIMEOUT)
    unit = ops_test.model.applications["cratedb"].units[0]
    # The status follows the cluster's health, which settles after the hooks do.
    await ops_test.model.block_until(
        lambda: unit.workload_status_message.startswith("GREEN · 2 node(s)"), timeout=300
    )
    after = await _run_action(ops_test, "cratedb/0", "list-backups")
    assert after["count"] == before["count"]


async def test_removing_seaweedfs_falls_back_to_local_artifacts(ops_test: Any):
    await ops_test.model.applications["mlflow-tracking"].remove_relation(
        "mlflow-tracking:s3-credentials", "seaweedfs:s3-credentials"
    )
    await ops_test.model.wait_for_idle(apps=["mlflow-tracking"], status="active", timeout=600)

    status = ops_test.model.applications["mlflow-tracking"].units[0].workload_status_message
    assert "artifacts: local storage" in status
