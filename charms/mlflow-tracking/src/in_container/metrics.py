"""Serve the MLflow server's Prometheus metrics on a port of their own, without a login.

Pushed by the charm to the workload container and run by Pebble with the
image's Python (``prometheus_client`` comes with MLflow's exporter):

    python3 metrics.py HOST PORT [ENV_FILE]

MLflow's workers write their metrics to ``PROMETHEUS_MULTIPROC_DIR``; this
process only reads that directory and serves what it holds. The server's own
``/metrics`` sits behind MLflow's auth, and a scrape job would need the admin's
password in plain relation data: this listener carries metrics and nothing
else, like SeaweedFS's metrics port.

MLflow's exporter labels requests by method and status, not by path, so it
cannot tell how many runs were logged. With ``ENV_FILE`` (the server's own env
file, read for ``MLFLOW_BACKEND_STORE_URI``) the listener also counts the runs
and experiments in the metadata store, by lifecycle stage, at most once a
minute: ``mlflow_runs``, ``mlflow_experiments`` and ``mlflow_store_readable``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily

import envfile

COUNTS_TTL = 60.0
TABLES = {"runs": "Runs", "experiments": "Experiments"}


def store_counts(uri: str) -> dict[str, dict[str, int]]:
    """Rows per lifecycle stage of each table, through SQLAlchemy (as MLflow reaches the store)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(uri, poolclass=NullPool)
    counts: dict[str, dict[str, int]] = {}
    try:
        with engine.connect() as connection:
            for table in TABLES:  # fixed names, never input
                query = f"SELECT lifecycle_stage, COUNT(*) FROM {table} GROUP BY lifecycle_stage"  # noqa: S608
                rows = connection.execute(text(query))
                counts[table] = {str(stage): int(count) for stage, count in rows}
        return counts
    finally:
        engine.dispose()


class StoreCounts:
    """A collector of the store's counts, read again when a scrape finds them a minute old."""

    def __init__(self, env_file: str, ttl: float = COUNTS_TTL):
        self._env_file = env_file
        self._ttl = ttl
        self._read_at = -ttl
        self._families: list[GaugeMetricFamily] = []
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The families of the last reading (read now when it is stale)."""
        with self._lock:
            if time.monotonic() - self._read_at >= self._ttl:
                self._families = self._read()
                self._read_at = time.monotonic()
            return iter(list(self._families))

    def _read(self) -> list[GaugeMetricFamily]:
        readable = GaugeMetricFamily(
            "mlflow_store_readable", "1 when the listener could count the metadata store's rows"
        )
        try:
            counts = store_counts(envfile.read(self._env_file)["MLFLOW_BACKEND_STORE_URI"])
        except Exception as err:  # any store error: reported, never fatal
            # The type only: a driver's message may quote the URI and its password.
            print(f"metadata store not counted: {type(err).__name__}", flush=True)
            readable.add_metric([], 0)
            return [readable]
        readable.add_metric([], 1)
        families: list[GaugeMetricFamily] = [readable]
        for table, title in TABLES.items():
            family = GaugeMetricFamily(
                f"mlflow_{table}",
                f"{title} in the metadata store, by lifecycle stage",
                labels=["lifecycle_stage"],
            )
            for stage, count in sorted(counts[table].items()):
                family.add_metric([stage], count)
            families.append(family)
        return families

    def describe(self) -> list[Any]:
        """Nothing up front: the registry must not collect (and query) at registration."""
        return []


def main(host: str, port: int, env_file: str | None = None) -> None:
    """Serve the multiprocess registry (and the store's counts) until stopped."""
    # The server creates it too; whichever starts first, both find it.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if env_file:
        registry.register(StoreCounts(env_file))
    start_http_server(port, addr=host, registry=registry)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
