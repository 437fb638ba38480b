"""TLS for CrateDB's HTTP and PostgreSQL listeners from the certificates relation.

The provider side is stack.tls (written from self-signed-certificates' source).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from ops import testing

from constants import (
    CHECK_HTTP,
    CONTAINER,
    KEYSTORE_FILE,
    KEYSTORE_SECRET_LABEL,
    METRICS_SERVICE,
    SERVICE,
    TLS_RELATION,
)
from helpers import FakeCrate, flags, make_state, running_state, s3_relation, v1_request
from stack.tls import TestCA, answered, issued, provider_answer

Ctx = testing.Context[Any]
CA = TestCA("cratedb unit-test CA")


def tls_bare() -> testing.Relation:
    return testing.Relation(TLS_RELATION, remote_app_name="self-signed-certificates")


def keystore_password(state: testing.State) -> str:
    content: dict[str, str] = dict(state.get_secret(label=KEYSTORE_SECRET_LABEL).tracked_content)
    return content["keystore-password"]


def keystore_file(ctx: Ctx, state: testing.State) -> Path:
    return Path(state.get_container(CONTAINER).get_filesystem(ctx) / KEYSTORE_FILE.lstrip("/"))


class TestIssued:
    def test_the_node_serves_https_and_pg_ssl_from_a_keystore_it_can_open(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation = tls_bare()
        out = issued(ctx, make_state(relation), relation, CA)
        wanted = flags(out)
        password = keystore_password(out)
        assert wanted["ssl.http.enabled"] == "true"
        assert wanted["ssl.psql.enabled"] == "true"
        assert wanted["ssl.keystore_filepath"] == KEYSTORE_FILE
        assert wanted["ssl.keystore_password"] == password
        assert wanted["ssl.resource_poll_interval"] == "1m"
        path = keystore_file(ctx, out)
        assert path.stat().st_mode & 0o777 == 0o600
        key, leaf, chain = pkcs12.load_key_and_certificates(path.read_bytes(), password.encode())
        assert key is not None
        assert leaf is not None
        assert [c.subject.rfc4514_string() for c in chain] == ["CN=cratedb unit-test CA"]
        check = out.get_container(CONTAINER).plan.checks[CHECK_HTTP].to_dict()
        assert check["tcp"] == {"host": "127.0.0.1", "port": 4200}
        assert crate.https is True
        # The exporter reads the node over the same loopback, now HTTPS.
        exporter = out.get_container(CONTAINER).plan.services[METRICS_SERVICE].command
        assert "https://127.0.0.1:4200 cratedb-0" in exporter

    def test_a_client_is_told_to_encrypt_and_given_the_ca(self, ctx: Ctx):
        tls, client = tls_bare(), v1_request()
        out = issued(ctx, make_state(tls, client), tls, CA)
        [response] = json.loads(out.get_relation(client.id).local_app_data["requests"])
        content = dict(out.get_secret(id=response["secret-tls"]).latest_content or {})
        assert content["tls"] == "true"
        assert content["tls-ca"].strip() == CA.pem.strip()

    def test_a_renewal_rewrites_the_keystore_with_the_same_password_and_no_restart(self, ctx: Ctx):
        relation = tls_bare()
        first = issued(ctx, make_state(relation), relation, CA)
        before = keystore_file(ctx, first).read_bytes()
        plan_before = first.get_container(CONTAINER).plan.services[SERVICE].to_dict()
        mine = first.get_relation(relation.id)
        renewed = dataclasses.replace(
            mine, remote_app_data=provider_answer(CA, mine.local_unit_data)
        )
        state = dataclasses.replace(
            first, relations={renewed, *(r for r in first.relations if r.id != relation.id)}
        )
        out = ctx.run(ctx.on.relation_changed(renewed), state)
        assert keystore_file(ctx, out).read_bytes() != before
        assert keystore_password(out) == keystore_password(first)
        assert out.get_container(CONTAINER).plan.services[SERVICE].to_dict() == plan_before


class TestWaiting:
    def test_until_it_is_signed_the_unit_waits_and_clients_get_nothing(self, ctx: Ctx):
        tls, client = tls_bare(), v1_request()
        state = answered(ctx, make_state(tls, client), tls, CA)
        assert state.unit_status == testing.WaitingStatus(
            "waiting for a certificate from self-signed-certificates (TLS)"
        )
        assert "requests" not in state.get_relation(client.id).local_app_data

    def test_without_the_relation_the_node_speaks_plain_http(self, ctx: Ctx, crate: FakeCrate):
        out = ctx.run(ctx.on.config_changed(), make_state())
        assert "ssl.http.enabled" not in flags(out)
        assert crate.https is False
        exporter = out.get_container(CONTAINER).plan.services[METRICS_SERVICE].command
        assert "http://127.0.0.1:4200 cratedb-0" in exporter


class TestBackupsToAPrivateCa:
    def test_a_backup_into_s3_behind_a_private_ca_fails_saying_what_to_do(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation, secret = s3_relation()
        private = dataclasses.replace(
            relation,
            remote_app_data={
                **relation.remote_app_data,
                "endpoint": "https://seaweedfs.model.svc.cluster.local:8333",
                "tls-ca-chain": json.dumps([CA.pem]),
            },
        )
        state = running_state(make_state(private, secrets=frozenset({secret})))
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("create-backup"), state)
        assert failed.value.message == (
            "seaweedfs serves S3 with a private CA, which CrateDB's backups cannot trust yet: "
            "back up to an S3 with a public certificate, or serve seaweedfs without TLS"
        )
        assert not any("REPOSITORY" in s for s in crate.statements)
