"""Each charm against a tls-certificates provider, chained (self-signed-certificates stand-in).

The charm's CSR (made by charmlibs-interfaces-tls-certificates inside the
charm) goes to the stand-in, which signs it with the library's provider code;
the answer comes back and the charm serves TLS with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from ops import testing

from tests.contract.chain import context, handover, with_changes
from tests.contract.test_contracts import cratedb_state, mlflow_state, seaweed_state
from tests.contract.tls_provider import CA, META, SelfSignedStandIn

# The doors the chained charms reach are stubbed by test_contracts' autouse fixture.
from tests.contract.test_contracts import doors  # noqa: F401  isort: skip


def certified(charm: str, state: testing.State) -> tuple[testing.Context[Any], testing.State]:
    """`juju relate <charm>:certificates self-signed-certificates`, both sides' hooks."""
    ctx = context(charm, app_name=charm)
    asking = testing.Relation("certificates", remote_app_name="self-signed-certificates")
    asked = ctx.run(
        ctx.on.relation_created(asking), with_changes(state, relations={*state.relations, asking})
    )

    provider_view, _ = handover(asked, asking.id, endpoint="certificates", app_name=charm)
    provider = testing.Context(SelfSignedStandIn, meta=META, app_name="self-signed-certificates")
    signed = provider.run(
        provider.on.relation_changed(provider_view, remote_unit=0),
        testing.State(leader=True, relations={provider_view}),
    )
    mine = asked.get_relation(asking.id)
    assert isinstance(mine, testing.Relation)
    answer = dataclasses.replace(
        mine, remote_app_data=dict(signed.get_relation(provider_view.id).local_app_data)
    )
    others = {r for r in asked.relations if r.id != asking.id}
    final = ctx.run(
        ctx.on.relation_changed(answer), with_changes(asked, relations={*others, answer})
    )
    return ctx, final


def _command(state: testing.State, container: str, service: str) -> str:
    return state.get_container(container).plan.services[service].command


def test_the_provider_signs_what_mlflow_asks_and_mlflow_serves_https():
    _, final = certified("mlflow-tracking", mlflow_state())
    command = _command(final, "mlflow-server", "mlflow-server")
    assert "--ssl-certfile /etc/mlflow/tls/server.crt" in command
    assert isinstance(final.unit_status, testing.ActiveStatus), final.unit_status


def test_the_provider_signs_what_seaweedfs_asks_and_clients_get_its_ca():
    _, final = certified("seaweedfs", seaweed_state())
    assert "-s3.cert.file=/etc/seaweedfs/tls/s3.crt" in _command(final, "seaweedfs", "seaweedfs")
    assert final.unit_status.message.startswith("S3 at https://"), final.unit_status


def test_the_provider_signs_what_cratedb_asks_and_crate_reads_a_keystore():
    ctx, final = certified("cratedb", cratedb_state())
    command = _command(final, "cratedb", "cratedb")
    assert "-Cssl.http.enabled=true" in command
    assert "-Cssl.psql.enabled=true" in command
    content: dict[str, str] = dict(final.get_secret(label="keystore-password").tracked_content)
    password = content["keystore-password"]
    keystore = final.get_container("cratedb").get_filesystem(ctx) / "etc/cratedb/keystore.p12"
    _, leaf, chain = pkcs12.load_key_and_certificates(keystore.read_bytes(), password.encode())
    assert leaf is not None
    assert [c.subject for c in chain] == [x509.load_pem_x509_certificate(CA.pem.encode()).subject]
