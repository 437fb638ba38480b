"""Property-based: any config and any remote databag end in a known status, never a crash.

Hypothesis generates config values and s3-credentials requests (missing keys,
wrong types, huge strings, unicode, injection-looking names, stale secret
ids); every observed relation event runs on them. Nothing invalid may reach
the identities file or a ``weed shell`` script.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ops import testing

from constants import S3_RELATION
from helpers import identities, make_state, shell_scripts
from workload import BUCKET_NAME

HOSTILE = st.sampled_from(
    [
        "",
        "a",
        "x" * 5000,
        "UPPER",
        "../../etc",
        "bucket\ns3.bucket.delete -name victim",
        "name; rm -rf /",
        "$(reboot)",
        "`id`",
        "ünïcødé",
        "\x00nul",
        "secret:doesnotexist000000",
        "valid-bucket",
        "mlflow",
        '{"json": true}',
        "[1, 2]",
    ]
)
TEXT = st.one_of(HOSTILE, st.text(max_size=80))
CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "region": TEXT,
        "cluster-domain": TEXT,
        "endpoint": st.one_of(TEXT, st.just("http://s3.example.com:8333")),
        "volume-size-limit-mb": st.integers(min_value=-(2**31), max_value=2**31),
        "legacy-s3-requirers": st.booleans(),
    },
)
DATABAG = st.dictionaries(
    st.sampled_from(
        [
            "version",
            "bucket",
            "path",
            "requested-secrets",
            "provided-secrets",
            "secret-extra",
            "junk",
        ]
    ),
    st.one_of(TEXT, st.just(json.dumps(["access-key", "secret-key"])), st.just("1"), st.just("0")),
    max_size=6,
)
EVENTS = st.sampled_from(
    ["config_changed", "relation_changed", "relation_broken", "update_status"]
)
KNOWN = {"active", "waiting", "blocked", "maintenance"}


def test_any_input_ends_in_a_known_status_and_nothing_invalid_reaches_the_workload():
    cases = 0

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,  # the same cases on every CI run (False explores)
    )
    @given(config=CONFIG, remote=DATABAG, event=EVENTS)
    def check(config: dict[str, Any], remote: dict[str, str], event: str) -> None:
        nonlocal cases
        cases += 1
        from charm import SeaweedfsCharm

        ctx = testing.Context(SeaweedfsCharm)
        relation = testing.Relation(S3_RELATION, remote_app_name="client", remote_app_data=remote)
        state = make_state(relation, config=config)
        trigger = {
            "config_changed": ctx.on.config_changed,
            "update_status": ctx.on.update_status,
            "relation_changed": lambda: ctx.on.relation_changed(relation, remote_unit=0),
            "relation_broken": lambda: ctx.on.relation_broken(relation),
        }[event]

        out = ctx.run(trigger(), state)

        assert out.unit_status.name in KNOWN
        if out.unit_status.name == "blocked":
            assert out.unit_status.message.startswith(("invalid config '", "client (relation"))
        for script in shell_scripts(ctx):
            assert script in {"s3.bucket.list\n"} or script.startswith("s3.bucket.create -name ")
            if script.startswith("s3.bucket.create"):
                assert BUCKET_NAME.fullmatch(script.split()[-1])
        if out.get_container("seaweedfs").plan.services:
            for identity in identities(ctx, out)["identities"]:
                for action in identity["actions"]:
                    bucket = action.partition(":")[2]
                    assert not bucket or BUCKET_NAME.fullmatch(bucket), action

    check()
    # Hypothesis really ran the cases asked for (it stops early when it runs out).
    assert cases >= 150
    print(f"\nseaweedfs property-based cases: {cases}")
