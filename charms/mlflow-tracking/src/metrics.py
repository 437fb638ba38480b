"""Serve the MLflow server's Prometheus metrics on a port of their own, without a login.

Pushed by the charm to the workload container and run by Pebble with the
image's Python (``prometheus_client`` comes with MLflow's exporter):

    python3 metrics.py HOST PORT

MLflow's workers write their metrics to ``PROMETHEUS_MULTIPROC_DIR``; this
process only reads that directory and serves what it holds. The server's own
``/metrics`` sits behind MLflow's auth, and a scrape job would need the admin's
password in plain relation data: this listener carries metrics and nothing
else, like SeaweedFS's metrics port.
"""

from __future__ import annotations

import os
import sys
import threading

from prometheus_client import CollectorRegistry, multiprocess, start_http_server


def main(host: str, port: int) -> None:
    """Serve the multiprocess registry until the process is stopped."""
    # The server creates it too; whichever starts first, both find it.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
