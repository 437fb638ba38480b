"""COS: the workload's logs to Loki, by Pebble's own log forwarding (``logging`` relation).

Interface ``loki_push_api``, requirer side, written from loki-k8s's charm
library (``charms.loki_k8s.v1.loki_push_api``: the provider's units each put
``endpoint`` = JSON ``{"url": ".../loki/api/v1/push"}`` in their unit databag;
its ``LogForwarder`` turns each into a Pebble log target). No PyPI package
implements it; ``cosl`` gives the topology labels. Pebble ships the service
output itself (``log-targets``, type ``loki``); nothing runs in the workload
for it. Without the relation every target is switched off (``-all``).
Its source is ``common/log_forwarding.py``; each charm ships a copy (see
``common/README.md``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import cast
from urllib.parse import urlsplit

import ops

LOGGING_RELATION = "logging"
# The layer that holds only the log targets, for charms whose service layer has none.
LOGGING_LAYER = "logging"
logger = logging.getLogger(__name__)


def loki_urls(relations: list[ops.Relation]) -> dict[str, str]:
    """Target name -> push URL, one per Loki unit that published an endpoint."""
    urls: dict[str, str] = {}
    for relation in relations:
        for unit in sorted(relation.units, key=lambda u: u.name):
            raw = relation.data[unit].get("endpoint", "")
            try:
                url = str(json.loads(raw)["url"]) if raw else ""
            except (ValueError, KeyError, TypeError):
                logger.warning("%s sent an unreadable Loki endpoint", unit.name)
                continue
            if _usable(url):
                urls[f"loki-{unit.name.replace('/', '-')}"] = url
            else:
                logger.warning(
                    "%s sent a Loki endpoint that is not a plain http(s) URL", unit.name
                )
    return urls


def _usable(url: str) -> bool:
    """An http(s) URL with a host, no user part, no whitespace or control character."""
    if len(url) > 2048 or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not one)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def log_targets(
    urls: dict[str, str], topology: dict[str, str], known: Iterable[str] = ()
) -> dict[str, dict]:
    """The layer's ``log-targets``: every service's output to each URL; ``known`` ones off."""
    labels = {"product": "Juju", **{f"juju_{k}": v for k, v in topology.items() if v}}
    targets: dict[str, dict] = {
        name: {
            "override": "replace",
            "type": "loki",
            "location": "http://disabled.invalid",
            "services": ["-all"],
        }
        for name in known
    }
    for name, url in urls.items():
        targets[name] = {
            "override": "replace",
            "type": "loki",
            "location": url,
            "services": ["all"],
            "labels": labels,
        }
    return targets


def topology_labels(charm: ops.CharmBase) -> dict[str, str]:
    """model, model_uuid, application, unit, charm_name: the labels every line carries."""
    from cosl import JujuTopology  # here: ~0.13 s to import, not needed without Loki

    return {k: str(v) for k, v in JujuTopology.from_charm(charm).as_dict().items() if v}


def forward_logs(charm: ops.CharmBase, container: ops.Container) -> bool:
    """Point ``container``'s log forwarding at the related Loki units, or switch it off.

    A layer of its own, added only when a target changed: it restarts no
    service. True when the layer was added.
    """
    current = container.get_plan().log_targets
    urls = loki_urls(charm.model.relations[LOGGING_RELATION])
    targets = log_targets(urls, topology_labels(charm) if urls else {}, known=current)
    wanted = ops.pebble.Layer(cast(ops.pebble.LayerDict, {"log-targets": targets}))
    if all(
        name in current and current[name].to_dict() == target.to_dict()
        for name, target in wanted.log_targets.items()
    ):
        return False
    container.add_layer(LOGGING_LAYER, wanted, combine=True)
    return True
