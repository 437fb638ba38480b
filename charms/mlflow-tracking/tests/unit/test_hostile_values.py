"""Answers that are well formed but carry hostile values, field by field.

``test_properties`` throws malformed databags at the charm; here every answer
is shaped exactly as the real providers shape it (secrets present), and one
field at a time holds a value built to escape: a newline and a second
variable, NUL, ``?`` and ``#`` to smuggle URL options, ``/`` and ``@`` to move
the host, unicode, very long text. Whatever the charm accepts must reach the
env file, the store URI and the command line in a shape the charm chose; what
it refuses must leave the unit Blocked naming the application and the field.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing

from constants import CONTAINER, SERVICE
from helpers import (
    APP,
    ENV_FILE_PATH,
    container,
    make_state,
    object_storage_relation,
    s3_relation,
    v0_database_relation,
)
from in_container import envfile

ESCAPES = [
    "::1%]?host=evil.example&local_infile=1&program_name=:3306",
    "x\nHTTP_PROXY=http://attacker:3128",
    "x\r\nA=b",
    "nul\x00byte",
    "host/mlflow?local_infile=1&x=",
    "host#frag",
    "user@attacker.example",
    "attacker.example/x?ssl_ca=/etc/shadow",
    "ünïcødé",
    "x" * 5000,
    "${HOME}",
    "'; DROP TABLE runs; --",
    "[::1]:5432/x",
    "\u2028",
]
HOSTILE = st.one_of(st.sampled_from(ESCAPES), st.text(max_size=40))
# The query options the charm itself puts in a store URI; nothing else may appear.
OWN_OPTIONS = {"schema", "sslmode", "ca_cert", "sslrootcert", "ssl_ca", "ssl_check_hostname"}
# An endpoint host the provider could legitimately name, against which the URI's host is checked.
PLAIN_HOST = "db-0.db-endpoints.model.svc.cluster.local"


def _run(
    ctx: testing.Context[Any], relation: testing.Relation, secrets: list, event: str = "changed"
):
    state = make_state(relation, secrets=tuple(secrets), workload=container())
    return ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)


def _server(ctx: testing.Context[Any], out: testing.State) -> tuple[list[str], dict[str, str]]:
    """The server's argv and its env file as the reader gets it; ([], {}) when not configured."""
    services = out.get_container(CONTAINER).plan.services
    if SERVICE not in services:
        return [], {}
    root = out.get_container(CONTAINER).get_filesystem(ctx)
    env_path = Path(root / ENV_FILE_PATH)
    env = envfile.parse(env_path.read_text()) if env_path.exists() else {}
    return shlex.split(services[SERVICE].command), env


def _assert_refused_or_clean(ctx: testing.Context[Any], out: testing.State, app: str) -> None:
    assert out.unit_status.name in {"active", "waiting", "blocked", "maintenance"}
    if out.unit_status.name == "blocked":
        assert app in out.unit_status.message
    argv, env = _server(ctx, out)
    for value in [*argv, *env.values()]:
        assert not any(ord(c) < 32 or ord(c) == 127 for c in value)
    uri = env.get("MLFLOW_BACKEND_STORE_URI", "")
    if uri and not uri.startswith("sqlite"):
        parts = urlsplit(uri)
        assert {k for k, _ in parse_qsl(parts.query)} <= OWN_OPTIONS
        assert parts.fragment == ""
        assert parts.hostname is not None
        assert "/" not in parts.hostname
        assert "?" not in parts.hostname


@pytest.fixture
def ctx() -> testing.Context[Any]:
    from charm import MlflowTrackingCharm

    return testing.Context(MlflowTrackingCharm, app_name=APP)


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(field=st.sampled_from(["endpoints", "username", "password", "tls-ca"]), value=HOSTILE)
def test_a_database_answer_with_a_hostile_field_never_reaches_the_uri_unchecked(
    ctx: testing.Context[Any], field: str, value: str
):
    fields: dict[str, Any] = {
        "endpoints": f"{PLAIN_HOST}:5432",
        "username": "relation_id_7",
        "password": "v0-s3cr3t",
        "tls_ca": None,
    }
    fields[field.replace("-", "_")] = value
    relation, secrets = v0_database_relation("postgresql", "postgresql-k8s", **fields)

    out = _run(ctx, relation, secrets)

    _assert_refused_or_clean(ctx, out, "postgresql-k8s")
    _, env = _server(ctx, out)
    uri = env.get("MLFLOW_BACKEND_STORE_URI", "")
    if field == "endpoints" and uri.startswith("postgresql"):
        assert urlsplit(uri).hostname in {value.rpartition(":")[0].lower(), value.lower()}


@SETTINGS
@given(
    field=st.sampled_from(
        ["endpoint", "region", "path", "access-key", "secret-key", "tls-ca-chain"]
    ),
    value=HOSTILE,
)
def test_an_s3_answer_with_a_hostile_field_never_reaches_the_env_unchecked(
    ctx: testing.Context[Any], field: str, value: str
):
    relation, secret = s3_relation()
    if field in ("access-key", "secret-key"):
        secret = testing.Secret({**secret.tracked_content, field: value}, id=secret.id, owner=None)
    else:
        relation = testing.Relation(
            relation.endpoint,
            remote_app_name=relation.remote_app_name,
            remote_app_data={**relation.remote_app_data, field: value},
            local_unit_data=relation.local_unit_data,
        )

    out = _run(ctx, relation, [secret])

    _assert_refused_or_clean(ctx, out, "seaweedfs")


@SETTINGS
@given(field=st.sampled_from(["access-key", "secret-key", "service", "namespace"]), value=HOSTILE)
def test_a_minio_answer_with_a_hostile_field_never_reaches_the_env_unchecked(
    ctx: testing.Context[Any], field: str, value: str
):
    relation = object_storage_relation(**{field: value})

    out = _run(ctx, relation, [])

    _assert_refused_or_clean(ctx, out, "minio")


@pytest.mark.parametrize(
    ("endpoints", "why"),
    [
        ("host/mlflow?local_infile=1&x=", "endpoints is not a host name"),
        ("db:5432\nHTTP_PROXY=x", "endpoints contains control characters"),
        ("db:99999", "endpoints is not a TCP port"),
        (
            "::1%]?host=evil.example&local_infile=1&program_name=:3306",
            "endpoints is not a host name (no zone ids)",
        ),
    ],
)
def test_a_smuggled_database_host_blocks_naming_the_app_and_the_field(
    ctx: testing.Context[Any], endpoints: str, why: str
):
    relation, secrets = v0_database_relation("mysql", "mysql-k8s", endpoints)

    out = _run(ctx, relation, secrets)

    assert out.unit_status == testing.BlockedStatus(
        f"mysql: mysql-k8s sent an unusable answer: {why}"
    )
    assert not _server(ctx, out)[1].get("MLFLOW_BACKEND_STORE_URI", "").startswith("mysql")


def test_a_newline_in_an_s3_key_blocks_and_adds_no_variable(ctx: testing.Context[Any]):
    relation, secret = s3_relation()
    hostile = testing.Secret(
        {"access-key": "AKEY", "secret-key": "x\nHTTP_PROXY=http://attacker:3128"},
        id=secret.id,
        owner=None,
    )

    out = _run(ctx, relation, [hostile])

    assert out.unit_status.name == "blocked"
    assert "seaweedfs sent an unusable S3 answer: secret-key" in out.unit_status.message
    _, env = _server(ctx, out)
    assert "HTTP_PROXY" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_a_refusal_from_cratedb_blocks_naming_it_and_its_reason(ctx: testing.Context[Any]):
    relation = testing.Relation(
        "cratedb",
        remote_app_name="cratedb",
        remote_app_data={"error": "schema 'mlflow': 'mlflow' is served to other (relation 3)"},
    )

    out = _run(ctx, relation, [])

    assert out.unit_status == testing.BlockedStatus(
        "cratedb: cratedb refused the request: schema 'mlflow': 'mlflow' is served to other "
        "(relation 3)"
    )


def test_a_refusal_with_control_characters_is_not_repeated(ctx: testing.Context[Any]):
    relation = testing.Relation(
        "cratedb", remote_app_name="cratedb", remote_app_data={"error": "x\n\x1b[2Jforged"}
    )

    out = _run(ctx, relation, [])

    assert out.unit_status == testing.BlockedStatus(
        "cratedb: cratedb refused the request: (an unreadable reason)"
    )
