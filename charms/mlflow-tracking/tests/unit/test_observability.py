"""COS: what Prometheus (or an agent) reads on metrics-endpoint, and the metrics listener.

The fields are those of the prometheus_scrape interface's published schema
(canonical/charm-relation-interfaces, interfaces/prometheus_scrape/v0).
"""

from __future__ import annotations

import json
from typing import Any

from ops import testing

from constants import CONTAINER, METRICS_SERVICE
from helpers import container, make_state

Ctx = testing.Context[Any]


def metrics() -> testing.Relation:
    return testing.Relation("metrics-endpoint", remote_app_name="prometheus")


def test_the_leader_publishes_the_listener_job_the_topology_and_alert_rules(ctx: Ctx):
    relation = metrics()
    out = ctx.run(ctx.on.relation_joined(relation, remote_unit=0), make_state(relation))
    app: dict[str, str] = dict(out.get_relation(relation.id).local_app_data)
    assert json.loads(app["scrape_jobs"]) == [
        {"metrics_path": "/metrics", "static_configs": [{"targets": ["*:9102"]}]}
    ]
    assert json.loads(app["scrape_metadata"])["application"] == "mlflow-tracking"
    rules = json.loads(app["alert_rules"])["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "MlflowUnitDown",
        "MlflowServerErrors",
        "MlflowSlowRequests",
    }
    unit: dict[str, str] = dict(out.get_relation(relation.id).local_unit_data)
    assert unit["prometheus_scrape_unit_address"] == (
        "mlflow-tracking-0.mlflow-tracking-endpoints.test-model.svc.cluster.local"
    )
    # No password anywhere: the listener needs no login.
    assert "basic_auth" not in app["scrape_jobs"]


def test_the_metrics_listener_runs_beside_the_server_when_the_image_has_the_exporter(ctx: Ctx):
    out = ctx.run(ctx.on.config_changed(), make_state())
    service = out.get_container(CONTAINER).plan.services[METRICS_SERVICE].to_dict()
    assert service["startup"] == "enabled"
    assert service["command"] == (
        "python3 /etc/mlflow/metrics.py 0.0.0.0 9102 /etc/mlflow/server.env"
    )
    # Its reader of the env file comes with the gc runner, on every unit.
    files = out.get_container(CONTAINER).get_filesystem(ctx) / "etc/mlflow"
    assert (files / "mlflow_gc.py").exists()
    assert service["environment"] == {"PROMETHEUS_MULTIPROC_DIR": "/tmp/mlflow-metrics"}


def test_without_the_exporter_in_the_image_the_listener_stays_off(ctx: Ctx):
    modules = "mlflow_cratedb,psycopg2,pymysql,httptools,uvloop,flask_wtf"
    out = ctx.run(ctx.on.config_changed(), make_state(workload=container(modules=modules)))
    service = out.get_container(CONTAINER).plan.services[METRICS_SERVICE].to_dict()
    assert service["startup"] == "disabled"
