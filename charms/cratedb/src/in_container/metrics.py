"""Prometheus metrics for one CrateDB node, read from its ``sys`` tables.

The official CrateDB image ships no exporter (its JMX exporter is a separate
download), and the charm downloads nothing at run time. The image does have
``python3``: the charm pushes this file (standard library only) into the
workload container and Pebble runs it beside the node:

    python3 metrics.py HOST PORT CRATE_URL NODE_NAME [BACKUP_STATE_FILE]

Each scrape of ``http://HOST:PORT/metrics`` runs a few SQL statements as the
superuser over the pod's loopback (``CRATE_URL``; CrateDB trusts the
superuser there and nowhere else) and answers Prometheus text. When CrateDB
does not answer, the scrape still succeeds with ``cratedb_up 0``: "the
database is down" stays distinguishable from "the unit is gone".

Cluster-wide values (health, nodes, shards) are the same on every node;
``cratedb_node_*`` and the query counters are this node's own. With
``BACKUP_STATE_FILE`` (written by ``backup_runner.py`` on the leader's unit),
``cratedb_scheduled_backup_*`` say how the scheduled backups fare.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TIMEOUT = 10.0
HEALTH = {"GREEN": 1, "YELLOW": 2, "RED": 3}

# A statement runner: (statement, args) -> rows.
Sql = Callable[[str, Sequence[Any]], list[list[Any]]]


class Family(NamedTuple):
    """One metric family: name, type, help and its samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]]


def _one(value: Any) -> float:
    return float(value) if value is not None else float("nan")


def collect(sql: Sql, node: str) -> list[Family]:
    """Every family, from the node's sys tables; raises OSError when CrateDB does not answer."""
    worst = sql("SELECT max(severity) FROM sys.health", [])
    by_health = sql("SELECT health, count(*) FROM sys.health GROUP BY health", [])
    nodes = sql("SELECT count(*) FROM sys.nodes", [])
    shards = sql('SELECT state, "primary", count(*) FROM sys.shards GROUP BY 1, 2', [])
    mine = sql(
        "SELECT heap['used'], heap['max'], fs['total']['size'], fs['total']['available'], "
        "process['open_file_descriptors'], load['1'] FROM sys.nodes WHERE name = ?",
        [node],
    )
    jobs = sql(
        "SELECT classification['type'], sum(total_count), sum(failed_count), "
        "sum(sum_of_durations) FROM sys.jobs_metrics WHERE node['name'] = ? GROUP BY 1",
        [node],
    )
    # An empty sys.health means no table is unhealthy: GREEN.
    severity = worst[0][0] if worst and worst[0][0] is not None else HEALTH["GREEN"]
    families = [
        Family("cratedb_up", "gauge", "1 when CrateDB answered this scrape's SQL", [({}, 1.0)]),
        Family(
            "cratedb_cluster_health",
            "gauge",
            "Worst table health in the cluster: 1 GREEN, 2 YELLOW, 3 RED (sys.health)",
            [({}, float(severity))],
        ),
        Family(
            "cratedb_tables",
            "gauge",
            "Tables (and partitions) by health, as sys.health lists them",
            [({"health": str(h)}, float(n)) for h, n in by_health],
        ),
        Family(
            "cratedb_nodes", "gauge", "Nodes in the cluster (sys.nodes)", [({}, _one(nodes[0][0]))]
        ),
        Family(
            "cratedb_shards",
            "gauge",
            "Shards in the cluster by state and role (UNASSIGNED: no node holds a copy)",
            [
                ({"state": str(state), "primary": "true" if primary else "false"}, float(n))
                for state, primary, n in shards
            ],
        ),
    ]
    if mine:
        heap_used, heap_max, fs_size, fs_available, fds, load1 = mine[0]
        families += [
            Family(
                "cratedb_node_heap_used_bytes", "gauge", "JVM heap in use", [({}, _one(heap_used))]
            ),
            Family(
                "cratedb_node_heap_max_bytes", "gauge", "JVM heap limit", [({}, _one(heap_max))]
            ),
            Family(
                "cratedb_node_fs_size_bytes",
                "gauge",
                "Size of the data disks",
                [({}, _one(fs_size))],
            ),
            Family(
                "cratedb_node_fs_available_bytes",
                "gauge",
                "Space left on the data disks",
                [({}, _one(fs_available))],
            ),
            Family(
                "cratedb_node_open_file_descriptors",
                "gauge",
                "Files the node has open",
                [({}, _one(fds))],
            ),
            Family("cratedb_node_load1", "gauge", "System load, 1 minute", [({}, _one(load1))]),
        ]
    families += [
        Family(
            "cratedb_queries_total",
            "counter",
            "Statements this node ran since it started, by type (sys.jobs_metrics)",
            [({"type": str(kind)}, float(total or 0)) for kind, total, _, _ in jobs],
        ),
        Family(
            "cratedb_query_failures_total",
            "counter",
            "Statements that failed on this node since it started, by type",
            [({"type": str(kind)}, float(failed or 0)) for kind, _, failed, _ in jobs],
        ),
        Family(
            "cratedb_query_duration_seconds_total",
            "counter",
            "Time this node spent on statements since it started, by type",
            [({"type": str(kind)}, float(ms or 0) / 1000.0) for kind, _, _, ms in jobs],
        ),
    ]
    return families


def down() -> list[Family]:
    """What a scrape answers when CrateDB does not."""
    return [
        Family("cratedb_up", "gauge", "1 when CrateDB answered this scrape's SQL", [({}, 0.0)])
    ]


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    return repr(int(value)) if value.is_integer() else repr(value)


def render(families: Iterable[Family]) -> str:
    """The Prometheus text exposition format (0.0.4)."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            rendered = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items()))
            selector = f"{{{rendered}}}" if rendered else ""
            lines.append(f"{family.name}{selector} {_number(value)}")
    return "\n".join(lines) + "\n"


def http_sql(url: str, user: str = "crate", timeout: float = TIMEOUT) -> Sql:
    """Statements over CrateDB's HTTP endpoint (``/_sql``) as ``user``, without a password.

    Over HTTPS the certificate is not verified: it names the service, this is
    the pod's loopback, and no password is sent.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP(S) URL: {url!r}")
    context = ssl._create_unverified_context() if url.startswith("https") else None  # noqa: S323
    token = base64.b64encode(f"{user}:".encode()).decode()

    def run(statement: str, args: Sequence[Any]) -> list[list[Any]]:
        request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
            f"{url}/_sql",
            data=json.dumps({"stmt": statement, "args": list(args)}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            return json.loads(response.read())["rows"]

    return run


def backup_families(state_file: str | None) -> list[Family]:
    """The scheduled backups' outcome, from the runner's state file (the leader's unit only)."""
    if not state_file:
        return []
    try:
        with open(state_file) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return []
    families = [
        Family(
            "cratedb_scheduled_backup_failed",
            "gauge",
            "1 when the last scheduled backup attempt failed (see the unit's status)",
            [({}, 1.0 if state.get("failed") else 0.0)],
        )
    ]
    if state.get("last_success"):
        when = datetime.fromisoformat(state["last_success"]).timestamp()
        families.append(
            Family(
                "cratedb_scheduled_backup_last_success_timestamp_seconds",
                "gauge",
                "When the last scheduled snapshot succeeded (Unix time)",
                [({}, when)],
            )
        )
    return families


def scrape(sql: Sql, node: str, backup_state: str | None = None) -> str:
    """One scrape's answer: the node's metrics, or ``cratedb_up 0``; the backups' either way."""
    try:
        families = collect(sql, node)
    except (OSError, ValueError, KeyError):
        families = down()
    return render([*families, *backup_families(backup_state)])


def serve(
    host: str, port: int, sql: Sql, node: str, backup_state: str | None = None
) -> ThreadingHTTPServer:
    """A listener answering ``/metrics``; the caller runs ``serve_forever``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics here")
                return
            body = scrape(sql, node, backup_state).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a scrape every 30 s is not worth a log line."""

    return ThreadingHTTPServer((host, port), Handler)


if __name__ == "__main__":
    listen_host, listen_port, crate_url, node_name = sys.argv[1:5]
    state_path = sys.argv[5] if len(sys.argv) > 5 else None
    serve(
        listen_host, int(listen_port), http_sql(crate_url), node_name, state_path
    ).serve_forever()
