"""SeaweedFS's own locks: the keys the leader makes, the file every unit runs with.

What these locks do to the real ``weed`` is measured in
``tests/workload/test_seaweedfs_security.py``.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from ops import testing

import security
from constants import CONTAINER, PEER_RELATION, SECURITY_DIR, SERVICE
from helpers import make_state, with_security

Ctx = testing.Context[Any]


def _file(ctx: Ctx, out: testing.State, name: str) -> str:
    root = out.get_container(CONTAINER).get_filesystem(ctx)
    return Path(root / SECURITY_DIR.lstrip("/") / name).read_text()


def _toml(ctx: Ctx, out: testing.State) -> dict[str, Any]:
    return tomllib.loads(_file(ctx, out, "security.toml"))


class TestTheLeadersKeys:
    def test_the_leader_makes_one_secret_with_keys_a_ca_and_a_shared_certificate(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        [secret] = [s for s in out.secrets if s.label == security.SECRET_LABEL]
        content: dict[str, str] = dict(secret.latest_content or {})
        assert (
            len(
                {
                    content[k]
                    for k in ("jwt-write", "jwt-read", "jwt-filer-write", "jwt-filer-read")
                }
            )
            == 4
        )
        ca = x509.load_pem_x509_certificate(content["ca-certificate"].encode())
        cert = x509.load_pem_x509_certificate(content["certificate"].encode())
        assert cert.issuer == ca.subject
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
        peer = out.get_relations(PEER_RELATION)[0]
        assert (
            cast(dict[str, str], dict(peer.local_app_data))[security.PEER_SECRET_KEY] == secret.id
        )

    def test_a_second_hook_keeps_the_same_keys(self, ctx: Ctx):
        first = ctx.run(ctx.on.config_changed(), make_state())

        second = ctx.run(ctx.on.update_status(), first)

        assert _file(ctx, second, "security.toml") == _file(ctx, first, "security.toml")
        assert len([s for s in second.secrets if s.label == security.SECRET_LABEL]) == 1

    def test_a_unit_waits_for_the_leaders_keys(self, ctx: Ctx):
        admin = testing.Secret({"access-key": "A" * 20, "secret-key": "s" * 40}, owner="app")
        peer = testing.PeerRelation(
            PEER_RELATION, local_app_data={"secret-ids": json.dumps({"admin": admin.id})}
        )

        out = ctx.run(
            ctx.on.config_changed(), make_state(peer, leader=False, secrets=frozenset({admin}))
        )

        assert out.unit_status == testing.WaitingStatus(
            "waiting for the leader to create SeaweedFS's internal keys"
        )
        assert SERVICE not in out.get_container(CONTAINER).plan.services


class TestWhatWeedRunsWith:
    def test_weed_reads_the_locks_and_every_port_has_one(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        command = out.get_container(CONTAINER).plan.services[SERVICE].command
        assert command.startswith(f"weed -config_dir={SECURITY_DIR} server ")
        toml = _toml(ctx, out)
        assert set(toml["jwt"]) == {"signing", "filer_signing"}
        assert toml["jwt"]["signing"]["read"]["key"]
        assert toml["jwt"]["filer_signing"]["read"]["key"]
        for component in ("master", "volume", "filer", "s3", "client"):
            assert toml["grpc"][component]["cert"] == f"{SECURITY_DIR}/weed.crt"
        assert toml["grpc"]["ca"] == f"{SECURITY_DIR}/ca.crt"
        assert toml["access"]["ui"] is False
        assert toml["filer"]["expose_directory_metadata"]["enabled"] is False
        # Loopback, weed's own sockets, and this pod's address (Scenario's default).
        assert toml["guard"]["white_list"] == "127.0.0.1,@,192.0.2.0"

    def test_the_certificate_and_key_the_file_names_are_pushed(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        content = next(s for s in out.secrets if s.label == security.SECRET_LABEL).latest_content
        assert content is not None
        assert _file(ctx, out, "ca.crt") == content["ca-certificate"]
        assert _file(ctx, out, "weed.crt") == content["certificate"]
        assert _file(ctx, out, "weed.key") == content["private-key"]

    def test_a_second_unit_joining_takes_the_white_list_away_and_restarts_weed_once(
        self, ctx: Ctx
    ):
        # In a store of several units a follower master forwards any request to the
        # leader under its own address, so no white list can hold (security.py).
        one = ctx.run(ctx.on.config_changed(), with_security(make_state()))
        assert "guard" in _toml(ctx, one)
        peer = cast(testing.PeerRelation, one.get_relations(PEER_RELATION)[0])
        joined = dataclasses.replace(
            peer,
            peers_data={
                1: {
                    "address": "seaweedfs-1.seaweedfs-endpoints.test-model.svc.cluster.local",
                    "ingress-address": "10.1.2.3",
                }
            },
        )
        before = one.get_container(CONTAINER).plan.services[SERVICE].environment

        out = ctx.run(
            ctx.on.relation_changed(joined, remote_unit=1),
            dataclasses.replace(one, relations=frozenset({joined}), planned_units=2),
        )

        assert "guard" not in _toml(ctx, out)
        after = out.get_container(CONTAINER).plan.services[SERVICE].environment
        assert after["CHARM_SECURITY_SHA256"] != before["CHARM_SECURITY_SHA256"]

    def test_an_address_that_is_not_an_ip_never_reaches_the_white_list(self):
        assert security.white_list(["10.0.0.1", "evil,0.0.0.0/0", "", "::1"]) == (
            "127.0.0.1",
            "@",
            "10.0.0.1",
            "::1",
        )
        assert security.white_list(["10.0.0.1", "10.0.0.2"], units=2) == ()


def test_the_file_is_valid_toml_whatever_the_paths():
    material = security.generate_material()
    files = security.SecurityFiles('/odd "dir"\\x')

    parsed = tomllib.loads(security.security_toml(files, material, ("127.0.0.1", "@")))

    assert parsed["grpc"]["ca"] == '/odd "dir"\\x/ca.crt'
    assert parsed["jwt"]["signing"]["key"] == material.write_key
