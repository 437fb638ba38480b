#!/usr/bin/env python3
"""SeaweedFS charm: an S3 object store that gives each related app its own bucket and keys."""

from __future__ import annotations

import logging
import time
from typing import cast

import ops

import client
from cli import WeedShell
from config import CharmConfig
from constants import (
    CONTAINER,
    LAYER_LABEL,
    PEER_RELATION,
    S3_PORT,
    S3_RELATION,
    SERVICE,
    STORAGE,
)
from exceptions import CharmError, InvalidConfigError, WaitingError, WorkloadError
from s3 import IdentityStore, SafeS3Provider, publish, publish_problem, read_requests
from state import BucketRequest, Credentials
from workload import (
    Ports,
    WeedSettings,
    bucket_name_problem,
    client_identities,
    identities_config,
    identity_name,
    pebble_layer,
    plan_volumes,
    s3_endpoint,
)

logger = logging.getLogger(__name__)

SERVING_UNIT_KEY = "serving-unit"
READY_TIMEOUT = 60.0


class SeaweedfsCharm(ops.CharmBase):
    """Reconciles one ``weed server`` with the buckets and identities its relations ask for."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(buckets=[])
        self._error: CharmError | None = None
        self._identities: IdentityStore | None = None
        self.container = self.unit.get_container(CONTAINER)
        self.s3_provider = SafeS3Provider(self, S3_RELATION)
        self.workload = client.WorkloadClient(Ports())

        for event in (
            self.on[CONTAINER].pebble_ready,
            self.on[CONTAINER].pebble_check_failed,
            self.on[CONTAINER].pebble_check_recovered,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.update_status,
            self.on.leader_elected,
            self.on[STORAGE].storage_attached,
            self.on[PEER_RELATION].relation_created,
            self.on[PEER_RELATION].relation_changed,
            self.on[PEER_RELATION].relation_departed,
            self.s3_provider.on.storage_connection_info_requested,
            self.on[S3_RELATION].relation_changed,
            self.on[S3_RELATION].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(self.on.rotate_credentials_action, self._on_rotate_credentials)
        framework.observe(self.on.create_bucket_action, self._on_create_bucket)
        framework.observe(self.on.list_buckets_action, self._on_list_buckets)
        framework.observe(self.on.get_admin_credentials_action, self._on_get_admin_credentials)

    # -- the world, read -------------------------------------------------

    def _config(self) -> CharmConfig:
        return CharmConfig.from_mapping(self.config)

    def _identity_store(self) -> IdentityStore:
        # One store per hook: keys created or rotated earlier in the hook are
        # remembered, whatever a secret read would return before the commit.
        if self._identities is None:
            self._identities = IdentityStore(self.model, self._peer())
        return self._identities

    def _peer(self) -> ops.Relation:
        peer = self.model.get_relation(PEER_RELATION)
        if peer is None:
            raise WaitingError("waiting for the peer relation")
        return peer

    def _storage_location(self) -> str:
        storages = self.model.storages.get(STORAGE) or []
        if not storages:
            raise WaitingError("waiting for the data storage to attach")
        return str(storages[0].location)

    def _require_container(self) -> None:
        if not self.container.can_connect():
            raise WaitingError("waiting for the seaweedfs container")

    def _requests(self) -> list[BucketRequest]:
        try:
            legacy = self._config().legacy_s3_requirers
        except InvalidConfigError:
            legacy = False
        return read_requests(self.model.relations[S3_RELATION], legacy_allowed=legacy)

    def _endpoint(self, config: CharmConfig) -> str:
        return config.endpoint or s3_endpoint(
            self.app.name, self.model.name, config.cluster_domain
        )

    def _settings(self, config: CharmConfig, buckets: int) -> WeedSettings:
        capacity = client.disk_capacity_bytes(self._storage_location())
        plan = plan_volumes(capacity, buckets, config.volume_size_limit_mb)
        return WeedSettings(volumes=plan)

    def _serving_unit(self, peer: ops.Relation) -> str:
        """The one unit that runs the store: the first leader's, for as long as it lives.

        Not simply "the leader": leadership can move, and a new leader's empty
        volume would then answer for data that lives on another unit's disk.
        """
        data = peer.data[self.app]
        current = data.get(SERVING_UNIT_KEY, "")
        alive = {self.unit.name} | {unit.name for unit in peer.units}
        if self.unit.is_leader() and current not in alive:
            data[SERVING_UNIT_KEY] = current = self.unit.name
        return current

    # -- reconcile -------------------------------------------------------

    def _reconcile(self, _event: ops.EventBase | None = None) -> None:
        try:
            self._apply()
        except CharmError as err:
            self._error = err
            logger.info("reconcile stopped: %s", err)

    def _apply(self) -> None:
        config = self._config()
        peer = self._peer()
        self._require_container()
        leader = self.unit.is_leader()
        store = self._identity_store()
        requests = self._requests()
        valid = [req for req in requests if req.valid]

        admin = store.admin(create=leader)
        if admin is None:
            raise WaitingError("waiting for the leader to create the S3 admin keys")
        if leader:
            store.forget(store.client_relation_ids() - {req.relation_id for req in valid})
            for req in requests:
                relation = self.model.get_relation(S3_RELATION, req.relation_id)
                if relation is not None:
                    publish_problem(relation, self.app, req)
        clients = [
            (req, creds)
            for req in valid
            if (creds := store.client(req.relation_id, create=leader)) is not None
        ]

        settings = self._settings(config, len(valid))
        serving = self._serving_unit(peer) == self.unit.name
        if serving:
            revoked = [identity_name(rel_id) for rel_id in store.revoked_relation_ids()]
            self._run_workload(settings, admin, clients, revoked)
        else:
            self._idle_workload(settings)
        if leader:
            endpoint = self._endpoint(config)
            for req, creds in clients:
                publish(self.s3_provider, req, creds, endpoint, config.region)
                relation = self.model.get_relation(S3_RELATION, req.relation_id)
                if relation is not None:
                    relation.data[self.app].pop("error", None)

    def _run_workload(
        self,
        settings: WeedSettings,
        admin: Credentials,
        clients: list[tuple[BucketRequest, Credentials]],
        revoked: list[str],
    ) -> None:
        identities = identities_config(
            admin,
            client_identities([(r.relation_id, r.bucket, c) for r, c in clients]),
            revoked,
        )
        identities_changed = self._push_if_changed(settings.identities_file, identities)
        layer_changed = self._apply_layer(pebble_layer(settings))
        self.unit.set_ports(S3_PORT)
        if identities_changed and not layer_changed and self._service_running():
            # SeaweedFS re-reads -s3.config on SIGHUP: identities change live.
            self.container.send_signal("SIGHUP", SERVICE)
            logger.info("S3 identities reloaded")
        self._wait_until_ready()
        wanted = {req.bucket for req, _ in clients}
        if not wanted <= set(self._stored.buckets):
            WeedShell(self.container, settings).ensure_buckets(wanted)
            self._stored.buckets = sorted(wanted | set(self._stored.buckets))

    def _idle_workload(self, settings: WeedSettings) -> None:
        # Checks without a service keep this pod out of the S3 service's endpoints.
        self._apply_layer(pebble_layer(settings, serve=False))
        if self._service_running():
            self.container.stop(SERVICE)

    def _push_if_changed(self, path: str, content: str) -> bool:
        try:
            if self.container.pull(path).read() == content:
                return False
        except (ops.pebble.PathError, FileNotFoundError):
            pass
        self.container.push(path, content, make_dirs=True, permissions=0o600)
        return True

    def _apply_layer(self, layer: dict) -> bool:
        wanted = ops.pebble.Layer(cast(ops.pebble.LayerDict, layer))
        plan = self.container.get_plan()
        same_services = all(
            name in plan.services and plan.services[name].to_dict() == spec.to_dict()
            for name, spec in wanted.services.items()
        )
        same_checks = all(
            name in plan.checks and plan.checks[name].to_dict() == spec.to_dict()
            for name, spec in wanted.checks.items()
        )
        if same_services and same_checks:
            return False
        self.container.add_layer(LAYER_LABEL, wanted, combine=True)
        self.container.replan()
        logger.info("Pebble layer applied")
        return True

    def _service_running(self) -> bool:
        services = self.container.get_services(SERVICE)
        return SERVICE in services and services[SERVICE].is_running()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.workload.s3_ready():
            if time.monotonic() > deadline:
                raise WaitingError("waiting for SeaweedFS to start")
            time.sleep(1)

    # -- status ----------------------------------------------------------

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        try:
            config = self._config()
            peer = self._peer()
            self._require_container()
            self._storage_location()
        except CharmError as err:
            event.add_status(err.status)
            return
        if self._error is not None:
            event.add_status(self._error.status)
        requests = self._requests()
        for req in requests:
            if not req.valid:
                event.add_status(
                    ops.BlockedStatus(f"{req.app} (relation {req.relation_id}): {req.problem}")
                )
        if self.app.planned_units() > 1:
            event.add_status(
                ops.BlockedStatus(
                    f"one unit only: {self._serving_unit(peer)} serves; "
                    f"run 'juju scale-application {self.app.name} 1'"
                )
            )
        if self._serving_unit(peer) != self.unit.name:
            event.add_status(ops.WaitingStatus("standby: this unit does not serve S3"))
            return
        valid = [req for req in requests if req.valid]
        for status in self._workload_statuses(config, len(valid)):
            event.add_status(status)
        buckets = len({req.bucket for req in valid})
        event.add_status(ops.ActiveStatus(f"S3 at {self._endpoint(config)}; {buckets} bucket(s)"))

    def _workload_statuses(self, config: CharmConfig, buckets: int) -> list[ops.StatusBase]:
        if not self._service_running():
            return [ops.MaintenanceStatus("starting SeaweedFS")]
        if not self.workload.s3_ready():
            return [ops.WaitingStatus("waiting for SeaweedFS to start")]
        statuses: list[ops.StatusBase] = []
        plan = self._settings(config, buckets).volumes
        if buckets > plan.bucket_capacity:
            statuses.append(
                ops.BlockedStatus(
                    f"data storage too small for {buckets} buckets "
                    f"(room for {plan.bucket_capacity}); grow the data storage"
                )
            )
        volumes = self.workload.volume_status()
        if volumes is not None and volumes.free_volumes == 0 and volumes.starved_buckets:
            statuses.append(
                ops.BlockedStatus(
                    f"out of space: bucket(s) {', '.join(volumes.starved_buckets)} "
                    "cannot take writes; grow the data storage"
                )
            )
        return statuses

    # -- actions ---------------------------------------------------------

    def _on_rotate_credentials(self, event: ops.ActionEvent) -> None:
        if not self.unit.is_leader():
            event.fail("run this action on the leader unit")
            return
        store = self._identity_store()
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
        self._reconcile()
        if self._error is not None:
            event.fail(f"keys rotated but not yet applied: {self._error}")
            return
        event.set_results({"rotated-relations": ",".join(map(str, targets)) or "none"})

    def _serving_shell(self, event: ops.ActionEvent) -> WeedShell | None:
        try:
            if self._serving_unit(self._peer()) != self.unit.name:
                event.fail(
                    f"run this action on {self._serving_unit(self._peer())}, which serves S3"
                )
                return None
            self._require_container()
            requests = self._requests()
            return WeedShell(self.container, self._settings(self._config(), len(requests)))
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
            for req in self._requests()
            if req.valid
        }
        event.set_results(
            {"buckets": "\n".join(f"{b}: {owners.get(b, 'no relation')}" for b in sorted(buckets))}
        )

    def _on_get_admin_credentials(self, event: ops.ActionEvent) -> None:
        try:
            admin = self._identity_store().admin()
            endpoint = self._endpoint(self._config())
        except (CharmError, InvalidConfigError) as err:
            event.fail(str(err))
            return
        if admin is None:
            event.fail("the leader has not created the admin keys yet")
            return
        event.set_results(
            {"endpoint": endpoint, "access-key": admin.access_key, "secret-key": admin.secret_key}
        )


if __name__ == "__main__":  # pragma: nocover
    ops.main(SeaweedfsCharm)
