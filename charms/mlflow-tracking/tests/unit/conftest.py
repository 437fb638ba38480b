"""Scenario fixtures for the mlflow-tracking charm: per relation, bare and ready.

Stubbed boundaries, and only these: ``client.Probe`` (network checks),
``lightkube.Client`` (the Kubernetes API, ``fake_kubernetes``) and the workload container's
commands (``testing.Exec`` for the image probe, ``mlflow db upgrade``, the
bucket check and the users script).
"""

from __future__ import annotations

import pytest
from ops import testing

import client
from charm import MlflowTrackingCharm
from constants import (
    OBJECT_STORAGE_RELATION,
    POD_DEFAULTS_RELATION,
    S3_RELATION,
    SECRETS_RELATION,
    TLS_RELATION,
)
from fake_kubernetes import FakeCluster
from helpers import (
    APP,
    TLS_PROVIDER,
    FakeNetwork,
    database_relation,
    object_storage_relation,
    s3_relation,
    traefik_relation,
    v0_database_relation,
)


@pytest.fixture(autouse=True)
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    fake = FakeNetwork()

    def server_ready(_self: client.Probe, _port: int, ca: str | None = None) -> bool:
        fake.probed_with.append(ca)
        return fake.server_ready

    monkeypatch.setattr(client.Probe, "server_ready", server_ready)
    monkeypatch.setattr(
        client.Probe,
        "reachable",
        lambda self, host, port: f"{host}:{port}" not in fake.unreachable,
    )
    monkeypatch.setattr(
        client.Probe, "url_reachable", lambda self, url: url not in fake.unreachable
    )
    return fake


@pytest.fixture(autouse=True)
def kubernetes(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    """The Kubernetes API behind lightkube's Client: one labelled user namespace."""
    import lightkube

    cluster = FakeCluster(namespaces={"user-ns": {"user.kubeflow.org/enabled": "true"}})
    monkeypatch.setattr(lightkube, "Client", cluster.client)
    return cluster


@pytest.fixture
def ctx() -> testing.Context[MlflowTrackingCharm]:
    return testing.Context(MlflowTrackingCharm, app_name=APP)


@pytest.fixture
def postgresql_v0_ready() -> tuple[testing.Relation, list[testing.Secret]]:
    return v0_database_relation(
        "postgresql", "postgresql-k8s", "postgresql-k8s-primary.model.svc.cluster.local:5432"
    )


@pytest.fixture
def mysql_v0_ready() -> tuple[testing.Relation, list[testing.Secret]]:
    return v0_database_relation(
        "mysql",
        "mysql-k8s",
        "mysql-k8s-primary.model.svc.cluster.local.:3306",
        engine_version="8.0.41",
    )


@pytest.fixture
def postgresql_bare() -> testing.Relation:
    return testing.Relation("postgresql", remote_app_name="postgresql-k8s")


@pytest.fixture
def cratedb_ready() -> tuple[testing.Relation, testing.Secret]:
    return database_relation("cratedb", "cratedb", "cratedb-0.cratedb-endpoints:4200")


@pytest.fixture
def postgresql_ready() -> tuple[testing.Relation, testing.Secret]:
    return database_relation("postgresql", "postgresql-k8s", "pg-primary.svc:5432")


@pytest.fixture
def mysql_ready() -> tuple[testing.Relation, testing.Secret]:
    return database_relation("mysql", "mysql-k8s", "mysql-primary.svc:3306")


@pytest.fixture
def cratedb_bare() -> testing.Relation:
    return testing.Relation("cratedb", remote_app_name="cratedb")


@pytest.fixture
def s3_ready() -> tuple[testing.Relation, testing.Secret]:
    return s3_relation()


@pytest.fixture
def s3_bare() -> testing.Relation:
    return testing.Relation(S3_RELATION, remote_app_name="seaweedfs")


@pytest.fixture
def object_storage_ready() -> testing.Relation:
    return object_storage_relation()


@pytest.fixture
def object_storage_bare() -> testing.Relation:
    return testing.Relation(OBJECT_STORAGE_RELATION, remote_app_name="minio")


@pytest.fixture
def ingress_ready() -> testing.Relation:
    return traefik_relation()


@pytest.fixture
def ingress_bare() -> testing.Relation:
    return traefik_relation(url=None)


@pytest.fixture
def pod_defaults_relation() -> testing.Relation:
    return testing.Relation(POD_DEFAULTS_RELATION, remote_app_name="resource-dispatcher")


@pytest.fixture
def secrets_relation() -> testing.Relation:
    return testing.Relation(SECRETS_RELATION, remote_app_name="resource-dispatcher")


@pytest.fixture
def tls_bare() -> testing.Relation:
    """The relation before the provider answered anything."""
    return testing.Relation(TLS_RELATION, remote_app_name=TLS_PROVIDER)
