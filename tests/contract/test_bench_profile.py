"""The benchmark's reading of CrateDB's ``sys.jobs_log`` (``bench/crate_profile.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import crate_profile
from bench.report import crate_floor, crate_profile_section


@pytest.mark.parametrize(
    ("stmt", "kind"),
    [
        ('SELECT "runs"."run_uuid" FROM "mlflow"."runs" WHERE x = ?', "SELECT runs"),
        ('INSERT INTO "metrics" ("key") VALUES (?)', "INSERT INTO metrics"),
        ("REFRESH TABLE latest_metrics", "REFRESH TABLE latest_metrics"),
        ('UPDATE "mlflow"."latest_metrics" SET value = ?', "UPDATE latest_metrics"),
        ("DELETE FROM tags WHERE run_uuid = ?", "DELETE FROM tags"),
        ("SET error_on_unknown_object_key=false;", "SET"),
        ("  explain select 1", "other"),
    ],
)
def test_each_statement_is_named_by_verb_and_table(stmt: str, kind: str):
    assert crate_profile.statement_kind(stmt) == kind


class FakeLog:
    """A node whose jobs log holds two calls' statements."""

    def query(self, statement: str, args: Any = ()) -> list[tuple]:
        if "CURRENT_TIMESTAMP" in statement:
            return [(1000,)]
        assert args == [1000, "bench_charm"]
        return [
            ('SELECT "runs"."run_uuid" FROM "runs"', 1000, 1004),
            ('INSERT INTO "metrics" VALUES (?)', 1004, 1010),
            ("REFRESH TABLE metrics", 1010, 1030),
            ('SELECT "runs"."run_uuid" FROM "runs"', 1040, 1042),
            ('INSERT INTO "metrics" VALUES (?)', 1042, 1048),
            ("REFRESH TABLE metrics", 1048, 1066),
        ]


def test_the_profile_counts_statements_and_crates_own_time_per_call():
    found = crate_profile.profile(FakeLog(), "bench_charm", 2, lambda: {"latency_s": [0.05]})

    assert found["statements_per_call"] == 3
    assert found["server_ms_per_call"] == pytest.approx((30 + 26) / 2)
    assert list(found["by_kind"]) == [
        "REFRESH TABLE metrics",
        "INSERT INTO metrics",
        "SELECT runs",
    ]
    assert found["by_kind"]["REFRESH TABLE metrics"] == {"per_call": 1.0, "ms_per_call": 19.0}
    found["client_p50_ms"] = 50.0
    section = "\n".join(crate_profile_section({"charm": found}))
    assert "| `REFRESH TABLE metrics` | 1.00 | 19.0 |" in section


def test_the_floor_says_how_many_statements_the_2x_goal_leaves_room_for():
    found = {"server_ms_per_call": 8.0, "statements_per_call": 8.0}

    # 40 ms against 10: 30 ms added, 8 of them CrateDB's work, 22/8 per statement.
    text = crate_floor(found, cratedb_p50_ms=40.0, postgresql_p50_ms=10.0)

    assert "CrateDB adds 30.0 ms: 8.0 ms of its own work and 2.8 ms per statement" in text
    assert "3.8 ms a statement in all" in text
    assert "room for about 2.7 statements at this cost, where a log_metric issues 8.0" in text
    assert "fewer statements per call" in text
    assert "within the goal" in crate_floor(found, 12.0, 10.0)
    assert "no slower" in crate_floor(found, 9.0, 10.0)
