"""COS: what Prometheus (or an agent) reads on metrics-endpoint.

The fields are those of the prometheus_scrape interface's published schema
(canonical/charm-relation-interfaces, interfaces/prometheus_scrape/v0).
"""

from __future__ import annotations

import json
from typing import Any

from ops import testing

from helpers import ME, MODEL, make_state

Ctx = testing.Context[Any]


def metrics() -> testing.Relation:
    return testing.Relation("metrics-endpoint", remote_app_name="prometheus")


def test_the_leader_publishes_the_metrics_job_the_topology_and_alert_rules(ctx: Ctx):
    relation = metrics()
    out = ctx.run(ctx.on.relation_joined(relation, remote_unit=0), make_state(relation))
    app: dict[str, str] = dict(out.get_relation(relation.id).local_app_data)
    assert json.loads(app["scrape_jobs"]) == [
        {"metrics_path": "/metrics", "static_configs": [{"targets": ["*:9327"]}]}
    ]
    topology = json.loads(app["scrape_metadata"])
    assert (topology["model"], topology["application"], topology["charm_name"]) == (
        MODEL,
        "seaweedfs",
        "seaweedfs",
    )
    rules = json.loads(app["alert_rules"])["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {
        "SeaweedfsUnitDown",
        "SeaweedfsRunningOutOfSpace",
        "SeaweedfsWritePlacementFailing",
    } <= names
    assert all(rule["labels"]["juju_application"] == "seaweedfs" for rule in rules)
    assert all(rule["annotations"]["summary"] for rule in rules)


def test_every_unit_says_where_it_is_scraped(ctx: Ctx):
    relation = metrics()
    out = ctx.run(
        ctx.on.relation_joined(relation, remote_unit=0), make_state(relation, leader=False)
    )
    unit: dict[str, str] = dict(out.get_relation(relation.id).local_unit_data)
    assert unit["prometheus_scrape_unit_address"] == ME.address
    assert unit["prometheus_scrape_unit_name"] == "seaweedfs/0"
    assert "scrape_jobs" not in dict(out.get_relation(relation.id).local_app_data)
