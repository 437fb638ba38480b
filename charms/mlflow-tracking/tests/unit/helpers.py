"""Test helpers for this charm's unit tests: states, relations, fakes, readers.

Fixtures live in ``conftest.py``; tests import these by name from ``helpers``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops import testing

from auth import SECRET_LABEL, users_argv
from constants import (
    CONTAINER,
    ENV_FILE,
    IMAGE_MODULES,
    INGRESS_RELATION,
    ISTIO_INGRESS_RELATION,
    OBJECT_STORAGE_RELATION,
    S3_RELATION,
    SERVICE,
    STORAGE,
)
from stack.tls import TestCA, answered, issued
from state import LOCAL_ARTIFACTS
from workload import (
    ServerSettings,
    cratedb_upgrade_argv,
    db_upgrade_argv,
    ensure_bucket_argv,
    probe_argv,
    schema_argv,
    sqlite_store,
)

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


# What the image's schema.py prints (see migration.py): the store at this MLflow's head.
HEAD = "7d34483879f0"
AT_HEAD = json.dumps({"current": HEAD, "head": HEAD, "known": True, "tables": True})


def schema_state(current: str | None, known: bool = True, tables: bool = True) -> str:
    """The schema script's output for a store at ``current``."""
    return json.dumps({"current": current, "head": HEAD, "known": known, "tables": tables})


def container(
    modules: str = ALL_MODULES,
    upgrade_rc: int = 0,
    connect: bool = True,
    bucket_rc: int = 0,
    users_rc: int = 0,
    schema: str = AT_HEAD,
) -> testing.Container:
    """The workload container; the image probe reports ``modules``, schema.py ``schema``."""
    execs = {
        testing.Exec(schema_argv(ServerSettings(sqlite_store(), LOCAL_ARTIFACTS)), stdout=schema),
        testing.Exec(probe_argv(IMAGE_MODULES), stdout=modules + "\n"),
        testing.Exec(db_upgrade_argv("mlflow"), return_code=upgrade_rc, stderr="alembic says no"),
        testing.Exec(
            cratedb_upgrade_argv(ServerSettings(sqlite_store(), LOCAL_ARTIFACTS)),
            return_code=upgrade_rc,
            stdout='{"copied": {"experiments": 2}, "created": ["spans"]}\n',
            stderr="cratedb_schema.py: RuntimeError: registered_models: 3 rows, 2 copied",
        ),
        testing.Exec(["cp", "-p"]),
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


def traefik_relation(url: str | None = "http://ingress.example.com/test-model-mlflow-tracking"):
    """An ingress relation; with ``url``, traefik answered (ingress v2: JSON-encoded values)."""
    remote = {"ingress": json.dumps({"url": url})} if url else {}
    return testing.Relation(INGRESS_RELATION, remote_app_name="traefik", remote_app_data=remote)


def istio_relation(external_host: str | None = "gateway.example.com", tls: bool = False):
    """An istio-ingress-route relation; with a host, the gateway answered."""
    remote = {"external_host": external_host, "tls_enabled": str(tls)} if external_host else {}
    return testing.Relation(
        ISTIO_INGRESS_RELATION, remote_app_name="istio-ingress", remote_app_data=remote
    )


def command(state: testing.State) -> str:
    """The server's command line in the output plan (what supervise.py runs)."""
    service_command = state.get_container(CONTAINER).plan.services[SERVICE].command
    supervisor, server = service_command.split(" -- ", 1)
    assert supervisor.startswith(
        "python3 /etc/mlflow/supervise.py /tmp/mlflow-server.pgid --env-file /etc/mlflow/server.env"
        " --ready-url http"
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


TLS_CA = TestCA("unit-test CA")


TLS_PROVIDER = "self-signed-certificates"


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


def service_env(state: testing.State) -> dict[str, str]:
    """The server's environment in the output plan (what carries no credential)."""
    return dict(state.get_container(CONTAINER).plan.services[SERVICE].environment)


def env_file_or_empty(ctx: testing.Context[Any], state: testing.State) -> str:
    """The env file the charm pushed, empty when it pushed none."""
    try:
        return env_file(ctx, state)
    except FileNotFoundError:
        return ""
