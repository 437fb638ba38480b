"""Query MLflow's own tables in CrateDB with the crate client.

Needs CRATEDB_URL (http://host:4200) and a user allowed to read the MLflow
schema: on Juju, the uris in the cratedb relation's secret; locally, any
CrateDB you run. Equivalent with crash:
    crash --hosts "$CRATEDB_URL" --schema mlflow -c 'SELECT name FROM experiments'
"""

from __future__ import annotations

import os

from crate import client


def main() -> None:
    """Print the experiments and the latest runs with their status."""
    schema = os.environ.get("MLFLOW_SCHEMA", "mlflow")
    with client.connect(
        os.environ["CRATEDB_URL"],
        username=os.environ.get("CRATEDB_USER", "crate"),
        password=os.environ.get("CRATEDB_PASSWORD") or None,
        schema=schema,
    ) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT experiment_id, name FROM experiments ORDER BY experiment_id")
        for experiment_id, name in cursor.fetchall():
            print(f"experiment {experiment_id}: {name}")
        cursor.execute(
            "SELECT run_uuid, status, start_time FROM runs ORDER BY start_time DESC LIMIT 10"
        )
        for run_uuid, status, start_time in cursor.fetchall():
            print(f"run {run_uuid}: {status} (started {start_time})")


if __name__ == "__main__":
    main()
