"""Ingress: the MLflow UI and API at a URL outside the cluster, through traefik or Istio.

Two endpoints, one at a time:

``ingress`` (traefik-k8s's ``ingress`` interface, v2). No PyPI package
implements it, so the requirer side is written here from the interface's
published schema (canonical/charm-relation-interfaces ``interfaces/ingress/v2``)
and traefik-k8s's own library (``lib/charms/traefik_k8s/v2/ingress.py``,
LIBPATCH 21), read with the search tool's fetch. Every value is JSON-encoded.

requirer -> provider, this application's databag (leader):
    ``model``           this model's name (a JSON string)
    ``name``            this application's name
    ``port``            the port to route to (5000)
    ``scheme``          ``"http"`` (``"https"`` once the server serves TLS)
    ``strip-prefix``    ``true``: traefik removes the ``/<model>-<app>`` prefix,
                        so MLflow keeps serving at ``/``
    ``redirect-https``  ``false``
requirer -> provider, each unit's databag:
    ``host``            the unit's stable DNS name
                        (``<app>-<n>.<app>-endpoints.<model>.svc.<domain>``)
    ``ip``              the unit's address on the relation
provider -> requirer, traefik's application databag:
    ``ingress``         ``{"url": "http(s)://<host>/<model>-<app>"}`` with
                        traefik's per-app routing, ``http(s)://<model>-<app>.<host>/``
                        with subdomain routing.

``istio-ingress-route`` (istio-ingress-k8s's ``istio_ingress_route``, the
route Charmed MLflow uses in Kubeflow's ambient mode) through the maintained
``charmlibs-interfaces-istio-ingress-route`` package: an HTTPRoute matching
the prefix ``/<model>-<app>/``, rewritten to ``/``, to this application's
service; the gateway answers with ``external_host`` and ``tls_enabled``.

MLflow's UI loads its assets by relative paths, so behind a prefix it must be
opened with the trailing slash (``ui_url``); the tracking API works with or
without it.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ops

from constants import INGRESS_RELATION, ISTIO_INGRESS_RELATION

logger = logging.getLogger(__name__)

_NETLOC = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?")
_PATH = re.compile(r"(/[A-Za-z0-9._~-]*)*")


@dataclass(frozen=True)
class IngressRequest:
    """What this application asks traefik for."""

    model: str
    name: str
    port: int
    scheme: str = "http"
    strip_prefix: bool = True
    redirect_https: bool = False


def app_databag(request: IngressRequest) -> dict[str, str]:
    """The leader's side of the request, JSON-encoded field by field."""
    return {
        "model": json.dumps(request.model),
        "name": json.dumps(request.name),
        "port": json.dumps(request.port),
        "scheme": json.dumps(request.scheme),
        "strip-prefix": json.dumps(request.strip_prefix),
        "redirect-https": json.dumps(request.redirect_https),
    }


def unit_databag(host: str, ip: str | None) -> dict[str, str]:
    """Each unit's side: where traefik reaches it."""
    data = {"host": json.dumps(host)}
    if ip:
        data["ip"] = json.dumps(ip)
    return data


def unit_host(unit: str, app: str, model: str, cluster_domain: str) -> str:
    """A unit's stable pod DNS name (the headless ``<app>-endpoints`` service)."""
    return f"{unit.replace('/', '-')}.{app}-endpoints.{model}.svc.{cluster_domain}"


def route_prefix(model: str, app: str) -> str:
    """The path prefix the ingress routes to this application (traefik's per-app form)."""
    return f"/{model}-{app}"


def parse_traefik_answer(remote: dict[str, str]) -> str | None:
    """The URL in traefik's answer; None before it answers. ValueError when malformed."""
    raw = remote.get("ingress")
    if not raw:
        return None
    try:
        url = json.loads(raw)["url"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError("the ingress field is not a JSON object with a url") from None
    return check_url(url)


def check_url(url: Any) -> str:
    """An http(s) URL with a host, without a trailing slash; ValueError otherwise."""
    parts = urlsplit(str(url))
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not _NETLOC.fullmatch(parts.netloc)
        or not _PATH.fullmatch(parts.path)
        or parts.query
        or parts.fragment
    ):
        raise ValueError("not an http(s) URL")
    return str(url).rstrip("/")


def ui_url(url: str) -> str:
    """Where a browser opens the UI: with the trailing slash its relative assets need."""
    return url.rstrip("/") + "/"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a browser sends as ``Origin``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def host_header(url: str) -> str:
    """``host[:port]`` of a URL: what a browser sends as ``Host``."""
    return urlsplit(url).netloc


@dataclass(frozen=True)
class IngressReading:
    """What the ingress relations offer right now."""

    endpoint: str
    app: str
    url: str | None = None
    waiting: str | None = None
    problem: str | None = None


@functools.cache
def _istio() -> Any:
    """charmlibs-interfaces-istio-ingress-route, imported only while it is related."""
    import charmlibs.interfaces.istio_ingress_route as lib

    return lib


def istio_config(model: str, app: str, port: int) -> Any:
    """The HTTPRoute: ``/<model>-<app>/`` on the gateway, rewritten to ``/``, to our service."""
    lib = _istio()
    listener = lib.Listener(port=80, protocol=lib.ProtocolType.HTTP)
    return lib.IstioIngressRouteConfig(
        model=model,
        listeners=[listener],
        http_routes=[
            lib.HTTPRoute(
                name="mlflow",
                listener=listener,
                matches=[
                    lib.HTTPRouteMatch(
                        path=lib.HTTPPathMatch(value=route_prefix(model, app) + "/")
                    )
                ],
                filters=[
                    lib.URLRewriteFilter(
                        urlRewrite=lib.URLRewriteSpec(
                            path=lib.PathModifier(
                                type=lib.PathModifierType.ReplacePrefixMatch, value="/"
                            )
                        )
                    )
                ],
                backends=[lib.BackendRef(service=app, port=port)],
            )
        ],
    )


class IngressRelations:
    """The ``ingress`` (traefik) and ``istio-ingress-route`` endpoints."""

    def __init__(self, charm: ops.CharmBase):
        self._charm = charm
        # The library observes its relation's events: one instance, made only when related.
        self._istio_requirer: Any = None
        if charm.model.relations[ISTIO_INGRESS_RELATION]:
            self._istio_requirer = _istio().IstioIngressRouteRequirer(
                charm, ISTIO_INGRESS_RELATION
            )

    def events(self) -> list[ops.BoundEvent]:
        """Events that mean "the ingress may have changed"."""
        bound: list[ops.BoundEvent] = []
        for name in (INGRESS_RELATION, ISTIO_INGRESS_RELATION):
            on = self._charm.on[name]
            bound += [on.relation_created, on.relation_joined, on.relation_changed]
            bound.append(on.relation_broken)
        return bound

    def _related(self) -> list[ops.Relation]:
        model = self._charm.model
        return [*model.relations[INGRESS_RELATION], *model.relations[ISTIO_INGRESS_RELATION]]

    def publish(self, port: int, cluster_domain: str, scheme: str = "http") -> None:
        """Ask for the route: the leader writes the app side, every unit its own address.

        ``scheme`` is what the server speaks: traefik must call it over HTTPS
        once it serves a certificate (and trust that certificate's CA).
        """
        charm = self._charm
        model, app = charm.model.name, charm.app.name
        for relation in charm.model.relations[INGRESS_RELATION]:
            binding = charm.model.get_binding(relation)
            address = binding.network.bind_address if binding is not None else None
            wanted = unit_databag(
                unit_host(charm.unit.name, app, model, cluster_domain),
                str(address) if address is not None else None,
            )
            _update(relation.data[charm.unit], wanted)
            if charm.unit.is_leader():
                request = IngressRequest(model=model, name=app, port=port, scheme=scheme)
                _update(relation.data[charm.app], app_databag(request))
        if charm.unit.is_leader() and self._istio_requirer is not None:
            self._istio_requirer.submit_config(istio_config(model, app, port))

    def read(self) -> IngressReading | None:
        """The URL the ingress gives; None when no ingress is related."""
        related = self._related()
        if not related:
            return None
        apps = [(rel.name, rel.app.name if rel.app else "?") for rel in related]
        if len(related) > 1:
            names = " and ".join(f"{endpoint} ({app})" for endpoint, app in apps)
            return IngressReading(
                apps[0][0], apps[0][1], problem=f"two ingresses related: {names}; remove one"
            )
        [relation], [(endpoint, app)] = related, apps
        remote = dict(relation.data[relation.app]) if relation.app else {}
        try:
            if endpoint == INGRESS_RELATION:
                url = parse_traefik_answer(remote)
            else:
                url = self._istio_url(remote)
        except ValueError as err:
            return IngressReading(
                endpoint,
                app,
                problem=f"{app} sent an ingress URL this charm cannot use ({err}); "
                f"check {app}'s external hostname",
            )
        if url is None:
            return IngressReading(endpoint, app, waiting=f"waiting for {app} to give a URL")
        return IngressReading(endpoint, app, url=url)

    def _istio_url(self, remote: dict[str, str]) -> str | None:
        host = remote.get("external_host", "")
        if not host:
            return None
        scheme = "https" if remote.get("tls_enabled") == "True" else "http"
        prefix = route_prefix(self._charm.model.name, self._charm.app.name)
        return check_url(f"{scheme}://{host}{prefix}")


def _update(databag: ops.RelationDataContent, wanted: dict[str, str]) -> None:
    """Write only what changed (an unchanged databag triggers no hook on the other side)."""
    changed = {k: v for k, v in wanted.items() if databag.get(k) != v}
    if changed:
        databag.update(changed)
