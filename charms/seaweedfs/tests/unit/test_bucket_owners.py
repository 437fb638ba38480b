"""Who is served which bucket: the charm applying the ownership rules to S3 identities."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import pytest
from ops import testing

from constants import LEDGER_KEY, PEER_RELATION
from helpers import (
    container,
    identities,
    make_state,
    s3_request,
    shell_scripts,
    weed_shell,
)

Ctx = testing.Context[Any]


def _bag(relation: testing.RelationBase) -> dict[str, str]:
    """Our application databag of ``relation``."""
    return cast(dict[str, str], dict(relation.local_app_data))


def _rights(ctx: Ctx, out: testing.State) -> dict[str, set[str]]:
    """Each identity's buckets, from the identities file the charm pushed."""
    return {
        i["name"]: {action.split(":", 1)[1] for action in i["actions"] if ":" in action}
        for i in identities(ctx, out)["identities"]
    }


def _with(state: testing.State, *relations: testing.RelationBase) -> testing.State:
    ids = {r.id for r in relations}
    kept = {r for r in state.relations if r.id not in ids}
    return dataclasses.replace(state, relations=frozenset({*kept, *relations}))


def _asking(relation: testing.Relation, bucket: str) -> testing.Relation:
    return dataclasses.replace(
        relation, remote_app_data={**relation.remote_app_data, "bucket": bucket}
    )


def _ledger(out: testing.State) -> dict[str, Any]:
    return json.loads(_bag(out.get_relations(PEER_RELATION)[0])[LEDGER_KEY])


class TestBucketTakeover:
    def test_an_older_relation_switching_to_anothers_bucket_gets_nothing(self, ctx: Ctx):
        attacker = s3_request(bucket="attacker-bucket", app="attacker")
        victim = s3_request(bucket="victim-bucket", app="victim")
        state = ctx.run(ctx.on.relation_changed(attacker), make_state(attacker))
        state = ctx.run(ctx.on.relation_changed(victim), _with(state, victim))
        assert attacker.id < victim.id

        switched = _asking(state.get_relation(attacker.id), "victim-bucket")
        out = ctx.run(ctx.on.relation_changed(switched), _with(state, switched))

        rights = _rights(ctx, out)
        assert rights[f"relation-{victim.id}"] == {"victim-bucket"}
        assert rights.get(f"relation-{attacker.id}", set()) == set()
        assert "secret-extra" in out.get_relation(victim.id).local_app_data
        assert "error" not in out.get_relation(victim.id).local_app_data
        told = out.get_relation(attacker.id).local_app_data["error"]
        assert told == "'victim-bucket' belongs to another application; ask for another"
        assert out.unit_status.name == "blocked"
        assert "attacker" in out.unit_status.message
        assert "victim" in out.unit_status.message

    def test_a_relation_that_changes_its_bucket_loses_the_old_one_at_once(self, ctx: Ctx):
        relation = s3_request(bucket="first")
        state = ctx.run(ctx.on.relation_changed(relation), make_state(relation))

        moved = _asking(state.get_relation(relation.id), "second")
        out = ctx.run(ctx.on.relation_changed(moved), _with(state, moved))

        assert _rights(ctx, out)[f"relation-{relation.id}"] == {"second"}
        assert _ledger(out) == {
            "first": {"app": "mlflow-tracking", "relation": None},
            "second": {"app": "mlflow-tracking", "relation": relation.id},
        }


class TestRetainedBuckets:
    @pytest.fixture
    def left(self, ctx: Ctx) -> testing.State:
        """Bucket ``team`` served to ``old-app``, which then left."""
        relation = s3_request(bucket="team", app="old-app")
        state = ctx.run(ctx.on.relation_changed(relation), make_state(relation))
        out = ctx.run(ctx.on.relation_broken(state.get_relation(relation.id)), state)
        return dataclasses.replace(out, relations=out.relations - {out.get_relation(relation.id)})

    def test_the_next_application_asking_gets_no_key_to_it(self, ctx: Ctx, left):
        newcomer = s3_request(bucket="team", app="newcomer")

        out = ctx.run(ctx.on.relation_changed(newcomer), _with(left, newcomer))

        assert f"relation-{newcomer.id}" not in _rights(ctx, out)
        error = out.get_relation(newcomer.id).local_app_data["error"]
        assert "'team' holds data kept from another application" in error
        assert "old-app" not in error
        assert "grant-retained" in out.unit_status.message

    def test_grant_retained_serves_it_to_the_named_application(self, ctx: Ctx, left):
        newcomer = s3_request(bucket="team", app="newcomer")
        state = ctx.run(ctx.on.relation_changed(newcomer), _with(left, newcomer))

        out = ctx.run(
            ctx.on.action("grant-retained", params={"bucket": "team", "to": "newcomer"}), state
        )

        assert _rights(ctx, out)[f"relation-{newcomer.id}"] == {"team"}
        assert "secret-extra" in out.get_relation(newcomer.id).local_app_data
        assert ctx.action_results is not None
        assert ctx.action_results["now"] == f"served to newcomer (relation {newcomer.id})"

    def test_purge_retained_deletes_the_bucket_and_forgets_it(self, ctx: Ctx, left):
        state = dataclasses.replace(
            left, containers=frozenset({container(execs=frozenset({weed_shell("team")}))})
        )

        out = ctx.run(ctx.on.action("purge-retained", params={"bucket": "team"}), state)

        assert "s3.bucket.delete -name team\n" in shell_scripts(ctx)
        assert _ledger(out) == {}

    def test_a_served_bucket_is_never_purged(self, ctx: Ctx):
        relation = s3_request(bucket="team", app="owner")
        state = ctx.run(ctx.on.relation_changed(relation), make_state(relation))

        with pytest.raises(testing.ActionFailed, match="served to owner"):
            ctx.run(ctx.on.action("purge-retained", params={"bucket": "team"}), state)
        assert not any("delete" in script for script in shell_scripts(ctx))

    def test_a_bucket_with_objects_nobody_was_given_is_not_handed_out(self, ctx: Ctx):
        relation = s3_request(bucket="found", app="newcomer")
        state = make_state(
            relation, workload_container=container(execs=frozenset({weed_shell("found")}))
        )

        out = ctx.run(ctx.on.relation_changed(relation), state)

        assert f"relation-{relation.id}" not in _rights(ctx, out)
        assert "kept from another" in out.get_relation(relation.id).local_app_data["error"]


class TestUpgradeFromACharmWithoutALedger:
    def test_served_relations_keep_their_buckets_and_keys(self, ctx: Ctx):
        relation = s3_request(bucket="mlflow")
        served = ctx.run(ctx.on.relation_changed(relation), make_state(relation))
        peer = served.get_relations(PEER_RELATION)[0]
        old_peer = dataclasses.replace(
            peer,
            local_app_data={k: v for k, v in _bag(peer).items() if k != LEDGER_KEY},
        )
        # The bucket exists in weed: the old charm made it.
        upgraded = dataclasses.replace(
            _with(served, old_peer),
            containers=frozenset({container(execs=frozenset({weed_shell("mlflow")}))}),
        )

        out = ctx.run(ctx.on.upgrade_charm(), upgraded)

        assert _rights(ctx, out)[f"relation-{relation.id}"] == {"mlflow"}
        assert identities(ctx, out) == identities(ctx, served)
        assert _ledger(out) == {"mlflow": {"app": "mlflow-tracking", "relation": relation.id}}
        assert out.unit_status.name == "active"
