"""COS on the real workloads: scrape targets, alert rules, dashboards, and the metrics they name.

The scrape job each charm publishes on ``metrics-endpoint`` is followed to the
real program under Pebble, and what it answers is parsed as Prometheus text
(``prometheus_client``'s parser, not grep). The alert rules the charms send
pass Debian's ``promtool check rules``, topology labels included; so do the
dashboards' queries (as recording rules). Every metric a rule or a dashboard
names (found by parsing the PromQL with ``promql-parser``) is one the real
program serves. CrateDB's exporter runs against a real CrateDB where
``CRATEDB_HOME`` gives one, and always against a ``/_sql`` stand-in that
answers with a real node's recorded rows (``stack/crate_sql.py``).
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stack.charm_loader import REPO, charm_modules
from stack.crate_sql import CrateSqlStandIn
from stack.cratedb import HOW_TO_GET_ONE, cratedb_home, start_single_node
from stack.mlflow_server import MlflowServer, mt
from stack.pebble import free_port
from stack.seaweed import SeaweedStore
from tests.workload.conftest import PebbleFactory, record

RULE_FILES = sorted(REPO.glob("charms/*/src/prometheus_alert_rules/*.rules"))
DASHBOARDS = sorted(REPO.glob("charms/*/src/grafana_dashboards/*.json"))
# Made by Prometheus for every target, not served by it.
SYNTHETIC = {"up"}
# Served only minutes after start: the leader master sets it in its volume-growth
# loop, every 5 minutes and not at start. test_seaweedfs_cluster.py scrapes it from
# a real leader with a unit gone and has promtool evaluate the rule on it.
LATE = {"SeaweedFS_master_under_replicated_volumes"}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool missing: scripts/setup.sh installs Debian's prometheus package")
    return found


def _scrape(url: str) -> dict[str, set[str]]:
    """Family name -> sample names, from a scrape parsed as Prometheus text."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        family.name: {sample.name for sample in family.samples}
        for family in text_string_to_metric_families(text)
    }


def _answers(url: str) -> bool:
    try:
        _scrape(url)
    except OSError:
        return False
    return True


def _selectors(node: Any) -> set[str]:
    """Metric names of every vector selector in a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name} if node.name else set()
    found: set[str] = set()
    for attribute in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list) else [child]:
            if isinstance(item, promql_parser.Expr):
                found |= _selectors(item)
    return found


def _rule_exprs(rule_file: Path) -> list[str]:
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _dashboard_exprs(dashboard: Path) -> list[str]:
    panels = json.loads(dashboard.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def _named_metrics(exprs: list[str]) -> set[str]:
    named = set().union(*(_selectors(promql_parser.parse(expr)) for expr in exprs))
    assert named, "no metric named"
    return named - SYNTHETIC


def _charm_queries(charm: str) -> list[str]:
    """Every expression charm ``charm`` sends: its alert rules and its dashboard's panels."""
    src = REPO / "charms" / charm / "src"
    return [
        *(e for f in sorted(src.glob("prometheus_alert_rules/*.rules")) for e in _rule_exprs(f)),
        *(e for f in sorted(src.glob("grafana_dashboards/*.json")) for e in _dashboard_exprs(f)),
    ]


def _served(families: dict[str, set[str]]) -> set[str]:
    # A query may name a sample (X_bucket) or, for a counter served without
    # "_total", the family (the parser adds the suffix to its samples).
    return set(families) | {name for names in families.values() for name in names}


def _missing(charm: str, families: dict[str, set[str]]) -> list[str]:
    named = _named_metrics(_charm_queries(charm))
    record(
        f"{charm} scrape (metrics-endpoint job)",
        f"{len(families)} metric families; its rules and dashboard name {len(named)} metrics",
    )
    return sorted(named - _served(families) - LATE)


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.parent.parent.parent.name)
def test_each_charms_alert_rules_as_sent_pass_promtool(rule_file: Path, tmp_path: Path):
    charm = rule_file.parent.parent.parent.name
    obs = charm_modules(charm, "observability").observability
    # The charm imports cosl lazily (hook cost); the topology type is cosl's.
    from cosl import JujuTopology

    topology = JujuTopology(
        model="cos-test",
        model_uuid="00000000-0000-4000-8000-000000000000",
        application=charm,
        unit=f"{charm}/0",
        charm_name=charm,
    )
    sent = obs.alert_rules(topology)
    assert sent["groups"], "no rules sent"
    rendered = tmp_path / f"{charm}.rules.yaml"
    rendered.write_text(yaml.safe_dump(sent))
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(rendered)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = sum(len(group["rules"]) for group in sent["groups"])
    assert f"SUCCESS: {count} rules found" in checked.stdout
    for group in sent["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["juju_application"] == charm
            assert rule["annotations"]["summary"]


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.stem)
def test_each_dashboards_queries_pass_promtool(dashboard: Path, tmp_path: Path):
    exprs = _dashboard_exprs(dashboard)
    assert len(exprs) >= 8
    # As recording rules: promtool parses each with Prometheus's own parser.
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    rendered = tmp_path / f"{dashboard.stem}.yaml"
    rendered.write_text(yaml.safe_dump({"groups": [{"name": dashboard.stem, "rules": rules}]}))
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(rendered)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout


@pytest.fixture(scope="module")
def seaweed(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    store = SeaweedStore.start(module_pebble_factory("seaweed-cos"), weed_bin, planned_buckets=1)
    store.wait_ready()
    return store


def test_seaweedfs_scrape_target_serves_the_metrics_its_rules_and_dashboard_name(
    seaweed: SeaweedStore,
):
    obs: Any = charm_modules("seaweedfs", "observability").observability
    [job] = obs.scrape_jobs(seaweed.settings.ports.metrics)
    [target] = job["static_configs"][0]["targets"]
    port = int(target.rpartition(":")[2])
    assert port == seaweed.settings.ports.metrics
    # Traffic, so that the request and volume families exist: a bucket, objects, a miss.
    creds = seaweed.relate(6001, "cos-bucket")
    client = seaweed.s3(creds)
    for index in range(3):
        client.put_object(Bucket="cos-bucket", Key=f"object-{index}", Body=b"x" * 1024)
    client.get_object(Bucket="cos-bucket", Key="object-0")["Body"].read()
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket="cos-bucket", Key="missing")

    families = _scrape(f"http://127.0.0.1:{port}{job['metrics_path']}")
    missing = _missing("seaweedfs", families)
    assert missing == [], f"rules or dashboard name metrics weed does not serve: {missing}"


def test_mlflow_metrics_listener_serves_what_its_rules_and_dashboard_name_without_a_login(
    module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path
):
    daemon = module_pebble_factory("mlflow-cos")
    server = MlflowServer.start(
        daemon,
        mlflow_venv_dir,
        mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db")),
        mt.state.LOCAL_ARTIFACTS,
        auth=True,
    )
    login = server.notebook_login
    status, created = server.api("/api/2.0/mlflow/experiments/create", login, {"name": "cos"})
    assert status == 200
    run = {"experiment_id": created["experiment_id"]}
    assert server.api("/api/2.0/mlflow/runs/create", login, run)[0] == 200
    assert server.api("/api/2.0/mlflow/experiments/search?max_results=5", login)[0] == 200
    assert server.api("/api/2.0/mlflow/runs/get?run_id=nope", login)[0] == 404
    # The server's own /metrics stays behind MLflow's auth; the listener needs no login.
    assert server.api("/metrics")[0] == 401

    obs: Any = charm_modules("mlflow-tracking", "observability").observability
    [job] = obs.scrape_jobs(server.settings.metrics_port)
    [target] = job["static_configs"][0]["targets"]
    url = f"http://127.0.0.1:{target.rpartition(':')[2]}{job['metrics_path']}"
    server.daemon.wait_for(lambda: _answers(url), timeout=60, what="the metrics listener")
    families = _scrape(url)
    missing = _missing("mlflow-tracking", families)
    assert missing == [], f"rules or dashboard name metrics MLflow does not serve: {missing}"
    # The listener's own count of the store (MLflow's exporter has no per-path counter).
    values = _values(url)
    assert values[("mlflow_store_readable", ())] == 1
    assert values[("mlflow_runs", (("lifecycle_stage", "active"),))] == 1
    assert values[("mlflow_experiments", (("lifecycle_stage", "active"),))] == 2  # and Default
    assert "mlflow_http_request_total" in families["mlflow_http_request"]


crm: Any = charm_modules("cratedb", "workload", "observability")


def _start_cratedb_exporter(
    factory: PebbleFactory, name: str, http_port: int, node: str = "cratedb-0"
) -> str:
    """The charm's exporter layer under a real Pebble, aimed at ``http_port``; its scrape URL.

    It is the leader's: the backup runner's state file says the last
    scheduled backup failed (as ``backup_runner.py`` writes it).
    """
    daemon = factory(name)
    backup_state = daemon.directory / "backup-state.json"
    backup_state.write_text(
        json.dumps({"failed": True, "error": "x", "last_success": "2026-12-04T03:00:00+00:00"})
    )
    settings = crm.workload.MetricsSettings(
        node_name=node,
        http_port=http_port,
        host="127.0.0.1",
        port=free_port(),
        script=str(REPO / "charms/cratedb/src/in_container/metrics.py"),
        python=sys.executable,  # the image's python3 in a pod
        user=None,
        backup_state=str(backup_state),
    )
    daemon.apply(crm.workload.metrics_layer(settings), "metrics")
    [job] = crm.observability.scrape_jobs(settings.port)
    assert job["static_configs"][0]["targets"] == [f"*:{settings.port}"]
    url = f"http://127.0.0.1:{settings.port}{job['metrics_path']}"
    daemon.wait_for(lambda: _answers(url), timeout=30, what="the cratedb exporter")
    return url


def _values(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_cratedb_exporter_under_pebble_serves_what_its_rules_and_dashboard_name(
    module_pebble_factory: PebbleFactory,
):
    with CrateSqlStandIn() as crate:
        url = _start_cratedb_exporter(module_pebble_factory, "cratedb-exporter", crate.port)
        missing = _missing("cratedb", _scrape(url))
        assert missing == [], (
            f"rules or dashboard name metrics the exporter does not serve: {missing}"
        )
        values = _values(url)
        assert values[("cratedb_up", ())] == 1
        assert values[("cratedb_cluster_health", ())] == 2  # the recorded YELLOW node
        # It logs in as the superuser without a password, and reads its own node.
        assert {s["authorization"] for s in crate.statements} == {"Basic Y3JhdGU6"}
        assert ["cratedb-0"] in [s["args"] for s in crate.statements]

        assert values[("cratedb_scheduled_backup_failed", ())] == 1

        crate.failing = True
        down = _values(url)
        assert down[("cratedb_up", ())] == 0
        assert "cratedb_cluster_health" not in {name for name, _ in down}
        # The backups' outcome is the runner's, not the node's: still served.
        assert down[("cratedb_scheduled_backup_failed", ())] == 1


@pytest.mark.skipif(cratedb_home() is None, reason=HOW_TO_GET_ONE)
def test_cratedb_exporter_reads_a_real_yellow_node(
    module_pebble_factory: PebbleFactory, pebble_bin: str, tmp_path: Path
):
    home = cratedb_home()
    assert home is not None
    daemon, node = start_single_node(pebble_bin, home, tmp_path / "node")
    try:
        sql = node.sql()
        sql.execute(
            "CREATE TABLE doc.cos (x INT) CLUSTERED INTO 2 SHARDS WITH (number_of_replicas = 1)"
        )
        sql.execute("INSERT INTO doc.cos VALUES (1)")
        url = _start_cratedb_exporter(module_pebble_factory, "cratedb-real", node.ports.http)
        seconds = daemon.wait_for(
            lambda: _values(url).get(("cratedb_cluster_health", ())) == 2,
            timeout=60,
            what="YELLOW in the exporter's scrape",
        )
        record("cratedb exporter on a real node: YELLOW scraped after", f"{seconds:.1f} s")
        missing = _missing("cratedb", _scrape(url))
        assert missing == [], (
            f"rules or dashboard name metrics a real node does not give: {missing}"
        )
        values = _values(url)
        assert values[("cratedb_nodes", ())] == 1
        assert values[("cratedb_shards", (("primary", "false"), ("state", "UNASSIGNED")))] == 2
        assert values[("cratedb_queries_total", (("type", "INSERT"),))] >= 1
        assert (
            0
            < values[("cratedb_node_heap_used_bytes", ())]
            < values[("cratedb_node_heap_max_bytes", ())]
        )

        sql.execute("ALTER TABLE doc.cos SET (number_of_replicas = 0)")
        seconds = daemon.wait_for(
            lambda: _values(url).get(("cratedb_cluster_health", ())) == 1,
            timeout=60,
            what="GREEN in the exporter's scrape",
        )
        record("cratedb exporter: GREEN scraped after replicas=0, after", f"{seconds:.1f} s")
    finally:
        daemon.stop()


class _LokiReceiver(http.server.ThreadingHTTPServer):
    """A Loki push API on loopback: keeps what Pebble pushes (JSON streams)."""

    def __init__(self) -> None:
        self.pushed: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _PushHandler)


class _PushHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        assert isinstance(self.server, _LokiReceiver)
        if self.path == "/loki/api/v1/push":
            self.server.pushed.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_pebble_forwards_the_servers_log_lines_to_loki(
    module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path
):
    receiver = _LokiReceiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        daemon = module_pebble_factory("mlflow-logs")
        server = MlflowServer.start(
            daemon,
            mlflow_venv_dir,
            mt.workload.sqlite_store(str(daemon.directory / "data" / "mlflow.db")),
            mt.state.LOCAL_ARTIFACTS,
        )
        logs: Any = charm_modules("mlflow-tracking", "log_forwarding").log_forwarding
        url = f"http://127.0.0.1:{receiver.server_address[1]}/loki/api/v1/push"
        topology = {
            "model": "cos-test",
            "application": "mlflow-tracking",
            "unit": "mlflow-tracking/0",
        }
        # The log targets the charm adds to its layer for one related Loki unit.
        daemon.apply({"log-targets": logs.log_targets({"loki-loki-0": url}, topology)}, "logs")
        assert server.api("/api/2.0/mlflow/experiments/search?max_results=1")[0] == 200

        def delivered() -> list[tuple[dict[str, str], str]]:
            return [
                (stream["stream"], line)
                for push in receiver.pushed
                for stream in push["streams"]
                for _, line in stream["values"]
            ]

        seconds = daemon.wait_for(
            lambda: any("experiments/search" in line for _, line in delivered()),
            timeout=60,
            what="the access log line at the Loki receiver",
        )
        record("log forwarding: a request's log line at Loki after", f"{seconds:.1f} s")
        labels = next(labels for labels, line in delivered() if "experiments/search" in line)
        assert labels["juju_application"] == "mlflow-tracking"
        assert labels["pebble_service"] == "mlflow-server"
    finally:
        receiver.shutdown()
        receiver.server_close()
