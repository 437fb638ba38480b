"""Who owns a bucket or a schema, with real requirers related in either order.

Findings 1, 2, 4, 7 and 10 of the "Locked by default" review: an application
related earlier (a lower relation id) that switches its request to another's
bucket or schema took it over; a changed request kept its grant on the old
schema; retained data went to the next asker; two schemas on one relation
broke the first answer's password. The victim here is the real
mlflow-tracking charm (its request and what it configures from the answer);
the attacker writes what any application may write into its databag.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, cast

import pytest
from ops import testing

from stack.charm_loader import charm_modules
from tests.contract.chain import bag, context, handover, with_changes
from tests.contract.test_contracts import (
    FakeCrate,
    cratedb_state,
    mlflow_env,
    mlflow_state,
    seaweed_state,
)

# The charms' stubbed doors (network, SQL, exec), as in every contract test.
from tests.contract.test_contracts import doors  # noqa: F401  isort: skip

sw = charm_modules("seaweedfs", "constants")
REQUESTED = json.dumps(["access-key", "secret-key"])


def mlflow_bucket_request(
    app: str, bucket: str
) -> tuple[testing.Context[Any], testing.State, testing.Relation]:
    """mlflow-tracking ``app`` asking seaweedfs for ``bucket``: its context, state, request."""
    ctx = context("mlflow-tracking", app_name=app)
    asking = testing.Relation("s3-credentials", remote_app_name="seaweedfs")
    state = ctx.run(
        ctx.on.relation_created(asking), mlflow_state(asking, config={"bucket": bucket})
    )
    state = ctx.run(ctx.on.relation_joined(state.get_relation(asking.id), remote_unit=0), state)
    request, _ = handover(state, asking.id, endpoint="s3-credentials", app_name=app)
    return ctx, state, request


def hostile_bucket_request(app: str, bucket: str) -> testing.Relation:
    """What any application may write: an object-storage v1 request for ``bucket``."""
    return testing.Relation(
        "s3-credentials",
        remote_app_name=app,
        remote_app_data={"version": "1", "bucket": bucket, "requested-secrets": REQUESTED},
    )


def rights(ctx: testing.Context[Any], state: testing.State) -> dict[str, set[str]]:
    root = state.get_container(sw.constants.CONTAINER).get_filesystem(ctx)
    identities = json.loads(Path(root / sw.constants.IDENTITIES_FILE.lstrip("/")).read_text())
    return {
        i["name"]: {a.split(":", 1)[1] for a in i["actions"] if ":" in a}
        for i in identities["identities"]
    }


class TestBucketTakeover:
    @pytest.mark.parametrize(
        "attacker_first", [True, False], ids=["attacker-older", "victim-older"]
    )
    def test_switching_to_anothers_bucket_gets_nothing_and_the_owner_keeps_working(
        self, attacker_first: bool
    ):
        sw_ctx = context("seaweedfs")
        first, second = ("attacker", "victim") if attacker_first else ("victim", "attacker")
        relations: dict[str, testing.Relation] = {}
        victim_ctx = victim_state = None
        state = seaweed_state()
        for app in (first, second):
            if app == "victim":
                victim_ctx, victim_state, request = mlflow_bucket_request(
                    "victim", "victim-bucket"
                )
            else:
                request = hostile_bucket_request("attacker", "attacker-bucket")
            relations[app] = request
            state = sw_ctx.run(
                sw_ctx.on.relation_changed(request, remote_unit=0),
                with_changes(state, relations={*state.relations, request}),
            )
        assert (relations["attacker"].id < relations["victim"].id) == attacker_first

        switched = dataclasses.replace(
            cast(testing.Relation, state.get_relation(relations["attacker"].id)),
            remote_app_data=hostile_bucket_request("attacker", "victim-bucket").remote_app_data,
        )
        others = {r for r in state.relations if r.id != switched.id}
        out = sw_ctx.run(
            sw_ctx.on.relation_changed(switched, remote_unit=0),
            with_changes(state, relations={*others, switched}),
        )

        seen = rights(sw_ctx, out)
        assert seen[f"relation-{relations['victim'].id}"] == {"victim-bucket"}
        assert seen.get(f"relation-{relations['attacker'].id}", set()) == set()
        told = bag(out.get_relation(switched.id).local_app_data)["error"]
        assert "belongs to another application" in told
        assert "(relation" not in told
        # The victim's own charm still reads its keys and bucket from the answer.
        assert victim_ctx is not None
        assert victim_state is not None
        mine = victim_state.get_relation(
            next(iter(r.id for r in victim_state.relations if r.endpoint == "s3-credentials"))
        )
        answer, secrets = handover(
            out,
            relations["victim"].id,
            endpoint="s3-credentials",
            app_name="seaweedfs",
            local_app_data=dict(mine.local_app_data),
            local_unit_data=dict(mine.local_unit_data),
        )
        answer = dataclasses.replace(answer, id=mine.id)
        final = victim_ctx.run(
            victim_ctx.on.relation_changed(answer, remote_unit=0),
            with_changes(
                victim_state,
                relations=(set(victim_state.relations) - {mine}) | {answer},
                secrets=set(secrets),
            ),
        )
        env = mlflow_env(victim_ctx, final)
        [victim_keys] = secrets
        assert env["AWS_ACCESS_KEY_ID"] == bag(victim_keys.tracked_content)["access-key"]
        assert (
            "victim-bucket"
            in final.get_container("mlflow-server").plan.services["mlflow-server"].command
        )

    def test_a_departed_owners_bucket_is_not_handed_to_the_next_asker(self):
        sw_ctx = context("seaweedfs")
        owner = hostile_bucket_request("old-team", "team-bucket")
        state = sw_ctx.run(sw_ctx.on.relation_changed(owner, remote_unit=0), seaweed_state(owner))
        state = sw_ctx.run(sw_ctx.on.relation_broken(state.get_relation(owner.id)), state)
        state = with_changes(state, relations={r for r in state.relations if r.id != owner.id})
        _, _, newcomer = mlflow_bucket_request("new-team", "team-bucket")

        out = sw_ctx.run(
            sw_ctx.on.relation_changed(newcomer, remote_unit=0),
            with_changes(state, relations={*state.relations, newcomer}),
        )

        assert f"relation-{newcomer.id}" not in rights(sw_ctx, out)
        assert (
            "kept from another application"
            in bag(out.get_relation(newcomer.id).local_app_data)["error"]
        )


@pytest.fixture
def crate(request: pytest.FixtureRequest) -> FakeCrate:
    """CrateDB as the cratedb charm's SQL door sees it (the autouse ``doors`` stub)."""
    fake: FakeCrate = request.getfixturevalue("doors")
    return fake


def v1_schema_request(app: str, *schemas: str) -> testing.Relation:
    """What any application may write: a dpcharmlibs v1 request for ``schemas``."""
    from dpcharmlibs.interfaces import gen_hash

    salt = "0123456789abcdef"
    requests = [
        {"resource": s, "request-id": gen_hash(s, salt), "salt": salt, "entity-type": None}
        for s in schemas
    ]
    return testing.Relation(
        "database",
        remote_app_name=app,
        remote_app_data={"version": "v1", "requests": json.dumps(requests)},
    )


def grants(fake: FakeCrate) -> dict[str, set[str]]:
    """Which schemas each user holds privileges on, from the statements CrateDB got."""
    held: dict[str, set[str]] = {}
    for statement in fake.statements:
        if m := re.match(r'GRANT DQL, DML, DDL ON SCHEMA "(\w+)" TO "(\w+)"', statement):
            held.setdefault(m.group(2), set()).add(m.group(1))
        elif m := re.match(r'REVOKE DQL, DML, DDL ON SCHEMA "(\w+)" FROM "(\w+)"', statement):
            held.get(m.group(2), set()).discard(m.group(1))
        elif m := re.match(r'DROP USER IF EXISTS "(\w+)"', statement):
            held.pop(m.group(1), None)
    return held


def passwords(fake: FakeCrate) -> dict[str, str]:
    """Each user's password as CrateDB would hold it."""
    held: dict[str, str] = {}
    for statement in fake.statements:
        if m := re.match(
            r"(?:CREATE|ALTER) USER \"(\w+)\" (?:WITH|SET) \(password = '(\w+)'\)", statement
        ):
            held[m.group(1)] = m.group(2)
    return held


def answers(state: testing.State, relation_id: int) -> dict[str, dict[str, str]]:
    """Schema -> the content of its answer's user secret."""
    data = bag(state.get_relation(relation_id).local_app_data)
    return {
        r["resource"]: bag(state.get_secret(id=r["secret-user"]).latest_content)
        for r in json.loads(data["requests"])
    }


class TestSchemaTakeover:
    @pytest.mark.parametrize(
        "attacker_first", [True, False], ids=["attacker-older", "victim-older"]
    )
    def test_switching_to_anothers_schema_gets_nothing_and_loses_the_old_grant(
        self, attacker_first: bool, crate: FakeCrate
    ):
        cr_ctx = context("cratedb")
        ml_ctx = context("mlflow-tracking", app_name="victim")
        asking = testing.Relation("cratedb", remote_app_name="cratedb")
        asked = ml_ctx.run(
            ml_ctx.on.relation_created(asking),
            mlflow_state(asking, config={"database-name": "victim_db"}),
        )
        victim, _ = handover(asked, asking.id, endpoint="database", app_name="victim")
        attacker = v1_schema_request("attacker", "attacker_db")
        order = [attacker, victim] if attacker_first else [victim, attacker]
        if not attacker_first:
            # Relation ids follow creation: make the attacker's the higher one.
            attacker = dataclasses.replace(attacker, id=victim.id + 100)
            order = [victim, attacker]
        state = cratedb_state()
        for relation in order:
            state = cr_ctx.run(
                cr_ctx.on.relation_changed(relation, remote_unit=0),
                with_changes(state, relations={*state.relations, relation}),
            )
        before = answers(state, victim.id)["victim_db"]["password"]

        switched = dataclasses.replace(
            cast(testing.Relation, state.get_relation(attacker.id)),
            remote_app_data=v1_schema_request("attacker", "victim_db").remote_app_data,
        )
        out = cr_ctx.run(
            cr_ctx.on.relation_changed(switched, remote_unit=0),
            with_changes(
                state, relations={*(r for r in state.relations if r.id != switched.id), switched}
            ),
        )

        held = grants(crate)
        assert held[f"relation_{victim.id}"] == {"victim_db"}
        assert "victim_db" not in held.get(f"relation_{attacker.id}", set())
        assert "attacker_db" not in held.get(f"relation_{attacker.id}", set())
        assert answers(out, victim.id)["victim_db"]["password"] == before
        assert passwords(crate)[f"relation_{victim.id}"] == before
        told = bag(out.get_relation(switched.id).local_app_data)["error"]
        assert "belongs to another application" in told
        assert "(relation" not in told

    def test_one_relation_with_two_schemas_answers_both_with_the_users_one_password(
        self, crate: FakeCrate
    ):
        cr_ctx = context("cratedb")
        first = v1_schema_request("two-schemas", "first_db")
        state = cr_ctx.run(cr_ctx.on.relation_changed(first, remote_unit=0), cratedb_state(first))
        more = dataclasses.replace(
            cast(testing.Relation, state.get_relation(first.id)),
            remote_app_data=v1_schema_request(
                "two-schemas", "first_db", "second_db"
            ).remote_app_data,
        )

        out = cr_ctx.run(
            cr_ctx.on.relation_changed(more, remote_unit=0),
            with_changes(
                state, relations={*(r for r in state.relations if r.id != more.id), more}
            ),
        )

        got = answers(out, first.id)
        user = f"relation_{first.id}"
        assert (
            got["first_db"]["password"] == got["second_db"]["password"] == passwords(crate)[user]
        )
        assert grants(crate)[user] == {"first_db", "second_db"}

    def test_a_departed_owners_schema_is_not_handed_to_the_next_asker(self, crate: FakeCrate):
        cr_ctx = context("cratedb")
        owner = v1_schema_request("old-team", "team_db")
        state = cr_ctx.run(cr_ctx.on.relation_changed(owner, remote_unit=0), cratedb_state(owner))
        state = cr_ctx.run(cr_ctx.on.relation_broken(state.get_relation(owner.id)), state)
        state = with_changes(state, relations={r for r in state.relations if r.id != owner.id})
        newcomer = v1_schema_request("new-team", "team_db")

        out = cr_ctx.run(
            cr_ctx.on.relation_changed(newcomer, remote_unit=0),
            with_changes(state, relations={*state.relations, newcomer}),
        )

        assert f"relation_{newcomer.id}" not in grants(crate)
        assert (
            "kept from another application"
            in bag(out.get_relation(newcomer.id).local_app_data)["error"]
        )
