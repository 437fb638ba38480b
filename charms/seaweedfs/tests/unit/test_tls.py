"""HTTPS on the S3 gateway from the certificates relation (provider side: stack.tls)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from ops import testing

from constants import CHECK_S3, CONTAINER, SERVICE, TLS_CERT_FILE, TLS_KEY_FILE, TLS_RELATION
from helpers import ME, MODEL, make_state
from stack.tls import TestCA, answered, issued, provider_answer

Ctx = testing.Context[Any]
CA = TestCA("seaweedfs unit-test CA")
HTTPS_ENDPOINT = f"https://seaweedfs.{MODEL}.svc.cluster.local:8333"


def tls_bare() -> testing.Relation:
    return testing.Relation(TLS_RELATION, remote_app_name="self-signed-certificates")


def pushed(ctx: Ctx, state: testing.State, path: str) -> Path:
    return Path(state.get_container(CONTAINER).get_filesystem(ctx) / path.lstrip("/"))


def service(state: testing.State) -> dict[str, Any]:
    return dict(state.get_container(CONTAINER).plan.services[SERVICE].to_dict())


class TestRequest:
    def test_each_unit_asks_for_the_service_names_and_its_own_pod_name(self, ctx: Ctx):
        relation = tls_bare()
        out = ctx.run(ctx.on.relation_created(relation), make_state(relation))
        mine: dict[str, str] = dict(out.get_relation(relation.id).local_unit_data)
        [request] = json.loads(mine["certificate_signing_requests"])
        csr = x509.load_pem_x509_csr(request["certificate_signing_request"].encode())
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(names.get_values_for_type(x509.DNSName))
        assert f"seaweedfs.{MODEL}.svc.cluster.local" in dns
        assert ME.address in dns

    def test_until_it_is_signed_the_unit_waits_naming_the_provider(self, ctx: Ctx):
        relation = tls_bare()
        out = ctx.run(ctx.on.relation_created(relation), make_state(relation))
        assert out.unit_status == testing.WaitingStatus(
            "waiting for a certificate from self-signed-certificates (HTTPS)"
        )


class TestIssued:
    def test_the_gateway_serves_https_with_the_pair_and_clients_get_the_ca(
        self, ctx: Ctx, s3_ready
    ):
        relation = tls_bare()
        out = issued(ctx, make_state(relation, s3_ready), relation, CA)
        command = service(out)["command"]
        assert f"-s3.cert.file={TLS_CERT_FILE}" in command
        assert f"-s3.key.file={TLS_KEY_FILE}" in command
        assert service(out)["environment"]["WEED_TLS_CERT_REFRESH_INTERVAL"] == "1m"
        key = pushed(ctx, out, TLS_KEY_FILE)
        assert key.stat().st_mode & 0o777 == 0o600
        assert "BEGIN" in pushed(ctx, out, TLS_CERT_FILE).read_text()
        check = out.get_container(CONTAINER).plan.checks[CHECK_S3].to_dict()
        assert check["tcp"] == {"host": "127.0.0.1", "port": 8333}
        answer = out.get_relation(s3_ready.id).local_app_data
        assert answer["endpoint"] == HTTPS_ENDPOINT
        assert json.loads(answer["tls-ca-chain"]) == [CA.pem.strip() + "\n"]
        assert out.unit_status == testing.ActiveStatus(
            f"S3 at {HTTPS_ENDPOINT}; 1 bucket(s); 1/1 unit(s) serve; master leader seaweedfs/0"
        )

    def test_a_renewal_is_pushed_without_changing_the_plan(self, ctx: Ctx, s3_ready):
        relation = tls_bare()
        first = issued(ctx, make_state(relation, s3_ready), relation, CA)
        before_cert = pushed(ctx, first, TLS_CERT_FILE).read_text()
        mine = first.get_relation(relation.id)
        renewed = dataclasses.replace(
            mine, remote_app_data=provider_answer(CA, mine.local_unit_data)
        )
        state = dataclasses.replace(
            first, relations={*(r for r in first.relations if r.id != relation.id), renewed}
        )
        out = ctx.run(ctx.on.relation_changed(renewed), state)
        assert pushed(ctx, out, TLS_CERT_FILE).read_text() != before_cert
        assert service(out) == service(first)

    def test_removing_the_relation_returns_the_gateway_to_http(self, ctx: Ctx, s3_ready):
        relation = tls_bare()
        ready = issued(ctx, make_state(relation, s3_ready), relation, CA)
        out = ctx.run(ctx.on.relation_broken(ready.get_relation(relation.id)), ready)
        assert "-s3.cert.file" not in service(out)["command"]
        answer = out.get_relation(s3_ready.id).local_app_data
        assert answer["endpoint"].startswith("http://")

    def test_a_requirer_sees_nothing_before_the_certificate(self, ctx: Ctx, s3_ready):
        relation = tls_bare()
        state = answered(ctx, make_state(relation, s3_ready), relation, CA)
        assert "endpoint" not in state.get_relation(s3_ready.id).local_app_data
