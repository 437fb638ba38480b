"""SeaweedFS's inner ports, locked as the charm locks them, tried as an outsider would.

The real ``weed`` runs with the ``security.toml`` the charm renders (JWT keys,
gRPC mutual TLS with the store's own CA, a white list of the units' pod
addresses). The outsider is this test process speaking from 127.0.0.9: on
loopback still, but not an address any white list names (in a pod it would
be a notebook's address). Every server binds 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from stack.seaweed import SeaweedStore, sw
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, record
from tests.workload.probes import grpc_without_a_certificate, outsider, plaintext_grpc


@pytest.fixture(scope="module")
def store(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    daemon = module_pebble_factory("seaweedfs-locked", env=bin_dir_on_path(weed_bin))
    store = SeaweedStore.start(daemon, weed_bin)
    store.wait_ready()
    return store


@pytest.fixture(scope="module")
def stored(store: SeaweedStore) -> dict[str, Any]:
    """One bucket with one object, written through S3 with its relation's keys."""
    creds = store.relate(1, "team-data")
    store.s3(creds).put_object(Bucket="team-data", Key="secret.txt", Body=b"team secret")
    listing = store.daemon.container.exec(
        sw.workload.weed_shell_argv(store.settings),
        stdin="fs.meta.cat /buckets/team-data/secret.txt\n",
    ).wait_output()[0]
    entry, _ = json.JSONDecoder().raw_decode(listing[listing.index("{") :])
    fid = entry["chunks"][0]["fileId"]
    return {"creds": creds, "fid": fid}


class TestOneUnit:
    def test_s3_with_the_relations_keys_still_works(self, store: SeaweedStore, stored: dict):
        body = store.s3(stored["creds"]).get_object(Bucket="team-data", Key="secret.txt")
        assert body["Body"].read() == b"team secret"

    def test_the_filer_refuses_reads_and_writes_without_a_token(
        self, store: SeaweedStore, stored: dict
    ):
        filer = store.settings.ports.filer

        assert outsider("GET", filer, "/buckets/team-data/secret.txt") == 401
        assert outsider("GET", filer, "/buckets/team-data/") == 401
        assert outsider("PUT", filer, "/buckets/team-data/planted.txt", b"x") == 401
        assert outsider("DELETE", filer, "/buckets/team-data/secret.txt") == 401
        keys = store.s3(stored["creds"]).list_objects_v2(Bucket="team-data")["Contents"]
        assert [k["Key"] for k in keys] == ["secret.txt"]

    def test_the_volume_server_refuses_reads_and_writes_without_a_token(
        self, store: SeaweedStore, stored: dict
    ):
        volume = store.settings.ports.volume
        made_up = stored["fid"].split(",")[0] + ",01deadbeef"

        assert outsider("GET", volume, f"/{stored['fid']}") == 401
        assert outsider("POST", volume, f"/{made_up}", b"x") == 401
        assert outsider("DELETE", volume, f"/{stored['fid']}") == 401

    def test_the_master_hands_nothing_to_an_address_not_on_its_white_list(
        self, store: SeaweedStore, stored: dict
    ):
        master = store.settings.ports.master

        for path in (
            "/dir/assign",
            f"/dir/lookup?fileId={stored['fid']}&read=yes",
            "/dir/status",
            "/vol/grow?count=1",
            "/col/delete?collection=team-data",
        ):
            assert outsider("GET", master, path) == 401, path
        body = store.s3(stored["creds"]).get_object(Bucket="team-data", Key="secret.txt")
        assert body["Body"].read() == b"team secret"
        # Its health is public (Pebble's check reads it): no data there.
        assert outsider("GET", master, "/cluster/healthz") == 200

    def test_every_grpc_port_wants_the_stores_client_certificate(self, store: SeaweedStore):
        ports = store.settings.ports
        offset = sw.constants.GRPC_OFFSET
        ca = store.security.ca
        seen = {}
        for name, port in (
            ("master", ports.master + offset),
            ("volume", ports.volume + offset),
            ("filer", ports.filer + offset),
            ("s3", ports.s3 + offset),
        ):
            seen[name] = (plaintext_grpc(port), grpc_without_a_certificate(port, ca))

        assert all(
            a.startswith("refused") and b.startswith("refused") for a, b in seen.values()
        ), seen
        record("seaweedfs gRPC ports without the store's client certificate", json.dumps(seen))

    def test_weed_shell_without_the_stores_certificate_gets_nothing(self, store: SeaweedStore):
        argv = [
            a
            for a in sw.workload.weed_shell_argv(store.settings)
            if not a.startswith("-config_dir")
        ]
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                input="s3.bucket.list\n",
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            out = done.stdout
        except subprocess.TimeoutExpired as err:
            out = (
                (err.stdout or b"").decode()
                if isinstance(err.stdout, bytes)
                else (err.stdout or "")
            )

        assert "team-data" not in out
        record(
            "seaweedfs: weed shell without the client certificate",
            f"no bucket listed; gave up after {time.monotonic() - started:.1f} s",
        )
