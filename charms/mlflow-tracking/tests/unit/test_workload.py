"""The pure builders: store URIs, command line, env file, layer, client env."""

from __future__ import annotations

import pytest

from client_env import client_env
from state import LOCAL_ARTIFACTS, ArtifactStore, S3Credentials, StoreKind
from workload import (
    ServerSettings,
    allowed_hosts,
    build_store,
    env_file,
    pebble_layer,
    server_command,
    sqlite_store,
)

S3 = ArtifactStore(
    bucket="b",
    path="p",
    endpoint="http://s3:8333",
    region="r",
    credentials=S3Credentials("AK", "SK"),
)

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class TestStoreUris:
    @pytest.mark.parametrize(
        ("kind", "expected"),
        [
            (StoreKind.CRATEDB, "crate://u:pw@db:4200/?schema=mlflow"),
            (StoreKind.POSTGRESQL, "postgresql+psycopg2://u:pw@db:5432/mlflow"),
            (StoreKind.MYSQL, "mysql+pymysql://u:pw@db:3306/mlflow"),
        ],
    )
    def test_scheme_names_the_driver_and_default_port(self, kind: StoreKind, expected: str):
        assert build_store(kind, "mlflow", "u", "pw", "db", None).uri == expected

    def test_first_of_several_endpoints_is_used(self):
        store = build_store(StoreKind.CRATEDB, "s", "u", "pw", "a:4200,b:4200", None)

        assert (store.host, store.port) == ("a", 4200)

    def test_tls_without_a_ca_encrypts_without_verifying(self):
        crate = build_store(StoreKind.CRATEDB, "s", "u", "pw", "a:4200", None, tls=True)
        pg = build_store(StoreKind.POSTGRESQL, "d", "u", "pw", "a:5432", None, tls=True)
        my = build_store(StoreKind.MYSQL, "d", "u", "pw", "a:3306", None, tls=True)

        assert crate.uri.endswith("?schema=s&sslmode=require")
        assert pg.uri.endswith("/d?sslmode=require")
        assert my.uri.endswith("/d?ssl_check_hostname=false")
        assert (crate.ca_chain, pg.ca_chain, my.ca_chain) == ("", "", "")

    def test_tls_with_a_ca_verifies_the_server_against_the_ca_file(self):
        def build(kind: StoreKind) -> str:
            store = build_store(
                kind, "d", "u", "pw", "a:1", None, tls=True, ca_chain=PEM, ca_file="/etc/ca.pem"
            )
            assert store.ca_chain == PEM
            return store.uri

        assert build(StoreKind.CRATEDB).endswith(
            "?schema=d&sslmode=verify-ca&ca_cert=%2Fetc%2Fca.pem"
        )
        assert build(StoreKind.POSTGRESQL).endswith(
            "/d?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem"
        )
        assert build(StoreKind.MYSQL).endswith(
            "/d?ssl_ca=%2Fetc%2Fca.pem&ssl_check_hostname=false"
        )

    def test_a_ca_without_the_tls_flag_is_ignored(self):
        store = build_store(StoreKind.POSTGRESQL, "d", "u", "pw", "a:1", None, ca_chain=PEM)

        assert (store.uri.endswith("/d"), store.ca_chain) == (True, "")

    def test_endpoint_and_password_can_come_from_uris_alone(self):
        store = build_store(
            StoreKind.POSTGRESQL, "d", None, None, None, "postgresql://u:p%40w@h:6432/d"
        )

        assert store.uri == "postgresql+psycopg2://u:p%40w@h:6432/d"

    @pytest.mark.parametrize(
        ("username", "password", "endpoints"),
        [(None, "pw", "h:1"), ("u", None, "h:1"), ("u", "pw", None), ("u", "pw", "")],
    )
    def test_incomplete_answers_raise(self, username, password, endpoints):
        with pytest.raises(ValueError, match="username, password and endpoint"):
            build_store(StoreKind.MYSQL, "d", username, password, endpoints, None)

    def test_uri_is_hidden_from_repr(self):
        store = build_store(StoreKind.MYSQL, "d", "u", "topsecret", "h:1", None)

        assert "topsecret" not in repr(store)


class TestServer:
    def test_cratedb_needs_mlflow_cratedb_and_the_rest_plain_mlflow(self):
        crate = build_store(StoreKind.CRATEDB, "s", "u", "pw", "h", None)

        assert (
            server_command(ServerSettings(store=crate, artifacts=LOCAL_ARTIFACTS))[0]
            == "mlflow-cratedb"
        )
        assert (
            server_command(ServerSettings(store=sqlite_store(), artifacts=LOCAL_ARTIFACTS))[0]
            == "mlflow"
        )

    def test_direct_mode_uses_the_default_artifact_root(self):
        argv = server_command(
            ServerSettings(store=sqlite_store(), artifacts=S3, serve_artifacts=False)
        )

        assert argv[argv.index("--default-artifact-root") + 1] == "s3://b/p"
        assert "--no-serve-artifacts" in argv

    def test_env_file_single_quotes_and_escapes_every_value(self):
        store = build_store(StoreKind.MYSQL, "d", "u", "x", "h", None)
        creds = S3Credentials("AK", "it's\\mine")
        settings = ServerSettings(
            store=store, artifacts=ArtifactStore(bucket="b", credentials=creds)
        )

        text = env_file(settings)

        assert "AWS_SECRET_ACCESS_KEY='it\\'s\\\\mine'\n" in text
        assert text.count("\n") == 3

    def test_env_file_change_changes_the_layer_so_the_server_restarts(self):
        a = ServerSettings(store=sqlite_store("/a.db"), artifacts=LOCAL_ARTIFACTS)
        b = ServerSettings(store=sqlite_store("/b.db"), artifacts=LOCAL_ARTIFACTS)

        assert pebble_layer(a) != pebble_layer(b)
        assert pebble_layer(a) == pebble_layer(
            ServerSettings(store=sqlite_store("/a.db"), artifacts=LOCAL_ARTIFACTS)
        )

    def test_allowed_hosts_cover_every_service_name_with_and_without_port(self):
        hosts = allowed_hosts("app", "model", "cluster.local", ["ingress.example.com"])

        for name in ("app", "app.model", "app.model.svc", "app.model.svc.cluster.local"):
            assert name in hosts
            assert f"{name}:*" in hosts
        assert "ingress.example.com" in hosts
        assert "*" not in hosts


class TestClientEnv:
    def test_proxied_clients_get_no_s3_keys_only_presigned_transfers(self):
        assert client_env("http://t:5000", S3, serve_artifacts=True) == {
            "MLFLOW_TRACKING_URI": "http://t:5000",
            "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true",
            "MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE": str(16 * 1024 * 1024),
            "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(32 * 1024 * 1024),
        }

    def test_clients_outside_the_cluster_upload_everything_through_the_server(self):
        env = client_env("http://localhost:5000", S3, serve_artifacts=True, in_cluster=False)

        assert env == {"MLFLOW_TRACKING_URI": "http://localhost:5000"}

    def test_direct_clients_get_the_s3_settings(self):
        assert client_env("http://t:5000", S3, serve_artifacts=False) == {
            "MLFLOW_TRACKING_URI": "http://t:5000",
            "MLFLOW_S3_ENDPOINT_URL": "http://s3:8333",
            "AWS_DEFAULT_REGION": "r",
            "AWS_ACCESS_KEY_ID": "AK",
            "AWS_SECRET_ACCESS_KEY": "SK",
        }

    def test_local_artifacts_never_hand_out_s3_settings(self):
        assert client_env("http://t", LOCAL_ARTIFACTS, serve_artifacts=False) == {
            "MLFLOW_TRACKING_URI": "http://t"
        }
