"""MLflow's basic-auth app as the charm runs it: secret, users, config file, actions."""

from __future__ import annotations

import configparser
import dataclasses
from typing import Any

import pytest
from ops import testing

from auth import SECRET_LABEL, users_argv
from constants import CONTAINER, SERVICE
from helpers import (
    AUTH_CONTENT,
    command,
    container,
    database_relation,
    env_file,
    make_state,
    sent_manifests,
)

Ctx = testing.Context[Any]
AUTH_INI = "etc/mlflow/basic_auth.ini"
MLFLOW_DEFAULT_ADMIN_PASSWORD = "password1234"


def _ini(ctx: Ctx, out: testing.State) -> configparser.SectionProxy:
    root = out.get_container(CONTAINER).get_filesystem(ctx)
    # As MLflow reads it (configparser's default interpolation).
    parser = configparser.ConfigParser()
    parser.read_string((root / AUTH_INI).read_text())
    return parser["mlflow"]


def _users_runs(ctx: Ctx) -> list[Any]:
    return [c for c in ctx.exec_history.get(CONTAINER, []) if c.command == users_argv()]


def _auth_secret(out: testing.State) -> dict[str, str]:
    return out.get_secret(label=SECRET_LABEL).tracked_content


class TestFirstStart:
    def test_the_leader_generates_the_secret_and_the_default_admin_password_is_never_valid(
        self, ctx: Ctx
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(auth_generated=False))

        generated = _auth_secret(out)
        assert sorted(generated) == ["admin-password", "flask-secret-key", "notebook-password"]
        assert all(len(v) >= 32 for v in generated.values())
        assert len(set(generated.values())) == 3
        ini = _ini(ctx, out)
        assert ini["admin_username"] == "admin"
        assert ini["admin_password"] == generated["admin-password"]
        assert generated["admin-password"] != MLFLOW_DEFAULT_ADMIN_PASSWORD
        # The users exist before the server first starts, with the passwords in the
        # environment of the command, never in its argv.
        [run] = _users_runs(ctx)
        assert run.environment["CHARM_ADMIN_PASSWORD"] == generated["admin-password"]
        assert run.environment["CHARM_NOTEBOOK_PASSWORD"] == generated["notebook-password"]
        assert not any(v in " ".join(run.command) for v in generated.values())
        assert "--app-name basic-auth" in command(out)
        assert f"MLFLOW_FLASK_SERVER_SECRET_KEY='{generated['flask-secret-key']}'" in env_file(
            ctx, out
        )
        assert out.unit_status.name == "active"

    def test_the_config_file_is_readable_by_root_only(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        root = out.get_container(CONTAINER).get_filesystem(ctx)
        assert (root / AUTH_INI).stat().st_mode & 0o777 == 0o600

    def test_a_unit_that_is_not_leader_waits_for_the_leaders_secret_and_starts_nothing(
        self, ctx: Ctx
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(leader=False, auth_generated=False))

        assert out.unit_status == testing.WaitingStatus(
            "waiting for the leader to generate MLflow's auth secret"
        )
        assert SERVICE not in out.get_container(CONTAINER).plan.services

    def test_a_unit_that_is_not_leader_uses_the_shared_secret_and_leaves_users_to_the_leader(
        self, ctx: Ctx
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(leader=False))

        assert _ini(ctx, out)["admin_password"] == AUTH_CONTENT["admin-password"]
        assert _users_runs(ctx) == []
        assert out.unit_status.name == "active"

    def test_users_that_cannot_be_applied_keep_the_server_stopped_and_the_log_clean(
        self, ctx: Ctx
    ):
        out = ctx.run(ctx.on.config_changed(), make_state(workload=container(users_rc=1)))

        assert out.unit_status == testing.WaitingStatus("could not apply MLflow's users; retrying")
        assert SERVICE not in out.get_container(CONTAINER).plan.services
        assert not any(v in log.message for log in ctx.juju_log for v in AUTH_CONTENT.values())

    def test_users_are_applied_once_not_on_every_hook(self, ctx: Ctx):
        first = ctx.run(ctx.on.config_changed(), make_state())
        ctx.run(ctx.on.update_status(), first)

        assert len(_users_runs(ctx)) == 1


class TestWhereUsersLive:
    def test_embedded_sqlite_keeps_users_in_sqlite_on_storage(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state())

        assert _ini(ctx, out)["database_uri"] == "sqlite:////var/lib/mlflow/basic_auth.db"

    def test_postgresql_keeps_users_in_the_metadata_database(self, ctx: Ctx, postgresql_ready):
        relation, secret = postgresql_ready
        out = ctx.run(ctx.on.config_changed(), make_state(relation, secrets=(secret,)))

        assert _ini(ctx, out)["database_uri"].startswith("postgresql+psycopg2://relation_7:")

    def test_a_password_quoted_with_percent_signs_reaches_mlflow_intact(self, ctx: Ctx):
        hostile = "a'b\"c@d:e/f#g h\\i%j"
        relation, secret = database_relation("postgresql", "pg", "pg:5432", password=hostile)
        out = ctx.run(ctx.on.config_changed(), make_state(relation, secrets=(secret,)))

        uri = _ini(ctx, out)["database_uri"]
        assert uri == (
            "postgresql+psycopg2://relation_7:a%27b%22c%40d%3Ae%2Ff%23g%20h%5Ci%25j@pg:5432/mlflow"
        )


class TestConfig:
    @pytest.mark.parametrize("permission", ["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"])
    def test_the_default_permission_reaches_the_config_file(self, ctx: Ctx, permission: str):
        config = {"auth-default-permission": permission}
        out = ctx.run(ctx.on.config_changed(), make_state(config=config))

        assert _ini(ctx, out)["default_permission"] == permission

    def test_logins_are_cached_30_seconds_by_default_and_the_cache_is_configurable(self, ctx: Ctx):
        default = ctx.run(ctx.on.config_changed(), make_state())
        assert _ini(ctx, default)["auth_cache_ttl_seconds"] == "30"

        off = ctx.run(ctx.on.config_changed(), make_state(config={"auth-cache-seconds": 0}))
        assert _ini(ctx, off)["auth_cache_ttl_seconds"] == "0"

    @pytest.mark.parametrize("value", [-1, 3601])
    def test_a_cache_outside_0_to_3600_seconds_blocks(self, ctx: Ctx, value: int):
        out = ctx.run(ctx.on.config_changed(), make_state(config={"auth-cache-seconds": value}))

        assert out.unit_status == testing.BlockedStatus(
            "invalid config 'auth-cache-seconds': must be between 0 (no cache) and 3600 seconds"
        )

    def test_a_new_default_permission_restarts_the_server(self, ctx: Ctx):
        before = ctx.run(ctx.on.config_changed(), make_state())
        after = ctx.run(
            ctx.on.config_changed(),
            dataclasses.replace(before, config={"auth-default-permission": "EDIT"}),
        )

        env = after.get_container(CONTAINER).plan.services[SERVICE].environment
        old = before.get_container(CONTAINER).plan.services[SERVICE].environment
        assert env["CHARM_ENV_FILE_SHA256"] != old["CHARM_ENV_FILE_SHA256"]

    def test_an_unknown_permission_blocks_naming_the_values(self, ctx: Ctx):
        config = {"auth-default-permission": "WRITE"}
        out = ctx.run(ctx.on.config_changed(), make_state(config=config))

        assert out.unit_status == testing.BlockedStatus(
            "invalid config 'auth-default-permission': must be one of READ, EDIT, MANAGE, "
            "NO_PERMISSIONS"
        )

    def test_auth_off_runs_an_open_server_and_sends_no_login(
        self, ctx: Ctx, pod_defaults_relation
    ):
        state = make_state(pod_defaults_relation, config={"auth": False}, auth_generated=False)
        out = ctx.run(ctx.on.config_changed(), state)

        assert "--app-name" not in command(out)
        assert "MLFLOW_AUTH_CONFIG_PATH" not in env_file(ctx, out)
        [pod_default] = sent_manifests(out, pod_defaults_relation)
        names = {e["name"] for e in pod_default["spec"]["env"]}
        assert "MLFLOW_TRACKING_USERNAME" not in names
        assert _users_runs(ctx) == []


class TestActions:
    def test_the_leader_reveals_the_admin_password(self, ctx: Ctx):
        ctx.run(ctx.on.action("get-admin-password"), make_state())

        assert ctx.action_results == {
            "username": "admin",
            "password": AUTH_CONTENT["admin-password"],
        }

    def test_another_unit_says_where_to_run_it(self, ctx: Ctx):
        with pytest.raises(testing.ActionFailed, match="run it on the leader unit"):
            ctx.run(ctx.on.action("get-admin-password"), make_state(leader=False))

    def test_rotation_applies_a_new_password_without_restarting_the_server(self, ctx: Ctx):
        before = ctx.run(ctx.on.config_changed(), make_state())

        out = ctx.run(ctx.on.action("rotate-admin-password"), before)

        new = _auth_secret(out)["admin-password"]
        assert new != AUTH_CONTENT["admin-password"]
        assert len(new) >= 32
        assert _users_runs(ctx)[-1].environment["CHARM_ADMIN_PASSWORD"] == new
        assert _auth_secret(out)["notebook-password"] == AUTH_CONTENT["notebook-password"]
        assert _ini(ctx, out)["admin_password"] == new
        plan = out.get_container(CONTAINER).plan.services[SERVICE]
        assert plan == before.get_container(CONTAINER).plan.services[SERVICE]
        assert ctx.action_results == {"username": "admin", "rotated": "true"}

    def test_a_rotation_that_cannot_be_applied_fails_the_action_and_says_why(self, ctx: Ctx):
        before = ctx.run(ctx.on.config_changed(), make_state())
        failing = dataclasses.replace(before, containers=frozenset({container(users_rc=1)}))

        with pytest.raises(testing.ActionFailed, match="could not apply MLflow's users"):
            ctx.run(ctx.on.action("rotate-admin-password"), failing)

        # It tried a new password; the secret is only written after it applied.
        attempted = _users_runs(ctx)[-1].environment["CHARM_ADMIN_PASSWORD"]
        assert attempted != AUTH_CONTENT["admin-password"]
