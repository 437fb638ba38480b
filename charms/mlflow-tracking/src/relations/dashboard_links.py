"""MLflow in Charmed Kubeflow's dashboard sidebar: the ``dashboard-links`` relation.

Interface ``kubeflow_dashboard_links``, written from the kubeflow-dashboard
charm's library ``charms.kubeflow_dashboard.v0.kubeflow_dashboard_links``
(LIBPATCH 2; no PyPI package implements it) and Charmed MLflow's use of it
(``src/charm.py``: text "MLflow", icon ``device:data-usage``, location
``external``). Fields, requirer (this charm) to provider (kubeflow-dashboard):

    app databag ``dashboard_links``  JSON list of links, each
        ``text``      shown in the sidebar
        ``link``      where it points (a full URL for ``external``)
        ``location``  ``menu``, ``external``, ``quick`` or ``documentation``
        ``icon``      an iron-icons name
        ``type``      ``item``
        ``desc``      a description (may be empty)

Only the leader writes. The link is the UI at the ingress URL; without an
ingress there is no URL a browser can open, so the list is empty.
"""

from __future__ import annotations

import json

import ops

from constants import DASHBOARD_LINKS_RELATION

FIELD = "dashboard_links"


def links(ui_url: str | None) -> list[dict[str, str]]:
    """The sidebar entries: MLflow's UI, when it has a URL outside the cluster."""
    if not ui_url:
        return []
    return [
        {
            "text": "MLflow",
            "link": ui_url,
            "location": "external",
            "icon": "device:data-usage",
            "type": "item",
            "desc": "Experiments, runs and models tracked in MLflow",
        }
    ]


def publish(charm: ops.CharmBase, ui_url: str | None) -> None:
    """Write the links on every dashboard-links relation (leader only; unchanged: no write)."""
    if not charm.unit.is_leader():
        return
    wanted = json.dumps(links(ui_url), sort_keys=True)
    for relation in charm.model.relations[DASHBOARD_LINKS_RELATION]:
        data = relation.data[charm.app]
        if data.get(FIELD) != wanted:
            data[FIELD] = wanted
