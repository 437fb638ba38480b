"""The three charms chained in ops.testing: what one writes is what the other reads.

Each test runs the requirer to produce its request, feeds that to the
provider, and feeds the provider's databags and granted secrets back to the
requirer, then asserts what the requirer configures. Only the charms'
network/SQL/exec doors are stubbed, exactly as in their unit tests.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from ops import testing

from stack.charm_loader import charm_modules
from tests.contract.chain import bag, context, handover, with_changes

ml = charm_modules(
    "mlflow-tracking", "charm", "client", "constants", "workload", "manifests", "auth"
)
cr = charm_modules("cratedb", "charm", "state")
sw = charm_modules("seaweedfs", "charm", "client")


@dataclass
class FakeCrate:
    """CrateDB as the cratedb charm's SQL door sees it (records statements)."""

    statements: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=set)

    def execute(self, statement: str) -> None:
        self.statements.append(statement)
        if m := re.match(r'CREATE USER "(\w+)"', statement):
            self.users.add(m.group(1))
        if m := re.match(r'DROP USER IF EXISTS "(\w+)"', statement):
            self.users.discard(m.group(1))

    def query(self, statement: str, args: Any = ()) -> list[tuple]:
        return []

    def status(self) -> Any:
        return cr.state.ClusterStatus(cr.state.Health.GREEN, 1, "6.4.0")

    def user_exists(self, user: str) -> bool:
        return user in self.users

    def tables_in(self, schema: str) -> list[tuple[str, bool]]:
        return []

    def schema_privileges(self) -> dict[str, set[str]]:
        held: dict[str, set[str]] = {}
        for statement in self.statements:
            if m := re.match(r'GRANT DQL, DML, DDL ON SCHEMA "(\w+)" TO "(\w+)"', statement):
                held.setdefault(m.group(2), set()).add(m.group(1))
            elif m := re.match(r'REVOKE DQL, DML, DDL ON SCHEMA "(\w+)" FROM "(\w+)"', statement):
                held.get(m.group(2), set()).discard(m.group(1))
            elif m := re.match(r'DROP USER IF EXISTS "(\w+)"', statement):
                held.pop(m.group(1), None)
        return {user: schemas for user, schemas in held.items() if schemas}

    def user_names(self) -> set[str]:
        return set(self.users)

    def max_replicas(self) -> int:
        return 0

    def repository_exists(self) -> bool:
        return False

    def snapshots(self) -> list[tuple]:
        return [("c1", "SUCCESS", "", "", 1)]

    def node_versions(self) -> dict[str, str]:
        return {"cratedb-0": "6.4.0"}

    def allocation_restricted(self) -> bool:
        return False

    def moving_shards(self) -> int:
        return 0


@pytest.fixture(autouse=True)
def doors(monkeypatch: pytest.MonkeyPatch) -> FakeCrate:
    """Stub each charm's narrow doors to the outside world."""
    monkeypatch.setattr(ml.client.Probe, "server_ready", lambda self, port, ca=None: True)
    monkeypatch.setattr(ml.client.Probe, "reachable", lambda self, host, port: True)
    monkeypatch.setattr(ml.client.Probe, "url_reachable", lambda self, url: True)
    monkeypatch.setattr(sw.client.WorkloadClient, "s3_ready", lambda self: True)
    monkeypatch.setattr(sw.client.WorkloadClient, "volume_status", lambda self: None)
    monkeypatch.setattr(sw.client, "disk_capacity_bytes", lambda path: 10 * 1024**3)
    fake = FakeCrate()
    monkeypatch.setattr(cr.charm, "CrateSQL", lambda https=False: fake)
    return fake


def mlflow_container() -> testing.Container:
    modules = ",".join(ml.constants.IMAGE_MODULES)
    return testing.Container(
        "mlflow-server",
        can_connect=True,
        execs={
            testing.Exec(ml.workload.probe_argv(ml.constants.IMAGE_MODULES), stdout=modules),
            # Creating a bucket for providers that create none (minio): it exists.
            testing.Exec(ml.workload.ensure_bucket_argv(), stdout="exists\n"),
            # The store's schema (schema.py): at the image's own revision, nothing to migrate.
            testing.Exec(
                ["python3", ml.constants.SCHEMA_FILE],
                stdout='{"current": "r1", "head": "r1", "known": true, "tables": true}',
            ),
            # MLflow's users (auth on by default): created.
            testing.Exec(ml.auth.users_argv(), stdout="created admin\ncreated notebook\n"),
        },
    )


# mlflow-tracking with CrateDB as bundle.yaml deploys it: the charm's defaults (auth on).
CRATEDB_MLFLOW_CONFIG: dict[str, Any] = {}


def mlflow_state(*relations: Any, secrets: Any = (), config: dict | None = None) -> testing.State:
    return testing.State(
        leader=True,
        relations=set(relations),
        secrets=set(secrets),
        containers={mlflow_container()},
        storages={testing.Storage("mlflow")},
        config=config or {},
    )


def cratedb_state(*relations: Any, secrets: Any = ()) -> testing.State:
    workload = testing.Container(
        "cratedb",
        can_connect=True,
        execs={
            testing.Exec(["cat"], stdout="4294967296\n"),
            testing.Exec(["chown"]),
            # What the image's crate -v prints (the refresh's version gate reads it).
            testing.Exec(
                ["/crate/bin/crate", "-v"],
                stdout="Version: 6.4.0, Build: ef3acf6/NA, JVM: 25.0.3\n",
            ),
        },
    )
    return testing.State(
        leader=True,
        relations={*relations, testing.PeerRelation("cluster")},
        secrets=set(secrets),
        containers={workload},
        storages={testing.Storage("data")},
    )


def seaweed_state(*relations: Any) -> testing.State:
    workload = testing.Container(
        "seaweedfs",
        can_connect=True,
        execs={testing.Exec(["weed", "-config_dir=/etc/seaweedfs/security", "shell"], stdout="")},
    )
    return testing.State(
        leader=True,
        relations={*relations, testing.PeerRelation("cluster")},
        containers={workload},
        storages={testing.Storage("data")},
    )


def mlflow_env(ctx: testing.Context[Any], state: testing.State) -> dict[str, str]:
    root = state.get_container("mlflow-server").get_filesystem(ctx)
    text = Path(root / "etc/mlflow/server.env").read_text()
    return {k: v.strip("'") for k, v in (line.split("=", 1) for line in text.splitlines())}


def _cratedb_round_trip(
    remote_model_uuid: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Mlflow asks, cratedb answers, mlflow reads: (mlflow's server env, the user secret)."""
    ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    asking = testing.Relation("cratedb", remote_app_name="cratedb")
    asked = ml_ctx.run(
        ml_ctx.on.relation_created(asking), mlflow_state(asking, config=CRATEDB_MLFLOW_CONFIG)
    )

    request, _ = handover(
        asked,
        asking.id,
        endpoint="database",
        app_name="mlflow-tracking",
        remote_model_uuid=remote_model_uuid,
    )
    cr_ctx = context("cratedb")
    answered = cr_ctx.run(
        cr_ctx.on.relation_changed(request, remote_unit=0), cratedb_state(request)
    )

    mine = asked.get_relation(asking.id)
    answer, secrets = handover(
        answered,
        request.id,
        endpoint="cratedb",
        app_name="cratedb",
        local_app_data=dict(mine.local_app_data),
        remote_model_uuid=remote_model_uuid,
    )
    final = ml_ctx.run(
        ml_ctx.on.relation_changed(answer, remote_unit=0),
        with_changes(asked, relations={answer}, secrets=set(secrets)),
    )
    assert final.unit_status.message.startswith("metadata: CrateDB;"), final.unit_status
    [secret] = secrets
    return mlflow_env(ml_ctx, final), bag(secret.tracked_content)


class TestCrateDBToMlflow:
    def test_answer_yields_a_working_crate_uri_for_the_requested_schema(self, doors: FakeCrate):
        env, secret = _cratedb_round_trip()

        uri = urlsplit(env["MLFLOW_BACKEND_STORE_URI"])
        assert uri.scheme == "crate"
        assert uri.username == secret["username"]
        assert unquote(uri.password or "") == secret["password"]
        assert uri.query == "schema=mlflow"
        assert uri.hostname is not None
        assert uri.hostname.startswith("cratedb.")
        assert uri.port == 4200
        assert (
            doors.statements[-1]
            == f'GRANT DQL, DML, DDL ON SCHEMA "mlflow" TO "{secret["username"]}"'
        )

    def test_across_models_the_uri_still_carries_the_password(self):
        env, secret = _cratedb_round_trip(remote_model_uuid="3f1a2b3c-0000-4000-8000-000000000001")

        uri = urlsplit(env["MLFLOW_BACKEND_STORE_URI"])
        assert unquote(uri.password or "") == secret["password"]

    def test_a_v0_requester_gets_a_v0_answer_it_can_connect_with(self):
        requester = testing.Relation(
            "database", remote_app_name="legacy", remote_app_data={"database": "legacy_db"}
        )
        cr_ctx = context("cratedb")

        out = cr_ctx.run(
            cr_ctx.on.relation_changed(requester, remote_unit=0), cratedb_state(requester)
        )

        data = bag(out.get_relation(requester.id).local_app_data)
        secret = out.get_secret(id=data["secret-user"])
        content = bag(secret.latest_content)
        uri = urlsplit(content["uris"])
        assert data["database"] == "legacy_db"
        assert uri.netloc.rpartition("@")[2] == data["endpoints"]
        assert (uri.username, unquote(uri.password or ""), uri.query) == (
            content["username"],
            content["password"],
            "schema=legacy_db",
        )
        assert secret.remote_grants == {requester.id: {"legacy"}}


def _s3_round_trip(
    requirer_ctx: testing.Context[Any],
    endpoint: str,
    state_for: Any,
    extra_state: dict | None = None,
) -> tuple[testing.State, list[testing.Secret]]:
    """A requirer asks seaweedfs for a bucket; returns its final state and the secrets it got."""
    asking = testing.Relation(endpoint, remote_app_name="seaweedfs")
    state = state_for(asking, **(extra_state or {}))
    state = requirer_ctx.run(requirer_ctx.on.relation_created(asking), state)
    state = requirer_ctx.run(
        requirer_ctx.on.relation_joined(state.get_relation(asking.id), remote_unit=0), state
    )

    request, _ = handover(
        state, asking.id, endpoint="s3-credentials", app_name=requirer_ctx.app_name or ""
    )
    sw_ctx = context("seaweedfs")
    answered = sw_ctx.run(
        sw_ctx.on.relation_changed(request, remote_unit=0), seaweed_state(request)
    )
    assert answered.unit_status.name == "active", answered.unit_status

    mine = state.get_relation(asking.id)
    answer, secrets = handover(
        answered,
        request.id,
        endpoint=endpoint,
        app_name="seaweedfs",
        local_app_data=dict(mine.local_app_data),
        local_unit_data=dict(mine.local_unit_data),
    )
    final = requirer_ctx.run(
        requirer_ctx.on.relation_changed(answer, remote_unit=0),
        with_changes(
            state, relations=(set(state.relations) - {mine}) | {answer}, secrets=set(secrets)
        ),
    )
    return final, secrets


class TestSeaweedfsToMlflow:
    def test_bucket_endpoint_and_keys_reach_the_server(self):
        ctx = context("mlflow-tracking", app_name="mlflow-tracking")

        final, secrets = _s3_round_trip(ctx, "s3-credentials", mlflow_state)

        env = mlflow_env(ctx, final)
        [keys] = [bag(s.tracked_content) for s in secrets]
        assert env["AWS_ACCESS_KEY_ID"] == keys["access-key"]
        assert env["AWS_SECRET_ACCESS_KEY"] == keys["secret-key"]
        assert env["MLFLOW_S3_ENDPOINT_URL"].startswith("http://seaweedfs.")
        assert final.unit_status.message.endswith("artifacts: s3://mlflow-tracking (proxied)")

    def test_configured_bucket_and_path_are_what_seaweedfs_serves(self):
        ctx = context("mlflow-tracking", app_name="mlflow-tracking")

        final, _ = _s3_round_trip(
            ctx,
            "s3-credentials",
            mlflow_state,
            {"config": {"bucket": "team-ml", "bucket-path": "prod"}},
        )

        assert final.unit_status.message.endswith("artifacts: s3://team-ml/prod (proxied)")


class TestSeaweedfsToCrateDB:
    def test_backup_repository_uses_the_bucket_and_keys_seaweedfs_handed_over(
        self, doors: FakeCrate
    ):
        ctx = context("cratedb")
        final, secrets = _s3_round_trip(ctx, "s3-parameters", cratedb_state)
        [keys] = [bag(s.tracked_content) for s in secrets]

        ctx.run(ctx.on.action("create-backup", params={"name": "c1"}), final)

        [repository] = [s for s in doors.statements if s.startswith("CREATE REPOSITORY")]
        assert f"access_key = '{keys['access-key']}'" in repository
        assert f"secret_key = '{keys['secret-key']}'" in repository
        assert "bucket = 'cratedb'" in repository
        assert "protocol = 'http'" in repository
        assert "use_path_style_access = true" in repository


class TestMlflowPodDefaults:
    def _manifests(self, serve_artifacts: bool) -> dict[str, list[dict]]:
        ctx = context("mlflow-tracking", app_name="mlflow-tracking")
        config = {"serve-artifacts": serve_artifacts}
        with_s3, _ = _s3_round_trip(ctx, "s3-credentials", mlflow_state, {"config": config})
        pod_defaults = testing.Relation("pod-defaults", remote_app_name="resource-dispatcher")
        secrets_rel = testing.Relation("secrets", remote_app_name="resource-dispatcher")
        state = with_changes(
            with_s3, relations=set(with_s3.relations) | {pod_defaults, secrets_rel}
        )

        out = ctx.run(ctx.on.config_changed(), state)

        sent = {}
        for rel in (pod_defaults, secrets_rel):
            dispatcher_view, secrets = handover(
                out, rel.id, endpoint=rel.endpoint, app_name="mlflow-tracking"
            )
            remote = bag(dispatcher_view.remote_app_data)
            assert remote["is_secret"] == "true"
            [secret] = [s for s in secrets if s.id == remote["kubernetes_manifests"]]
            sent[rel.endpoint] = json.loads(bag(secret.tracked_content)["manifests"])
        return sent

    def test_manifests_parse_as_kubernetes_objects_and_refer_only_to_keys_the_secret_has(self):
        from lightkube import codecs
        from lightkube.generic_resource import create_namespaced_resource

        create_namespaced_resource("kubeflow.org", "v1alpha1", "PodDefault", "poddefaults")
        sent = self._manifests(serve_artifacts=False)

        [pod_default] = sent["pod-defaults"]
        [secret] = sent["secrets"]
        secret_obj = codecs.from_dict(secret)
        pod_default_obj = codecs.from_dict(pod_default)
        assert secret_obj.metadata is not None
        assert pod_default_obj.metadata is not None
        assert secret_obj.kind == "Secret"
        keys = set(secret["data"])
        refs = [
            e["valueFrom"]["secretKeyRef"] for e in pod_default["spec"]["env"] if "valueFrom" in e
        ]
        assert refs
        assert all(r["name"] == secret_obj.metadata.name and r["key"] in keys for r in refs)
        values = {base64.b64decode(v).decode() for v in secret["data"].values()}
        assert not any(v in json.dumps(pod_default) for v in values)

    def test_proxied_mode_sends_no_s3_key_only_the_mlflow_login_by_reference(self):
        sent = self._manifests(serve_artifacts=True)

        [secret] = sent["secrets"]
        assert sorted(secret["data"]) == ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME"]
        [pod_default] = sent["pod-defaults"]
        names = [e["name"] for e in pod_default["spec"]["env"]]
        assert "MLFLOW_TRACKING_URI" in names
        assert not [n for n in names if n.startswith("AWS_")]
        refs = {e["name"] for e in pod_default["spec"]["env"] if "valueFrom" in e}
        assert refs == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
