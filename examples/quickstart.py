"""Quickstart: log a run. No URL, bucket or key in the code.

MLFLOW_TRACKING_URI comes from the environment: the pod default injects it in a
Kubeflow notebook, `juju run mlflow-tracking/0 get-client-env` prints it for
your shell, and `bash scripts/try.sh` exports it for the local stack.
"""

from __future__ import annotations

import mlflow


def main() -> None:
    """One run with a parameter, a metric series and a text artifact.

    Nothing is set up first: the run goes to MLflow's Default experiment, as in
    any notebook written for MLflow.
    """
    with mlflow.start_run() as run:
        mlflow.log_param("learning_rate", 0.01)
        for step, loss in enumerate([0.9, 0.5, 0.3, 0.2]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_text("hello from the quickstart\n", "notes/hello.txt")
    print(f"logged run {run.info.run_id} to {mlflow.get_tracking_uri()}")


if __name__ == "__main__":
    main()
