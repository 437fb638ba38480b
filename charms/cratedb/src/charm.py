#!/usr/bin/env python3
"""CrateDB charm: a cluster that gives each client its own user and schema, and backs up to S3."""

from __future__ import annotations

import json
import logging
import re
from functools import cached_property
from typing import cast

import ops

import ownership
from actions import Actions
from backups import ScheduledBackups
from config import CharmConfig
from constants import (
    ADDRESS_KEY,
    BOOTSTRAPPED_KEY,
    CONTAINER,
    CRATE_USER,
    DATA_DIR,
    HTTP_PORT,
    KEYSTORE_FILE,
    LEDGER_KEY,
    METRICS_LAYER_LABEL,
    METRICS_PORT,
    NODE_NAME_KEY,
    PEER_RELATION,
    PG_PORT,
    S3_RELATION,
    SERVICE,
    STORAGE,
    USERS_KEY,
)
from container import Workload
from exceptions import CharmError, InvalidConfigError, WaitingError, WorkloadError
from relations.backup import BackupRelation
from relations.database import ClientPasswords, DatabaseProvider
from relations.log_forwarding import LOGGING_RELATION, forward_logs
from relations.observability import GrafanaDashboards, MetricsEndpoint
from relations.tls import NodeTls, TlsRelation, certificate_request, keystore
from rollout import Rollouts
from scale import Drain, drain
from sql import (
    CrateSQL,
    create_user,
    drop_user,
    exclude_node,
    grant_schema,
    revoke_schema,
    set_password,
)
from state import ClusterStatus, DatabaseRequest, Peer
from status import unit_statuses
from workload import (
    CrateSettings,
    MetricsSettings,
    container_scripts,
    discovery_settings,
    heap_size,
    metrics_layer,
    mmap_problem,
    node_name,
    pebble_layer,
    unit_address,
)

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT = 600.0
BOOTSTRAP_NODE_KEY = "bootstrap-node"
# The users this charm makes for client relations (``DatabaseRequest.username``).
CLIENT_USER = re.compile(r"relation_(\d+)")


class CrateDBCharm(ops.CharmBase):
    """Reconciles one CrateDB node, its cluster membership and its client users."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(data_owned=False, memory_limit=-1, keystore="", drain_problem="")
        self._error: CharmError | None = None
        self.container = self.unit.get_container(CONTAINER)
        self.provider = DatabaseProvider(self)
        try:
            config = CharmConfig.from_mapping(self.config)
        except InvalidConfigError:
            config = CharmConfig()
        self.tls = TlsRelation(
            self,
            certificate_request(
                self.app.name,
                self.model.name,
                config.cluster_domain,
                unit_address(self.unit.name, self.model.name, config.cluster_domain),
            ),
        )
        self.backups = BackupRelation(
            self, config.backup_bucket, config.backup_path or self.app.name
        )
        self.scheduled = ScheduledBackups(self)
        self.rollouts = Rollouts(self)
        self.metrics = MetricsEndpoint(self, METRICS_PORT)
        self.dashboards = GrafanaDashboards(self)

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
            self.on[PEER_RELATION].relation_joined,
            *self.provider.events(),
            self.on["database"].relation_changed,
            self.on["database"].relation_broken,
            self.on[S3_RELATION].relation_joined,
            *self.backups.events(),
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

    def peer(self) -> ops.Relation:
        """The peer relation; raises WaitingError until Juju has made it."""
        peer = self.model.get_relation(PEER_RELATION)
        if peer is None:
            raise WaitingError("waiting for the peer relation")
        return peer

    def require_workload(self) -> None:
        """Raise WaitingError until the container answers and the storage is attached."""
        if not self.container.can_connect():
            raise WaitingError("waiting for the cratedb container")
        if not self.model.storages.get(STORAGE):
            raise WaitingError("waiting for the data storage to attach")

    def _me(self, config: CharmConfig) -> Peer:
        return Peer(
            node_name(self.unit.name),
            unit_address(self.unit.name, self.model.name, config.cluster_domain),
        )

    def _peers(self, peer: ops.Relation) -> list[Peer]:
        found = []
        for unit in peer.units:
            data = peer.data[unit]
            if data.get(NODE_NAME_KEY) and data.get(ADDRESS_KEY):
                found.append(Peer(data[NODE_NAME_KEY], data[ADDRESS_KEY]))
        return found

    @cached_property
    def sql(self) -> CrateSQL:
        """The superuser's SQL client, made when first needed (hooks that need none skip the plan).

        It speaks the running node's protocol: HTTPS once its plan carries a keystore.
        """
        return CrateSQL(https=self._serving_https())

    def _serving_https(self) -> bool:
        if not self.container.can_connect():
            return False
        service = self.container.get_plan().services.get(SERVICE)
        return service is not None and "-Cssl.http.enabled=true" in service.command

    def node_tls(self) -> NodeTls | None:
        """The certificate the node serves with; None for plain HTTP (no certificates relation)."""
        if not self.tls.wanted():
            return None
        issued = self.tls.issued()
        if issued is None:
            # Not plain meanwhile: a serving node keeps running as it is.
            raise WaitingError(f"waiting for a certificate from {self.tls.provider()} (TLS)")
        return issued

    def _push_keystore(self, tls: NodeTls, password: str) -> None:
        """Write the keystore when its content would change (CrateDB re-reads it by itself)."""
        digest = tls.digest(password)
        if self._stored.keystore == digest and self.container.exists(KEYSTORE_FILE):
            return
        self.container.push(
            KEYSTORE_FILE,
            keystore(tls, password),
            make_dirs=True,
            permissions=0o600,
            user=CRATE_USER,
            group=CRATE_USER,
        )
        self._stored.keystore = digest

    def _service_running(self) -> bool:
        return Workload(self.container).service_running()

    def cluster_status(self) -> ClusterStatus | None:
        """What the local node says of its cluster; None while it does not answer."""
        if not self._service_running():
            return None
        try:
            return self.sql.status()
        except WorkloadError:
            return None

    @property
    def reconcile_error(self) -> CharmError | None:
        """Why the last reconcile in this hook stopped, None when it went through."""
        return self._error

    @property
    def drain_problem(self) -> str:
        """Why this unit's drain did not finish when it left, empty when it did."""
        return str(self._stored.drain_problem)

    # -- reconcile -------------------------------------------------------

    def reconcile(self, _event: ops.EventBase | None = None) -> None:
        """Bring the node, its cluster and its clients to what config and relations say."""
        try:
            self._apply()
        except CharmError as err:
            self._error = err
            logger.info("reconcile stopped: %s", err)

    def _apply(self) -> None:
        config = self.typed_config()
        peer = self.peer()
        self.require_workload()
        forward_logs(self, self.container)
        self.backups.update_requests()
        me = self._me(config)
        peer.data[self.unit].update({NODE_NAME_KEY: me.node_name, ADDRESS_KEY: me.address})
        app_data = peer.data[self.app]
        if self.unit.is_leader() and not app_data.get(BOOTSTRAP_NODE_KEY):
            app_data[BOOTSTRAP_NODE_KEY] = me.node_name
        bootstrap_node = app_data.get(BOOTSTRAP_NODE_KEY, "")
        if not bootstrap_node:
            raise WaitingError("waiting for the leader to choose the bootstrap node")

        workload = Workload(self.container)
        if config.allow_mmap and (problem := mmap_problem(workload.max_map_count())):
            raise CharmError(problem)
        if self._stored.memory_limit == -1:
            self._stored.memory_limit = workload.memory_limit() or 0
        if not self._stored.data_owned:
            workload.own_data_dir(DATA_DIR)
            self._stored.data_owned = True

        discovery = discovery_settings(
            cluster_name=self.app.name,
            me=me,
            peers=self._peers(peer),
            planned_units=self.app.planned_units(),
            bootstrapped=app_data.get(BOOTSTRAPPED_KEY) == "true",
            bootstrap_node=bootstrap_node,
        )
        tls = self.node_tls()
        password = self.tls.keystore_password() if tls is not None else ""
        if tls is not None:
            self._push_keystore(tls, password)
        settings = CrateSettings(
            discovery=discovery,
            heap=heap_size(cast(int, self._stored.memory_limit) or None, config.heap_size),
            allow_mmap=config.allow_mmap,
            keystore_file=KEYSTORE_FILE if tls is not None else None,
            keystore_password=password,
        )
        if not workload.service_running():
            # A new pod (a refresh, a restart): its image must fit its data and the cluster.
            self.rollouts.gate(workload, peer)
        workload.apply_layer(pebble_layer(settings))
        self.sql.https = tls is not None
        exporter = MetricsSettings(node_name=me.node_name, https=tls is not None)
        scripts_changed = workload.push_scripts(container_scripts())
        workload.apply_side_service(METRICS_LAYER_LABEL, metrics_layer(exporter), scripts_changed)
        self.metrics.publish(me.address)
        self.dashboards.publish()
        self.unit.set_ports(HTTP_PORT, PG_PORT)

        status = self.cluster_status()
        if status is None or status.nodes == 0:
            raise WaitingError("waiting for CrateDB to start")
        self.rollouts.settle(status, me.node_name, peer)
        if self.unit.is_leader():
            if app_data.get(BOOTSTRAPPED_KEY) != "true":
                app_data[BOOTSTRAPPED_KEY] = "true"
                logger.info("cluster %s bootstrapped", self.app.name)
            self._serve_clients(status, tls.ca if tls is not None else None)
        self.scheduled.reconcile(config, workload, tls is not None, scripts_changed)
        # Last: without trust it stops here, Blocked, and everything above still ran.
        self.rollouts.roll(status)

    def _users(self) -> dict[str, str]:
        """The CrateDB user of each served relation, by relation id (leader's record)."""
        return json.loads(self.peer().data[self.app].get(USERS_KEY, "{}"))

    def ledger(self) -> dict[str, ownership.Claim]:
        """Who owns which schema, as the leader recorded it.

        Before the first record (a charm upgraded from one without a ledger):
        what that charm served, the relations that have a user.
        """
        book = ownership.load(self.peer().data[self.app].get(LEDGER_KEY))
        if book is None:
            users = self._users()
            book = ownership.seed(
                _ask(r)
                for r in self.provider.read_requests()
                if r.problem is None and str(r.relation_id) in users
            )
        return book

    def save_ledger(self, ledger: dict[str, ownership.Claim]) -> None:
        """Record who owns which schema (leader only)."""
        self.peer().data[self.app][LEDGER_KEY] = ownership.dump(ledger)

    def settle(self, requests: list[DatabaseRequest], look: bool = True) -> ownership.Outcome:
        """Who is served which schema now, by the ownership rules (no change made).

        ``look``: ask CrateDB whether a schema the ledger does not know holds
        tables or is granted to a client user already (off for the status,
        which must not fail on a node that is down).
        """
        held: dict[str, set[str]] | None = None

        def holds_data(schema: str) -> bool:
            nonlocal held
            if not look:
                return False
            if held is None:
                held = self.sql.schema_privileges()
            granted = any(schema in s for u, s in held.items() if CLIENT_USER.fullmatch(u))
            return granted or bool(self.sql.tables_in(schema))

        return ownership.settle(
            self.ledger(),
            (_ask(r) for r in requests if r.problem is None),
            (rel.id for rel in self.provider.relations()),
            holds_data=holds_data,
            undecided=(r.relation_id for r in requests if r.problem is not None),
        )

    def _serve_clients(self, status: ClusterStatus, tls_ca: str | None) -> None:
        requests = self.provider.read_requests()
        outcome = self.settle(requests)
        for change in outcome.changes:
            logger.info("schemas: %s", change)
        self.save_ledger(outcome.ledger)
        refused = set()
        for request in requests:
            why = outcome.told.get((request.relation_id, request.schema))
            if why is not None:
                self.provider.refuse(request, why)
                refused.add(request.relation_id)
        served = [r for r in requests if r.problem is None and outcome.served(_ask(r))]
        users = self._users()
        for rel_id in sorted({r.relation_id for r in served}):
            mine = [r for r in served if r.relation_id == rel_id]
            if rel_id not in refused:
                self.provider.clear_refusal(rel_id)
            self.answer_relation(mine, status.version, tls_ca)
            users[str(rel_id)] = mine[0].username
            # Recorded at once: a later failure in this hook must not forget a user made.
            self.peer().data[self.app][USERS_KEY] = json.dumps(users, sort_keys=True)
        keep = {r.relation_id for r in served} | {r.relation_id for r in requests if r.problem}
        self._keep_privileges_to_the_ledger(outcome.ledger, keep)

    def _keep_privileges_to_the_ledger(
        self, ledger: dict[str, ownership.Claim], keep: set[int]
    ) -> None:
        """Make client users hold exactly their schemas; drop users of no relation kept.

        Read from CrateDB itself each time, so that a revoke a failed hook
        missed, or a grant an older charm never took back, goes too.
        """
        live = {rel.id for rel in self.provider.relations()}
        held = self.sql.schema_privileges()
        users = self._users()
        passwords = ClientPasswords(self.model)
        for user in sorted(self.sql.user_names() | set(held)):
            if (match := CLIENT_USER.fullmatch(user)) is None:
                continue
            rel_id = int(match.group(1))
            if rel_id not in keep:
                # Its privileges go with it.
                self.sql.execute(drop_user(user))
                passwords.remove(rel_id)
                users.pop(str(rel_id), None)
                logger.info("dropped the user of relation %s (its tables stay)", rel_id)
                continue
            allowed = set(ownership.names_of(ledger, rel_id)) if rel_id in live else set()
            for schema in sorted(held.get(user, set()) - allowed):
                self.sql.execute(revoke_schema(user, schema))
                logger.info("revoked %s's privileges on schema %s", user, schema)
            for schema in sorted(allowed - held.get(user, set())):
                # Served, yet not granted: an answer left from an earlier request stood in.
                self.sql.execute(grant_schema(user, schema))
                logger.info("granted %s its schema %s again", user, schema)
        self.peer().data[self.app][USERS_KEY] = json.dumps(users, sort_keys=True)

    def answer_relation(
        self,
        requests: list[DatabaseRequest],
        version: str,
        tls_ca: str | None,
        new_password: bool = False,
    ) -> None:
        """Give one relation's user its schemas and answer its requests.

        The relation's password is kept in a Juju secret and every answer
        carries it; when it is new (a new relation, a rotation, or a user
        made before passwords were kept) every request is answered again.
        """
        passwords = ClientPasswords(self.model)
        rel_id = requests[0].relation_id
        username = requests[0].username
        unanswered = [r for r in requests if not self.provider.answered(r, tls_ca)]
        if not unanswered and not new_password:
            return
        password = None if new_password else passwords.get(rel_id)
        exists = self.sql.user_exists(username)
        # A new password, or a new user: every answer must carry it.
        renewed = password is None or not exists
        if password is None:
            password = passwords.renew(rel_id)
            self.sql.execute(
                set_password(username, password) if exists else create_user(username, password)
            )
        elif not exists:
            self.sql.execute(create_user(username, password))
        for request in requests if not exists else unanswered:
            self.sql.execute(grant_schema(username, request.schema))
        for request in requests if renewed else unanswered:
            self.answer(request, password, version, tls_ca)
            logger.info("relation %s: user %s on schema %s", rel_id, username, request.schema)

    def answer(
        self, request: DatabaseRequest, password: str, version: str, tls_ca: str | None
    ) -> None:
        """Send ``request``'s app its user's password, the endpoints, version and CA."""
        endpoint = self._service_endpoint()
        self.provider.respond(request, password, endpoint, HTTP_PORT, version, tls_ca)

    def _service_endpoint(self) -> str:
        """The in-cluster name clients reach the database by (its Kubernetes service)."""
        return f"{self.app.name}.{self.model.name}.svc.{self.typed_config().cluster_domain}"

    # -- scale-down --------------------------------------------------------

    def _on_peer_departed(self, event: ops.RelationDepartedEvent) -> None:
        if event.departing_unit is not None and event.departing_unit.name == self.unit.name:
            self._drain()
        elif self.unit.is_leader() and event.departing_unit is not None:
            # The node is gone: nothing is to be kept off it any more.
            try:
                self.sql.execute(exclude_node(None))
            except WorkloadError as err:
                logger.warning("could not clear the allocation exclusion: %s", err)
        self.reconcile()

    def _drain(self) -> None:
        """Move this node's shards away before the pod goes (primaries at least).

        A drain that did not finish stays on the unit's status until the pod
        goes: its shards may have no copy elsewhere.
        """
        node = node_name(self.unit.name)
        ended = drain(self.sql, node, self.app.planned_units(), DRAIN_TIMEOUT)
        if ended in (Drain.TIMED_OUT, Drain.FAILED):
            self._stored.drain_problem = (
                f"scaling down: {node} {ended} moving its shards away; data on it may have no "
                "other copy: scale back up (juju add-unit) or check sys.allocations"
            )
        else:
            self._stored.drain_problem = ""

    # -- status ----------------------------------------------------------

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        for status in unit_statuses(self):
            event.add_status(status)


def _ask(request: DatabaseRequest) -> ownership.Ask:
    return ownership.Ask(request.relation_id, request.app, request.schema)


if __name__ == "__main__":  # pragma: nocover
    ops.main(CrateDBCharm)
