"""seaweedfs against the backups of today's database charms: a v0 s3 requirer.

The stand-in (``v0_s3_requirer.py``, written from postgresql-k8s's published
source) is chained with the real seaweedfs charm, in both directions.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ops import testing

from stack.charm_loader import charm_modules
from tests.contract.chain import bag, context, handover, with_changes
from tests.contract.test_contracts import seaweed_state
from tests.contract.v0_s3_requirer import META, V0S3Requirer, backup_parameters

# The doors the chained charms reach are stubbed by test_contracts' autouse fixture.
from tests.contract.test_contracts import doors  # noqa: F401  isort: skip

LEGACY_ON = {"legacy-s3-requirers": True}
sw = charm_modules("seaweedfs", "constants")


def _identity(state: testing.State, ctx: testing.Context[Any], relation_id: int) -> dict:
    root = state.get_container("seaweedfs").get_filesystem(ctx)
    path = sw.constants.IDENTITIES_FILE.lstrip("/")
    config = json.loads((root / path).read_text())
    return next(i for i in config["identities"] if i["name"] == f"relation-{relation_id}")


def relate(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """postgresql-k8s's backups ask seaweedfs for a bucket; both sides' results."""
    pg_ctx = testing.Context(V0S3Requirer, meta=META, app_name="postgresql-k8s")
    asking = testing.Relation("s3-parameters", remote_app_name="seaweedfs")
    asked = pg_ctx.run(
        pg_ctx.on.relation_joined(asking, remote_unit=0),
        testing.State(leader=True, relations={asking}),
    )
    request, _ = handover(asked, asking.id, endpoint="s3-credentials", app_name="postgresql-k8s")
    sw_ctx = context("seaweedfs")
    state = dataclasses.replace(seaweed_state(request), config=config or {})
    answered = sw_ctx.run(sw_ctx.on.relation_changed(request, remote_unit=0), state)
    return {
        "pg_ctx": pg_ctx,
        "asked": asked,
        "asking": asking,
        "request": request,
        "sw_ctx": sw_ctx,
        "answered": answered,
    }


def requirer_sees(chain: dict[str, Any], provider_state: testing.State) -> testing.State:
    """The stand-in reads what seaweedfs wrote (plain data, no secrets in v0)."""
    mine = chain["asked"].get_relation(chain["asking"].id)
    answer, secrets = handover(
        provider_state,
        chain["request"].id,
        endpoint="s3-parameters",
        app_name="seaweedfs",
        local_app_data=dict(mine.local_app_data),
    )
    assert secrets == [], "a v0 requirer cannot read secrets: nothing may depend on one"
    answer = dataclasses.replace(answer, id=chain["asking"].id)
    pg_ctx = chain["pg_ctx"]
    return pg_ctx.run(
        pg_ctx.on.relation_changed(answer, remote_unit=0),
        with_changes(chain["asked"], relations={answer}),
    )


class TestRefusedByDefault:
    def test_seaweedfs_blocks_naming_the_option_and_the_requirer_gets_no_key(self):
        chain = relate()

        status = chain["answered"].unit_status
        assert status.name == "blocked"
        assert "legacy-s3-requirers=true" in status.message
        assert "plain relation data" in status.message
        seen = requirer_sees(chain, chain["answered"])
        assert seen.unit_status.name == "blocked"
        assert "Missing S3 parameters" in seen.unit_status.message
        answer = bag(chain["answered"].get_relation(chain["request"].id).local_app_data)
        assert not {"access-key", "secret-key"} & set(answer)


class TestServedWhenOptedIn:
    def test_postgresql_backups_get_a_bucket_of_their_own_with_path_style(self):
        chain = relate(LEGACY_ON)

        seen = requirer_sees(chain, chain["answered"])

        rid = chain["asking"].id
        assert seen.unit_status == testing.ActiveStatus(
            f"backups to relation-{rid}/ at "
            f"http://seaweedfs.{chain['answered'].model.name}.svc.cluster.local:8333 (path style)"
        )
        assert chain["answered"].unit_status.name == "active"

    def test_the_keys_it_reads_are_its_bucket_scoped_identity(self):
        chain = relate(LEGACY_ON)
        answer = bag(chain["answered"].get_relation(chain["request"].id).local_app_data)
        params, missing = backup_parameters(answer)

        identity = _identity(chain["answered"], chain["sw_ctx"], chain["request"].id)
        assert missing == []
        assert identity["credentials"] == [
            {"accessKey": params["access-key"], "secretKey": params["secret-key"]}
        ]
        assert {a.split(":", 1)[1] for a in identity["actions"]} == {params["bucket"]}

    def test_a_rotation_reaches_the_requirer_and_the_old_key_is_gone(self):
        chain = relate(LEGACY_ON)
        before = bag(chain["answered"].get_relation(chain["request"].id).local_app_data)
        sw_ctx = chain["sw_ctx"]

        rotated = sw_ctx.run(
            sw_ctx.on.action("rotate-credentials", params={"relation-id": chain["request"].id}),
            chain["answered"],
        )

        after = bag(rotated.get_relation(chain["request"].id).local_app_data)
        identity = _identity(rotated, sw_ctx, chain["request"].id)
        assert after["secret-key"] != before["secret-key"]
        assert identity["credentials"] == [
            {"accessKey": after["access-key"], "secretKey": after["secret-key"]}
        ]
        assert requirer_sees(chain, rotated).unit_status.name == "active"

    def test_turning_the_option_off_revokes_and_withdraws_the_keys(self):
        chain = relate(LEGACY_ON)
        sw_ctx = chain["sw_ctx"]

        off = sw_ctx.run(
            sw_ctx.on.config_changed(),
            dataclasses.replace(chain["answered"], config={"legacy-s3-requirers": False}),
        )

        answer = bag(off.get_relation(chain["request"].id).local_app_data)
        assert not {"access-key", "secret-key"} & set(answer)
        assert _identity(off, sw_ctx, chain["request"].id)["credentials"] == []
        assert requirer_sees(chain, off).unit_status.name == "blocked"
