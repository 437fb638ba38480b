"""The charm's actions: rotate-credentials, create-bucket, list-buckets, get-admin-credentials.

Each reads the world through the charm's public readers (the ones the
reconcile uses) and fails with a message that says what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ops

from cli import WeedShell
from exceptions import CharmError, InvalidConfigError, WorkloadError
from workload import bucket_name_problem

if TYPE_CHECKING:
    from charm import SeaweedfsCharm


class Actions(ops.Object):
    """Observes the four actions of ``charm``."""

    def __init__(self, charm: SeaweedfsCharm):
        super().__init__(charm, "actions")
        self._charm = charm
        observe = charm.framework.observe
        observe(charm.on.rotate_credentials_action, self._on_rotate_credentials)
        observe(charm.on.create_bucket_action, self._on_create_bucket)
        observe(charm.on.list_buckets_action, self._on_list_buckets)
        observe(charm.on.get_admin_credentials_action, self._on_get_admin_credentials)

    def _on_rotate_credentials(self, event: ops.ActionEvent) -> None:
        charm = self._charm
        if not charm.unit.is_leader():
            event.fail(f"run it on the leader unit (juju run {charm.app.name}/leader ...)")
            return
        store = charm.identity_store()
        known = sorted(store.client_relation_ids())
        wanted = event.params.get("relation-id")
        targets = known if wanted is None else [int(wanted)]
        if wanted is not None and int(wanted) not in known:
            event.fail(f"relation {wanted} has no S3 identity; relations with one: {known}")
            return
        for rel_id in targets:
            store.rotate(rel_id)
        if event.params.get("admin", False):
            store.rotate(None)
        charm.reconcile()
        if charm.reconcile_error is not None:
            event.fail(f"keys rotated but not yet applied: {charm.reconcile_error}")
            return
        event.set_results({"rotated-relations": ",".join(map(str, targets)) or "none"})

    def _serving_shell(self, event: ops.ActionEvent) -> WeedShell | None:
        charm = self._charm
        try:
            charm.require_container()
            settings = charm.weed_settings(charm.typed_config(), len(charm.bucket_requests()))
            if settings.cluster is None:
                event.fail("the store has no masters yet; try again shortly")
                return None
            return WeedShell(charm.container, settings)
        except CharmError as err:
            event.fail(str(err))
            return None

    def _on_create_bucket(self, event: ops.ActionEvent) -> None:
        name = str(event.params["name"])
        if problem := bucket_name_problem(name):
            event.fail(f"bucket name {name[:70]!r} {problem}")
            return
        if (shell := self._serving_shell(event)) is None:
            return
        try:
            created = shell.ensure_buckets({name})
        except WorkloadError as err:
            event.fail(str(err))
            return
        event.set_results({"bucket": name, "created": bool(created)})

    def _on_list_buckets(self, event: ops.ActionEvent) -> None:
        if (shell := self._serving_shell(event)) is None:
            return
        try:
            buckets = shell.buckets()
        except WorkloadError as err:
            event.fail(str(err))
            return
        owners = {
            req.bucket: f"{req.app} (relation {req.relation_id})"
            for req in self._charm.bucket_requests()
            if req.valid
        }
        event.set_results(
            {"buckets": "\n".join(f"{b}: {owners.get(b, 'no relation')}" for b in sorted(buckets))}
        )

    def _on_get_admin_credentials(self, event: ops.ActionEvent) -> None:
        charm = self._charm
        try:
            admin = charm.identity_store().admin()
            endpoint = charm.endpoint_url(charm.typed_config())
        except (CharmError, InvalidConfigError) as err:
            event.fail(str(err))
            return
        if admin is None:
            event.fail("the leader has not created the admin keys yet")
            return
        event.set_results(
            {"endpoint": endpoint, "access-key": admin.access_key, "secret-key": admin.secret_key}
        )
