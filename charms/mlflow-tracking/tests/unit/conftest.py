"""Scenario fixtures for the mlflow-tracking charm: per relation, bare and ready.

Stubbed boundaries, and only these: ``client.Probe`` (network checks),
``lightkube.Client`` (the Kubernetes API, ``fake_kubernetes``) and the workload container's
commands (``testing.Exec`` for the image probe, ``mlflow db upgrade``, the
bucket check and the users script).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from auth import SECRET_LABEL, users_argv
from fake_kubernetes import FakeCluster
from ops import testing

from stack.tls import TestCA, answered, issued

import charm
import client
from charm import MlflowTrackingCharm
from constants import (
    CONTAINER,
    ENV_FILE,
    IMAGE_MODULES,
    INGRESS_RELATION,
    ISTIO_INGRESS_RELATION,
    OBJECT_STORAGE_RELATION,
    POD_DEFAULTS_RELATION,
    S3_RELATION,
    SECRETS_RELATION,
    SERVICE,
    STORAGE,
    TLS_RELATION,
)
from workload import db_upgrade_argv, ensure_bucket_argv, probe_argv

APP = "mlflow-tracking"
ENV_FILE_PATH = ENV_FILE.lstrip("/")
ALL_MODULES = ",".join(IMAGE_MODULES)


@dataclass
class FakeNetwork:
    """What the stubbed probes answer."""

    server_ready: bool = True
    unreachable: set[str] = field(default_factory=set)
    # The CA each /health probe trusted (None: plain HTTP).
    probed_with: list[str | None] = field(default_factory=list)


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
    monkeypatch.setattr(charm, "READY_TIMEOUT", 0.0)
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


def container(
    modules: str = ALL_MODULES,
    upgrade_rc: int = 0,
    connect: bool = True,
    bucket_rc: int = 0,
    users_rc: int = 0,
) -> testing.Container:
    """The workload container; the image probe reports ``modules``."""
    execs = {
        testing.Exec(probe_argv(IMAGE_MODULES), stdout=modules + "\n"),
        testing.Exec(db_upgrade_argv("mlflow"), return_code=upgrade_rc, stderr="alembic says no"),
        testing.Exec(ensure_bucket_argv(), return_code=bucket_rc, stdout="created\n"),
        testing.Exec(
            users_argv(), return_code=users_rc, stdout="created admin\ncreated notebook\n"
        ),
    }
    return testing.Container(CONTAINER, can_connect=connect, execs=execs)


def make_state(
    *relations: testing.RelationBase,
    secrets: tuple[testing.Secret, ...] = (),
    leader: bool = True,
    config: dict[str, Any] | None = None,
    workload: testing.Container | None = None,
    storage: bool = True,
    planned_units: int = 1,
    auth_generated: bool = True,
) -> testing.State:
    """A state with the usual furniture; arguments change one thing at a time.

    ``auth_generated``: the leader has already created the ``mlflow-auth`` secret.
    """
    return testing.State(
        model=testing.Model(name="test-model"),
        leader=leader,
        config=config or {},
        relations=set(relations),
        secrets={*secrets, AUTH_SECRET} if auth_generated else set(secrets),
        containers={workload or container()},
        storages={testing.Storage(STORAGE)} if storage else set(),
        planned_units=planned_units,
    )


AUTH_CONTENT = {
    "admin-password": "admin-pw-0123456789abcdef",
    "notebook-password": "notebook-pw-0123456789abcdef",
    "flask-secret-key": "flask-key-0123456789abcdef",
}
AUTH_SECRET = testing.Secret(tracked_content=AUTH_CONTENT, label=SECRET_LABEL, owner="app")


def request_id(database: str = "mlflow", app: str = APP) -> tuple[str, str]:
    """The (request id, salt) the charm's database request carries."""
    from dpcharmlibs.interfaces import gen_hash

    salt = hashlib.sha256(f"{app}:{database}".encode()).hexdigest()[:16]
    return gen_hash(database, salt), salt


def database_relation(
    endpoint: str,
    app: str,
    endpoints: str,
    username: str = "relation_7",
    password: str | None = "s3cr3t",
    uris: str | None = None,
    database: str = "mlflow",
    version: str = "v1",
) -> tuple[testing.Relation, testing.Secret]:
    """A database relation whose provider answered (dpcharmlibs v1 layout), and its secret."""
    content = {"username": username}
    if password is not None:
        content["password"] = password
    if uris is not None:
        content["uris"] = uris
    secret = testing.Secret(content, owner=None)
    rid, salt = request_id(database)
    response = {
        "resource": database,
        "request-id": rid,
        "salt": salt,
        "endpoints": endpoints,
        "secret-user": secret.id,
        "version": "6.1.0",
        "password": None,
    }
    data = {
        "version": version,
        "requests": json.dumps([response]),
        "data": json.dumps({rid: {"resource": database, "request-id": rid, "salt": salt}}),
    }
    return testing.Relation(endpoint, remote_app_name=app, remote_app_data=data), secret


def v0_database_relation(
    endpoint: str,
    app: str,
    endpoints: str,
    username: str = "relation_id_7",
    password: str = "v0-s3cr3t",
    tls_ca: str | None = None,
    engine_version: str = "16.6",
    local_app_data: dict[str, str] | None = None,
) -> tuple[testing.Relation, list[testing.Secret]]:
    """A relation answered by a v0 provider (postgresql-k8s, mysql-k8s), and its secrets.

    Shaped as data-platform-libs' v0 ``DatabaseProvides`` writes it: a flat
    databag, the engine's version in ``version``, credentials in ``secret-user``
    and TLS in ``secret-tls``.
    """
    user = testing.Secret({"username": username, "password": password}, owner=None)
    secrets = [user]
    data = {
        "database": "mlflow",
        "endpoints": endpoints,
        "read-only-endpoints": endpoints,
        "version": engine_version,
        "secret-user": user.id,
        "data": json.dumps({"database": "mlflow"}),
    }
    if tls_ca is not None:
        tls = testing.Secret({"tls": "True", "tls-ca": tls_ca}, owner=None)
        secrets.append(tls)
        data["secret-tls"] = tls.id
    relation = testing.Relation(
        endpoint,
        remote_app_name=app,
        remote_app_data=data,
        local_app_data=local_app_data or {},
    )
    return relation, secrets


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


def s3_relation(
    bucket: str = "mlflow-tracking",
    path: str = "",
    endpoint: str = "http://seaweedfs.model.svc.cluster.local:8333",
    extra: dict[str, str] | None = None,
) -> tuple[testing.Relation, testing.Secret]:
    """An s3-credentials relation whose provider answered (object-storage-charmlib v1)."""
    secret = testing.Secret(
        {"access-key": "AKEY1234567890", "secret-key": "SKEY-very-secret"}, owner=None
    )
    data = {
        "version": "1",
        "bucket": bucket,
        "path": path,
        "endpoint": endpoint,
        "region": "us-east-1",
        "s3-uri-style": "path",
        "secret-extra": secret.id,
        **(extra or {}),
    }
    relation = testing.Relation(
        S3_RELATION,
        remote_app_name="seaweedfs",
        remote_app_data=data,
        local_unit_data={"requested-secrets": json.dumps(["access-key", "secret-key"])},
    )
    return relation, secret


@pytest.fixture
def s3_ready() -> tuple[testing.Relation, testing.Secret]:
    return s3_relation()


@pytest.fixture
def s3_bare() -> testing.Relation:
    return testing.Relation(S3_RELATION, remote_app_name="seaweedfs")


MINIO_KEYS = {"access-key": "minio", "secret-key": "minio-secret-key-0123456789"}


def object_storage_relation(**overrides: Any) -> testing.Relation:
    """An object-storage relation answered as Charmed Kubeflow's minio answers it.

    serialized-data-interface's layout: ``_supported_versions`` (YAML list) and
    one YAML mapping under ``data``, with the minio charm's fields.
    """
    import yaml

    data = {
        **MINIO_KEYS,
        "service": "minio",
        "namespace": "kubeflow",
        "port": 9000,
        "secure": False,
        **overrides,
    }
    return testing.Relation(
        OBJECT_STORAGE_RELATION,
        remote_app_name="minio",
        remote_app_data={"_supported_versions": "- v1\n", "data": yaml.safe_dump(data)},
    )


@pytest.fixture
def object_storage_ready() -> testing.Relation:
    return object_storage_relation()


@pytest.fixture
def object_storage_bare() -> testing.Relation:
    return testing.Relation(OBJECT_STORAGE_RELATION, remote_app_name="minio")


def traefik_relation(url: str | None = "http://ingress.example.com/test-model-mlflow-tracking"):
    """An ingress relation; with ``url``, traefik answered (ingress v2: JSON-encoded values)."""
    remote = {"ingress": json.dumps({"url": url})} if url else {}
    return testing.Relation(INGRESS_RELATION, remote_app_name="traefik", remote_app_data=remote)


@pytest.fixture
def ingress_ready() -> testing.Relation:
    return traefik_relation()


@pytest.fixture
def ingress_bare() -> testing.Relation:
    return traefik_relation(url=None)


def istio_relation(external_host: str | None = "gateway.example.com", tls: bool = False):
    """An istio-ingress-route relation; with a host, the gateway answered."""
    remote = {"external_host": external_host, "tls_enabled": str(tls)} if external_host else {}
    return testing.Relation(
        ISTIO_INGRESS_RELATION, remote_app_name="istio-ingress", remote_app_data=remote
    )


@pytest.fixture
def pod_defaults_relation() -> testing.Relation:
    return testing.Relation(POD_DEFAULTS_RELATION, remote_app_name="resource-dispatcher")


@pytest.fixture
def secrets_relation() -> testing.Relation:
    return testing.Relation(SECRETS_RELATION, remote_app_name="resource-dispatcher")


def command(state: testing.State) -> str:
    """The server's command line in the output plan (what supervise.py runs)."""
    service_command = state.get_container(CONTAINER).plan.services[SERVICE].command
    supervisor, server = service_command.split(" -- ", 1)
    assert supervisor == (
        "python3 /etc/mlflow/supervise.py /tmp/mlflow-server.pgid --env-file /etc/mlflow/server.env"
    ), supervisor
    return server


def env_file(ctx: testing.Context[Any], state: testing.State) -> str:
    """The env file the charm pushed."""
    root = state.get_container(CONTAINER).get_filesystem(ctx)
    return Path(root / ENV_FILE.lstrip("/")).read_text()


def env_line(ctx: testing.Context[Any], state: testing.State, name: str) -> str:
    """The env file's line for ``name`` (with its newline)."""
    [line] = [ln for ln in env_file(ctx, state).splitlines(True) if ln.startswith(f"{name}=")]
    return line


def sent_manifests(state: testing.State, relation: testing.Relation) -> list[dict]:
    """The manifests the charm sent on a kubernetes_manifest relation."""
    data: dict[str, str] = dict(state.get_relation(relation.id).local_app_data)
    assert data["is_secret"] == "true"
    secret = state.get_secret(id=data["kubernetes_manifests"])
    assert secret.remote_grants == {relation.id: {"resource-dispatcher"}}
    content: dict[str, str] = dict(secret.latest_content or {})
    return json.loads(content["manifests"])


# -- certificates (tls-certificates; the provider side is stack.tls, written from
# self-signed-certificates' source) ------------------------------------------

TLS_CA = TestCA("unit-test CA")
TLS_PROVIDER = "self-signed-certificates"


@pytest.fixture
def tls_bare() -> testing.Relation:
    """The relation before the provider answered anything."""
    return testing.Relation(TLS_RELATION, remote_app_name=TLS_PROVIDER)


def tls_answered(
    ctx: testing.Context[Any], state: testing.State, relation: testing.Relation
) -> testing.State:
    """``state`` after the unit sent its CSR and the provider signed it (not yet seen)."""
    return answered(ctx, state, relation, TLS_CA)


def tls_ready(
    ctx: testing.Context[Any], state: testing.State, relation: testing.Relation
) -> testing.State:
    """The output state once the issued certificate has been seen (relation-changed)."""
    return issued(ctx, state, relation, TLS_CA)
