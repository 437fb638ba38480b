"""Scheduled backups: when a snapshot is due, what retention prunes, the runner, the charm.

The rules (``in_container/schedule.py``) are pure and tested on their own;
the runner (``in_container/backup_runner.py``) is tested at its SQL door, a
function answering ``sys.snapshots`` as CrateDB's ``/_sql`` gives it; the
charm in ops.testing with the runner's state file in the container's
filesystem. A real runner against a real CrateDB and ``weed`` is in
tests/workload/test_cratedb.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ops import testing
from prometheus_client.parser import text_string_to_metric_families

from backup_runner import RunnerState, run_once
from constants import BACKUP_SERVICE, BACKUP_STATE_FILE, CONTAINER, METRICS_SERVICE
from helpers import FakeCrate, make_state, running_state, s3_relation
from in_container.metrics import backup_families, render
from in_container.schedule import (
    Retention,
    Snapshot,
    is_due,
    last_slot,
    parse_retention,
    parse_schedule,
    to_prune,
)

Ctx = testing.Context
NOW = datetime(2026, 12, 4, 10, 30, 15, tzinfo=UTC)


def snap(name: str, hours_ago: float, state: str = "SUCCESS") -> Snapshot:
    return Snapshot(name, state, NOW - timedelta(hours=hours_ago))


def sched(text: str) -> Any:
    parsed = parse_schedule(text)
    assert parsed is not None
    return parsed


class TestSchedule:
    @pytest.mark.parametrize(
        ("text", "interval"),
        [("30m", timedelta(minutes=30)), ("6h", timedelta(hours=6)), ("1d", timedelta(days=1))],
    )
    def test_an_interval_is_read(self, text: str, interval: timedelta):
        assert sched(text).interval == interval

    def test_empty_is_no_schedule(self):
        assert parse_schedule("  ") is None

    @pytest.mark.parametrize(
        "text", ["0m", "6 h", "hourly", "* * * *", "60 * * * *", "0 24 * * *", "*/0 * * * *"]
    )
    def test_a_bad_schedule_is_refused_saying_what_is_wanted(self, text: str):
        with pytest.raises(ValueError, match=r"interval|cron"):
            parse_schedule(text)

    def test_an_interval_is_due_when_no_snapshot_started_within_it(self):
        six = sched("6h")
        assert is_due(six, NOW, [])
        assert not is_due(six, NOW, [snap("scheduled-a", 5.9)])
        assert is_due(six, NOW, [snap("scheduled-a", 6.0)])

    def test_manual_failed_and_partial_snapshots_do_not_count_as_a_backup(self):
        six = sched("6h")
        others = [
            snap("nightly", 1),
            snap("scheduled-x", 1, "FAILED"),
            snap("scheduled-y", 1, "PARTIAL"),
        ]
        assert is_due(six, NOW, others)

    def test_a_snapshot_in_progress_or_a_recent_failed_attempt_waits(self):
        six = sched("6h")
        assert not is_due(six, NOW, [snap("scheduled-a", 9, "IN_PROGRESS")])
        assert not is_due(six, NOW, [], last_failure=NOW - timedelta(minutes=4))
        assert is_due(six, NOW, [], last_failure=NOW - timedelta(minutes=5))

    def test_a_short_interval_is_not_held_back_by_the_retry_delay(self):
        # The last success 61 s ago: due, although less than RETRY_AFTER passed.
        one = sched("1m")
        assert is_due(one, NOW, [Snapshot("scheduled-a", "SUCCESS", NOW - timedelta(seconds=61))])

    def test_cron_finds_the_latest_matching_minute(self):
        daily = sched("0 3 * * *")
        assert last_slot(daily, NOW) == datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
        # 2026-12-04 is a Friday: Sunday (0 or 7) was the 29th of November.
        for sunday in ("15 2 * * 0", "15 2 * * 7"):
            assert last_slot(sched(sunday), NOW) == datetime(2026, 11, 29, 2, 15, tzinfo=UTC)
        quarter = sched("*/15 8-17 * * 1-5")
        assert last_slot(quarter, NOW) == datetime(2026, 12, 4, 10, 30, tzinfo=UTC)

    def test_cron_with_both_day_fields_runs_on_either(self):
        # The 1st of the month or a Monday (the 30th of November).
        assert last_slot(sched("0 0 1 * 1"), NOW) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)

    def test_cron_is_due_once_per_slot_and_catches_up_a_missed_one(self):
        daily = sched("0 3 * * *")
        assert is_due(daily, NOW, [snap("scheduled-old", 30)])
        assert not is_due(daily, NOW, [snap("scheduled-today", 7.4)])

    def test_a_failed_cron_slot_is_retried_after_the_delay_until_it_succeeds(self):
        daily = sched("0 3 * * *")
        failed = [snap("scheduled-today", 7.4, "FAILED")]
        assert not is_due(daily, NOW, failed, last_failure=NOW - timedelta(minutes=1))
        assert is_due(daily, NOW, failed, last_failure=NOW - timedelta(minutes=6))


class TestRetention:
    def test_empty_keeps_every_snapshot(self):
        assert to_prune(parse_retention(""), NOW, [snap("scheduled-a", 900)]) == []

    @pytest.mark.parametrize("text", ["0", "-1", "5m", "forever", "7 days"])
    def test_a_bad_retention_is_refused(self, text: str):
        with pytest.raises(ValueError, match="count such as 7"):
            parse_retention(text)

    def test_a_count_keeps_the_newest_successes_and_drops_older_failures(self):
        snapshots = [
            snap("scheduled-1", 30),
            snap("scheduled-2", 24, "FAILED"),
            snap("scheduled-3", 18),
            snap("nightly-manual", 15),
            snap("scheduled-4", 12),
            snap("scheduled-5", 6, "PARTIAL"),
        ]
        pruned = to_prune(parse_retention("2"), NOW, snapshots)
        # The newest attempt (failed) stays as evidence; manual snapshots are never pruned.
        assert pruned == ["scheduled-1", "scheduled-2"]

    def test_an_age_drops_older_ones_but_never_the_newest_success(self):
        snapshots = [
            snap("scheduled-1", 80),
            snap("scheduled-2", 50),
            snap("scheduled-3", 40, "FAILED"),
        ]
        assert to_prune(parse_retention("36h"), NOW, snapshots) == ["scheduled-1", "scheduled-3"]

    def test_nothing_is_pruned_before_any_success_or_while_in_progress(self):
        failing = [snap("scheduled-1", 50, "FAILED"), snap("scheduled-2", 40, "FAILED")]
        assert to_prune(Retention("1", count=1), NOW, failing) == []
        busy = [
            snap("scheduled-1", 50),
            snap("scheduled-2", 49),
            snap("scheduled-3", 48, "IN_PROGRESS"),
        ]
        assert to_prune(Retention("1", count=1), NOW, busy) == ["scheduled-1"]


def cluster(snapshots: list[Snapshot], fail_create: str = "") -> Any:
    """The runner's SQL door: sys.snapshots answered, CREATE/DROP SNAPSHOT applied."""
    sent: list[str] = []

    def sql(statement: str, args: Sequence[Any]) -> list[list[Any]]:
        sent.append(statement)
        if statement.startswith("SELECT name, state, started FROM sys.snapshots"):
            assert list(args) == ["backups"]
            return [[s.name, s.state, int(s.started.timestamp() * 1000)] for s in snapshots]
        if statement.startswith("CREATE SNAPSHOT"):
            if fail_create:
                raise OSError(fail_create)
            name = statement.split('"."')[1].split('"')[0]
            snapshots.append(Snapshot(name, "SUCCESS", NOW))
            return []
        if statement.startswith("DROP SNAPSHOT"):
            name = statement.split('"."')[1].split('"')[0]
            snapshots[:] = [s for s in snapshots if s.name != name]
            return []
        raise AssertionError(statement)

    sql.sent = sent  # type: ignore[attr-defined]
    return sql


class TestRunner:
    def test_a_due_snapshot_is_made_waited_for_and_the_oldest_pruned(self):
        held = [snap("scheduled-20261203-043015", 30), snap("scheduled-20261203-223015", 12)]
        sql = cluster(held)

        state = run_once(sql, sched("6h"), parse_retention("2"), RunnerState(), NOW)

        assert (
            'CREATE SNAPSHOT "backups"."scheduled-20261204-103015" ALL WITH (wait_for_completion = true)'
            in sql.sent
        )
        assert [s.name for s in held] == ["scheduled-20261203-223015", "scheduled-20261204-103015"]
        assert state.pruned == ["scheduled-20261203-043015"]
        assert (state.failed, state.last_snapshot) == (False, "scheduled-20261204-103015")
        assert state.last_success == NOW.isoformat()

    def test_the_next_interval_runs_although_the_last_attempt_was_recent(self):
        earlier = NOW - timedelta(seconds=61)
        held = [Snapshot("scheduled-20261204-102914", "SUCCESS", earlier)]
        done = RunnerState(last_attempt=earlier.isoformat(), last_success=earlier.isoformat())
        state = run_once(cluster(held), sched("1m"), parse_retention(""), done, NOW)
        assert (len(held), state.last_snapshot) == (2, "scheduled-20261204-103015")

    def test_nothing_is_done_before_it_is_due(self):
        sql = cluster([snap("scheduled-a", 1)])
        state = run_once(sql, sched("6h"), parse_retention(""), RunnerState(), NOW)
        assert [s for s in sql.sent if not s.startswith("SELECT")] == []
        assert not state.failed

    def test_a_failure_is_recorded_and_waits_before_the_next_attempt(self):
        sql = cluster([], fail_create="RepositoryMissingException[backups] missing")
        state = run_once(sql, sched("1h"), parse_retention(""), RunnerState(), NOW)
        assert state.failed
        assert "RepositoryMissingException" in state.error
        again = run_once(sql, sched("1h"), parse_retention(""), state, NOW + timedelta(minutes=2))
        assert sum(s.startswith("CREATE SNAPSHOT") for s in sql.sent) == 1
        later = run_once(sql, sched("1h"), parse_retention(""), again, NOW + timedelta(minutes=6))
        assert sum(s.startswith("CREATE SNAPSHOT") for s in sql.sent) == 2
        assert later.failed

    def test_a_success_after_a_failure_clears_it(self):
        held: list[Snapshot] = []
        failing = RunnerState(
            failed=True, error="x", last_attempt=(NOW - timedelta(minutes=6)).isoformat()
        )
        state = run_once(cluster(held), sched("1h"), parse_retention(""), failing, NOW)
        assert (state.failed, state.error, len(held)) == (False, "", 1)

    def test_the_state_file_round_trips_and_feeds_the_exporters_metrics(self, tmp_path: Path):
        path = tmp_path / "state" / "backup-state.json"
        RunnerState(schedule="6h", last_success=NOW.isoformat(), failed=True, error="x").save(path)
        assert RunnerState.load(path).last_success == NOW.isoformat()

        families = {
            f.name: f for f in text_string_to_metric_families(render(backup_families(str(path))))
        }
        assert families["cratedb_scheduled_backup_failed"].samples[0].value == 1
        last = families["cratedb_scheduled_backup_last_success_timestamp_seconds"]
        assert last.samples[0].value == NOW.timestamp()
        assert backup_families(str(tmp_path / "none.json")) == []


def scheduled_state(
    schedule: str = "6h",
    leader: bool = True,
    s3: bool = True,
    runner_state: dict | None = None,
    tmp: Path | None = None,
) -> testing.State:
    relations: list[Any] = []
    secrets: tuple[Any, ...] = ()
    if s3:
        relation, secret = s3_relation()
        relations, secrets = [relation], (secret,)
    state = running_state(
        make_state(
            *relations,
            leader=leader,
            secrets=secrets,
            config={"backup-schedule": schedule, "backup-retention": "7"},
        )
    )
    if runner_state is None:
        return state
    assert tmp is not None
    source = tmp / "backup-state.json"
    source.write_text(json.dumps(runner_state))
    workload = state.get_container(CONTAINER)
    mounted = testing.Container(
        CONTAINER,
        can_connect=True,
        execs=workload.execs,
        layers=workload.layers,
        service_statuses=workload.service_statuses,
        mounts={"state": testing.Mount(location=BACKUP_STATE_FILE.rsplit("/", 1)[0], source=tmp)},
    )
    return testing.State(**{**state.__dict__, "containers": {mounted}})


class TestCharm:
    def test_the_leader_runs_the_schedule_and_defines_the_repository_once(
        self, ctx: Ctx, crate: FakeCrate
    ):
        out = ctx.run(ctx.on.update_status(), scheduled_state())
        again = ctx.run(ctx.on.update_status(), out)

        service = again.get_container(CONTAINER).plan.services[BACKUP_SERVICE]
        assert service.command.endswith(f"{BACKUP_STATE_FILE} 6h 7")
        assert service.user == "crate"
        assert sum(s.startswith("CREATE REPOSITORY") for s in crate.statements) == 1
        metrics = again.get_container(CONTAINER).plan.services[METRICS_SERVICE]
        assert metrics.command.endswith(BACKUP_STATE_FILE)

    def test_a_rotated_s3_key_redefines_the_repository(self, ctx: Ctx, crate: FakeCrate):
        out = ctx.run(ctx.on.update_status(), scheduled_state())
        [secret] = list(out.secrets)
        rotated = testing.Secret(
            {"access-key": "BACKUPKEY", "secret-key": "rotated"}, id=secret.id, owner=None
        )
        ctx.run(ctx.on.update_status(), testing.State(**{**out.__dict__, "secrets": {rotated}}))
        creates = [s for s in crate.statements if s.startswith("CREATE REPOSITORY")]
        assert len(creates) == 2
        assert "secret_key = 'rotated'" in creates[1]

    def test_a_schedule_without_s3_blocks_naming_the_relation(self, ctx: Ctx):
        out = ctx.run(ctx.on.update_status(), scheduled_state(s3=False))
        assert out.unit_status == testing.BlockedStatus(
            "backup-schedule is set but no S3 is related: juju relate cratedb:s3-parameters "
            "<an S3 provider, e.g. seaweedfs>, or set backup-schedule=''"
        )
        assert BACKUP_SERVICE not in out.get_container(CONTAINER).plan.services

    def test_a_non_leader_runs_no_schedule_and_stops_one_it_had(self, ctx: Ctx):
        as_leader = ctx.run(ctx.on.update_status(), scheduled_state())
        demoted = testing.State(**{**as_leader.__dict__, "leader": False})
        out = ctx.run(ctx.on.update_status(), demoted)
        assert out.get_container(CONTAINER).plan.services[BACKUP_SERVICE].startup == "disabled"
        assert out.unit_status.name == "active"

    def test_a_failed_scheduled_backup_blocks_with_the_error(self, ctx: Ctx, tmp_path: Path):
        state = scheduled_state(
            runner_state={"failed": True, "error": "S3 said 403 Forbidden", "last_success": ""},
            tmp=tmp_path,
        )
        out = ctx.run(ctx.on.update_status(), state)
        assert out.unit_status == testing.BlockedStatus(
            "scheduled backup failed: S3 said 403 Forbidden; fix the S3 side it names "
            "(retried every 5 minutes), or run create-backup to see it now"
        )

    def test_the_last_successful_backup_shows_in_the_active_status(self, ctx: Ctx, tmp_path: Path):
        state = scheduled_state(
            runner_state={"failed": False, "last_success": "2026-12-04T03:00:07+00:00"},
            tmp=tmp_path,
        )
        out = ctx.run(ctx.on.update_status(), state)
        assert out.unit_status == testing.ActiveStatus(
            "GREEN · 1 node(s) · CrateDB 6.4.0 · last backup 2026-12-04 03:00 UTC"
        )

    @pytest.mark.parametrize(
        ("option", "value"), [("backup-schedule", "nightly"), ("backup-retention", "5m")]
    )
    def test_a_bad_schedule_or_retention_blocks_naming_the_option(
        self, ctx: Ctx, option: str, value: str
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(config={option: value}))
        assert out.unit_status.name == "blocked"
        assert f"invalid config {option!r}" in out.unit_status.message
