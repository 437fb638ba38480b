#!/usr/bin/env python3
"""SeaweedFS charm: an S3 object store that gives each related app its own bucket and keys."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import ops

import client
import ownership
from actions import Actions
from cluster import (
    SINGLE_COPY,
    Drain,
    copies,
    effective_replication,
    node_slots,
    under_replicated,
)
from config import CharmConfig
from constants import (
    CONTAINER,
    LEDGER_KEY,
    METRICS_PORT,
    PEER_RELATION,
    S3_PORT,
    S3_RELATION,
    SECURITY_DIR,
    STORAGE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
)
from container import WeedShell, Workload
from exceptions import CharmError, InvalidConfigError, WaitingError
from relations.log_forwarding import LOGGING_RELATION, forward_logs
from relations.membership import Membership, unit_address
from relations.observability import GrafanaDashboards, MetricsEndpoint
from relations.s3 import IdentityStore, SafeS3Provider, publish, publish_problem, read_requests
from relations.tls import GatewayTls, TlsRelation, certificate_request
from security import SecurityFiles, SecurityMaterial, SecurityStore, security_toml, white_list
from state import BucketRequest, Credentials
from status import unit_statuses
from workload import (
    Cluster,
    WeedSettings,
    client_identities,
    identities_config,
    identity_name,
    pebble_layer,
    s3_endpoint,
    volume_layout,
)

logger = logging.getLogger(__name__)


class SeaweedfsCharm(ops.CharmBase):
    """Reconciles one unit of the store: its ``weed server``, identities, and its share."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(buckets=[], drain_problem="")
        self._error: CharmError | None = None
        self._identities: IdentityStore | None = None
        self.container = self.unit.get_container(CONTAINER)
        self.s3_provider = SafeS3Provider(self, S3_RELATION)
        self.metrics = MetricsEndpoint(self, METRICS_PORT)
        self.dashboards = GrafanaDashboards(self)
        try:
            domain = CharmConfig.from_mapping(self.config).cluster_domain
        except InvalidConfigError:
            domain = CharmConfig().cluster_domain  # the status names the bad option
        me = unit_address(self.unit.name, self.app.name, self.model.name, domain)
        self.tls = TlsRelation(
            self, certificate_request(self.app.name, self.model.name, domain, me)
        )

        for event in (
            self.on[CONTAINER].pebble_ready,
            self.on[CONTAINER].pebble_check_failed,
            self.on[CONTAINER].pebble_check_recovered,
            # The ready service's READY_NOTICE once S3 answers: no hook waits for it.
            self.on[CONTAINER].pebble_custom_notice,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.update_status,
            self.on.leader_elected,
            self.on[STORAGE].storage_attached,
            self.on[PEER_RELATION].relation_created,
            self.on[PEER_RELATION].relation_changed,
            self.s3_provider.on.storage_connection_info_requested,
            self.on[S3_RELATION].relation_changed,
            self.on[S3_RELATION].relation_broken,
            *self.tls.events(),
            *self.metrics.events(),
            *self.dashboards.events(),
            self.on[LOGGING_RELATION].relation_changed,
            self.on[LOGGING_RELATION].relation_departed,
            self.on[LOGGING_RELATION].relation_broken,
        ):
            framework.observe(event, self.reconcile)
        framework.observe(self.on[PEER_RELATION].relation_departed, self._on_peer_departed)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        self.actions = Actions(self)

    # -- the world, read -------------------------------------------------

    def typed_config(self) -> CharmConfig:
        """The validated config; raises InvalidConfigError naming the bad option."""
        return CharmConfig.from_mapping(self.config)

    def identity_store(self) -> IdentityStore:
        """The S3 identities (admin and one per relation), kept in Juju secrets."""
        # One store per hook: keys created or rotated earlier in the hook are
        # remembered, whatever a secret read would return before the commit.
        if self._identities is None:
            self._identities = IdentityStore(self.model, self.peer())
        return self._identities

    def peer(self) -> ops.Relation:
        """The peer relation; raises WaitingError until Juju has made it."""
        peer = self.model.get_relation(PEER_RELATION)
        if peer is None:
            raise WaitingError("waiting for the peer relation")
        return peer

    def storage_location(self) -> str:
        """Where the data storage is mounted; raises WaitingError until it is attached."""
        storages = self.model.storages.get(STORAGE) or []
        if not storages:
            raise WaitingError("waiting for the data storage to attach")
        return str(storages[0].location)

    def require_container(self) -> None:
        """Raise WaitingError until the container answers."""
        if not self.container.can_connect():
            raise WaitingError("waiting for the seaweedfs container")

    def bucket_requests(self) -> list[BucketRequest]:
        """What each s3-credentials relation asks for, valid or not."""
        try:
            legacy = self.typed_config().legacy_s3_requirers
        except InvalidConfigError:
            legacy = False
        return read_requests(self.model.relations[S3_RELATION], legacy_allowed=legacy)

    def ledger(self) -> dict[str, ownership.Claim]:
        """Who owns which bucket, as the leader recorded it.

        Before the first record (a charm upgraded from one without a ledger):
        what that charm served, the relations that have keys.
        """
        book = ownership.load(self.peer().data[self.app].get(LEDGER_KEY))
        if book is None:
            served_before = self.identity_store().client_relation_ids()
            book = ownership.seed(
                _ask(r)
                for r in self.bucket_requests()
                if r.valid and r.relation_id in served_before
            )
        return book

    def save_ledger(self, ledger: dict[str, ownership.Claim]) -> None:
        """Record who owns which bucket (leader only)."""
        self.peer().data[self.app][LEDGER_KEY] = ownership.dump(ledger)

    def forget_bucket(self, bucket: str) -> None:
        """Note that a bucket was deleted: the next relation given it has it made again."""
        self._stored.buckets = [b for b in self._stored.buckets if b != bucket]

    def served_requests(self) -> list[BucketRequest]:
        """The valid requests whose bucket the ledger gives to their relation."""
        ledger = self.ledger()
        return [
            r for r in self.bucket_requests() if r.valid and ownership.is_served(ledger, _ask(r))
        ]

    def endpoint_url(self, config: CharmConfig) -> str:
        """The S3 endpoint clients are given: the configured one or the service's."""
        return config.endpoint or s3_endpoint(
            self.app.name, self.model.name, config.cluster_domain, tls=self._tls() is not None
        )

    def _tls(self) -> GatewayTls | None:
        """The certificate S3 is served with; None for plain HTTP (or none issued yet)."""
        return self.tls.issued() if self.tls.wanted() else None

    def require_certificate(self) -> None:
        """Raise WaitingError while HTTPS is wanted and no certificate is issued yet."""
        if self.tls.wanted() and self.tls.issued() is None:
            # Not plain HTTP meanwhile: a serving gateway keeps running as it is.
            raise WaitingError(f"waiting for a certificate from {self.tls.provider()} (HTTPS)")

    def membership(self, config: CharmConfig) -> Membership:
        """The store's members as the peer relation knows them."""
        return Membership(self, self.peer(), config.cluster_domain)

    def _cluster(self, config: CharmConfig) -> Cluster | None:
        membership = self.membership(config)
        replication = effective_replication(config.replication, len(membership.members()))
        return membership.cluster(replication)

    def unit_moving_a_store(self, membership: Membership) -> str | None:
        """Another unit moving a one-unit store over: weed waits for it here, unless it runs."""
        if self.service_running():
            return None
        return next((unit for unit in membership.moving() if unit != self.unit.name), None)

    def security_material(self, create: bool = False) -> SecurityMaterial | None:
        """SeaweedFS's internal keys and certificate; None until the leader made them."""
        return SecurityStore(self.model, self.peer()).material(create=create)

    def security_file(self, config: CharmConfig) -> str | None:
        """The ``security.toml`` this unit runs with; None until the keys exist."""
        material = self.security_material()
        if material is None:
            return None
        membership = self.membership(config)
        allowed = white_list(membership.ip_addresses(), units=len(membership.members()))
        return security_toml(SecurityFiles(SECURITY_DIR), material, allowed)

    def weed_settings(self, config: CharmConfig, buckets: int) -> WeedSettings:
        """What weed runs with on this unit: volumes for its disk, its place in the cluster."""
        capacity = client.disk_capacity_bytes(self.storage_location())
        # Planned for the configured copies whatever the unit count: scaling
        # never changes the volume flags, so it never restarts a serving unit.
        layout = volume_layout(
            capacity,
            buckets,
            config.volume_size_limit_mb,
            replica_copies=copies(config.replication),
        )
        toml = self.security_file(config)
        return WeedSettings(
            volumes=layout,
            cluster=self._cluster(config),
            tls=self._tls() is not None,
            security_dir=SECURITY_DIR if toml is not None else None,
            security_digest=hashlib.sha256(toml.encode()).hexdigest()[:16] if toml else "",
        )

    def weed_client(self, settings: WeedSettings) -> client.WorkloadClient:
        """The HTTP door: this unit's S3, and its own master or the first one."""
        issued = self._tls() if settings.tls else None
        ca = issued.ca if issued is not None else None
        cluster = settings.cluster
        if cluster is None or cluster.is_master:
            return client.WorkloadClient(settings.ports, ca=ca)
        return client.WorkloadClient(settings.ports, master=cluster.masters[0].master, ca=ca)

    @property
    def drain_problem(self) -> str:
        """Why this unit could not hand its data over when it left, empty when it did."""
        return str(self._stored.drain_problem)

    @property
    def reconcile_error(self) -> CharmError | None:
        """Why the last reconcile in this hook stopped, None when it went through."""
        return self._error

    # -- reconcile -------------------------------------------------------

    def reconcile(self, _event: ops.EventBase | None = None) -> None:
        """Bring weed to what config, peers and relations say; status says where it stopped."""
        try:
            self._apply()
        except CharmError as err:
            self._error = err
            logger.info("reconcile stopped: %s", err)

    def _apply(self) -> None:
        config = self.typed_config()
        self.peer()
        self.require_container()
        forward_logs(self, self.container)
        leader = self.unit.is_leader()
        store = self.identity_store()
        membership = self.membership(config)
        membership.publish_me()
        self.metrics.publish(membership.me.address)
        self.dashboards.publish()
        # Before the masters are chosen: a one-unit store being moved holds them.
        self._settle_data(membership)
        if leader:
            membership.choose_masters()
        requests = self.bucket_requests()
        valid = [req for req in requests if req.valid]

        admin = store.admin(create=leader)
        if admin is None:
            raise WaitingError("waiting for the leader to create the S3 admin keys")
        material = self.security_material(create=leader)
        if material is None:
            raise WaitingError("waiting for the leader to create SeaweedFS's internal keys")
        if leader:
            for req in requests:
                relation = self.model.get_relation(S3_RELATION, req.relation_id)
                if relation is not None:
                    publish_problem(relation, self.app, req)

        self.require_certificate()
        tls = self._tls()
        settings = self.weed_settings(config, len(valid))
        if settings.cluster is None:
            raise WaitingError("waiting for the leader to choose the masters")
        if waited := self.unit_moving_a_store(membership):
            raise WaitingError(f"waiting for {waited} to move its one-unit store over")
        if tls is not None:
            # Before the layer: weed refuses to start without them. weed reads
            # them again by itself, so a renewal restarts nothing.
            Workload(self.container).push_if_changed(TLS_KEY_FILE, tls.private_key)
            Workload(self.container).push_if_changed(TLS_CERT_FILE, tls.certificate)
        self._push_security(config, material)
        # First the store as the ledger stands; the leader then settles new
        # requests, which needs weed up to tell a new bucket from one with data.
        served = [req for req in valid if ownership.is_served(self.ledger(), _ask(req))]
        self._run_workload(settings, self._identities_file(admin, served, create=leader))
        if self.unit.name in membership.moving():
            Workload(self.container).seal_volume_ids(self.weed_client(settings))
            membership.set_moving(None)
            if leader:
                membership.choose_masters()
        if not leader:
            return
        shell = WeedShell(self.container, settings)
        listed: set[str] | None = None

        def holds_data(bucket: str) -> bool:
            nonlocal listed
            if listed is None:
                listed = shell.buckets()
            return bucket in listed

        served = self._settle(requests, holds_data)
        store.forget(store.client_relation_ids() - {req.relation_id for req in served})
        workload = Workload(self.container)
        if workload.push_if_changed(
            settings.identities_file, self._identities_file(admin, served, create=True)
        ):
            workload.reload_identities()
        wanted = {req.bucket for req in served}
        if not wanted <= set(self._stored.buckets):
            shell.ensure_buckets(wanted, listed)
            self._stored.buckets = sorted(wanted | set(self._stored.buckets))
        self._keep_replication(config, settings, membership)
        endpoint = self.endpoint_url(config)
        ca = tls.ca if tls is not None else ""
        for req in served:
            creds = store.client(req.relation_id)
            if creds is None:
                continue
            publish(self.s3_provider, req, creds, endpoint, config.region, ca)
            relation = self.model.get_relation(S3_RELATION, req.relation_id)
            if relation is not None:
                relation.data[self.app].pop("error", None)

    def _settle_data(self, membership: Membership) -> None:
        """Before weed starts: refuse an older weed; move a one-unit store's master state aside."""
        if not self.model.storages.get(STORAGE):
            return  # no data yet; weed waits for the storage too
        workload = Workload(self.container)
        if workload.service_running():
            if not workload.runs_one_unit_form():
                return
            # The one-unit charm's weed, in a pod Juju kept: it must not hold the state.
            workload.stop()
        moving = workload.settle_data(membership.me, self.app.name, datetime.now(UTC))
        membership.set_moving(moving.moved_to if moving is not None else None)

    def _push_security(self, config: CharmConfig, material: SecurityMaterial) -> None:
        """The files weed's locks need, before the layer (a missing one hangs every handshake)."""
        files = SecurityFiles(SECURITY_DIR)
        push = Workload(self.container).push_if_changed
        push(files.ca, material.ca)
        push(files.certificate, material.certificate)
        push(files.private_key, material.private_key)
        toml = self.security_file(config)
        assert toml is not None
        push(files.toml, toml)

    def _settle(
        self, requests: list[BucketRequest], holds_data: Callable[[str], bool]
    ) -> list[BucketRequest]:
        """Decide who is served which bucket (leader); record it, log it, tell the refused."""
        valid = [req for req in requests if req.valid]
        ledger = self.ledger()
        outcome = ownership.settle(
            ledger,
            (_ask(req) for req in valid),
            (rel.id for rel in self.model.relations[S3_RELATION]),
            holds_data,
            undecided=(req.relation_id for req in requests if not req.valid),
        )
        for change in outcome.changes:
            logger.info("buckets: %s", change)
        self.save_ledger(outcome.ledger)
        served = []
        for req in valid:
            if outcome.served(_ask(req)):
                served.append(req)
                continue
            relation = self.model.get_relation(S3_RELATION, req.relation_id)
            why = outcome.told.get((req.relation_id, req.bucket), "not served")
            if relation is not None:
                publish_problem(relation, self.app, replace(req, problem=why))
        return served

    def _identities_file(
        self, admin: Credentials, served: list[BucketRequest], create: bool
    ) -> str:
        """The S3 identities: the admin, each served relation's, tombstones of revoked ones."""
        store = self.identity_store()
        clients = [
            (req.relation_id, req.bucket, creds)
            for req in served
            if (creds := store.client(req.relation_id, create=create)) is not None
        ]
        revoked = [identity_name(rel_id) for rel_id in store.revoked_relation_ids()]
        return identities_config(admin, client_identities(clients), revoked)

    def _keep_replication(
        self, config: CharmConfig, settings: WeedSettings, membership: Membership
    ) -> None:
        """Give every volume the copies the store should keep, once every unit reports."""
        wanted = effective_replication(config.replication, len(membership.members()))
        status = self.weed_client(settings).dir_status()
        if status is None or len(node_slots(status)) < len(membership.members()):
            return
        applied = membership.applied_replication()
        if applied == wanted:
            if under_replicated(status, wanted):
                # Every unit serves, yet copies are missing: one came back with an empty disk.
                WeedShell(self.container, settings).repair()
            return
        if not applied and wanted == SINGLE_COPY:
            # A new one-unit store: SeaweedFS's default is already one copy.
            membership.record_replication(wanted)
            return
        WeedShell(self.container, settings).apply_replication(wanted)
        membership.record_replication(wanted)

    def _run_workload(self, settings: WeedSettings, identities: str) -> None:
        """Start or update weed with these identities; WaitingError until S3 answers."""
        workload = Workload(self.container)
        identities_changed = workload.push_if_changed(settings.identities_file, identities)
        layer_changed = workload.apply_layer(pebble_layer(settings))
        self.unit.set_ports(S3_PORT)
        if identities_changed and not layer_changed and workload.service_running():
            workload.reload_identities()
        if not self.weed_client(settings).s3_ready():
            # No hook waits: the ready service's notice, the checks' events or
            # update-status bring the charm back once S3 answers.
            raise WaitingError("waiting for SeaweedFS to start")

    def service_running(self) -> bool:
        """True when Pebble runs the weed service."""
        return Workload(self.container).service_running()

    # -- status ----------------------------------------------------------

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        for status in unit_statuses(self):
            event.add_status(status)

    # -- scale-down ------------------------------------------------------

    def _on_peer_departed(self, event: ops.RelationDepartedEvent) -> None:
        if event.departing_unit is not None and event.departing_unit.name == self.unit.name:
            self._leave()
        self.reconcile()

    def _leave(self) -> None:
        """The unit goes: hand its volumes over and take its master out of the raft group."""
        try:
            config = self.typed_config()
            settings = self.weed_settings(config, len(self.bucket_requests()))
            if settings.cluster is None:
                return
            shell = WeedShell(self.container, settings)
            status = self.weed_client(settings).dir_status()
            drain: Drain = shell.drain(
                settings.cluster.me.volume, node_slots(status) if status else {}
            )
            if drain.problem is not None:
                self._stored.drain_problem = f"cannot leave without losing data: {drain.problem}"
                logger.error("%s", self._stored.drain_problem)
                return
            if settings.cluster.is_master:
                shell.leave_raft(settings.cluster.me.raft_id)
        except (CharmError, InvalidConfigError) as err:
            logger.error("could not hand over this unit's data: %s", err)


def _ask(request: BucketRequest) -> ownership.Ask:
    return ownership.Ask(request.relation_id, request.app, request.bucket)


if __name__ == "__main__":  # pragma: nocover
    ops.main(SeaweedfsCharm)
