"""COS on the relations: what Grafana and Prometheus read from each of the three charms.

Grafana's side is a stand-in written from grafana-k8s's ``grafana_dashboard``
library (LIBAPI 0, LIBPATCH 48, canonical/grafana-k8s-operator): its consumer
reads ``dashboards`` from the provider's app databag, takes ``templates``,
and for each one decompresses ``content`` (LZMA + base64), keeps a uid that
is a valid 40-character "Path40" uid, swaps the panels' ``${prometheusds}``
for its datasource and adds the topology dropdowns when ``inject_dropdowns``
is true. It reports a dashboard it could not load back as ``event`` in its
own app databag. Prometheus's side follows the ``prometheus_scrape`` schema
(canonical/charm-relation-interfaces, interfaces/prometheus_scrape/v0).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from cosl import LZMABase64
from cosl.grafana_dashboard import DashboardPath40UID
from ops import testing

from stack.charm_loader import REPO
from tests.contract.chain import context
from tests.contract.test_contracts import (  # noqa: F401 (doors: the charms' stubbed doors)
    cratedb_state,
    doors,
    mlflow_state,
    seaweed_state,
)

STATES = {"mlflow-tracking": mlflow_state, "cratedb": cratedb_state, "seaweedfs": seaweed_state}
CHARMS = sorted(STATES)


def grafana_reads(app_data: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The dashboards Grafana's consumer would load: key -> template with its JSON decoded."""
    loaded = {}
    for key, template in json.loads(app_data["dashboards"])["templates"].items():
        assert {"charm", "content", "juju_topology", "inject_dropdowns"} <= set(template)
        dashboard = json.loads(LZMABase64.decompress(template["content"]))
        assert isinstance(dashboard, dict)
        loaded[key] = {**template, "dashboard": dashboard}
    return loaded


def grafana(remote_app_data: dict[str, str] | None = None) -> testing.Relation:
    return testing.Relation(
        "grafana-dashboard", remote_app_name="grafana", remote_app_data=remote_app_data or {}
    )


def _run(charm: str, relation: testing.Relation, leader: bool = True) -> tuple[Any, Any]:
    ctx = context(charm)
    state = dataclasses.replace(STATES[charm](relation), leader=leader)
    return ctx, ctx.run(ctx.on.relation_joined(relation, remote_unit=0), state)


@pytest.mark.parametrize("charm", CHARMS)
def test_grafana_loads_one_dashboard_per_charm_with_a_stable_uid(charm: str):
    relation = grafana()
    _, out = _run(charm, relation)
    loaded = grafana_reads(dict(out.get_relation(relation.id).local_app_data))
    assert list(loaded) == [f"file:{charm}"]
    template = loaded[f"file:{charm}"]
    assert template["charm"] == charm
    assert template["inject_dropdowns"] is True
    assert template["juju_topology"]["application"] == charm
    dashboard = template["dashboard"]
    # The uid Grafana's library gives the same file: the dashboard keeps its URL.
    assert dashboard["uid"] == DashboardPath40UID.generate(
        charm, f"src/grafana_dashboards/{charm}.json"
    )
    assert DashboardPath40UID.is_valid(dashboard["uid"])
    assert f"charm: {charm}" in dashboard["tags"]
    panels = dashboard["panels"]
    assert len(panels) >= 8
    for panel in panels:
        assert panel["datasource"] == "${prometheusds}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["description"], panel["title"]


@pytest.mark.parametrize("charm", CHARMS)
def test_the_dashboards_value_does_not_change_from_one_hook_to_the_next(charm: str):
    relation = grafana()
    ctx, out = _run(charm, relation)
    first = out.get_relation(relation.id).local_app_data["dashboards"]
    again = ctx.run(ctx.on.update_status(), out)
    assert again.get_relation(relation.id).local_app_data["dashboards"] == first


@pytest.mark.parametrize("charm", CHARMS)
def test_only_the_leader_writes_the_dashboards(charm: str):
    relation = grafana()
    _, out = _run(charm, relation, leader=False)
    assert "dashboards" not in out.get_relation(relation.id).local_app_data


@pytest.mark.parametrize("charm", CHARMS)
def test_a_dashboard_grafana_refused_is_logged_with_its_error(charm: str):
    event = json.dumps({"valid": False, "errors": ["panel 3: bad expression"]})
    relation = grafana({"event": event})
    ctx, _ = _run(charm, relation)
    warnings = [log.message for log in ctx.juju_log if log.level == "WARNING"]
    assert any("refused a dashboard: panel 3: bad expression" in m for m in warnings), warnings


def test_cratedb_publishes_its_exporter_job_and_the_health_alerts():
    relation = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    ctx, out = _run("cratedb", relation)
    app = dict(out.get_relation(relation.id).local_app_data)
    assert json.loads(app["scrape_jobs"]) == [
        {"metrics_path": "/metrics", "static_configs": [{"targets": ["*:9103"]}]}
    ]
    rules = json.loads(app["alert_rules"])["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "CratedbUnitDown",
        "CratedbNotAnswering",
        "CratedbHealthNotGreen",
        "CratedbHealthRed",
        "CratedbRunningOutOfSpace",
        "CratedbHeapPressure",
        "CratedbScheduledBackupFailed",
    }
    unit = dict(out.get_relation(relation.id).local_unit_data)
    assert unit["prometheus_scrape_unit_address"] == (
        f"cratedb-0.cratedb-endpoints.{out.model.name}.svc.cluster.local"
    )
    # The exporter runs beside the node, as the crate user, reading the local node.
    # In the pod it listens on every interface for Prometheus; this is the plan in
    # ops.testing, nothing starts here (the workload tests run it on 127.0.0.1).
    workload = out.get_container("cratedb")
    service = workload.plan.services["cratedb-metrics"].to_dict()
    assert service["command"] == (
        "python3 /etc/cratedb/metrics.py 0.0.0.0 9103 http://127.0.0.1:4200 cratedb-0 "
        "/var/lib/cratedb-charm/backup-state.json"
    )
    assert service["user"] == "crate"
    pushed = workload.get_filesystem(ctx) / "etc/cratedb/metrics.py"
    assert pushed.read_text() == (REPO / "charms/cratedb/src/in_container/metrics.py").read_text()


def test_every_rule_and_dashboard_file_is_where_the_charms_read_them():
    for charm in CHARMS:
        src = REPO / "charms" / charm / "src"
        assert list(Path(src, "prometheus_alert_rules").glob("*.rules")), charm
        assert [p.name for p in Path(src, "grafana_dashboards").glob("*.json")] == [
            f"{charm}.json"
        ]
