"""Train an elastic net on scikit-learn's wine data, log it and register it.

The classic MLflow tutorial, without downloading anything: the wine data ships
with scikit-learn. Only the environment says where MLflow is.
"""

from __future__ import annotations

import sys

import mlflow
import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

MODEL_NAME = "wine-elasticnet"


def main(alpha: float = 0.5, l1_ratio: float = 0.5) -> None:
    """Fit, evaluate, log, register; print the registered version."""
    data = load_wine()
    # Predict the alcohol content from the other measurements.
    target = data.data[:, 0]
    features = data.data[:, 1:]
    train_x, test_x, train_y, test_y = train_test_split(features, target, random_state=42)

    mlflow.set_experiment("wine-quality")
    with mlflow.start_run() as run:
        model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42).fit(train_x, train_y)
        predicted = model.predict(test_x)
        mlflow.log_params({"alpha": alpha, "l1_ratio": l1_ratio})
        mlflow.log_metrics(
            {
                "rmse": float(np.sqrt(mean_squared_error(test_y, predicted))),
                "mae": float(mean_absolute_error(test_y, predicted)),
                "r2": float(r2_score(test_y, predicted)),
            }
        )
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=test_x[:2], registered_model_name=MODEL_NAME
        )
    version = info.registered_model_version
    print(f"run {run.info.run_id}: registered {MODEL_NAME} version {version}")


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:3]))
