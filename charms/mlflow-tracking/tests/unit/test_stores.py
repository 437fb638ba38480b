"""Which stores the server runs on, and the get-client-env results: pure functions of what the relations offer."""

from __future__ import annotations

import shlex

from client_env import client_env_results
from relations.database import StoreReading
from relations.s3 import ArtifactReading
from state import LOCAL_ARTIFACTS, ArtifactStore, S3Credentials, StoreKind
from stores import choose_stores
from workload import build_store

CRATE = build_store(StoreKind.CRATEDB, "mlflow", "u", "pw", "db:4200", None)
PG = build_store(StoreKind.POSTGRESQL, "mlflow", "u", "pw", "pg:5432", None)
BUCKET = ArtifactStore(
    bucket="mlflow",
    path="",
    endpoint="http://s3:8333",
    region="us-east-1",
    credentials=S3Credentials("AK", "SK"),
)


def crate(store=CRATE, **kw) -> StoreReading:
    return StoreReading("cratedb", "crate", store=store, **kw)


def s3(**kw) -> tuple[str, ArtifactReading]:
    return ("s3-credentials", ArtifactReading("weed", **kw))


class TestPlanStores:
    def test_direct_mode_needs_an_s3_store(self):
        local = choose_stores([], [], planned_units=1, serve_artifacts=False)
        on_s3 = choose_stores([], [s3(artifacts=BUCKET)], planned_units=1, serve_artifacts=False)

        assert [m.split(" (")[0] for m in local.blocked] == [
            "serve-artifacts=false needs an S3 store"
        ]
        assert on_s3.blocked == []

    def test_nothing_related_runs_on_embedded_sqlite_and_local_artifacts(self):
        choice = choose_stores([], [], planned_units=1)
        assert choice.store is not None
        assert choice.store.kind is StoreKind.SQLITE
        assert choice.artifacts is LOCAL_ARTIFACTS
        assert (choice.blocked, choice.waiting) == ([], [])

    def test_related_stores_are_the_ones_used(self):
        choice = choose_stores([crate()], [s3(artifacts=BUCKET)], planned_units=3)
        assert (choice.store, choice.artifacts, choice.blocked) == (CRATE, BUCKET, [])

    def test_two_databases_block_and_name_both(self):
        pg = StoreReading("postgresql", "pg", store=PG)
        choice = choose_stores([crate(), pg], [], planned_units=1)
        assert choice.store is None
        assert choice.blocked == [
            "two metadata stores related: cratedb (crate) and postgresql (pg); remove one"
        ]

    def test_two_artifact_stores_block_and_name_both(self):
        minio = ("object-storage", ArtifactReading("minio", artifacts=BUCKET))
        choice = choose_stores([], [s3(artifacts=BUCKET), minio], planned_units=1)
        assert choice.artifacts is None
        assert choice.blocked == [
            "two artifact stores related: s3-credentials (weed) and object-storage (minio); "
            "remove one"
        ]

    def test_a_store_still_coming_up_waits_without_a_fallback(self):
        choice = choose_stores(
            [crate(store=None, waiting="waiting for credentials")],
            [s3(waiting="waiting for the bucket")],
            planned_units=1,
        )
        assert (choice.store, choice.artifacts, choice.blocked) == (None, None, [])
        assert choice.waiting == [
            "cratedb: waiting for credentials",
            "s3-credentials: waiting for the bucket",
        ]

    def test_a_bad_offer_blocks_with_the_endpoint_named(self):
        choice = choose_stores([crate(store=None, problem="no endpoints")], [], planned_units=1)
        assert choice.blocked == ["cratedb: no endpoints"]

    def test_more_than_one_unit_needs_shared_stores(self):
        choice = choose_stores([], [], planned_units=2)
        assert choice.blocked == [
            "embedded SQLite serves one unit: relate a database or scale to 1",
            "local artifacts serve one unit: relate s3-credentials or scale to 1",
        ]

    def test_cratedb_is_planned_like_any_other_store(self):
        choice = choose_stores([crate()], [], planned_units=1)

        assert choice.blocked == []
        assert choice.store is not None


class TestClientEnvResults:
    def test_exports_are_shell_quoted_and_sorted(self):
        env = {"MLFLOW_TRACKING_URI": "http://t:5000", "MLFLOW_TRACKING_PASSWORD": "a b'c"}
        results = client_env_results(env, {})
        lines = results["exports"].splitlines()
        assert lines[0] == f"export MLFLOW_TRACKING_PASSWORD={shlex.quote('a b' + chr(39) + 'c')}"
        assert lines[1] == "export MLFLOW_TRACKING_URI=http://t:5000"
        assert set(results) == {"exports"}

    def test_each_ca_is_a_result_keyed_without_its_dot(self):
        results = client_env_results({}, {"mlflow-ca.crt": "PEM1", "s3-ca.crt": "PEM2"})
        assert results["mlflow-ca"] == "PEM1"
        assert results["s3-ca"] == "PEM2"

    def test_the_ingress_view_is_added_only_when_there_is_one(self):
        results = client_env_results(
            {"MLFLOW_TRACKING_URI": "http://in:5000"},
            {},
            {"MLFLOW_TRACKING_URI": "https://out/m-mlflow"},
            "https://out/m-mlflow/",
        )
        assert results["external-exports"] == "export MLFLOW_TRACKING_URI=https://out/m-mlflow"
        assert results["ui-url"] == "https://out/m-mlflow/"
