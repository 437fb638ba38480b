"""The pure builders: command line, layer, identities, volume layout, names."""

from __future__ import annotations

import json

import pytest

from constants import CHECK_MASTER, CHECK_S3, SERVICE, VOLUMES_PER_GROWTH
from state import ClientIdentity, Credentials
from workload import (
    MIN_VOLUME_SIZE_MB,
    Ports,
    WeedSettings,
    bucket_create_script,
    bucket_name_problem,
    default_bucket_for,
    identities_config,
    parse_bucket_list,
    pebble_layer,
    volume_layout,
    weed_command,
)

GIB = 1024**3


def settings(**kwargs) -> WeedSettings:
    return WeedSettings(volumes=volume_layout(10 * GIB, 1), **kwargs)


class TestCommand:
    def test_internal_listeners_bind_loopback_and_s3_binds_the_public_address(self):
        argv = weed_command(settings(public_address="10.1.2.3"))

        assert "-ip.bind=127.0.0.1" in argv
        assert "-s3.ip.bind=10.1.2.3" in argv
        assert "-metricsIp=10.1.2.3" in argv

    def test_unused_listeners_and_telemetry_are_off(self):
        argv = weed_command(settings())

        for flag in (
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-s3.iam=false",
        ):
            assert flag in argv

    def test_grpc_ports_are_explicit_so_two_stores_never_collide(self):
        argv = weed_command(settings(ports=Ports(s3=1, master=2, volume=3, filer=4, metrics=5)))

        for flag in (
            "-s3.port.grpc=10001",
            "-master.port.grpc=10002",
            "-volume.port.grpc=10003",
            "-filer.port.grpc=10004",
        ):
            assert flag in argv

    def test_volume_plan_reaches_the_command_line(self):
        s = settings()

        argv = weed_command(s)

        assert f"-master.volumeSizeLimitMB={s.volumes.size_limit_mb}" in argv
        assert f"-volume.max={s.volumes.max_volumes}" in argv


class TestLayer:
    def test_service_restarts_on_failed_checks_and_stops_gracefully(self):
        layer = pebble_layer(settings())
        service = layer["services"][SERVICE]

        assert service["startup"] == "enabled"
        assert service["on-check-failure"] == {CHECK_S3: "restart", CHECK_MASTER: "restart"}
        assert int(service["kill-delay"].rstrip("s")) >= 30
        assert service["environment"]["WEED_MASTER_VOLUME_GROWTH_COPY_1"] == str(
            VOLUMES_PER_GROWTH
        )

    def test_checks_probe_s3_status_and_master_leadership_on_loopback(self):
        layer = pebble_layer(settings(ports=Ports(s3=18333, master=19333)))

        assert layer["checks"][CHECK_S3]["http"]["url"] == "http://127.0.0.1:18333/status"
        assert (
            layer["checks"][CHECK_MASTER]["http"]["url"]
            == "http://127.0.0.1:19333/cluster/healthz"
        )
        assert {c["level"] for c in layer["checks"].values()} == {"ready"}

    def test_standby_layer_never_starts_the_service(self):
        service = pebble_layer(settings(), serve=False)["services"][SERVICE]

        assert service["startup"] == "disabled"
        assert service["on-check-failure"] == {}


class TestIdentities:
    admin = Credentials("ADMINKEY", "adminsecret")

    def test_admin_has_every_right_and_clients_only_their_bucket(self):
        client = ClientIdentity("relation-7", "team-a", Credentials("AKEY", "asecret"))

        doc = json.loads(identities_config(self.admin, [client]))

        by_name = {i["name"]: i for i in doc["identities"]}
        assert "Admin" in by_name["charm-admin"]["actions"]
        assert by_name["relation-7"]["actions"] == [
            "Read:team-a",
            "Write:team-a",
            "List:team-a",
            "Tagging:team-a",
        ]
        assert by_name["relation-7"]["credentials"] == [
            {"accessKey": "AKEY", "secretKey": "asecret"}
        ]

    def test_admin_identity_is_present_even_without_clients(self):
        doc = json.loads(identities_config(self.admin, []))

        assert [i["name"] for i in doc["identities"]] == ["charm-admin"]

    def test_revoked_relations_become_tombstones_without_keys_or_rights(self):
        doc = json.loads(identities_config(self.admin, [], revoked=["relation-3"]))

        assert {"name": "relation-3", "credentials": [], "actions": []} in doc["identities"]

    def test_a_live_identity_wins_over_a_stale_tombstone_of_the_same_name(self):
        client = ClientIdentity("relation-3", "b3", Credentials("K", "S"))

        doc = json.loads(identities_config(self.admin, [client], revoked=["relation-3"]))

        entries = [i for i in doc["identities"] if i["name"] == "relation-3"]
        assert len(entries) == 1
        assert entries[0]["credentials"]

    def test_rendering_is_stable_so_unchanged_input_pushes_nothing(self):
        a = ClientIdentity("relation-1", "a-bucket", Credentials("K1", "S1"))
        b = ClientIdentity("relation-2", "b-bucket", Credentials("K2", "S2"))

        assert identities_config(self.admin, [a, b]) == identities_config(self.admin, [b, a])

    def test_credentials_repr_hides_the_secret_key(self):
        assert "adminsecret" not in repr(self.admin)


class TestVolumePlan:
    @pytest.mark.parametrize(
        ("capacity_gib", "buckets"),
        [(1, 1), (1, 7), (10, 1), (10, 8), (100, 20), (1024, 50), (8192, 100)],
    )
    def test_plan_fits_the_disk_and_every_bucket_served(self, capacity_gib: int, buckets: int):
        layout = volume_layout(capacity_gib * GIB, buckets)

        assert layout.size_limit_mb * layout.max_volumes <= capacity_gib * 1024
        assert layout.bucket_capacity >= buckets
        assert layout.size_limit_mb >= MIN_VOLUME_SIZE_MB

    def test_slots_double_only_when_buckets_pass_half_so_restarts_are_rare(self):
        plans = {n: volume_layout(100 * GIB, n) for n in range(0, 20)}

        assert {plans[n] for n in range(0, 9)} == {plans[0]}
        assert plans[9].bucket_slots == 32
        assert plans[9].size_limit_mb < plans[8].size_limit_mb

    def test_override_sets_the_volume_size(self):
        layout = volume_layout(10 * GIB, 1, size_limit_override_mb=512)

        assert layout.size_limit_mb == 512
        assert layout.max_volumes == int(10 * 1024 * 0.9) // 512

    def test_tiny_disk_reports_how_few_buckets_fit(self):
        layout = volume_layout(256 * 1024 * 1024, 1)

        assert layout.size_limit_mb == MIN_VOLUME_SIZE_MB
        assert layout.bucket_capacity == 3


class TestNames:
    @pytest.mark.parametrize("name", ["mlflow", "abc", "a-b-c", "x" * 63, "team-42-artifacts"])
    def test_valid_bucket_names(self, name: str):
        assert bucket_name_problem(name) is None

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "ab",
            "x" * 64,
            "UPPER",
            "has_underscore",
            "has.dot",
            "-leading",
            "trailing-",
            "space in",
            "new\nline",
            "semi;colon",
            "xn--punycode",
            "bucket-s3alias",
            "ümlaut",
            "a/b",
        ],
    )
    def test_invalid_bucket_names_say_why(self, name: str):
        problem = bucket_name_problem(name)

        assert problem is not None
        assert len(problem) > 10

    @pytest.mark.parametrize(
        ("app", "bucket"),
        [
            ("mlflow-tracking", "mlflow-tracking"),
            ("MyApp_2", "myapp-2"),
            ("ab", "ab-bucket"),
            ("x" * 80, "x" * 63),
        ],
    )
    def test_default_bucket_derives_a_valid_name_from_the_app(self, app: str, bucket: str):
        assert default_bucket_for(app) == bucket
        assert bucket_name_problem(default_bucket_for(app)) is None

    def test_bucket_create_script_refuses_what_would_inject_shell_commands(self):
        with pytest.raises(ValueError, match="invalid bucket"):
            bucket_create_script("ok\ns3.bucket.delete -name victim")

    def test_parse_bucket_list_reads_weed_shell_output(self):
        output = "  alpha\tsize:0\tlogical:0\tchunk:0\n  beta-2\tsize:12\tlogical:12\tchunk:1\n"

        assert parse_bucket_list(output) == {"alpha", "beta-2"}
