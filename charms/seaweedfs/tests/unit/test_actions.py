"""The seaweedfs charm's actions under ops.testing."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from ops import testing

from constants import (
    ADMIN_SECRET_LABEL,
)
from helpers import (
    WEED_SHELL,
    container,
    identity_named,
    labelled_secret,
    make_state,
    s3_request,
    secret_content,
    shell_scripts,
    weed_shell,
)

Ctx = testing.Context[Any]


class TestActions:
    def _related(self, ctx: Ctx, *rels: testing.Relation) -> testing.State:
        state = make_state(*rels)
        for rel in rels:
            state = ctx.run(ctx.on.relation_changed(state.get_relation(rel.id)), state)
        return state

    def test_rotate_one_relation_changes_only_its_keys(self, ctx: Ctx):
        a = s3_request(bucket="bucket-a", app="app-a")
        b = s3_request(bucket="bucket-b", app="app-b")
        state = self._related(ctx, a, b)
        before_a = identity_named(ctx, state, f"relation-{a.id}")["credentials"]
        before_b = identity_named(ctx, state, f"relation-{b.id}")["credentials"]

        out = ctx.run(ctx.on.action("rotate-credentials", params={"relation-id": a.id}), state)

        assert ctx.action_results == {"rotated-relations": str(a.id)}
        after_a = identity_named(ctx, out, f"relation-{a.id}")["credentials"]
        assert after_a != before_a
        assert identity_named(ctx, out, f"relation-{b.id}")["credentials"] == before_b
        shared = secret_content(out, out.get_relation(a.id).local_app_data["secret-extra"])
        assert after_a == [{"accessKey": shared["access-key"], "secretKey": shared["secret-key"]}]
        later = ctx.run(ctx.on.update_status(), out)
        assert identity_named(ctx, later, f"relation-{a.id}")["credentials"] == after_a

    def test_rotate_without_a_relation_id_rotates_every_relation(self, ctx: Ctx):
        a = s3_request(bucket="bucket-a", app="app-a")
        b = s3_request(bucket="bucket-b", app="app-b")
        state = self._related(ctx, a, b)

        ctx.run(ctx.on.action("rotate-credentials"), state)

        assert ctx.action_results == {
            "rotated-relations": ",".join(sorted([str(a.id), str(b.id)]))
        }

    def test_rotate_an_unknown_relation_fails_listing_the_known_ones(self, ctx: Ctx, s3_ready):
        state = self._related(ctx, s3_ready)

        with pytest.raises(
            testing.ActionFailed,
            match=rf"relation 999 has no S3 identity; relations with one: \[{s3_ready.id}\]",
        ):
            ctx.run(ctx.on.action("rotate-credentials", params={"relation-id": 999}), state)

    def test_rotate_on_a_non_leader_fails(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed, match="leader"):
            ctx.run(ctx.on.action("rotate-credentials"), make_state(leader=False))

    def test_rotate_admin_keys(self, ctx: Ctx):
        state = self._related(ctx)
        state = ctx.run(ctx.on.config_changed(), state)
        before = identity_named(ctx, state, "charm-admin")["credentials"]

        out = ctx.run(ctx.on.action("rotate-credentials", params={"admin": True}), state)

        assert identity_named(ctx, out, "charm-admin")["credentials"] != before

    def test_create_bucket(self, ctx: Ctx):
        state = ctx.run(ctx.on.config_changed(), make_state())

        ctx.run(ctx.on.action("create-bucket", params={"name": "backups"}), state)

        assert ctx.action_results == {
            "bucket": "backups",
            "created": True,
            "for": "nobody yet (grant-retained)",
        }
        assert "s3.bucket.create -name backups\n" in shell_scripts(ctx)

    def test_create_bucket_rejects_an_invalid_name_before_touching_weed(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed, match="bucket name 'Bad Name'"):
            ctx.run(ctx.on.action("create-bucket", params={"name": "Bad Name"}), make_state())
        assert shell_scripts(ctx) == []

    def test_create_bucket_reports_a_weed_shell_failure(self, ctx: Ctx):
        failing = testing.Exec(WEED_SHELL, return_code=1, stderr="no master")
        state = ctx.run(
            ctx.on.config_changed(),
            make_state(workload_container=container(execs=frozenset({failing}))),
        )

        with pytest.raises(testing.ActionFailed, match="did not accept an admin command"):
            ctx.run(ctx.on.action("create-bucket", params={"name": "backups"}), state)

    def test_list_buckets_names_the_relation_each_serves(self, ctx: Ctx, s3_ready):
        state = ctx.run(ctx.on.config_changed(), make_state(s3_ready))
        listing = container(execs=frozenset({weed_shell("mlflow", "spare")}))
        state = dataclasses.replace(state, containers=frozenset({listing}))

        ctx.run(ctx.on.action("list-buckets"), state)

        assert ctx.action_results == {
            "buckets": (
                f"mlflow: served to mlflow-tracking (relation {s3_ready.id})\n"
                "spare: not in the ledger (held by nobody)"
            )
        }

    def test_get_admin_credentials_reveals_the_admin_keys(self, ctx: Ctx):
        state = ctx.run(ctx.on.config_changed(), make_state())
        admin = secret_content(state, labelled_secret(state, ADMIN_SECRET_LABEL).id)

        ctx.run(ctx.on.action("get-admin-credentials"), state)

        assert ctx.action_results is not None
        assert ctx.action_results["access-key"] == admin["access-key"]
        assert ctx.action_results["secret-key"] == admin["secret-key"]
        assert str(ctx.action_results["endpoint"]).endswith(":8333")
