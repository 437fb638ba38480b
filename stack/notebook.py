"""A "notebook": plain MLflow client code that knows nothing but its environment.

No URL, bucket or key appears here: MLFLOW_TRACKING_URI (and, in direct mode,
the S3 settings) come from the pod default. Prints one JSON line.

    python notebook.py log EXPERIMENT      # a run with params, metrics, a file, a model
    python notebook.py load MODEL_URI      # load the model back and predict
    python notebook.py check RUN_ID MODEL_URI   # read it all back through the server
    python notebook.py bench COUNT         # COUNT sequential log_metric calls, timed
    python notebook.py registry RUN_ID MODEL_URI NAME   # register, load by models:/, search
    python notebook.py first-run NAME      # only mlflow.start_run(): no experiment named
    python notebook.py consistency N TAG   # N writes, each read back by the very next calls
    python notebook.py duplicates TAG      # what MLflow refuses as a duplicate, refused?
    python notebook.py env                 # which MLflow/AWS variables are set
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def log(experiment: str) -> dict:
    """Log a run the way a data scientist would."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_param("C", 0.5)
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        with tempfile.TemporaryDirectory() as tmp:
            notes = Path(tmp) / "notes.txt"
            notes.write_text("trained on four points\n")
            mlflow.log_artifact(str(notes))
        features = np.array([[0.0], [1.0], [2.0], [3.0]])
        model = LogisticRegression(C=0.5).fit(features, [0, 0, 1, 1])
        info = mlflow.sklearn.log_model(model, name="model")
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "artifact_uri": run.info.artifact_uri,
        "model_uri": info.model_uri,
        "model_id": getattr(info, "model_id", None),
    }


def load(model_uri: str) -> dict:
    """Load the model back and predict."""
    import mlflow

    model = mlflow.sklearn.load_model(model_uri)
    return {"predictions": [int(p) for p in model.predict([[0.0], [3.0]])]}


def check(run_id: str, model_uri: str) -> dict:
    """Read a logged run back through the server: params, metrics, artifact, model."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    history = client.get_metric_history(run_id, "loss")
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, "notes.txt", tmp)
        notes = Path(local).read_text()
    return {
        "status": run.info.status,
        "params": run.data.params,
        "loss_steps": len(history),
        "notes": notes,
        **load(model_uri),
    }


def bench(count: str) -> dict:
    """Seconds for COUNT sequential log_metric calls, and each call's latency."""
    import time

    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.create_experiment(f"bench-{time.time_ns()}")
    run = client.create_run(experiment)
    latencies = []
    started = time.perf_counter()
    for step in range(int(count)):
        t0 = time.perf_counter()
        client.log_metric(run.info.run_id, "m", float(step), step=step)
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    latencies.sort()
    return {
        "logged": len(client.get_metric_history(run.info.run_id, "m")),
        "seconds": total,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
    }


def stream(acked_file: str, stop_file: str) -> dict:
    """Log small runs until STOP_FILE exists; append each acknowledged run id to ACKED_FILE.

    A run counts as acknowledged only when every call of it returned; any
    exception is counted as an error the client saw, and the loop goes on.
    """
    import time

    import mlflow

    mlflow.set_experiment("stream")
    ok = errors = 0
    first_error = ""
    error_times: list[float] = []
    while not Path(stop_file).exists():
        try:
            with mlflow.start_run() as run:
                mlflow.log_metric("step", float(ok))
                mlflow.log_text(f"run {ok}\n", "note.txt")
            with open(acked_file, "a") as out:
                out.write(run.info.run_id + "\n")
            ok += 1
        except Exception as err:
            errors += 1
            error_times.append(time.time())
            first_error = first_error or f"{type(err).__name__}: {str(err)[:200]}"
            time.sleep(0.5)
    failing = (max(error_times) - min(error_times)) if error_times else 0.0
    return {"acked": ok, "errors": errors, "first_error": first_error, "failing_s": failing}


def verify(acked_file: str) -> dict:
    """Every acknowledged run: FINISHED, its metric and its artifact readable."""
    import mlflow

    client = mlflow.MlflowClient()
    run_ids = [line.strip() for line in Path(acked_file).read_text().splitlines() if line.strip()]
    missing = []
    for run_id in run_ids:
        try:
            run = client.get_run(run_id)
            assert run.info.status == "FINISHED"
            assert "step" in run.data.metrics
            with tempfile.TemporaryDirectory() as tmp:
                assert (
                    Path(client.download_artifacts(run_id, "note.txt", tmp))
                    .read_text()
                    .startswith("run ")
                )
        except Exception as err:
            missing.append(f"{run_id}: {type(err).__name__}")
    return {"checked": len(run_ids), "missing": missing}


def probe(kind: str) -> dict:
    """One metadata call or one artifact call; reports success or the error."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("probe") or client.get_experiment(
        client.create_experiment("probe")
    )
    run = client.create_run(experiment.experiment_id)
    try:
        if kind == "metadata":
            client.log_metric(run.info.run_id, "m", 1.0)
        else:
            client.log_text(run.info.run_id, "probe", "probe.txt")
    except Exception as err:
        return {"ok": False, "error": type(err).__name__}
    return {"ok": True}


def registry(run_id: str, model_uri: str, name: str) -> dict:
    """Register a logged model, load it back by ``models:/`` URI, and search runs."""
    import mlflow

    version = mlflow.register_model(model_uri, name)
    model = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    run = mlflow.get_run(run_id)
    found = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string="params.C = '0.5' and metrics.loss < 0.5",
        output_format="list",
    )
    history = mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss")
    return {
        "version": str(version.version),
        "predictions": [int(p) for p in model.predict([[0.0], [3.0]])],
        "found_runs": sorted(r.info.run_id for r in found),
        "loss_history": [m.value for m in sorted(history, key=lambda m: m.step)],
    }


def first_run(name: str) -> dict:
    """A notebook written for any MLflow: no experiment set, a model registered, read back.

    It calls nothing before ``mlflow.start_run()``: the run goes to MLflow's
    Default experiment, as in a notebook written for Charmed MLflow.
    """
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    with mlflow.start_run() as run:
        mlflow.log_param("C", 0.25)
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        with tempfile.TemporaryDirectory() as tmp:
            notes = Path(tmp) / "notes.txt"
            notes.write_text("first run\n")
            mlflow.log_artifact(str(notes))
        features = np.array([[0.0], [1.0], [2.0], [3.0]])
        model = LogisticRegression(C=0.25).fit(features, [0, 0, 1, 1])
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client = mlflow.MlflowClient()
    again = client.get_run(run.info.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="notes.txt", dst_path=tmp
        )
        notes_back = Path(local).read_text()
    [version] = client.search_model_versions(f"name = '{name}'")
    loaded = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    return {
        "experiment_id": again.info.experiment_id,
        "params": again.data.params,
        "loss_steps": len(client.get_metric_history(run.info.run_id, "loss")),
        "notes": notes_back,
        "version": str(version.version),
        "predictions": [int(p) for p in loaded.predict([[0.0], [3.0]])],
    }


def consistency(count: str, tag: str) -> dict:
    """COUNT times: log a metric, a param and a tag, then read each back at once.

    Each write is followed by the very next ``get_run``, ``get_metric_history``
    and ``search_runs`` calls; a read that does not return what was just
    written is a miss.
    """
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.create_experiment(f"consistency-{tag}")
    run_id = client.create_run(experiment).info.run_id
    misses: list[str] = []
    for i in range(int(count)):
        client.log_metric(run_id, "m", float(i), step=i)
        client.log_param(run_id, f"p{i}", str(i))
        client.set_tag(run_id, "last", str(i))
        run = client.get_run(run_id)
        if run.data.metrics.get("m") != float(i) or run.data.params.get(f"p{i}") != str(i):
            misses.append(f"{i}: get_run")
        if run.data.tags.get("last") != str(i):
            misses.append(f"{i}: tag")
        if len(client.get_metric_history(run_id, "m")) != i + 1:
            misses.append(f"{i}: get_metric_history")
        found = client.search_runs([experiment], filter_string=f"metrics.m = {float(i)}")
        if [r.info.run_id for r in found] != [run_id]:
            misses.append(f"{i}: search_runs")
    return {"writes": int(count), "misses": misses}


def duplicates(tag: str) -> dict:
    """The error codes MLflow answers to what it refuses as duplicates."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()

    def code(call: Callable[[], object]) -> str:
        try:
            call()
        except MlflowException as err:
            return str(err.error_code)
        return "accepted"

    name = f"duplicates-{tag}"
    experiment = client.create_experiment(name)
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "alpha", "1")
    client.create_registered_model(f"model-{tag}")
    return {
        "experiment": code(lambda: client.create_experiment(name)),
        "param": code(lambda: client.log_param(run_id, "alpha", "2")),
        "same_param_again": code(lambda: client.log_param(run_id, "alpha", "1")),
        "registered_model": code(lambda: client.create_registered_model(f"model-{tag}")),
    }


def env() -> dict:
    """The MLflow and AWS variables this process sees."""
    return {k: v for k, v in os.environ.items() if k.startswith(("MLFLOW_", "AWS_"))}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    commands: dict[str, Callable[..., dict]] = {
        "log": log,
        "load": load,
        "check": check,
        "bench": bench,
        "stream": stream,
        "verify": verify,
        "probe": probe,
        "registry": registry,
        "first-run": first_run,
        "consistency": consistency,
        "duplicates": duplicates,
        "env": env,
    }
    result = commands[command](*args)
    print(json.dumps(result))
