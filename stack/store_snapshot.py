"""Write a tracking store's worth of data through an MLflow server, or read all of it back.

Run with the Python of any MLflow venv (2.22 or 3.x), the server in
``MLFLOW_TRACKING_URI`` (and a login in ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` when the server has auth):

    python store_snapshot.py write   # experiments, runs, a registered model; prints the snapshot
    python store_snapshot.py read    # prints the snapshot of what the server serves
    python store_snapshot.py new     # logs one more run; prints its id and what it reads back

The snapshot holds every experiment (name, tags), every run (name, status,
times, params, user tags, each metric's whole history, every artifact's
bytes) and every registered model (tags, description, each version's source,
run, status, tags): the upgrade tests compare it before and after a migration.
Only the client API both MLflow 2.22 and 3.x have is used.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

EXPERIMENTS = ("upgrade-alpha", "upgrade-beta")
MODEL = "upgrade-model"


def write(client: MlflowClient) -> None:
    """Two experiments, three runs with histories, artifacts, and a model with two versions."""
    run_ids = []
    for e, name in enumerate(EXPERIMENTS):
        experiment = client.create_experiment(name, tags={"team": f"t{e}", "kind": "upgrade"})
        for r in range(2 if e == 0 else 1):
            run = client.create_run(experiment, run_name=f"{name}-run-{r}", tags={"seed": str(r)})
            run_id = run.info.run_id
            client.log_param(run_id, "alpha", str(0.1 * (r + 1)))
            client.log_param(run_id, "layers", str(3 + r))
            for step in range(25):
                client.log_metric(run_id, "loss", 1.0 / (step + 1 + r), step=step)
                client.log_metric(run_id, "accuracy", step / 25.0, step=step)
            with tempfile.TemporaryDirectory() as tmp:
                notes = Path(tmp) / "notes.txt"
                notes.write_text(f"run {r} of {name}\n")
                client.log_artifact(run_id, str(notes), artifact_path="notes")
                model = Path(tmp) / "model"
                model.mkdir()
                (model / "MLmodel").write_text(f"flavors: {{}}\nrun: {r}\n")
                (model / "weights.bin").write_bytes(bytes(range(256)) * (r + 1))
                client.log_artifacts(run_id, str(model), artifact_path="model")
            client.set_terminated(run_id, "FINISHED")
            run_ids.append(run_id)
    client.create_registered_model(MODEL, tags={"stage": "candidate"}, description="for upgrades")
    for version, run_id in enumerate(run_ids[:2], start=1):
        client.create_model_version(
            MODEL, f"runs:/{run_id}/model", run_id=run_id, tags={"v": str(version)}
        )


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for item in client.list_artifacts(run_id, path or None):
        if item.is_dir:
            found.update(_artifacts(client, run_id, item.path))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, item.path, tmp)
            found[item.path] = hashlib.sha256(Path(local).read_bytes()).hexdigest()
    return found


def read(client: MlflowClient) -> dict[str, Any]:
    """Everything the server serves for the experiments and the model ``write`` made."""
    experiments: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name in EXPERIMENTS:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            experiments[name] = None
            continue
        runs = {}
        for run in client.search_runs([experiment.experiment_id], max_results=1000):
            info, data = run.info, run.data
            run_name = data.tags.get("mlflow.runName", "")
            names[info.run_id] = run_name
            runs[run_name] = {
                "status": info.status,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "params": dict(data.params),
                "tags": {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")},
                "metrics": {
                    key: [
                        (m.step, m.value, m.timestamp)
                        for m in sorted(
                            client.get_metric_history(info.run_id, key), key=lambda m: m.step
                        )
                    ]
                    for key in sorted(data.metrics)
                },
                "artifacts": _artifacts(client, info.run_id),
            }
        experiments[name] = {
            "tags": {k: v for k, v in experiment.tags.items() if not k.startswith("mlflow.")},
            "runs": runs,
        }
    model = client.get_registered_model(MODEL)
    versions = client.search_model_versions(f"name='{MODEL}'")
    return {
        "experiments": experiments,
        "model": {
            "description": model.description,
            "tags": dict(model.tags),
            "versions": {
                v.version: {
                    "source": v.source.replace(v.run_id, names.get(v.run_id, "?")),
                    "run": names.get(v.run_id, "?"),
                    "status": v.status,
                    "tags": dict(v.tags),
                }
                for v in sorted(versions, key=lambda v: int(v.version))
            },
        },
    }


def new_run(client: MlflowClient) -> dict[str, Any]:
    """One more run in an old experiment, read back."""
    experiment = client.get_experiment_by_name(EXPERIMENTS[0])
    run = client.create_run(experiment.experiment_id, run_name="after-the-upgrade")
    client.log_metric(run.info.run_id, "loss", 0.01, step=1)
    client.log_param(run.info.run_id, "upgraded", "yes")
    client.set_terminated(run.info.run_id, "FINISHED")
    back = client.get_run(run.info.run_id)
    return {
        "run_id": run.info.run_id,
        "params": dict(back.data.params),
        "status": back.info.status,
    }


def main() -> int:
    """Run the command named on the command line; print its JSON as the last line."""
    client = MlflowClient()
    command = sys.argv[1]
    if command == "write":
        write(client)
        print(json.dumps(read(client)))
    elif command == "read":
        print(json.dumps(read(client)))
    elif command == "new":
        print(json.dumps(new_run(client)))
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
