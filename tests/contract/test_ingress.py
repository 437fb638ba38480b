"""mlflow-tracking behind today's ingress charms, chained: traefik-k8s and istio-ingress-k8s.

The stand-ins (``ingress_providers.py``, written from the published source)
read what mlflow-tracking writes and answer; mlflow-tracking reads the answer.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import Any

from ops import testing

from tests.contract.chain import bag, context, handover, with_changes
from tests.contract.ingress_providers import (
    ISTIO_META,
    TRAEFIK_CONFIG,
    TRAEFIK_META,
    IstioStandIn,
    TraefikStandIn,
    traefik_route,
)
from tests.contract.test_contracts import mlflow_state

# The doors the chained charms reach are stubbed by test_contracts' autouse fixture.
from tests.contract.test_contracts import doors  # noqa: F401  isort: skip


def _model(state: testing.State) -> testing.State:
    return dataclasses.replace(state, model=testing.Model(name="mlops"))


def relate_traefik(routing_mode: str = "path") -> tuple[testing.State, testing.State, int]:
    """mlflow-tracking asks, traefik answers, mlflow-tracking reads: (mlflow, traefik, rel id)."""
    ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    asking = testing.Relation("ingress", remote_app_name="traefik")
    asked = ml_ctx.run(
        ml_ctx.on.relation_joined(asking, remote_unit=0), _model(mlflow_state(asking))
    )

    request, _ = handover(asked, asking.id, endpoint="ingress", app_name="mlflow-tracking")
    tr_ctx = testing.Context(TraefikStandIn, meta=TRAEFIK_META, config=TRAEFIK_CONFIG)
    answered = tr_ctx.run(
        tr_ctx.on.relation_changed(request, remote_unit=0),
        testing.State(leader=True, relations={request}, config={"routing_mode": routing_mode}),
    )

    mine = asked.get_relation(asking.id)
    answer, _ = handover(
        answered,
        request.id,
        endpoint="ingress",
        app_name="traefik",
        local_app_data=dict(mine.local_app_data),
        local_unit_data=dict(mine.local_unit_data),
    )
    answer = dataclasses.replace(answer, id=asking.id)
    final = ml_ctx.run(
        ml_ctx.on.relation_changed(answer, remote_unit=0), with_changes(asked, relations={answer})
    )
    return final, answered, request.id


def _argv(state: testing.State) -> list[str]:
    return shlex.split(state.get_container("mlflow-server").plan.services["mlflow-server"].command)


class TestTraefik:
    def test_traefik_reads_a_valid_request_and_routes_the_prefix_to_each_unit(self):
        final, _, _ = relate_traefik()
        mine = final.get_relation(next(iter(final.relations)).id)

        route = traefik_route(bag(mine.local_app_data), [bag(mine.local_unit_data)])

        assert route.prefix == "mlops-mlflow-tracking"
        assert route.strip_prefix is True
        assert route.backends == (
            "http://mlflow-tracking-0.mlflow-tracking-endpoints.mlops.svc.cluster.local:5000",
        )

    def test_mlflow_accepts_the_host_and_origin_of_the_url_traefik_gives(self):
        final, answered, rid = relate_traefik()

        url = json.loads(bag(answered.get_relation(rid).local_app_data)["ingress"])["url"]
        assert url == "http://ingress.example.com/mlops-mlflow-tracking"
        argv = _argv(final)
        assert "ingress.example.com" in argv[argv.index("--allowed-hosts") + 1].split(",")
        assert argv[argv.index("--cors-allowed-origins") + 1] == "http://ingress.example.com"
        assert final.unit_status.message.endswith(f"UI at {url}/")

    def test_subdomain_routing_works_too(self):
        final, _, _ = relate_traefik("subdomain")

        assert final.unit_status.message.endswith(
            "UI at http://mlops-mlflow-tracking.ingress.example.com/"
        )


class TestIstio:
    def test_the_gateway_reads_the_route_and_mlflow_reads_the_gateway(self):
        ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
        asking = testing.Relation("istio-ingress-route", remote_app_name="istio-ingress")
        asked = ml_ctx.run(
            ml_ctx.on.relation_changed(asking, remote_unit=0), _model(mlflow_state(asking))
        )
        request, _ = handover(
            asked, asking.id, endpoint="istio-ingress-route", app_name="mlflow-tracking"
        )
        istio_ctx: testing.Context[Any] = testing.Context(IstioStandIn, meta=ISTIO_META)

        answered = istio_ctx.run(
            istio_ctx.on.relation_changed(request, remote_unit=0),
            testing.State(leader=True, relations={request}),
        )

        config = json.loads(bag(request.remote_app_data)["config"])
        assert config["http_routes"][0]["matches"][0]["path"]["value"] == "/mlops-mlflow-tracking/"
        answer, _ = handover(
            answered,
            request.id,
            endpoint="istio-ingress-route",
            app_name="istio-ingress",
            local_app_data=dict(asked.get_relation(asking.id).local_app_data),
        )
        answer = dataclasses.replace(answer, id=asking.id)
        final = ml_ctx.run(
            ml_ctx.on.relation_changed(answer, remote_unit=0),
            with_changes(asked, relations={answer}),
        )
        assert final.unit_status.message.endswith(
            "UI at http://gateway.example.com/mlops-mlflow-tracking/"
        )
        argv = _argv(final)
        assert argv[argv.index("--cors-allowed-origins") + 1] == "http://gateway.example.com"
