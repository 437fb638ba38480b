"""HTTPS from the certificates relation: what the server, the notebooks and the status show."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from ops import testing

from constants import CHECK_READY, CONTAINER, SERVICE, TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from helpers import (
    APP,
    TLS_PROVIDER,
    command,
    make_state,
    s3_relation,
    sent_manifests,
    tls_answered,
    tls_ready,
)
from stack.tls import TestCA, provider_answer

Ctx = testing.Context[Any]
SERVICE_URL = f"https://{APP}.test-model.svc.cluster.local:5000"


def pushed(ctx: Ctx, state: testing.State, path: str) -> Path:
    return Path(state.get_container(CONTAINER).get_filesystem(ctx) / path.lstrip("/"))


def layer_env(state: testing.State) -> dict[str, str]:
    return dict(state.get_container(CONTAINER).plan.services[SERVICE].environment)


class TestWithoutTheRelation:
    def test_the_server_speaks_plain_http_and_its_check_calls_http(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())
        assert "--uvicorn-opts" not in command(out)
        check: dict[str, Any] = dict(
            out.get_container(CONTAINER).plan.checks[CHECK_READY].to_dict()
        )
        assert check["http"]["url"].startswith("http://127.0.0.1:5000/")
        assert "CHARM_TLS_SHA256" not in layer_env(out)
        assert isinstance(out.unit_status, testing.ActiveStatus)


class TestCertificateRequest:
    def test_the_unit_asks_for_the_names_notebooks_use(self, ctx: Ctx, tls_bare):
        out = ctx.run(ctx.on.relation_created(tls_bare), make_state(tls_bare))
        [request] = json.loads(
            out.get_relation(tls_bare.id).local_unit_data["certificate_signing_requests"]
        )
        csr = x509.load_pem_x509_csr(request["certificate_signing_request"].encode())
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(sans.get_values_for_type(x509.DNSName)) == {
            APP,
            f"{APP}.test-model",
            f"{APP}.test-model.svc",
            f"{APP}.test-model.svc.cluster.local",
        }

    def test_related_but_not_answered_waits_naming_the_provider_and_starts_nothing(
        self, ctx: Ctx, tls_bare
    ):
        out = ctx.run(ctx.on.relation_created(tls_bare), make_state(tls_bare))
        assert out.unit_status == testing.WaitingStatus(
            f"waiting for a certificate from {TLS_PROVIDER} (HTTPS)"
        )
        assert SERVICE not in out.get_container(CONTAINER).plan.services


class TestIssuedCertificate:
    def test_the_server_serves_https_with_the_issued_pair(self, ctx: Ctx, tls_bare, network):
        out = tls_ready(ctx, make_state(tls_bare), tls_bare)
        argv = command(out)
        assert (
            "--uvicorn-opts '--ssl-certfile /etc/mlflow/tls/server.crt "
            "--ssl-keyfile /etc/mlflow/tls/server.key'"
        ) in argv
        key = pushed(ctx, out, TLS_KEY_FILE)
        cert = pushed(ctx, out, TLS_CERT_FILE).read_text()
        assert key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert key.stat().st_mode & 0o777 == 0o600
        leaf = x509.load_pem_x509_certificates(cert.encode())[0]
        [cn] = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert cn.value == f"{APP}.test-model.svc.cluster.local"
        ca = pushed(ctx, out, TLS_CA_FILE).read_text()
        assert ca.strip() == the_ca_pem()
        assert network.probed_with[-1] is not None
        assert network.probed_with[-1].strip() == ca.strip()
        assert isinstance(out.unit_status, testing.ActiveStatus), out.unit_status
        # The supervisor's readiness poll speaks the server's scheme.
        service = out.get_container(CONTAINER).plan.services[SERVICE].command
        assert "--ready-url https://127.0.0.1:5000/health " in service

    def test_the_ready_check_verifies_the_chain_against_the_ca(self, ctx: Ctx, tls_bare):
        out = tls_ready(ctx, make_state(tls_bare), tls_bare)
        check = out.get_container(CONTAINER).plan.checks[CHECK_READY].to_dict()
        assert "http" not in check
        assert "https://127.0.0.1:5000/health" in check["exec"]["command"]
        assert TLS_CA_FILE in check["exec"]["command"]

    def test_a_renewed_certificate_restarts_the_server_with_the_new_pair(self, ctx: Ctx, tls_bare):
        first = tls_ready(ctx, make_state(tls_bare), tls_bare)
        first_ca = pushed(ctx, first, TLS_CA_FILE).read_text()
        relation = first.get_relation(tls_bare.id)
        new_ca = TestCA("renewed CA")
        renewed = dataclasses.replace(
            relation, remote_app_data=provider_answer(new_ca, relation.local_unit_data)
        )
        state = dataclasses.replace(first, relations={renewed})
        out = ctx.run(ctx.on.relation_changed(renewed), state)
        assert layer_env(out)["CHARM_TLS_SHA256"] != layer_env(first)["CHARM_TLS_SHA256"]
        renewed_ca = pushed(ctx, out, TLS_CA_FILE).read_text()
        assert renewed_ca != first_ca
        assert renewed_ca.strip() == new_ca.pem.strip()

    def test_removing_the_relation_returns_to_plain_http(self, ctx: Ctx, tls_bare):
        ready = tls_ready(ctx, make_state(tls_bare), tls_bare)
        out = ctx.run(ctx.on.relation_broken(ready.get_relation(tls_bare.id)), ready)
        assert "--uvicorn-opts" not in command(out)
        assert "CHARM_TLS_SHA256" not in layer_env(out)


class TestNotebooks:
    def test_pod_defaults_give_an_https_uri_and_mount_only_the_ca(
        self, ctx: Ctx, tls_bare, pod_defaults_relation, secrets_relation
    ):
        state = make_state(tls_bare, pod_defaults_relation, secrets_relation)
        out = tls_ready(ctx, state, tls_bare)
        [pod_default] = sent_manifests(out, pod_defaults_relation)
        env = {e["name"]: e.get("value") for e in pod_default["spec"]["env"]}
        assert env["MLFLOW_TRACKING_URI"] == SERVICE_URL
        assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"] == "/etc/mlflow-ca/mlflow-ca.crt"
        [volume] = pod_default["spec"]["volumes"]
        assert volume["secret"] == {
            "secretName": f"{APP}-credentials",
            "items": [{"key": "mlflow-ca.crt", "path": "mlflow-ca.crt"}],
        }
        assert pod_default["spec"]["volumeMounts"] == [
            {"name": volume["name"], "mountPath": "/etc/mlflow-ca", "readOnly": True}
        ]
        [secret] = sent_manifests(out, secrets_relation)
        assert base64.b64decode(secret["data"]["mlflow-ca.crt"]).decode().strip() == the_ca_pem()

    def test_get_client_env_prints_the_ca_and_where_it_is(self, ctx: Ctx, tls_bare):
        ready = tls_ready(ctx, make_state(tls_bare), tls_bare)
        ctx.run(ctx.on.action("get-client-env"), ready)
        results = ctx.action_results or {}
        assert f"export MLFLOW_TRACKING_URI={SERVICE_URL}" in results["exports"]
        assert (
            "MLFLOW_TRACKING_SERVER_CERT_PATH=/etc/mlflow-ca/mlflow-ca.crt" in results["exports"]
        )
        assert results["mlflow-ca"].strip() == the_ca_pem()

    def test_a_client_given_its_own_uri_finds_the_ca_where_it_saves_it(self, ctx: Ctx, tls_bare):
        ready = tls_ready(ctx, make_state(tls_bare), tls_bare)
        ctx.run(
            ctx.on.action("get-client-env", params={"tracking-uri": "https://localhost:5000"}),
            ready,
        )
        results = ctx.action_results or {}
        assert "MLFLOW_TRACKING_SERVER_CERT_PATH=./mlflow-ca.crt" in results["exports"]


class TestBucketBehindAPrivateCa:
    def _s3(self) -> tuple[testing.Relation, testing.Secret]:
        return s3_relation(
            endpoint="https://seaweedfs.model.svc.cluster.local:8333",
            extra={"tls-ca-chain": json.dumps([S3_CA.pem])},
        )

    def test_direct_mode_notebooks_trust_the_buckets_ca(self, ctx: Ctx, pod_defaults_relation):
        relation, secret = self._s3()
        state = make_state(
            relation, pod_defaults_relation, secrets=(secret,), config={"serve-artifacts": False}
        )
        out = ctx.run(ctx.on.config_changed(), state)
        [pod_default] = sent_manifests(out, pod_defaults_relation)
        env = {e["name"]: e.get("value") for e in pod_default["spec"]["env"]}
        assert env["AWS_CA_BUNDLE"] == "/etc/mlflow-ca/s3-ca.crt"
        items = pod_default["spec"]["volumes"][0]["secret"]["items"]
        assert items == [{"key": "s3-ca.crt", "path": "s3-ca.crt"}]

    def test_proxied_mode_moves_bytes_through_the_server_not_presigned_urls(
        self, ctx: Ctx, pod_defaults_relation
    ):
        relation, secret = self._s3()
        out = ctx.run(
            ctx.on.config_changed(), make_state(relation, pod_defaults_relation, secrets=(secret,))
        )
        [pod_default] = sent_manifests(out, pod_defaults_relation)
        names = {e["name"] for e in pod_default["spec"]["env"]}
        assert "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD" not in names
        assert "AWS_CA_BUNDLE" not in names
        assert "volumes" not in pod_default["spec"]


class TestIngress:
    def test_traefik_is_asked_to_call_the_server_over_https(
        self, ctx: Ctx, tls_bare, ingress_bare
    ):
        state = make_state(tls_bare, ingress_bare)
        answered = tls_answered(ctx, state, tls_bare)
        out = ctx.run(ctx.on.relation_changed(answered.get_relation(tls_bare.id)), answered)
        assert out.get_relation(ingress_bare.id).local_app_data["scheme"] == '"https"'


S3_CA = TestCA("bucket CA")


def the_ca_pem() -> str:
    from helpers import TLS_CA

    return TLS_CA.pem.strip()
