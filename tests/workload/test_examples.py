"""Every example runs against the local stack; the try-it command starts, runs and stops."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from stack.local import LocalStack
from tests.workload.conftest import record

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run_example(
    local: LocalStack, script: str, *args: str, extra_env: dict[str, str] | None = None
) -> str:
    """Run an example with the notebook's environment only (plus PATH/HOME)."""
    home = local.root / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), **local.notebook_env(), **(extra_env or {})}
    done = subprocess.run(
        [str(local.venv / "bin" / "python"), str(EXAMPLES / script), *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def mlflow_api(local: LocalStack, path: str, **params: str) -> dict:
    """A read through the REST API as the notebook user (MLflow's auth is on)."""
    query = urllib.parse.urlencode(params)
    status, body = local.mlflow.api(f"/api/2.0/mlflow/{path}?{query}", local.mlflow.notebook_login)
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def quickstart_run(local: LocalStack) -> str:
    # MLflow prints its own "View run ..." lines first.
    last = run_example(local, "quickstart.py").strip().splitlines()[-1]
    assert last.startswith("logged run ")
    assert last.endswith(f"to {local.mlflow.url}")
    return last.split()[2]


def test_quickstart_logs_a_run_with_only_the_injected_environment(
    local: LocalStack, quickstart_run: str
):
    run = mlflow_api(local, "runs/get", run_id=quickstart_run)["run"]

    assert run["info"]["status"] == "FINISHED"
    assert run["data"]["params"] == [{"key": "learning_rate", "value": "0.01"}]
    assert not [k for k in local.notebook_env() if k.startswith("AWS_")]


def test_wine_example_trains_logs_and_registers_a_model(local: LocalStack):
    out = run_example(local, "train_wine.py")

    assert "registered wine-elasticnet version 1" in out
    model = mlflow_api(local, "registered-models/get", name="wine-elasticnet")["registered_model"]
    assert model["latest_versions"][0]["version"] == "1"


def test_artifacts_are_readable_straight_from_seaweedfs(local: LocalStack, quickstart_run: str):
    out = run_example(local, "read_artifacts_s3.py", quickstart_run, extra_env=local.s3_env())

    assert f"/{quickstart_run}/artifacts/notes/hello.txt" in out
    assert out.endswith("hello from the quickstart\n")


def test_s3_roundtrip_example_with_bucket_scoped_keys(local: LocalStack):
    env = {**local.s3_env()}
    out = run_example(local, "s3_roundtrip.py", env["S3_BUCKET"], extra_env=env)

    assert "hello.txt says: hello from boto3" in out


def test_query_cratedb_example_on_the_local_stack_on_cratedb(
    cratedb_url: str, tmp_path_factory: pytest.TempPathFactory
):
    """``scripts/try.sh`` on CrateDB: MLflow's own tables, queried with the crate client."""
    from stack.local import LocalStack

    on_crate = LocalStack.start(
        root=tmp_path_factory.mktemp("local-on-cratedb"), cratedb_url=cratedb_url
    )
    try:
        assert on_crate.mlflow.settings.store.kind.value == "cratedb"
        run_example(on_crate, "quickstart.py")
        out = run_example(on_crate, "query_cratedb.py", extra_env={"CRATEDB_URL": cratedb_url})
    finally:
        on_crate.stop()

    assert "experiment 0: Default" in out
    assert ": FINISHED (started" in out


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def test_try_it_command_runs_an_example_and_stops_cleanly(
    pebble_bin: str, weed_bin: str, mlflow_venv_dir: Path
):
    env = {**os.environ, "PEBBLE_BIN": pebble_bin, "WEED_BIN": weed_bin}
    process = subprocess.Popen(
        [sys.executable, "-m", "stack", "--run", "python examples/quickstart.py"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = process.communicate(timeout=300)
    root = next(
        line.split()[2] for line in out.splitlines() if line.startswith("state directory:")
    )
    leftovers = [pid for pid in _pids() if root in _cmdline(pid)]

    assert process.returncode == 0, out[-3000:]
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:" in out
    assert "logged run " in out
    assert out.rstrip().endswith("stopped")
    assert leftovers == []
    assert not Path(root).exists(), "the state directory was left behind"
    record(
        "try-it command (start, run quickstart, stop)",
        "exit 0, no process and no state directory left behind",
    )
