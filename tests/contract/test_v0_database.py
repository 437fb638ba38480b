"""mlflow-tracking against the database charms people run today: v0 providers.

The stand-in (``v0_database_provider.py``, written from postgresql-k8s's and
mysql-k8s's published source) is chained with the real mlflow-tracking charm:
what mlflow-tracking writes is what the stand-in reads, and what the stand-in
answers (flat databag + granted secrets) is what mlflow-tracking reads. Our
own cratedb charm's v0 answer is chained the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from ops import testing

from tests.contract.chain import bag, context, handover, with_changes
from tests.contract.test_contracts import (
    CRATEDB_MLFLOW_CONFIG,
    cratedb_state,
    mlflow_env,
    mlflow_state,
)
from tests.contract.v0_database_provider import ACTIONS, CONFIG, META, V0DatabaseProvider

# The doors the chained charms reach (network probes, CrateDB's SQL) are
# stubbed by test_contracts' autouse fixture, imported here for its effect.
from tests.contract.test_contracts import doors  # noqa: F401  isort: skip

PROVIDER_APP = {"postgresql": "postgresql-k8s", "mysql": "mysql-k8s"}


def provider_context(engine: str) -> testing.Context[Any]:
    return testing.Context(
        V0DatabaseProvider,
        meta=META,
        config=CONFIG,
        actions=ACTIONS,
        app_name=PROVIDER_APP[engine],
    )


def provider_state(relation: testing.Relation, engine: str, **config: Any) -> testing.State:
    return testing.State(
        leader=True,
        relations={relation},
        config={"engine": engine, **config},
        model=testing.Model(name="model"),
    )


@dataclasses.dataclass
class Chain:
    """One mlflow-tracking <-> v0 provider relation, both sides' last states."""

    engine: str
    ml_ctx: testing.Context[Any]
    ml_state: testing.State
    ml_relation_id: int
    provider_ctx: testing.Context[Any]
    provider_state: testing.State
    provider_relation_id: int


def relate(engine: str, **provider_config: Any) -> Chain:
    """Relate, let the stand-in answer, and feed the answer back to mlflow-tracking."""
    ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    asking = testing.Relation(engine, remote_app_name=PROVIDER_APP[engine])
    asked = ml_ctx.run(ml_ctx.on.relation_created(asking), mlflow_state(asking))

    request, _ = handover(asked, asking.id, endpoint="database", app_name="mlflow-tracking")
    provider_ctx = provider_context(engine)
    answered = provider_ctx.run(
        provider_ctx.on.relation_changed(request, remote_unit=0),
        provider_state(request, engine, **provider_config),
    )
    chain = Chain(engine, ml_ctx, asked, asking.id, provider_ctx, answered, request.id)
    feed_answer(chain)
    return chain


def feed_answer(chain: Chain, event: str = "relation_changed") -> None:
    """mlflow-tracking reads the stand-in's current databag and secrets."""
    mine = chain.ml_state.get_relation(chain.ml_relation_id)
    answer, secrets = handover(
        chain.provider_state,
        chain.provider_relation_id,
        endpoint=chain.engine,
        app_name=PROVIDER_APP[chain.engine],
        local_app_data=dict(mine.local_app_data),
    )
    answer = dataclasses.replace(answer, id=chain.ml_relation_id)
    known = {s.id: s for s in chain.ml_state.secrets}
    merged = []
    for secret in secrets:
        if secret.id in known:
            # The same secret, a new revision: what the requirer tracks stays.
            merged.append(
                dataclasses.replace(known[secret.id], latest_content=secret.tracked_content)
            )
        else:
            merged.append(secret)
    state = with_changes(chain.ml_state, relations={answer}, secrets=set(merged))
    if event == "secret_changed":
        [user] = [s for s in merged if "password" in bag(s.latest_content)]
        trigger = chain.ml_ctx.on.secret_changed(user)
    else:
        trigger = chain.ml_ctx.on.relation_changed(answer, remote_unit=0)
    chain.ml_state = chain.ml_ctx.run(trigger, state)


def store_uri(chain: Chain) -> Any:
    return urlsplit(mlflow_env(chain.ml_ctx, chain.ml_state)["MLFLOW_BACKEND_STORE_URI"])


class TestPostgresqlK8sV0:
    def test_reaches_active_on_the_database_it_created(self):
        chain = relate("postgresql")

        assert chain.ml_state.unit_status == testing.ActiveStatus(
            "metadata: PostgreSQL; artifacts: local storage (proxied)"
        )
        uri = store_uri(chain)
        assert uri.scheme == "postgresql+psycopg2"
        assert (uri.username, unquote(uri.password or "")) == (
            f"relation_id_{chain.provider_relation_id}",
            f"pw-{chain.provider_relation_id}-initial-0001",
        )
        assert uri.hostname == "postgresql-k8s-primary.model.svc.cluster.local"
        assert (uri.port, uri.path) == (5432, "/mlflow")

    def test_credentials_travel_only_in_a_secret(self):
        chain = relate("postgresql")

        answer = bag(chain.provider_state.get_relation(chain.provider_relation_id).local_app_data)
        assert "password" not in answer
        assert "username" not in answer
        assert answer["secret-user"].startswith("secret:")

    def test_a_rotated_password_restarts_mlflow_with_it(self):
        chain = relate("postgresql")
        before = mlflow_env(chain.ml_ctx, chain.ml_state)
        rid = chain.provider_relation_id

        chain.provider_state = chain.provider_ctx.run(
            chain.provider_ctx.on.action("rotate-password", params={"relation-id": rid}),
            chain.provider_state,
        )
        feed_answer(chain, event="secret_changed")

        assert unquote(store_uri(chain).password or "") == f"pw-{rid}-rotated-0002"
        assert mlflow_env(chain.ml_ctx, chain.ml_state) != before
        assert chain.ml_state.unit_status.name == "active"

    def test_tls_with_a_ca_makes_mlflow_verify_the_server(self):
        chain = relate("postgresql", **{"tls-ca": "-----BEGIN CERTIFICATE-----\nCA"})

        uri = store_uri(chain)
        assert uri.query == "sslmode=verify-ca&sslrootcert=%2Fetc%2Fmlflow%2Fdb-ca.pem"
        root = chain.ml_state.get_container("mlflow-server").get_filesystem(chain.ml_ctx)
        assert (root / "etc/mlflow/db-ca.pem").read_text() == "-----BEGIN CERTIFICATE-----\nCA"

    def test_relation_broken_returns_to_sqlite(self):
        chain = relate("postgresql")
        relation = chain.ml_state.get_relation(chain.ml_relation_id)

        out = chain.ml_ctx.run(chain.ml_ctx.on.relation_broken(relation), chain.ml_state)

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: local storage (proxied)"
        )
        assert mlflow_env(chain.ml_ctx, out)["MLFLOW_BACKEND_STORE_URI"].startswith("sqlite:")

    def test_a_provider_that_never_answers_leaves_mlflow_waiting_and_says_for_whom(self):
        chain = relate("postgresql", answer=False)

        assert chain.ml_state.unit_status == testing.WaitingStatus(
            "postgresql: waiting for postgresql-k8s to create 'mlflow' (server not started yet)"
        )
        answer = bag(chain.provider_state.get_relation(chain.provider_relation_id).local_app_data)
        assert set(answer) == {"data"}


class TestMysqlK8sV0:
    def test_reaches_active_with_the_trailing_dot_endpoint(self):
        chain = relate("mysql")

        assert chain.ml_state.unit_status == testing.ActiveStatus(
            "metadata: MySQL; artifacts: local storage (proxied)"
        )
        uri = store_uri(chain)
        assert uri.scheme == "mysql+pymysql"
        assert uri.hostname == "mysql-k8s-primary.model.svc.cluster.local."
        assert (uri.port, uri.path, uri.query) == (3306, "/mlflow", "")
        assert unquote(uri.password or "") == f"pw-{chain.provider_relation_id}-initial-0001"

    def test_a_rotated_password_restarts_mlflow_with_it(self):
        chain = relate("mysql")
        rid = chain.provider_relation_id

        chain.provider_state = chain.provider_ctx.run(
            chain.provider_ctx.on.action("rotate-password", params={"relation-id": rid}),
            chain.provider_state,
        )
        feed_answer(chain, event="secret_changed")

        assert unquote(store_uri(chain).password or "") == f"pw-{rid}-rotated-0002"

    def test_relation_broken_returns_to_sqlite(self):
        chain = relate("mysql")
        relation = chain.ml_state.get_relation(chain.ml_relation_id)

        out = chain.ml_ctx.run(chain.ml_ctx.on.relation_broken(relation), chain.ml_state)

        assert out.unit_status.message.startswith("metadata: embedded SQLite;")

    def test_a_provider_that_never_answers_leaves_mlflow_waiting(self):
        chain = relate("mysql", answer=False)

        assert chain.ml_state.unit_status.name == "waiting"
        assert "mysql-k8s" in chain.ml_state.unit_status.message


class TestStandIn:
    """The stand-in must behave as the facts say, or the tests above prove nothing."""

    @pytest.mark.parametrize("engine", ["postgresql", "mysql"])
    def test_without_requested_secrets_it_writes_credentials_in_plain_data(self, engine: str):
        relation = testing.Relation("database", remote_app_data={"database": "mlflow"})
        ctx = provider_context(engine)

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0), provider_state(relation, engine)
        )

        answer = bag(out.get_relation(relation.id).local_app_data)
        assert {"username", "password"} <= set(answer)
        assert "secret-user" not in answer

    def test_a_request_without_database_is_not_answered(self):
        relation = testing.Relation(
            "database", remote_app_data={"version": "v1", "requests": "[]"}
        )
        ctx = provider_context("postgresql")

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            provider_state(relation, "postgresql"),
        )

        assert set(bag(out.get_relation(relation.id).local_app_data)) == {"data"}

    def test_mlflow_with_plain_credentials_from_such_a_provider_blocks_and_uses_none(self):
        ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
        relation = testing.Relation(
            "postgresql",
            remote_app_name="postgresql-k8s",
            remote_app_data={"endpoints": "pg:5432", "username": "u", "password": "plain-pw-123"},
        )

        out = ml_ctx.run(
            ml_ctx.on.relation_changed(relation, remote_unit=0), mlflow_state(relation)
        )

        assert out.unit_status.name == "blocked"
        assert "upgrade postgresql-k8s" in out.unit_status.message


class TestCratedbV0Answer:
    """Our cratedb charm answers a v0 request too; mlflow-tracking reads that answer."""

    def test_a_v0_only_request_gets_a_flat_answer_mlflow_runs_on(self):
        ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
        asking = testing.Relation("cratedb", remote_app_name="cratedb")
        asked = ml_ctx.run(
            ml_ctx.on.relation_created(asking), mlflow_state(asking, config=CRATEDB_MLFLOW_CONFIG)
        )
        request, _ = handover(asked, asking.id, endpoint="database", app_name="mlflow-tracking")
        # As a v0-only requirer would send it: no v1 fields.
        v0_only = {
            k: v
            for k, v in bag(request.remote_app_data).items()
            if k not in ("version", "requests")
        }
        request = dataclasses.replace(request, remote_app_data=v0_only)
        cr_ctx = context("cratedb")
        answered = cr_ctx.run(
            cr_ctx.on.relation_changed(request, remote_unit=0), cratedb_state(request)
        )
        flat = bag(answered.get_relation(request.id).local_app_data)
        assert flat.get("version") != "v1"
        assert "requests" not in flat

        answer, secrets = handover(
            answered,
            request.id,
            endpoint="cratedb",
            app_name="cratedb",
            local_app_data=dict(asked.get_relation(asking.id).local_app_data),
        )
        answer = dataclasses.replace(answer, id=asking.id)
        final = ml_ctx.run(
            ml_ctx.on.relation_changed(answer, remote_unit=0),
            with_changes(asked, relations={answer}, secrets=set(secrets)),
        )

        assert final.unit_status.message.startswith("metadata: CrateDB;"), final.unit_status
        uri = urlsplit(mlflow_env(ml_ctx, final)["MLFLOW_BACKEND_STORE_URI"])
        [user] = [bag(s.tracked_content) for s in secrets if "password" in bag(s.tracked_content)]
        assert (uri.scheme, uri.query) == ("crate", "schema=mlflow")
        assert unquote(uri.password or "") == user["password"]
