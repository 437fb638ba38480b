"""Who owns which schema: served first keeps it, retained data waits for the operator.

The rules themselves are tested in the seaweedfs charm (``ownership.py`` is the
same module in both charms); here, what CrateDB is told and what clients see.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import ops
import pytest
from ops import testing

from constants import LEDGER_KEY, USERS_KEY
from helpers import FakeCrate, make_state, peer_relation, v1_request, v1_requests

Ctx = testing.Context[Any]


def _bag(relation: testing.RelationBase) -> dict[str, str]:
    """Our application databag of ``relation``."""
    return cast(dict[str, str], dict(relation.local_app_data))


def _answers(out: testing.State, relation: testing.Relation) -> dict[str, dict[str, str]]:
    """Each schema's answer on ``relation``: the content of its user secret."""
    data: dict[str, str] = dict(out.get_relation(relation.id).local_app_data)
    found: dict[str, dict[str, str]] = {}
    for response in json.loads(data["requests"]):
        content = out.get_secret(id=response["secret-user"]).latest_content or {}
        found[response["resource"]] = dict(content)
    return found


def _with(state: testing.State, *relations: testing.RelationBase) -> testing.State:
    """``state`` with ``relations`` replacing those of the same id (or added)."""
    ids = {r.id for r in relations}
    kept = {r for r in state.relations if r.id not in ids}
    return dataclasses.replace(state, relations=frozenset({*kept, *relations}))


def _asking(relation: testing.Relation, *schemas: str) -> testing.Relation:
    app = relation.remote_app_name
    return dataclasses.replace(
        relation,
        remote_app_data={"version": "v1", "requests": v1_requests(*schemas, app=app)},
    )


class TestARequestThatChanges:
    def test_the_old_schema_is_revoked_and_retained(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request("first")
        served = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        user = f"relation_{relation.id}"

        moved = _asking(served.get_relation(relation.id), "second")
        out = ctx.run(ctx.on.relation_changed(moved, remote_unit=0), _with(served, moved))

        assert f'REVOKE DQL, DML, DDL ON SCHEMA "first" FROM "{user}"' in crate.statements
        assert crate.grants == {user: {"second"}}
        assert "1 schema(s) retained" in out.unit_status.message

    def test_an_older_relation_cannot_switch_to_a_schema_another_owns(
        self, ctx: Ctx, crate: FakeCrate
    ):
        attacker = v1_request("attacker_data", app="attacker")
        victim = v1_request("victim_data", app="victim")
        state = ctx.run(ctx.on.relation_changed(attacker, remote_unit=0), make_state(attacker))
        state = ctx.run(ctx.on.relation_changed(victim, remote_unit=0), _with(state, victim))
        assert attacker.id < victim.id

        switched = _asking(state.get_relation(attacker.id), "victim_data")
        out = ctx.run(ctx.on.relation_changed(switched, remote_unit=0), _with(state, switched))

        assert crate.grants[f"relation_{victim.id}"] == {"victim_data"}
        assert f"relation_{attacker.id}" not in crate.users
        assert (
            crate.passwords[f"relation_{victim.id}"]
            == _answers(out, victim)["victim_data"]["password"]
        )
        assert out.unit_status == ops.BlockedStatus(
            f"attacker (relation {attacker.id}): 'victim_data' is served to victim "
            f"(relation {victim.id})"
        )
        error = out.get_relation(attacker.id).local_app_data["error"]
        assert error == (
            "schema 'victim_data': 'victim_data' belongs to another application; ask for another"
        )


class TestOneRelationSeveralSchemas:
    def test_every_answer_carries_the_one_password_the_user_has(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request("one", also=("two",))

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        answers = _answers(out, relation)
        user = f"relation_{relation.id}"
        assert set(answers) == {"one", "two"}
        assert {a["password"] for a in answers.values()} == {crate.passwords[user]}
        assert crate.grants == {user: {"one", "two"}}

    def test_a_second_schema_asked_later_keeps_the_first_answer_working(
        self, ctx: Ctx, crate: FakeCrate
    ):
        relation = v1_request("one")
        served = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        first = _answers(served, relation)["one"]["password"]

        more = _asking(served.get_relation(relation.id), "one", "two")
        out = ctx.run(ctx.on.relation_changed(more, remote_unit=0), _with(served, more))

        answers = _answers(out, relation)
        assert answers["one"]["password"] == answers["two"]["password"] == first
        assert crate.passwords[f"relation_{relation.id}"] == first


class TestRetainedSchemas:
    @pytest.fixture
    def left(self, ctx: Ctx, crate: FakeCrate) -> tuple[testing.State, testing.Relation]:
        """Schema ``team`` served to app ``old-app``, which then left; one table in it."""
        relation = v1_request("team", app="old-app")
        served = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        crate.tables["team"] = [("runs", False), ("latest", True)]
        out = ctx.run(ctx.on.relation_broken(served.get_relation(relation.id)), served)
        return dataclasses.replace(
            out, relations=out.relations - {out.get_relation(relation.id)}
        ), relation

    def test_the_next_application_asking_is_refused_naming_the_action(
        self, ctx: Ctx, crate: FakeCrate, left
    ):
        state, _ = left
        newcomer = v1_request("team", app="newcomer")

        out = ctx.run(ctx.on.relation_changed(newcomer, remote_unit=0), _with(state, newcomer))

        assert "retained from old-app" in out.unit_status.message
        assert "grant-retained" in out.unit_status.message
        assert f"relation_{newcomer.id}" not in crate.grants

    def test_grant_retained_hands_it_to_the_application_named(
        self, ctx: Ctx, crate: FakeCrate, left
    ):
        state, _ = left
        newcomer = v1_request("team", app="newcomer")
        state = ctx.run(ctx.on.relation_changed(newcomer, remote_unit=0), _with(state, newcomer))

        out = ctx.run(
            ctx.on.action("grant-retained", params={"schema": "team", "to": "newcomer"}), state
        )

        assert ctx.action_results == {
            "schema": "team",
            "to": "newcomer",
            "now": f"served to newcomer (relation {newcomer.id})",
        }
        assert crate.grants[f"relation_{newcomer.id}"] == {"team"}
        assert out.unit_status.name == "active"

    def test_purge_retained_drops_its_tables_and_forgets_it(
        self, ctx: Ctx, crate: FakeCrate, left
    ):
        state, _ = left

        out = ctx.run(ctx.on.action("purge-retained", params={"schema": "team"}), state)

        assert 'DROP TABLE IF EXISTS "team"."runs"' in crate.statements
        assert 'DROP VIEW IF EXISTS "team"."latest"' in crate.statements
        peer = out.get_relations("cluster")[0]
        assert json.loads(_bag(peer)[LEDGER_KEY]) == {}

    def test_a_served_schema_cannot_be_purged_or_handed_over(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request("team", app="owner")
        state = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        with pytest.raises(testing.ActionFailed, match="served to owner"):
            ctx.run(ctx.on.action("purge-retained", params={"schema": "team"}), state)
        with pytest.raises(testing.ActionFailed, match="served to owner"):
            ctx.run(ctx.on.action("grant-retained", params={"schema": "team", "to": "x"}), state)
        assert not any(s.startswith("DROP TABLE") for s in crate.statements)

    def test_list_schemas_says_whose_each_is(self, ctx: Ctx, left):
        state, _ = left

        ctx.run(ctx.on.action("list-schemas"), state)

        assert ctx.action_results == {"schemas": "team: retained from old-app"}

    def test_a_schema_holding_tables_nobody_was_given_is_not_handed_out(
        self, ctx: Ctx, crate: FakeCrate
    ):
        crate.tables["legacy"] = [("experiments", False)]
        relation = v1_request("legacy", app="newcomer")

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert "'legacy' holds data of an unknown owner" in out.unit_status.message
        assert "kept from another" in out.get_relation(relation.id).local_app_data["error"]
        assert crate.grants == {}


class TestUpgradeFromACharmWithoutALedger:
    def test_a_served_relation_keeps_its_schema_and_its_password(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request("mlflow")
        served = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        password = _answers(served, relation)["mlflow"]["password"]
        # What the previous charm left: the users record, no ledger.
        peer = served.get_relations("cluster")[0]
        old_peer = peer_relation(app_data={k: v for k, v in _bag(peer).items() if k != LEDGER_KEY})
        assert USERS_KEY in old_peer.local_app_data
        upgraded = _with(
            dataclasses.replace(served, relations=served.relations - {peer}), old_peer
        )
        crate.statements.clear()

        out = ctx.run(ctx.on.upgrade_charm(), upgraded)

        assert out.unit_status.name == "active"
        assert crate.statements == []
        assert _answers(out, relation)["mlflow"]["password"] == password
        ledger = json.loads(_bag(out.get_relations("cluster")[0])[LEDGER_KEY])
        assert ledger == {"mlflow": {"app": "mlflow-tracking", "relation": relation.id}}


class TestPrivilegesFollowTheLedger:
    def test_a_grant_the_old_charm_never_took_back_is_revoked(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request("now_db")
        user = f"relation_{relation.id}"
        # The old charm granted now_db, and before it old_db, which it never revoked.
        crate.users.add(user)
        crate.grants[user] = {"old_db", "now_db"}
        peer = peer_relation(app_data={USERS_KEY: json.dumps({str(relation.id): user})})

        ctx.run(ctx.on.upgrade_charm(), make_state(relation, peer=peer))

        assert f'REVOKE DQL, DML, DDL ON SCHEMA "old_db" FROM "{user}"' in crate.statements
        assert crate.grants[user] == {"now_db"}

    def test_a_schema_granted_to_someone_is_not_handed_to_a_newcomer(
        self, ctx: Ctx, crate: FakeCrate
    ):
        # relation_99's application is gone, its user and grant were left behind.
        crate.users.add("relation_99")
        crate.grants["relation_99"] = {"shared_db"}
        newcomer = v1_request("shared_db", app="newcomer")

        out = ctx.run(ctx.on.relation_changed(newcomer, remote_unit=0), make_state(newcomer))

        assert "unknown owner" in out.unit_status.message
        assert f"relation_{newcomer.id}" not in crate.grants
        assert "relation_99" not in crate.users

    def test_a_user_of_no_relation_is_dropped_even_when_the_record_forgot_it(
        self, ctx: Ctx, crate: FakeCrate
    ):
        crate.users.add("relation_77")
        crate.grants["relation_77"] = {"lost_db"}

        ctx.run(ctx.on.update_status(), make_state())

        assert 'DROP USER IF EXISTS "relation_77"' in crate.statements
        assert "relation_77" not in crate.users

    def test_a_schema_asked_for_again_is_granted_again(self, ctx: Ctx, crate: FakeCrate):
        relation = v1_request("first")
        state = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
        moved = _asking(state.get_relation(relation.id), "second")
        state = ctx.run(ctx.on.relation_changed(moved, remote_unit=0), _with(state, moved))
        # The operator hands the retained schema back, and the relation asks for both.
        state = ctx.run(
            ctx.on.action("grant-retained", params={"schema": "first", "to": "mlflow-tracking"}),
            state,
        )
        both = _asking(state.get_relation(relation.id), "first", "second")

        ctx.run(ctx.on.relation_changed(both, remote_unit=0), _with(state, both))

        assert crate.grants[f"relation_{relation.id}"] == {"first", "second"}
