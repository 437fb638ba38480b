"""COS on the real workloads: scrape targets, alert rules, and the metrics they name.

The scrape job each charm publishes on ``metrics-endpoint`` is followed to the
real program under Pebble, and what it answers is parsed as Prometheus text
(``prometheus_client``'s parser, not grep). The alert rules the charms send
pass Debian's ``promtool check rules``, topology labels included, and every
metric a rule names is one the real program serves.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stack.charm_loader import REPO, charm_modules
from stack.mlflow_server import MlflowServer, mt
from stack.seaweed import SeaweedStore
from tests.workload.conftest import PebbleFactory, record

RULE_FILES = sorted(REPO.glob("charms/*/src/prometheus_alert_rules/*.rules"))
METRIC = re.compile(r"\b(SeaweedFS_\w+|mlflow_\w+|flask_\w+)\b")


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


def _named_metrics(rule_file: Path) -> set[str]:
    rules = yaml.safe_load(rule_file.read_text())["groups"]
    return {m for group in rules for rule in group["rules"] for m in METRIC.findall(rule["expr"])}


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.parent.parent.parent.name)
def test_each_charms_alert_rules_as_sent_pass_promtool(rule_file: Path, tmp_path: Path):
    charm = rule_file.parent.parent.parent.name
    obs = charm_modules(charm, "observability").observability
    topology = obs.JujuTopology(
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


@pytest.fixture(scope="module")
def seaweed(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    store = SeaweedStore.start(module_pebble_factory("seaweed-cos"), weed_bin, planned_buckets=1)
    store.wait_ready()
    return store


def test_seaweedfs_scrape_target_serves_the_metrics_its_rules_name(seaweed: SeaweedStore):
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
    # A rule may name a sample (X_bucket) or, for a counter served without
    # "_total", the family (the parser adds the suffix to its samples).
    samples = set(families) | {name for names in families.values() for name in names}
    named = _named_metrics(REPO / "charms/seaweedfs/src/prometheus_alert_rules/seaweedfs.rules")
    record(
        "seaweedfs scrape (metrics-endpoint job)",
        f"{len(families)} metric families; rules name {len(named)} metrics",
    )
    missing = sorted(m for m in named if m not in samples)
    assert missing == [], f"rules name metrics weed does not serve: {missing}"


def test_mlflow_metrics_listener_serves_what_its_rules_name_without_a_login(
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
    assert server.api("/api/2.0/mlflow/experiments/create", login, {"name": "cos"})[0] == 200
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
    samples = set(families) | {name for names in families.values() for name in names}
    named = _named_metrics(REPO / "charms/mlflow-tracking/src/prometheus_alert_rules/mlflow.rules")
    record(
        "mlflow metrics listener (metrics-endpoint job)",
        f"{len(families)} metric families; rules name {len(named)} metrics",
    )
    missing = sorted(m for m in named if m not in samples)
    assert missing == [], f"rules name metrics MLflow does not serve: {missing}"
    assert "mlflow_http_request_total" in families["mlflow_http_request"]


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
