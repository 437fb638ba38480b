"""COS: the ``metrics-endpoint`` relation (interface ``prometheus_scrape``), provider side.

No PyPI package implements the interface (prometheus-k8s's charm library
does); ``cosl`` supplies the Juju topology and the alert-rule handling. Fields,
this charm (provider) to Prometheus or an agent (requirer), written from the
interface's published schema (canonical/charm-relation-interfaces,
``interfaces/prometheus_scrape/v0``) and the library's provider:

    app databag (leader)
        ``scrape_jobs``      JSON list of Prometheus scrape configs; a target
                             ``*:PORT`` means "every unit's address, this port"
        ``scrape_metadata``  JSON Juju topology: model, model_uuid,
                             application, unit, charm_name
        ``alert_rules``      JSON ``{"groups": [...]}``, rules with the topology
                             labels added (cosl.AlertRules)
    unit databag (every unit)
        ``prometheus_scrape_unit_address``  where this unit is scraped
        ``prometheus_scrape_unit_name``     the unit's name

Nothing is read back: the requirer sends nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import ops
from cosl import AlertRules, JujuTopology

METRICS_RELATION = "metrics-endpoint"
ALERT_RULES_DIR = Path(__file__).parent / "prometheus_alert_rules"


def scrape_jobs(port: int) -> list[dict]:
    """One job: the metrics listener of every unit (metrics only, no login; see metrics.py)."""
    return [{"metrics_path": "/metrics", "static_configs": [{"targets": [f"*:{port}"]}]}]


def alert_rules(topology: JujuTopology, rules_dir: Path = ALERT_RULES_DIR) -> dict:
    """The charm's alert rules with the topology labels, as the relation carries them."""
    rules = AlertRules(query_type="promql", topology=topology)
    rules.add_path(rules_dir, recursive=True)
    return rules.as_dict()


class MetricsEndpoint:
    """Publishes the scrape job, the topology and the alert rules."""

    def __init__(self, charm: ops.CharmBase, port: int):
        self._charm = charm
        self._port = port

    def events(self) -> list[ops.BoundEvent]:
        """Events after which the relation may need its data (again)."""
        on = self._charm.on[METRICS_RELATION]
        return [on.relation_created, on.relation_joined]

    def publish(self, unit_address: str) -> None:
        """Write the unit's address on every relation, and (leader) the jobs and rules."""
        charm = self._charm
        relations = charm.model.relations[METRICS_RELATION]
        if not relations:
            return
        topology = JujuTopology.from_charm(charm)
        app_data = {
            "scrape_jobs": json.dumps(scrape_jobs(self._port)),
            "scrape_metadata": json.dumps(topology.as_dict()),
            "alert_rules": json.dumps(alert_rules(topology)),
        }
        unit_data = {
            "prometheus_scrape_unit_address": unit_address,
            "prometheus_scrape_unit_name": charm.unit.name,
        }
        for relation in relations:
            _update(relation.data[charm.unit], unit_data)
            if charm.unit.is_leader():
                _update(relation.data[charm.app], app_data)


def _update(databag: ops.RelationDataContent, wanted: dict[str, str]) -> None:
    if any(databag.get(k) != v for k, v in wanted.items()):
        databag.update(wanted)
