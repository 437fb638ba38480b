"""Stand-ins for the ingress charms: traefik-k8s (``ingress`` v2) and istio-ingress-k8s.

traefik-k8s, from its published source (read with the search tool's fetch,
2026-11): ``lib/charms/traefik_k8s/v2/ingress.py`` (LIBPATCH 21) and
``src/charm.py``. The facts carried over:

- Every databag value is JSON. The requirer's application databag holds
  ``model``, ``name``, ``port`` and optionally ``scheme`` (default ``http``),
  ``strip-prefix``, ``redirect-https``; each requirer unit's holds ``host`` and
  ``ip``. Invalid data makes traefik log an error and route nothing.
- The route's prefix is ``<model>-<name>`` (``/`` in the name becomes ``-``).
  It routes to ``<scheme>://<unit host>:<port>`` for every unit, stripping the
  prefix when ``strip-prefix`` is true. Routing mode ``path`` (the default)
  answers ``http://<external host>/<prefix>``; ``subdomain`` answers
  ``http://<prefix>.<external host>/``.
- The answer is ``ingress`` = ``{"url": ...}`` in traefik's application databag.

istio-ingress-k8s answers through ``charmlibs-interfaces-istio-ingress-route``'s
``IstioIngressRouteProvider`` (``external_host`` and ``tls_enabled`` in its
application databag) and reads the requirer's ``config`` with ``get_config``;
the stand-in uses that provider class, as istio-ingress-k8s does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import ops

TRAEFIK_META = {"name": "traefik", "provides": {"ingress": {"interface": "ingress"}}}
TRAEFIK_CONFIG = {
    "options": {
        "external_hostname": {"type": "string", "default": "ingress.example.com"},
        "routing_mode": {"type": "string", "default": "path"},
    }
}


APP_FIELDS = {
    "model",
    "name",
    "port",
    "scheme",
    "strip-prefix",
    "redirect-https",
    "is_port_open",
    "healthcheck_params",
}
UNIT_FIELDS = {"host", "ip"}


@dataclass(frozen=True)
class Route:
    """What traefik would configure: the public prefix and the backends behind it."""

    prefix: str
    strip_prefix: bool
    backends: tuple[str, ...]


def traefik_route(app_data: dict[str, str], units_data: list[dict[str, str]]) -> Route:
    """Read a requirer's databags as traefik does; ValueError where traefik would refuse."""
    try:
        # Like the library's models: only the schema's fields are parsed, others ignored.
        app = {k: json.loads(v) for k, v in app_data.items() if k in APP_FIELDS}
        units = [{k: json.loads(v) for k, v in u.items() if k in UNIT_FIELDS} for u in units_data]
        scheme = app.get("scheme", "http")
        port = app["port"]
        if scheme not in ("http", "https", "h2c") or not isinstance(port, int):
            raise ValueError("invalid scheme or port")
        prefix = f"{app['model']}-{str(app['name']).replace('/', '-')}"
        backends = tuple(sorted(f"{scheme}://{u['host']}:{port}" for u in units if "host" in u))
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"invalid ingress request: {err!r}") from None
    return Route(prefix, bool(app.get("strip-prefix", False)), backends)


class TraefikStandIn(ops.CharmBase):
    """Answers ingress v2 requests as traefik-k8s does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.ingress_relation_changed, self._on_changed)

    def _on_changed(self, event: ops.RelationChangedEvent) -> None:
        if not self.unit.is_leader() or event.app is None:
            return
        units = [dict(event.relation.data[u]) for u in event.relation.units]
        try:
            route = traefik_route(dict(event.relation.data[event.app]), units)
        except ValueError:
            event.relation.data[self.app].pop("ingress", None)
            return
        host = str(self.config["external_hostname"])
        if self.config["routing_mode"] == "subdomain":
            url = f"http://{route.prefix}.{host}/"
        else:
            url = f"http://{host}/{route.prefix}"
        event.relation.data[self.app]["ingress"] = json.dumps({"url": url})


ISTIO_META = {
    "name": "istio-ingress",
    "provides": {"istio-ingress-route": {"interface": "istio_ingress_route"}},
}


class IstioStandIn(ops.CharmBase):
    """Publishes the gateway's address through the library's provider, as istio-ingress-k8s does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        from charmlibs.interfaces.istio_ingress_route import IstioIngressRouteProvider

        self.provider = IstioIngressRouteProvider(
            self,
            relation_name="istio-ingress-route",
            external_host="gateway.example.com",
            tls_enabled=False,
        )
        framework.observe(self.provider.on.ready, self._on_ready)

    def _on_ready(self, event: Any) -> None:
        if self.provider.get_config(event.relation) is not None:
            self.provider.update_ingress_address()
