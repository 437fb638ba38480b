"""Bucket requests under ops.testing: s3-credentials (v1 and legacy v0), and relations that go."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import ops
import pytest
from ops import testing

from constants import (
    CONTAINER,
    IDENTITY_SECRET_PREFIX,
    S3_RELATION,
)
from helpers import (
    container,
    identities,
    identity_named,
    labelled_secret,
    make_state,
    s3_request,
    secret_content,
    shell_scripts,
    weed_shell,
)

Ctx = testing.Context[Any]


class TestBucketRequests:
    def test_ready_request_gets_its_bucket_endpoint_and_keys_in_a_granted_secret(
        self, ctx: Ctx, s3_ready
    ):
        out = ctx.run(ctx.on.relation_changed(s3_ready), make_state(s3_ready))

        data = out.get_relation(s3_ready.id).local_app_data
        assert data["bucket"] == "mlflow"
        assert data["s3-uri-style"] == "path"
        assert data["endpoint"].endswith(":8333")
        assert "access-key" not in data
        assert "secret-key" not in data
        shared = out.get_secret(id=data["secret-extra"])
        assert shared.remote_grants == {s3_ready.id: {"mlflow-tracking"}}
        keys = secret_content(out, shared.id)
        identity = identity_named(ctx, out, f"relation-{s3_ready.id}")
        assert identity["credentials"] == [
            {"accessKey": keys["access-key"], "secretKey": keys["secret-key"]}
        ]
        assert identity["actions"] == [
            "Read:mlflow",
            "Write:mlflow",
            "List:mlflow",
            "Tagging:mlflow",
        ]
        assert shell_scripts(ctx) == ["s3.bucket.list\n", "s3.bucket.create -name mlflow\n"]

    def test_existing_bucket_is_reused_not_recreated(self, ctx: Ctx, s3_ready):
        state = make_state(
            s3_ready, workload_container=container(execs=frozenset({weed_shell("mlflow")}))
        )

        ctx.run(ctx.on.relation_changed(s3_ready), state)

        assert shell_scripts(ctx) == ["s3.bucket.list\n"]

    def test_bare_relation_gets_nothing_until_the_requirer_speaks(self, ctx: Ctx, s3_bare):
        out = ctx.run(ctx.on.relation_changed(s3_bare), make_state(s3_bare))

        assert set(out.get_relation(s3_bare.id).local_app_data) <= {"version"}
        assert not [
            s for s in out.secrets if s.label and s.label.startswith(IDENTITY_SECRET_PREFIX)
        ]
        assert out.unit_status.name == "active"

    def test_no_bucket_requested_gets_one_named_after_the_app(self, ctx: Ctx):
        rel = s3_request(bucket="", app="Cratedb_Backups")

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.get_relation(rel.id).local_app_data["bucket"] == "cratedb-backups"

    def test_requested_path_is_echoed(self, ctx: Ctx):
        rel = s3_request(bucket="mlflow", path="/artifacts/prod/")

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.get_relation(rel.id).local_app_data["path"] == "artifacts/prod"

    @pytest.mark.parametrize(
        "bucket", ["UPPER", "a", "bad_name", "x" * 64, "evil\ns3.bucket.delete"]
    )
    def test_invalid_bucket_blocks_and_tells_the_requirer_on_the_relation(
        self, ctx: Ctx, bucket: str
    ):
        rel = s3_request(bucket=bucket)

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status.name == "blocked"
        assert f"mlflow-tracking (relation {rel.id}): bucket name" in out.unit_status.message
        data = out.get_relation(rel.id).local_app_data
        assert "bucket name" in data["error"]
        assert "secret-extra" not in data
        assert shell_scripts(ctx) == []
        assert all(i["name"] == "charm-admin" for i in identities(ctx, out)["identities"])

    @pytest.mark.parametrize("path", ["../escape", "a/../../b", "x" * 600, "tab\there"])
    def test_invalid_path_is_refused(self, ctx: Ctx, path: str):
        rel = s3_request(path=path)

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status.name == "blocked"
        assert "path" in out.get_relation(rel.id).local_app_data["error"]

    def test_legacy_v0_requirer_is_refused_by_default_naming_the_option_and_the_risk(
        self, ctx: Ctx
    ):
        rel = s3_request(v0=True)

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status == testing.BlockedStatus(
            f"mlflow-tracking (relation {rel.id}): speaks the legacy s3 protocol (v0), whose "
            "keys sit in plain relation data that anyone who can read the model can read; "
            "to accept that, set legacy-s3-requirers=true"
        )
        data = out.get_relation(rel.id).local_app_data
        assert not {"access-key", "secret-key", "secret-extra"} & set(data)

    def test_a_relation_asking_for_a_bucket_served_to_another_is_refused(self, ctx: Ctx):
        first = s3_request(bucket="shared", app="first-app")
        served = ctx.run(ctx.on.relation_changed(first), make_state(first))
        second = s3_request(bucket="shared", app="second-app")

        out = ctx.run(
            ctx.on.relation_changed(second),
            dataclasses.replace(served, relations=frozenset({*served.relations, second})),
        )

        assert "secret-extra" in out.get_relation(first.id).local_app_data
        error = out.get_relation(second.id).local_app_data["error"]
        assert error == "'shared' belongs to another application; ask for another"
        assert "secret-extra" not in out.get_relation(second.id).local_app_data
        assert out.unit_status == ops.BlockedStatus(
            f"second-app (relation {second.id}): 'shared' is served to first-app "
            f"(relation {first.id})"
        )

    def test_two_relations_asking_at_once_for_a_new_bucket_are_both_refused(self, ctx: Ctx):
        first = s3_request(bucket="shared", app="first-app")
        second = s3_request(bucket="shared", app="second-app")

        out = ctx.run(ctx.on.relation_changed(second), make_state(first, second))

        for rel in (first, second):
            data = out.get_relation(rel.id).local_app_data
            assert "several applications at once" in data["error"]
            assert "secret-extra" not in data
        assert identities(ctx, out)["identities"][0]["name"] == "charm-admin"
        assert len(identities(ctx, out)["identities"]) == 1

    def test_each_relation_gets_its_own_identity_and_bucket(self, ctx: Ctx):
        a = s3_request(bucket="bucket-a", app="app-a")
        b = s3_request(bucket="bucket-b", app="app-b")

        out = ctx.run(ctx.on.relation_changed(b), make_state(a, b))

        ia = identity_named(ctx, out, f"relation-{a.id}")
        ib = identity_named(ctx, out, f"relation-{b.id}")
        assert ia["credentials"] != ib["credentials"]
        assert all(action.endswith(":bucket-a") for action in ia["actions"])
        assert all(action.endswith(":bucket-b") for action in ib["actions"])
        assert out.unit_status.message.find("; 2 bucket(s);") > 0

    def test_relation_premature_for_the_library_is_retried_later_without_error(self, ctx: Ctx):
        # Requirer wrote its bucket (protocol initiator) but the library refuses
        # writes until "version" is there in some flows: nothing crashes.
        rel = testing.Relation(
            S3_RELATION,
            remote_app_name="early",
            remote_app_data={"requested-secrets": json.dumps(["access-key", "secret-key"])},
        )

        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel))

        assert out.unit_status.name == "active"


class TestLegacyS3Requirers:
    """v0 requirers (postgresql-k8s and mysql-k8s backups) when the operator opts in."""

    ON: ClassVar[dict[str, Any]] = {"legacy-s3-requirers": True}

    def _served(self, ctx: Ctx) -> tuple[testing.Relation, testing.State]:
        rel = s3_request(bucket="relation-7", app="postgresql-k8s", v0=True)
        out = ctx.run(ctx.on.relation_changed(rel), make_state(rel, config=self.ON))
        return rel, out

    def test_opted_in_a_v0_requirer_gets_everything_in_plain_data(self, ctx: Ctx):
        rel, out = self._served(ctx)

        data: dict[str, str] = dict(out.get_relation(rel.id).local_app_data)
        creds = identity_named(ctx, out, f"relation-{rel.id}")["credentials"]
        assert data["access-key"] == creds[0]["accessKey"]
        assert data["secret-key"] == creds[0]["secretKey"]
        assert data["bucket"] == "relation-7"
        assert data["endpoint"] == f"http://seaweedfs.{out.model.name}.svc.cluster.local:8333"
        assert (data["region"], data["s3-uri-style"], data.get("path", "")) == (
            "us-east-1",
            "path",
            "",
        )
        assert "error" not in data
        assert out.unit_status.name == "active"

    def test_its_identity_is_scoped_to_its_own_bucket(self, ctx: Ctx):
        rel, out = self._served(ctx)

        identity = identity_named(ctx, out, f"relation-{rel.id}")
        assert {a.split(":", 1)[1] for a in identity["actions"]} == {"relation-7"}

    def test_rotation_replaces_the_plain_keys(self, ctx: Ctx):
        rel, out = self._served(ctx)
        before: dict[str, str] = dict(out.get_relation(rel.id).local_app_data)

        rotated = ctx.run(ctx.on.action("rotate-credentials", params={"relation-id": rel.id}), out)

        after: dict[str, str] = dict(rotated.get_relation(rel.id).local_app_data)
        creds = identity_named(ctx, rotated, f"relation-{rel.id}")["credentials"]
        assert after["secret-key"] != before["secret-key"]
        assert creds == [{"accessKey": after["access-key"], "secretKey": after["secret-key"]}]

    def test_turning_the_option_off_revokes_the_keys_and_removes_them_from_the_databag(
        self, ctx: Ctx
    ):
        rel, out = self._served(ctx)
        off = dataclasses.replace(out, config={"legacy-s3-requirers": False})

        refused = ctx.run(ctx.on.config_changed(), off)

        data: dict[str, str] = dict(refused.get_relation(rel.id).local_app_data)
        assert not {"access-key", "secret-key"} & set(data)
        assert "legacy-s3-requirers=true" in data["error"]
        tombstone = identity_named(ctx, refused, f"relation-{rel.id}")
        assert tombstone["credentials"] == []
        assert refused.unit_status.name == "blocked"

    def test_relation_broken_revokes_the_identity(self, ctx: Ctx):
        rel, out = self._served(ctx)

        gone = ctx.run(ctx.on.relation_broken(out.get_relation(rel.id)), out)

        assert identity_named(ctx, gone, f"relation-{rel.id}")["credentials"] == []


class TestRelationBroken:
    def test_broken_relation_revokes_the_identity_and_keeps_the_bucket(self, ctx: Ctx, s3_ready):
        related = ctx.run(ctx.on.relation_changed(s3_ready), make_state(s3_ready))
        identity_secret = labelled_secret(related, f"{IDENTITY_SECRET_PREFIX}{s3_ready.id}")

        out = ctx.run(ctx.on.relation_broken(related.get_relation(s3_ready.id)), related)

        assert identity_secret.id not in {s.id for s in out.secrets}
        tombstone = identity_named(ctx, out, f"relation-{s3_ready.id}")
        assert tombstone == {"name": f"relation-{s3_ready.id}", "credentials": [], "actions": []}
        assert not any("delete" in script for script in shell_scripts(ctx))
        assert "; 0 bucket(s) (1 retained);" in out.unit_status.message

    def test_identity_change_is_applied_live_without_a_restart(self, ctx: Ctx, s3_ready):
        state = ctx.run(ctx.on.config_changed(), make_state(s3_ready))
        layers = state.get_container(CONTAINER).layers

        out = ctx.run(ctx.on.relation_changed(state.get_relation(s3_ready.id)), state)

        assert out.get_container(CONTAINER).layers == layers
        assert any("S3 identities reloaded" in log.message for log in ctx.juju_log)


def test_requirer_writing_provider_fields_is_refused_not_crashed(ctx: Ctx):
    # Found by the property-based test: a secret id where only the provider writes one.
    relation = testing.Relation(
        S3_RELATION,
        remote_app_name="confused",
        remote_app_data={
            "version": "1",
            "bucket": "fine-bucket",
            "requested-secrets": json.dumps(["access-key", "secret-key"]),
            "secret-extra": "secret://0000/garbage",
        },
    )

    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

    assert out.unit_status.name == "blocked"
    assert "malformed request" in out.unit_status.message
