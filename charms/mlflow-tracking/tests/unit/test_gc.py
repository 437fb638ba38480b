"""Garbage collection of deleted runs: the leader's schedule, the gc action, the options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ops import pebble, testing

from constants import CONTAINER, GC_ENV_FILE, GC_FILE, GC_SERVICE
from helpers import AUTH_CONTENT, container, make_state
from workload import gc_argv

Ctx = testing.Context[Any]


def gc_service(state: testing.State) -> dict[str, Any]:
    return dict(state.get_container(CONTAINER).plan.services[GC_SERVICE].to_dict())


def pushed(ctx: Ctx, state: testing.State, path: str) -> Path:
    return Path(state.get_container(CONTAINER).get_filesystem(ctx) / path.lstrip("/"))


class TestSchedule:
    def test_the_leader_collects_daily_what_was_deleted_30_days_ago_by_default(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())
        service = gc_service(out)
        assert service["startup"] == "enabled"
        assert service["command"] == (
            f"python3 {GC_FILE} --env-file {GC_ENV_FILE} --every 86400 -- --older-than 30d"
        )

    def test_the_gc_env_file_holds_the_store_and_the_admin_login_readable_by_root_only(
        self, ctx: Ctx
    ):
        out = ctx.run(ctx.on.config_changed(), make_state())
        env = pushed(ctx, out, GC_ENV_FILE)
        assert env.stat().st_mode & 0o777 == 0o600
        text = env.read_text()
        assert "MLFLOW_BACKEND_STORE_URI='sqlite:////var/lib/mlflow/mlflow.db'" in text
        assert "MLFLOW_TRACKING_URI='http://127.0.0.1:5000'" in text
        assert "MLFLOW_TRACKING_USERNAME='admin'" in text
        assert f"MLFLOW_TRACKING_PASSWORD='{AUTH_CONTENT['admin-password']}'" in text

    def test_another_unit_does_not_collect(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(leader=False))
        assert gc_service(out)["startup"] == "disabled"
        assert not pushed(ctx, out, GC_ENV_FILE).exists()

    def test_interval_0_turns_the_schedule_off(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(config={"gc-interval": "0"}))
        assert gc_service(out)["startup"] == "disabled"

    def test_a_configured_schedule_reaches_the_service(self, ctx: Ctx):
        config = {"gc-interval": "6h", "gc-older-than": "7d"}
        out = ctx.run(ctx.on.config_changed(), make_state(config=config))
        assert gc_service(out)["command"].endswith("--every 21600 -- --older-than 7d")

    @pytest.mark.parametrize(
        ("option", "value", "problem"),
        [
            ("gc-interval", "daily", "must be 0 (off) or a duration such as 24h, 1d or 30m"),
            ("gc-interval", "30s", "must be 0 (off) or at least 1m"),
            ("gc-older-than", "a month", "must be a duration such as 30d, 12h or 0s"),
            ("gc-older-than", "", "must be a duration such as 30d, 12h or 0s"),
        ],
    )
    def test_a_bad_duration_blocks_naming_the_option(
        self, ctx: Ctx, option: str, value: str, problem: str
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(config={option: value}))
        assert out.unit_status == testing.BlockedStatus(f"invalid config {option!r}: {problem}")


class TestAction:
    def _state(
        self, ctx: Ctx, stdout: str = "", rc: int = 0, leader: bool = True
    ) -> testing.State:
        """A unit whose server runs (after a first hook), with mlflow gc answering."""
        started = ctx.run(ctx.on.config_changed(), make_state(leader=leader))
        gc = testing.Exec(
            gc_argv("0s"), return_code=rc, stdout=stdout, stderr="gc: boom" if rc else ""
        )
        running = testing.Container(
            CONTAINER,
            can_connect=True,
            execs={*container().execs, gc},
            layers=started.get_container(CONTAINER).layers,
            service_statuses={"mlflow-server": pebble.ServiceStatus.ACTIVE},
        )
        return make_state(leader=leader, workload=running)

    def test_the_action_runs_gc_once_with_the_given_age_and_prints_its_output(self, ctx: Ctx):
        ctx.run(
            ctx.on.action("gc", params={"older-than": "0s"}),
            self._state(ctx, stdout="Runs deleted: 1\n"),
        )
        assert ctx.action_results == {"older-than": "0s", "output": "Runs deleted: 1"}
        [call] = [c for c in ctx.exec_history[CONTAINER] if c.command == gc_argv("0s")]
        assert call.command == gc_argv("0s")

    def test_a_bad_age_fails_the_action_saying_the_format(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("gc", params={"older-than": "soon"}), self._state(ctx))
        assert failed.value.message == (
            "older-than 'soon' is not a duration such as 7d, 12h or 0s"
        )

    def test_a_failing_gc_fails_the_action_with_its_last_line(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("gc", params={"older-than": "0s"}), self._state(ctx, rc=1))
        assert failed.value.message == "mlflow gc failed: gc: boom"

    def test_another_unit_says_where_to_run_it(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("gc"), self._state(ctx, leader=False))
        assert failed.value.message == (
            "run it on the leader unit (juju run mlflow-tracking/leader gc)"
        )
