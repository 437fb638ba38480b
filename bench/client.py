"""The benchmark's client side, run in the MLflow environment like a notebook.

Each command times itself (the interpreter's start-up is not measured) and
prints one JSON line. The environment says where MLflow and S3 are, exactly as
for a notebook.

    python client.py artifacts SIZE_MB REPS         # log + download one artifact, REPS times
    python client.py raw-s3 SIZE_MB REPS BUCKET     # boto3 straight to the bucket
    python client.py log-metric COUNT               # sequential log_metric latency
    python client.py log-batch BATCHES PER_BATCH    # log_batch throughput
    python client.py search RUNS                    # create RUNS runs, time search_runs over them
    python client.py load SECONDS                   # one load client: log_metric + small artifact
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024


def _payload(directory: Path, size_mb: int) -> Path:
    path = directory / f"payload-{size_mb}mb.bin"
    with path.open("wb") as out:
        block = os.urandom(MIB)
        for _ in range(size_mb):
            out.write(block)
    return path


def artifacts(size_mb: str, reps: str) -> dict:
    """Upload and download timings (seconds) through MLflow, proxied or direct."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.create_experiment(f"bench-artifacts-{time.time_ns()}")
    up, down = [], []
    with tempfile.TemporaryDirectory() as tmp:
        payload = _payload(Path(tmp), int(size_mb))
        for n in range(int(reps)):
            run = client.create_run(experiment)
            started = time.perf_counter()
            client.log_artifact(run.info.run_id, str(payload))
            up.append(time.perf_counter() - started)
            target = Path(tmp) / f"down-{n}"
            target.mkdir()
            started = time.perf_counter()
            local = client.download_artifacts(run.info.run_id, payload.name, str(target))
            down.append(time.perf_counter() - started)
            assert Path(local).stat().st_size == payload.stat().st_size
    return {"up_s": up, "down_s": down}


def raw_s3(size_mb: str, reps: str, bucket: str) -> dict:
    """The same bytes with boto3 straight to SeaweedFS: the physical limit here."""
    import boto3
    from botocore.client import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
        config=Config(s3={"addressing_style": "path"}),
    )
    up, down = [], []
    with tempfile.TemporaryDirectory() as tmp:
        payload = _payload(Path(tmp), int(size_mb))
        for n in range(int(reps)):
            key = f"raw/{time.time_ns()}/{payload.name}"
            started = time.perf_counter()
            s3.upload_file(str(payload), bucket, key)
            up.append(time.perf_counter() - started)
            started = time.perf_counter()
            s3.download_file(bucket, key, str(Path(tmp) / f"down-{n}"))
            down.append(time.perf_counter() - started)
    return {"up_s": up, "down_s": down}


def log_metric(count: str) -> dict:
    """Per-call latency of sequential log_metric calls (seconds each)."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.create_run(client.create_experiment(f"bench-metric-{time.time_ns()}"))
    latencies = []
    for step in range(int(count)):
        started = time.perf_counter()
        client.log_metric(run.info.run_id, "m", float(step), step=step)
        latencies.append(time.perf_counter() - started)
    logged = len(client.get_metric_history(run.info.run_id, "m"))
    return {"latency_s": latencies, "logged": logged}


def log_batch(batches: str, per_batch: str) -> dict:
    """Metrics per second through log_batch."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    run = client.create_run(client.create_experiment(f"bench-batch-{time.time_ns()}"))
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for b in range(int(batches)):
        metrics = [
            Metric("b", float(i), now, b * int(per_batch) + i) for i in range(int(per_batch))
        ]
        client.log_batch(run.info.run_id, metrics=metrics)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "metrics": int(batches) * int(per_batch)}


def search(runs: str) -> dict:
    """search_runs over RUNS runs of one experiment (seconds per search)."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.create_experiment(f"bench-search-{time.time_ns()}")
    for n in range(int(runs)):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "score", float(n))
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        found = client.search_runs(
            [experiment], max_results=int(runs), order_by=["metrics.score DESC"]
        )
        timings.append(time.perf_counter() - started)
    return {"search_s": timings, "found": len(found)}


def load(seconds: str) -> dict:
    """One concurrent client: log_metric and a small artifact in a loop for SECONDS."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.create_run(client.create_experiment(f"bench-load-{os.getpid()}-{time.time_ns()}"))
    ok = errors = 0
    acked: list[int] = []
    latencies = []
    deadline = time.monotonic() + float(seconds)
    step = 0
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.txt"
        small.write_text("x" * 1024)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                client.log_metric(run.info.run_id, "load", float(step), step=step)
                if step % 10 == 0:
                    client.log_artifact(run.info.run_id, str(small), f"a{step}")
                ok += 1
                acked.append(step)
            except Exception:
                errors += 1
            latencies.append(time.perf_counter() - started)
            step += 1
        history = {int(m.step) for m in client.get_metric_history(run.info.run_id, "load")}
    lost = sorted(set(acked) - history)
    return {
        "ok": ok,
        "errors": errors,
        "latency_s": latencies,
        "lost": len(lost),
        "seconds": float(seconds),
    }


COMMANDS: dict[str, Callable[..., dict]] = {
    "artifacts": artifacts,
    "raw-s3": raw_s3,
    "log-metric": log_metric,
    "log-batch": log_batch,
    "search": search,
    "load": load,
}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))
