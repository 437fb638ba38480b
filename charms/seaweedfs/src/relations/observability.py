"""COS, provider side: ``metrics-endpoint`` and ``grafana-dashboard``.

No PyPI package implements these interfaces (the prometheus-k8s and
grafana-k8s charm libraries do); ``cosl`` supplies the Juju topology, the
alert-rule handling, the dashboards' compression and their uid. Its source is
``common/observability.py``; each charm ships a copy (see ``common/README.md``).

``metrics-endpoint`` (interface ``prometheus_scrape``), written from the
interface's published schema (canonical/charm-relation-interfaces,
``interfaces/prometheus_scrape/v0``) and prometheus-k8s's provider:

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

``grafana-dashboard`` (interface ``grafana_dashboard``), written from
grafana-k8s's ``grafana_dashboard`` library (LIBAPI 0, LIBPATCH 48): its
provider's databag and what its consumer does with it:

    app databag (leader)
        ``dashboards``  JSON ``{"templates": {"file:<stem>": {
                            "charm": charm name,
                            "content": the dashboard JSON, LZMA-compressed and
                                       base64-encoded (cosl.LZMABase64),
                            "juju_topology": model, model_uuid, application, unit,
                            "inject_dropdowns": true,
                            "dashboard_alt_uid": 16 hex digits}},
                        "uuid": changes whenever the templates do}``
    from Grafana (its app databag)
        ``event``       JSON ``{"valid": bool, "errors": [...]}`` when a
                        dashboard failed to load: logged here

Grafana adds the ``${prometheusds}`` datasource and the Juju topology
dropdowns, and injects the topology matchers into every expression: the
dashboards' queries name bare metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import ops

# cosl is imported where it is used: it costs ~0.13 s to import, which every
# hook of a unit without COS relations would pay for nothing.
if TYPE_CHECKING:
    from cosl import JujuTopology

logger = logging.getLogger(__name__)

METRICS_RELATION = "metrics-endpoint"
DASHBOARDS_RELATION = "grafana-dashboard"
# Beside the charm's modules in src/ (this module is in src/relations/).
ALERT_RULES_DIR = Path(__file__).parent.parent / "prometheus_alert_rules"
DASHBOARDS_DIR = Path(__file__).parent.parent / "grafana_dashboards"


def scrape_jobs(port: int) -> list[dict]:
    """One job: the workload's metrics listener on every unit (metrics only, no login)."""
    return [{"metrics_path": "/metrics", "static_configs": [{"targets": [f"*:{port}"]}]}]


def alert_rules(topology: JujuTopology, rules_dir: Path = ALERT_RULES_DIR) -> dict:
    """The charm's alert rules with the topology labels, as the relation carries them."""
    from cosl import AlertRules

    rules = AlertRules(query_type="promql", topology=topology)
    rules.add_path(rules_dir, recursive=True)
    return rules.as_dict()


def dashboard_templates(
    charm_name: str, topology: dict[str, str], dashboards_dir: Path = DASHBOARDS_DIR
) -> dict[str, dict]:
    """Each ``*.json`` dashboard as the relation carries it, keyed ``file:<stem>``.

    The uid is the one Grafana's own library gives a charm's file (charm name
    and path in the charm), so the dashboard keeps its URL across revisions.
    """
    from cosl import LZMABase64
    from cosl.grafana_dashboard import DashboardPath40UID

    templates = {}
    for path in sorted(dashboards_dir.glob("*.json")):
        dashboard = json.loads(path.read_text())
        dashboard["uid"] = DashboardPath40UID.generate(
            charm_name, f"src/{dashboards_dir.name}/{path.name}"
        )
        tags = dashboard.setdefault("tags", [])
        if not any(str(tag).startswith("charm: ") for tag in tags):
            tags.append(f"charm: {charm_name}")
        key = f"file:{path.stem}"
        templates[key] = {
            "charm": charm_name,
            "content": LZMABase64.compress(json.dumps(dashboard)),
            "juju_topology": topology,
            "inject_dropdowns": True,
            "dashboard_alt_uid": hashlib.shake_256(f"{charm_name}-{key}".encode()).hexdigest(8),
        }
    return templates


def dashboards_data(templates: dict[str, dict]) -> str:
    """The ``dashboards`` value: the templates and a uuid that changes only with them."""
    content = json.dumps(templates, sort_keys=True)
    return json.dumps(
        {"templates": templates, "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, content))}
    )


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
        from cosl import JujuTopology

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


class GrafanaDashboards:
    """Publishes the charm's dashboards (leader) and logs what Grafana says of them."""

    def __init__(self, charm: ops.CharmBase):
        self._charm = charm

    def events(self) -> list[ops.BoundEvent]:
        """Events after which the relation may need its data (again)."""
        on = self._charm.on[DASHBOARDS_RELATION]
        return [on.relation_created, on.relation_joined, on.relation_changed]

    def publish(self) -> None:
        """(Leader) write the dashboards on every relation; log Grafana's errors."""
        charm = self._charm
        relations = charm.model.relations[DASHBOARDS_RELATION]
        if not relations or not charm.unit.is_leader():
            return
        topology = {
            "model": charm.model.name,
            "model_uuid": charm.model.uuid,
            "application": charm.app.name,
            "unit": charm.unit.name,
        }
        data = dashboards_data(dashboard_templates(charm.meta.name, topology))
        for relation in relations:
            _update(relation.data[charm.app], {"dashboards": data})
            for error in grafana_errors(relation):
                logger.warning("Grafana (relation %s) refused a dashboard: %s", relation.id, error)


def grafana_errors(relation: ops.Relation) -> list[str]:
    """The errors Grafana reported for the dashboards, [] when it reported none."""
    if relation.app is None:
        return []
    try:
        event = json.loads(relation.data[relation.app].get("event") or "{}")
    except json.JSONDecodeError:
        return ["unreadable 'event' from Grafana"]
    if not isinstance(event, dict):
        return ["unreadable 'event' from Grafana"]
    errors = [str(e) for e in event.get("errors") or []]
    if event.get("valid", True) and not errors:
        return []
    return errors or ["invalid dashboard"]


def _update(databag: ops.RelationDataContent, wanted: dict[str, str]) -> None:
    if any(databag.get(k) != v for k, v in wanted.items()):
        databag.update(wanted)
