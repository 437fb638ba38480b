"""Ingress under ops.testing: traefik and Istio, the UI's URL, allowed hosts and origins."""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import Any

from ops import testing

from helpers import (
    APP,
    command,
    istio_relation,
    make_state,
    traefik_relation,
)

Ctx = testing.Context[Any]


class TestIngress:
    """traefik-k8s (ingress v2) and istio-ingress-k8s (istio_ingress_route)."""

    def test_leader_asks_traefik_for_a_stripped_prefix_route_to_port_5000(
        self, ctx: Ctx, ingress_bare
    ):
        out = ctx.run(
            ctx.on.relation_joined(ingress_bare, remote_unit=0), make_state(ingress_bare)
        )

        relation = out.get_relation(ingress_bare.id)
        app = {k: json.loads(v) for k, v in relation.local_app_data.items()}
        assert app == {
            "model": "test-model",
            "name": APP,
            "port": 5000,
            "scheme": "http",
            "strip-prefix": True,
            "redirect-https": False,
        }
        unit = {
            k: json.loads(v) for k, v in relation.local_unit_data.items() if k in ("host", "ip")
        }
        assert unit["host"] == (f"{APP}-0.{APP}-endpoints.test-model.svc.cluster.local")
        assert unit["ip"]

    def test_a_non_leader_writes_only_its_own_address(self, ctx: Ctx, ingress_bare):
        out = ctx.run(
            ctx.on.relation_joined(ingress_bare, remote_unit=0),
            make_state(ingress_bare, leader=False),
        )

        relation = out.get_relation(ingress_bare.id)
        assert "host" in relation.local_unit_data
        assert dict(relation.local_app_data) == {}

    def test_the_ingress_host_is_allowed_and_its_origin_may_post(self, ctx: Ctx, ingress_ready):
        out = ctx.run(
            ctx.on.relation_changed(ingress_ready, remote_unit=0), make_state(ingress_ready)
        )

        argv = shlex.split(command(out))
        hosts = argv[argv.index("--allowed-hosts") + 1].split(",")
        assert "ingress.example.com" in hosts
        origins = argv[argv.index("--cors-allowed-origins") + 1]
        assert origins == "http://ingress.example.com"

    def test_status_shows_where_the_ui_opens_with_its_trailing_slash(
        self, ctx: Ctx, ingress_ready
    ):
        out = ctx.run(
            ctx.on.relation_changed(ingress_ready, remote_unit=0), make_state(ingress_ready)
        )

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: local storage (proxied); "
            "UI at http://ingress.example.com/test-model-mlflow-tracking/"
        )

    def test_get_client_env_offers_the_ingress_url_to_clients_outside(
        self, ctx: Ctx, ingress_ready, s3_ready
    ):
        s3, secret = s3_ready
        state = make_state(ingress_ready, s3, secrets=(secret,))

        ctx.run(ctx.on.action("get-client-env"), state)

        assert ctx.action_results is not None
        assert ctx.action_results["external-exports"].splitlines() == [
            "export MLFLOW_TRACKING_PASSWORD=notebook-pw-0123456789abcdef",
            "export MLFLOW_TRACKING_URI=http://ingress.example.com/test-model-mlflow-tracking",
            "export MLFLOW_TRACKING_USERNAME=notebook",
        ]
        assert ctx.action_results["ui-url"] == (
            "http://ingress.example.com/test-model-mlflow-tracking/"
        )
        assert f"MLFLOW_TRACKING_URI=http://{APP}.test-model.svc" in ctx.action_results["exports"]

    def test_subdomain_routing_gives_a_url_without_a_prefix(self, ctx: Ctx):
        relation = traefik_relation("https://test-model-mlflow-tracking.example.com/")

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        argv = shlex.split(command(out))
        assert "test-model-mlflow-tracking.example.com" in argv[argv.index("--allowed-hosts") + 1]
        assert out.unit_status.message.endswith(
            "UI at https://test-model-mlflow-tracking.example.com/"
        )

    def test_a_malformed_answer_blocks_naming_what_to_check(self, ctx: Ctx):
        relation = dataclasses.replace(traefik_relation(), remote_app_data={"ingress": "{}"})

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status == testing.BlockedStatus(
            "ingress: traefik sent an ingress URL this charm cannot use (the ingress field is "
            "not a JSON object with a url); check traefik's external hostname"
        )

    def test_before_traefik_answers_mlflow_serves_in_the_cluster(self, ctx: Ctx, ingress_bare):
        out = ctx.run(
            ctx.on.relation_changed(ingress_bare, remote_unit=0), make_state(ingress_bare)
        )

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: local storage (proxied)"
        )
        assert "--cors-allowed-origins" not in command(out)

    def test_istio_gets_a_prefix_route_rewritten_to_the_root(self, ctx: Ctx):
        relation = istio_relation(external_host=None)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        config = json.loads(out.get_relation(relation.id).local_app_data["config"])
        [route] = config["http_routes"]
        assert config["model"] == "test-model"
        assert route["matches"][0]["path"]["value"] == "/test-model-mlflow-tracking/"
        assert route["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"] == "/"
        assert [(b["service"], b["port"]) for b in route["backends"]] == [(APP, 5000)]

    def test_istio_answer_gives_the_url_and_its_host_is_allowed(self, ctx: Ctx):
        relation = istio_relation(tls=True)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status.message.endswith(
            "UI at https://gateway.example.com/test-model-mlflow-tracking/"
        )
        argv = shlex.split(command(out))
        assert argv[argv.index("--cors-allowed-origins") + 1] == "https://gateway.example.com"

    def test_both_ingresses_block_naming_both(self, ctx: Ctx, ingress_ready):
        istio = istio_relation()

        out = ctx.run(
            ctx.on.relation_changed(istio, remote_unit=0), make_state(ingress_ready, istio)
        )

        assert out.unit_status == testing.BlockedStatus(
            "ingress: two ingresses related: ingress (traefik) and istio-ingress-route "
            "(istio-ingress); remove one"
        )
