"""MLflow in Charmed Kubeflow's dashboard sidebar (``dashboard-links``).

What kubeflow-dashboard reads, from its library
``charms.kubeflow_dashboard.v0.kubeflow_dashboard_links`` (LIBPATCH 2): the
app databag's ``dashboard_links``, a JSON list whose items become
``DashboardLink(**item)`` (fields below), in one of its known locations.
"""

from __future__ import annotations

import json
from typing import Any

from ops import testing

from constants import DASHBOARD_LINKS_RELATION
from helpers import make_state, traefik_relation

Ctx = testing.Context[Any]
DASHBOARD_LINK_FIELDS = {"text", "link", "location", "icon", "type", "desc"}
DASHBOARD_LINK_LOCATIONS = {"menu", "external", "quick", "documentation"}


def dashboard() -> testing.Relation:
    return testing.Relation(DASHBOARD_LINKS_RELATION, remote_app_name="kubeflow-dashboard")


def sent(state: testing.State, relation: testing.Relation) -> list[dict[str, str]]:
    data: dict[str, str] = dict(state.get_relation(relation.id).local_app_data)
    return list(json.loads(data["dashboard_links"]))


def test_with_an_ingress_the_sidebar_links_to_the_ui_at_its_url(ctx: Ctx):
    links, ingress = (
        dashboard(),
        traefik_relation("http://ingress.example.com/test-model-mlflow-tracking"),
    )
    out = ctx.run(ctx.on.relation_created(links), make_state(links, ingress))
    [link] = sent(out, links)
    assert set(link) == DASHBOARD_LINK_FIELDS
    assert link["location"] in DASHBOARD_LINK_LOCATIONS
    assert (link["text"], link["link"], link["location"]) == (
        "MLflow",
        "http://ingress.example.com/test-model-mlflow-tracking/",
        "external",
    )


def test_without_an_ingress_there_is_no_url_to_link_and_no_link(ctx: Ctx):
    links = dashboard()
    out = ctx.run(ctx.on.relation_created(links), make_state(links))
    assert sent(out, links) == []


def test_only_the_leader_writes(ctx: Ctx):
    links, ingress = dashboard(), traefik_relation()
    out = ctx.run(ctx.on.relation_created(links), make_state(links, ingress, leader=False))
    assert "dashboard_links" not in dict(out.get_relation(links.id).local_app_data)
