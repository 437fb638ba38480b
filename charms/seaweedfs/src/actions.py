"""The charm's actions: keys, buckets, and the buckets of applications that left.

rotate-credentials, get-admin-credentials; create-bucket, list-buckets;
grant-retained and purge-retained for retained buckets (see ``ownership``).

Each reads the world through the charm's public readers (the ones the
reconcile uses) and fails with a message that says what to do.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import ops

import ownership
from container import WeedShell
from exceptions import CharmError, InvalidConfigError, WorkloadError
from workload import bucket_name_problem

if TYPE_CHECKING:
    from charm import SeaweedfsCharm

logger = logging.getLogger(__name__)


class Actions(ops.Object):
    """Observes the actions of ``charm``."""

    def __init__(self, charm: SeaweedfsCharm):
        super().__init__(charm, "actions")
        self._charm = charm
        observe = charm.framework.observe
        observe(charm.on.rotate_credentials_action, self._on_rotate_credentials)
        observe(charm.on.create_bucket_action, self._on_create_bucket)
        observe(charm.on.list_buckets_action, self._on_list_buckets)
        observe(charm.on.get_admin_credentials_action, self._on_get_admin_credentials)
        observe(charm.on.grant_retained_action, self._on_grant_retained)
        observe(charm.on.purge_retained_action, self._on_purge_retained)

    def _leader(self, event: ops.ActionEvent) -> bool:
        if self._charm.unit.is_leader():
            return True
        event.fail(f"run it on the leader unit (juju run {self._charm.app.name}/leader ...)")
        return False

    def _on_rotate_credentials(self, event: ops.ActionEvent) -> None:
        charm = self._charm
        if not self._leader(event):
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
        to = str(event.params.get("to") or "")
        if problem := bucket_name_problem(name):
            event.fail(f"bucket name {name[:70]!r} {problem}")
            return
        if not self._leader(event) or (shell := self._serving_shell(event)) is None:
            return
        charm = self._charm
        ledger = charm.ledger()
        if name in ledger and not ledger[name].retained:
            event.fail(f"bucket {name!r} is {ledger[name].describe()}")
            return
        try:
            created = shell.ensure_buckets({name})
        except WorkloadError as err:
            event.fail(str(err))
            return
        # A bucket made by hand belongs to nobody until the operator says whose it is.
        ledger = ownership.retain(ledger, name)
        if to:
            ledger = ownership.hand_over(ledger, name, to)
        charm.save_ledger(ledger)
        logger.info("bucket %s created by the operator%s", name, f" for {to}" if to else "")
        charm.reconcile()
        event.set_results(
            {"bucket": name, "created": bool(created), "for": to or "nobody yet (grant-retained)"}
        )

    def _on_list_buckets(self, event: ops.ActionEvent) -> None:
        if (shell := self._serving_shell(event)) is None:
            return
        try:
            buckets = shell.buckets()
        except WorkloadError as err:
            event.fail(str(err))
            return
        ledger = self._charm.ledger()
        lines = [
            f"{b}: {ledger[b].describe() if b in ledger else 'not in the ledger (held by nobody)'}"
            for b in sorted(buckets | set(ledger))
        ]
        event.set_results({"buckets": "\n".join(lines) or "none"})

    def _on_grant_retained(self, event: ops.ActionEvent) -> None:
        name, to = str(event.params["bucket"]), str(event.params["to"])
        if not self._leader(event):
            return
        charm = self._charm
        try:
            ledger = ownership.hand_over(charm.ledger(), name, to)
        except ValueError as err:
            event.fail(str(err))
            return
        charm.save_ledger(ledger)
        logger.info("retained bucket %s handed over to %s by the operator", name, to)
        charm.reconcile()
        claim = charm.ledger()[name]
        event.set_results({"bucket": name, "to": to, "now": claim.describe()})

    def _on_purge_retained(self, event: ops.ActionEvent) -> None:
        name = str(event.params["bucket"])
        if not self._leader(event) or (shell := self._serving_shell(event)) is None:
            return
        charm = self._charm
        try:
            ledger = ownership.forget(charm.ledger(), name)
            if name in shell.buckets():
                shell.delete_bucket(name)
        except (ValueError, WorkloadError) as err:
            event.fail(str(err))
            return
        charm.save_ledger(ledger)
        charm.forget_bucket(name)
        logger.info("retained bucket %s and its objects deleted by the operator", name)
        event.set_results({"bucket": name, "deleted": True})

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
