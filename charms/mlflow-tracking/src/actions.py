"""The charm's actions: client env, admin password and its rotation, gc, migrate-store.

Each reads the world through the charm's public readers (the same ones the
reconcile uses), so an action and the unit's status never disagree, and each
failure is an ``event.fail`` that says what to do, never a traceback.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import ops

from auth import ADMIN_USER, new_password
from client_env import client_ca_files, client_env, client_env_results
from config import duration_seconds
from constants import APPS_DIR, AUTH_FILE, CLIENT_CA_DIR
from container import Workload
from exceptions import CharmError
from migration import MIGRATE_ACTION
from relations.ingress import ui_url
from state import LOCAL_ARTIFACTS
from workload import gc_argv

if TYPE_CHECKING:
    from charm import MlflowTrackingCharm

LEADER_ONLY = "run it on the leader unit (juju run {app}/leader {action})"
NO_ADMIN = "auth is off (config auth=false): there is no admin"


class Actions(ops.Object):
    """Observes the five actions of ``charm``."""

    def __init__(self, charm: MlflowTrackingCharm):
        super().__init__(charm, "actions")
        self._charm = charm
        observe = charm.framework.observe
        observe(charm.on.get_client_env_action, self._on_get_client_env)
        observe(charm.on.get_admin_password_action, self._on_get_admin_password)
        observe(charm.on.rotate_admin_password_action, self._on_rotate_admin_password)
        observe(charm.on.gc_action, self._on_gc)
        observe(charm.on[MIGRATE_ACTION].action, self._on_migrate_store)

    def _leader(self, event: ops.ActionEvent, action: str) -> bool:
        if self._charm.unit.is_leader():
            return True
        event.fail(LEADER_ONLY.format(app=self._charm.app.name, action=action))
        return False

    def _on_get_client_env(self, event: ops.ActionEvent) -> None:
        charm = self._charm
        given = str(event.params.get("tracking-uri") or "")
        try:
            config = charm.typed_config()
            artifacts = charm.stores().artifacts or LOCAL_ARTIFACTS
            login = charm.notebook_login(config)
            tls = charm.server_tls()
        except CharmError as err:
            event.fail(str(err))
            return
        uri = given or charm.tracking_uri(config, tls)
        cas = client_ca_files(tls.ca if tls else "", artifacts, config.serve_artifacts)
        # A client given another URI is outside the cluster: no presigned S3 uploads,
        # and the CA files where the results below say to save them.
        env = client_env(
            uri,
            artifacts,
            config.serve_artifacts,
            in_cluster=not given,
            login=login,
            ca_files=cas,
            ca_dir="." if given else CLIENT_CA_DIR,
        )
        ingress = charm.ingress.read()
        outside, ui = None, None
        if ingress is not None and ingress.url and not given:
            # Outside the cluster: the ingress URL (its own certificate), no presigned S3.
            outside = client_env(
                ingress.url, artifacts, config.serve_artifacts, in_cluster=False, login=login
            )
            ui = ui_url(ingress.url)
        event.set_results(client_env_results(env, cas, outside, ui))

    def _on_get_admin_password(self, event: ops.ActionEvent) -> None:
        if not self._leader(event, "get-admin-password"):
            return
        if not self._charm.typed_config().auth:
            event.fail(NO_ADMIN)
            return
        values = self._charm.auth_secret.read()
        assert values is not None  # the leader creates it
        event.set_results({"username": ADMIN_USER, "password": values.admin_password})

    def _on_gc(self, event: ops.ActionEvent) -> None:
        if not self._leader(event, "gc"):
            return
        charm = self._charm
        try:
            older_than = str(event.params.get("older-than") or charm.typed_config().gc_older_than)
            try:
                duration_seconds(older_than)
            except ValueError:
                event.fail(f"older-than {older_than!r} is not a duration such as 7d, 12h or 0s")
                return
            charm.require_workload()
            if not charm.service_running():
                event.fail("MLflow is not running yet; try again once the unit is active")
                return
            output = Workload(charm.container).collect_garbage(gc_argv(older_than))
        except CharmError as err:
            event.fail(str(err))
            return
        event.set_results({"older-than": older_than, "output": output})

    def _on_rotate_admin_password(self, event: ops.ActionEvent) -> None:
        if not self._leader(event, "rotate-admin-password"):
            return
        charm = self._charm
        try:
            config = charm.typed_config()
            if not config.auth:
                event.fail(NO_ADMIN)
                return
            charm.require_workload()
            store = charm.stores().store
            if store is None:
                event.fail("the metadata store is not ready; try again once the unit is active")
                return
            current = charm.auth_settings(config, store)
            assert current is not None
            rotated = replace(current, admin_password=new_password())
            # Applied first: if it fails, the old password stays valid and stored.
            Workload(charm.container).apply_users(rotated, AUTH_FILE, APPS_DIR)
            charm.auth_secret.store_admin_password(rotated.admin_password)
            charm.users_applied(rotated)
        except CharmError as err:
            event.fail(str(err))
            return
        charm.reconcile()  # the config file follows (read only when the admin is missing)
        event.set_results({"username": ADMIN_USER, "rotated": "true"})

    def _on_migrate_store(self, event: ops.ActionEvent) -> None:
        """The operator's go for the migration the status asks for, after their backup."""
        if not self._leader(event, MIGRATE_ACTION):
            return
        charm = self._charm
        try:
            found = charm.store_schema()
        except CharmError as err:
            event.fail(str(err))
            return
        if found is None:
            event.set_results(
                {"result": "nothing to migrate: the store is not migrated by MLflow"}
            )
            return
        store, state = found
        if state.newer:
            event.fail(f"the store's schema {state.current} is newer than this image's MLflow")
            return
        if not state.behind:
            where = state.current or "a new store"
            event.set_results({"result": f"nothing to migrate: the store is at {where}"})
            return
        event.log(f"migrating the {store.kind.label} store: {state.step_name}")
        charm.approve_migration(state.step_name)
        charm.reconcile()
        error = charm.reconcile_error
        if error is not None:
            event.fail(str(error))
            return
        event.set_results({"result": f"migrated {state.step_name}"})
