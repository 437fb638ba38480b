"""Faults and load against the charm-configured stack: nothing acknowledged is lost.

Real Pebble, real weed, real MLflow (SQLite, artifacts proxied to SeaweedFS).
Figures go to the end-of-run summary; the README's "what it survives" table
quotes them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from stack.local import LocalStack
from stack.pebble import descendants
from stack.seaweed import SeaweedStore, error_code
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, record

LOAD_CLIENTS = int(os.environ.get("LOAD_CLIENTS", "16"))
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "5"))


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        time.sleep(0.2)
    return time.monotonic() - started


def _acked(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_kill_9_of_weed_and_mlflow_loses_no_acknowledged_run(local: LocalStack):
    acked, stop = local.root / "acked.txt", local.root / "stop"
    stream = local.mlflow.spawn_notebook(local.venv, "stream", str(acked), str(stop))
    try:
        _wait(lambda: _acked(acked) >= 3, 120, "first runs acknowledged")
        weed = local.seaweed.weed_pid()
        os.kill(weed, signal.SIGKILL)
        weed_down = time.monotonic()
        _wait(lambda: _pid_changed(local.seaweed, weed), 60, "weed respawned by Pebble")
        local.seaweed.wait_serving()
        weed_back = time.monotonic() - weed_down
        before = _acked(acked)
        _wait(lambda: _acked(acked) >= before + 3, 180, "runs acknowledged after weed came back")

        # The whole server: the mlflow CLI Pebble started and the uvicorn
        # processes it spawned (one process group), as when the container's
        # processes crash together.
        server = local.mlflow.main_pid()
        old_tree = [server, *descendants(server)]
        os.killpg(os.getpgid(server), signal.SIGKILL)
        mlflow_down = time.monotonic()
        _wait(lambda: not any(_alive(pid) for pid in old_tree), 30, "old server processes gone")
        _wait(local.mlflow.healthy, 180, "MLflow back under Pebble")
        mlflow_back = time.monotonic() - mlflow_down
        before = _acked(acked)
        _wait(lambda: _acked(acked) >= before + 3, 180, "runs acknowledged after MLflow came back")
    except TimeoutError as timeout:
        raise TimeoutError(f"{timeout}\n{_diagnosis(local)}") from None
    finally:
        stop.touch()
        out, err = _finish(stream)
    assert stream.returncode == 0, err[-2000:]
    streamed = json.loads(out.strip().splitlines()[-1])

    checked = local.mlflow.notebook(local.venv, "verify", str(acked))

    assert checked["missing"] == []
    assert checked["checked"] == streamed["acked"]
    record(
        "kill -9 during a stream of runs (weed, then MLflow)",
        f"{streamed['acked']} runs acknowledged, all present with metric and artifact; "
        f"{streamed['errors']} failed calls seen by the client; weed back in {weed_back:.0f} s, "
        f"MLflow back in {mlflow_back:.0f} s",
    )


def _diagnosis(local: LocalStack) -> str:
    return (
        f"--- seaweedfs pebble ---\n{local.seaweed.daemon.diagnose()}\n"
        f"--- mlflow pebble ---\n{local.mlflow.daemon.diagnose()}"
    )


def _finish(stream: subprocess.Popen[str]) -> tuple[str, str]:
    """The client's output once it has seen the stop file.

    A call in flight may sit in the MLflow client's own retry back-off for
    minutes (that is what a notebook would do too), so this waits long, and
    kills the client we started only if it never stops.
    """
    try:
        return stream.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        stream.kill()
        _, err = stream.communicate()
        raise AssertionError(
            f"the streaming client did not stop; its stderr:\n{err[-3000:]}"
        ) from None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _pid_changed(store: SeaweedStore, old: int) -> bool:
    try:
        return store.weed_pid() != old
    except LookupError:
        return False


def test_seaweedfs_down_keeps_metadata_working_and_artifacts_recover(local: LocalStack):
    server_pid = local.mlflow.main_pid()
    client = local.seaweed.daemon.client
    client.stop_services(["seaweedfs"], timeout=120)
    try:
        metadata = local.mlflow.notebook(local.venv, "probe", "metadata")
        artifact = local.mlflow.notebook(local.venv, "probe", "artifact")
    finally:
        client.start_services(["seaweedfs"], timeout=120)
    local.seaweed.wait_serving()

    assert metadata == {"ok": True}
    assert artifact["ok"] is False
    recovered = _wait(
        lambda: local.mlflow.notebook(local.venv, "probe", "artifact")["ok"], 120, "artifacts back"
    )
    assert local.mlflow.main_pid() == server_pid, "MLflow was restarted to recover"
    record(
        "SeaweedFS stopped while MLflow serves",
        f"metadata calls ok, artifact call failed with {artifact['error']}, "
        f"artifacts back {recovered:.0f} s after restart without touching MLflow",
    )


def test_load_of_concurrent_clients_loses_no_write(local: LocalStack):
    from bench.run import percentile

    results: list[dict] = []
    lock = threading.Lock()
    bench_client = Path(__file__).resolve().parents[2] / "bench" / "client.py"

    def one() -> None:
        import subprocess

        home = local.root / "load-home"
        home.mkdir(exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), **local.notebook_env()}
        done = subprocess.run(
            [str(local.venv / "bin" / "python"), str(bench_client), "load", str(LOAD_SECONDS)],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        with lock:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    threads = [threading.Thread(target=one) for _ in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == LOAD_CLIENTS
    ok = sum(r["ok"] for r in results)
    errors = sum(r["errors"] for r in results)
    lost = sum(r["lost"] for r in results)
    latencies = [x for r in results for x in r["latency_s"]]
    assert lost == 0
    assert ok > 0
    record(
        f"load: {LOAD_CLIENTS} clients x {LOAD_SECONDS:.0f} s (log_metric + artifact every 10th)",
        f"{ok} writes acknowledged, 0 lost, {errors} errors ({100 * errors / max(1, ok + errors):.2f}%), "
        f"p95 {1000 * percentile(latencies, 0.95):.0f} ms",
    )


def test_full_artifact_disk_refuses_uploads_and_keeps_what_it_stored(
    pebble_factory: PebbleFactory, weed_bin: str
):
    import hashlib
    import subprocess

    daemon = pebble_factory("disk-full", env=bin_dir_on_path(weed_bin))
    data = daemon.directory / "data"
    data.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(data)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("needs a small filesystem to fill: tmpfs mount (root) refused here")
    try:
        store = SeaweedStore.start(daemon, weed_bin, data_dir=data)
        store.wait_serving()
        creds = store.relate(1, "filling")
        s3 = store.s3(creds)
        stored: dict[str, str] = {}
        refused = None
        for n in range(200):
            body = os.urandom(4 * 1024 * 1024)
            try:
                s3.put_object(Bucket="filling", Key=f"obj-{n}", Body=body)
            except ClientError as err:
                refused = error_code(err)
                break
            stored[f"obj-{n}"] = hashlib.sha256(body).hexdigest()
        assert refused is not None, "160 MB took 800 MB without refusing"
        for key, digest in stored.items():
            body = s3.get_object(Bucket="filling", Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, key
        record(
            "artifact store disk full (160 MB tmpfs)",
            f"{len(stored)} x 4 MB stored, next upload refused with {refused[0]} {refused[1]}, "
            "every stored object read back intact",
        )
    finally:
        daemon.stop()
        subprocess.run(["umount", str(data)], capture_output=True, check=False)


def _children(pid: int) -> list[int]:
    """Live children of ``pid`` (a killed child not yet reaped is not one)."""
    return [c for c in descendants(pid) if _parent(c) == pid and _alive(c)]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


# Pebble's restart back-off (0.5 s), the supervisor ending what is left of the
# server (SIGKILL after 10 s at worst) and a fresh start (~10 s measured).
RECOVERY_BOUND = 60.0


def _workers(uvicorn: int) -> list[int]:
    """The workers of uvicorn (spawned by multiprocessing; its resource tracker is not one)."""
    return [
        pid
        for pid in _children(uvicorn)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _server_roles(main: int) -> dict[str, int]:
    """The server's processes by role: Pebble's service -> CLI -> uvicorn -> workers."""
    [cli] = _children(main)
    [uvicorn] = _children(cli)
    workers = _workers(uvicorn)
    assert workers, "uvicorn runs no worker"
    return {
        "supervisor": main,
        "mlflow CLI": cli,
        "uvicorn": uvicorn,
        "uvicorn worker": workers[0],
    }


@pytest.mark.parametrize("role", ["supervisor", "mlflow CLI", "uvicorn", "uvicorn worker"])
def test_kill_9_of_any_server_process_is_recovered_under_pebble(local: LocalStack, role: str):
    """Whatever process of the server dies, it serves again with every process under Pebble.

    The gap this closes: ``mlflow server`` forks uvicorn, so a dead CLI used to
    leave its uvicorn serving outside Pebble's control, and every restart
    looped on "address in use". Now supervise.py ends the rest of the server.
    """
    server = local.mlflow
    main = server.main_pid()
    old_group = os.getpgid(main)
    roles = _server_roles(main)
    old_tree = {main, *descendants(main)}
    worker_count = len(_workers(roles["uvicorn"]))
    victim = roles[role]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()

    def serving_again() -> bool:
        try:
            now = server.main_pid()
        except LookupError:
            return False
        if role == "uvicorn worker":
            # uvicorn replaces its own dead worker; nothing else needs to go.
            workers = _workers(roles["uvicorn"])
            replaced = len(workers) == worker_count and victim not in workers
            return replaced and server.healthy()
        return now != main and not any(_alive(p) for p in old_tree) and server.healthy()

    _wait(serving_again, RECOVERY_BOUND, f"serving again after kill -9 of its {role}")
    seconds = time.monotonic() - killed

    main_now = server.main_pid()
    under_pebble = {main_now, *descendants(main_now)}
    outside = [pid for pid in old_tree - under_pebble if _alive(pid)]
    assert outside == [], f"server processes outside Pebble's control: {outside}"
    assert all(os.getpgid(p) == os.getpgid(main_now) for p in under_pebble if _alive(p))
    left_in_old_group = [p for p in old_tree if _alive(p) and os.getpgid(p) == old_group]
    if role != "uvicorn worker":
        assert left_in_old_group == []
    assert server.notebook(local.venv, "log", f"after-kill-{role.replace(' ', '-')}")["run_id"]
    record(
        f"MLflow kill -9 of its {role}",
        f"serving again under Pebble after {seconds:.1f} s"
        + (", same service process" if main_now == main else ", service restarted by Pebble"),
    )
