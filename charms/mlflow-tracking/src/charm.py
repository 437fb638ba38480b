#!/usr/bin/env python3
"""mlflow-tracking charm: MLflow on any metadata store and any S3, with notebook pod defaults."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import cast

import ops

from actions import Actions
from auth import (
    ADMIN_USER,
    NOTEBOOK_USER,
    AuthSecret,
    AuthSecrets,
    AuthSettings,
    auth_ini,
    users_database_uri,
    users_digest,
)
from client import Probe
from client_env import client_ca_files, client_env, service_url
from config import CharmConfig
from constants import (
    CONTAINER,
    DASHBOARD_LINKS_RELATION,
    DATABASE_RELATIONS,
    DIRECT_APPLIED_KEY,
    MANIFEST_RELATIONS,
    METRICS_PORT,
    OBJECT_STORAGE_RELATION,
    PEER_RELATION,
    PORT,
    S3_RELATION,
    STORAGE,
    STORE_SCHEMA_KEY,
    TLS_CA_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TLS_RELATION,
)
from container import Workload
from exceptions import CharmError, InvalidConfigError, WaitingError
from k8s import PodDefaultsApplier
from migration import SchemaState
from relations import dashboard_links
from relations.database import DatabaseRelations
from relations.ingress import IngressRelations, host_header, ui_url, unit_host
from relations.log_forwarding import LOGGING_RELATION, log_targets, loki_urls, topology_labels
from relations.manifests import ManifestRelations, client_secret, manifests_for, pod_default
from relations.minio import ObjectStorageRelation
from relations.observability import GrafanaDashboards, MetricsEndpoint
from relations.s3 import ArtifactRelation
from relations.tls import ServerTls, TlsRelation, certificate_request
from state import LOCAL_ARTIFACTS, ArtifactStore, ImageCapabilities, MetadataStore
from status import unit_statuses
from stores import StoreChoice, choose_stores
from workload import (
    ServerSettings,
    allowed_hosts,
    container_scripts,
    cors_origins,
    env_file,
    gc_env_file,
    pebble_layer,
)

logger = logging.getLogger(__name__)

ARTIFACT_RELATIONS = (S3_RELATION, OBJECT_STORAGE_RELATION)


class MlflowTrackingCharm(ops.CharmBase):
    """Reconciles one MLflow server with the stores its relations offer."""

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(
            modules=None,
            upgrade_pending=False,
            migrate_approved="",
            bucket_ready="",
            users_applied="",
            direct_applied=False,
        )
        self._error: CharmError | None = None
        self.container = self.unit.get_container(CONTAINER)
        self.probe = Probe()
        try:
            config = CharmConfig.from_mapping(self.config)
        except InvalidConfigError:
            # The status names the bad option; requests use the defaults meanwhile.
            config = CharmConfig()
        self.databases = DatabaseRelations(self, config.database_name)
        self.artifact_relation = ArtifactRelation(self, config.bucket, config.bucket_path)
        self.minio = ObjectStorageRelation(self, config.bucket, config.bucket_path)
        self.ingress = IngressRelations(self)
        self.manifests = ManifestRelations(self)
        self.auth_secret = AuthSecret(self)
        self.metrics = MetricsEndpoint(self, METRICS_PORT)
        self.dashboards = GrafanaDashboards(self)
        self.tls = TlsRelation(
            self, certificate_request(self.app.name, self.model.name, config.cluster_domain)
        )

        events: list[ops.BoundEvent] = [
            self.on[CONTAINER].pebble_ready,
            self.on[CONTAINER].pebble_check_failed,
            self.on[CONTAINER].pebble_check_recovered,
            # The supervisor's READY_NOTICE once the server answers: no hook waits for it.
            self.on[CONTAINER].pebble_custom_notice,
            self.on.config_changed,
            self.on.update_status,
            self.on.leader_elected,
            self.on[STORAGE].storage_attached,
            *self.databases.events(),
            *self.artifact_relation.events(),
            *self.ingress.events(),
            *self.tls.events(),
            *self.metrics.events(),
            *self.dashboards.events(),
        ]
        for name in (*DATABASE_RELATIONS, *ARTIFACT_RELATIONS, *MANIFEST_RELATIONS):
            events += [self.on[name].relation_changed, self.on[name].relation_broken]
        for name in (*DATABASE_RELATIONS, OBJECT_STORAGE_RELATION, *MANIFEST_RELATIONS):
            events.append(self.on[name].relation_created)
        events += [self.on[TLS_RELATION].relation_created, self.on[TLS_RELATION].relation_changed]
        events.append(self.on[DASHBOARD_LINKS_RELATION].relation_created)
        on_logging = self.on[LOGGING_RELATION]
        events += [
            on_logging.relation_changed,
            on_logging.relation_departed,
            on_logging.relation_broken,
        ]
        # The leader's record of the store's schema: a unit waiting for a migration wakes.
        events.append(self.on[PEER_RELATION].relation_changed)
        # A v0 database provider rotates a password by a new secret revision.
        events.append(self.on.secret_changed)
        for event in events:
            framework.observe(event, self.reconcile)
        framework.observe(self.on[CONTAINER].pebble_ready, self._forget_image)
        framework.observe(self.on.upgrade_charm, self._on_upgrade_charm)
        framework.observe(self.on.remove, self._on_remove)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        self.actions = Actions(self)

    # -- the world, read -------------------------------------------------

    def typed_config(self) -> CharmConfig:
        """The validated config; raises InvalidConfigError naming the bad option."""
        return CharmConfig.from_mapping(self.config)

    def require_workload(self) -> None:
        """Raise WaitingError until the container answers and the storage is attached."""
        if not self.container.can_connect():
            raise WaitingError("waiting for the mlflow-server container")
        if not self.model.storages.get(STORAGE):
            raise WaitingError("waiting for the mlflow storage to attach")

    def stores(self) -> StoreChoice:
        """The stores to run on, from what the relations offer now (``stores.choose_stores``)."""
        artifacts = [
            (endpoint, reading)
            for endpoint, reading in (
                (S3_RELATION, self.artifact_relation.read()),
                (OBJECT_STORAGE_RELATION, self.minio.read()),
            )
            if reading is not None
        ]
        try:
            serve_artifacts = self.typed_config().serve_artifacts
        except InvalidConfigError:
            serve_artifacts = True  # the invalid option blocks the unit and names itself
        return choose_stores(
            [self.databases.read(rel) for rel in self.databases.related()],
            artifacts,
            planned_units=self.app.planned_units(),
            serve_artifacts=serve_artifacts,
        )

    def _capabilities(self) -> ImageCapabilities:
        if self._stored.modules is None:
            self._stored.modules = sorted(Workload(self.container).capabilities().modules)
        return ImageCapabilities(frozenset(cast(list, self._stored.modules)))

    def _settings(
        self,
        config: CharmConfig,
        store: MetadataStore,
        artifacts: ArtifactStore,
        ingress_url: str | None,
    ) -> ServerSettings:
        """What the server runs with; ``ingress_url`` joins its allowed hosts and origins."""
        capabilities = self._capabilities()
        extra = config.extra_allowed_hosts + ((host_header(ingress_url),) if ingress_url else ())
        return ServerSettings(
            store=store,
            artifacts=artifacts,
            serve_artifacts=config.serve_artifacts,
            workers=config.workers,
            job_execution=config.enable_job_execution,
            metrics=capabilities.has("prometheus_flask_exporter"),
            allowed_hosts=allowed_hosts(
                self.app.name, self.model.name, config.cluster_domain, extra
            ),
            cors_allowed_origins=cors_origins(ingress_url, config.extra_allowed_hosts),
            auth=self.auth_settings(config, store),
        )

    def _auth_secrets(self, config: CharmConfig) -> AuthSecrets | None:
        if not config.auth:
            return None
        values = self.auth_secret.read()
        if values is None:
            raise WaitingError("waiting for the leader to generate MLflow's auth secret")
        return values

    def auth_settings(self, config: CharmConfig, store: MetadataStore) -> AuthSettings | None:
        """MLflow auth's settings for ``store``; None with auth off."""
        values = self._auth_secrets(config)
        if values is None:
            return None
        return AuthSettings(
            admin_password=values.admin_password,
            notebook_password=values.notebook_password,
            flask_secret_key=values.flask_secret_key,
            database_uri=users_database_uri(store),
            default_permission=config.auth_default_permission,
            cache_seconds=config.auth_cache_seconds,
        )

    def notebook_login(self, config: CharmConfig) -> tuple[str, str] | None:
        """The (user, password) notebooks log in with; None with auth off."""
        values = self._auth_secrets(config)
        return (NOTEBOOK_USER, values.notebook_password) if values else None

    def server_tls(self) -> ServerTls | None:
        """The server's certificate; None for plain HTTP; WaitingError while one is issued."""
        reading = self.tls.read()
        if reading.waiting:
            # Not plain HTTP meanwhile: the server keeps running as it is.
            raise WaitingError(f"{reading.waiting} (HTTPS)")
        return reading.tls

    def tracking_uri(self, config: CharmConfig, tls: ServerTls | None) -> str:
        """The in-cluster URL of the tracking server."""
        scheme = "https" if tls is not None else "http"
        return service_url(self.app.name, self.model.name, config.cluster_domain, scheme=scheme)

    @property
    def reconcile_error(self) -> CharmError | None:
        """Why the last reconcile in this hook stopped, None when it went through."""
        return self._error

    # -- reconcile -------------------------------------------------------

    def reconcile(self, _event: ops.EventBase | None = None) -> None:
        """Bring the workload to what config and relations say; status says where it stopped."""
        try:
            self._apply()
        except CharmError as err:
            self._error = err
            logger.info("reconcile stopped: %s", err)

    def _apply(self) -> None:
        config = self.typed_config()
        self.databases.ensure_requests()
        self.artifact_relation.update_requests()
        self.minio.send_versions()
        tls = self.server_tls()
        self.ingress.publish(PORT, config.cluster_domain, "https" if tls else "http")
        ingress = self.ingress.read()
        url = ingress.url if ingress is not None and not ingress.problem else None
        dashboard_links.publish(self, ui_url(url) if url else None)
        self.metrics.publish(
            unit_host(self.unit.name, self.app.name, self.model.name, config.cluster_domain)
        )
        self.dashboards.publish()
        self.require_workload()
        choice = self.stores()
        if choice.blocked or choice.store is None or choice.artifacts is None:
            # A conflict or a store still coming up: leave the running server as it is.
            return
        driver = choice.store.kind.driver_module
        if not self._capabilities().has(driver):
            raise CharmError(
                f"the workload image lacks {driver} for {choice.store.kind.label}; "
                "use the project's rock (see README)"
            )
        if config.auth and not self._capabilities().has("flask_wtf"):
            raise CharmError(
                "the workload image lacks Flask-WTF for MLflow's basic-auth: use an image "
                "with mlflow[auth] (the project's rock has it), or set auth=false"
            )
        if self.minio.relation() is not None:
            self._ensure_bucket(choice.artifacts)
        settings = replace(
            self._settings(config, choice.store, choice.artifacts, url),
            tls=tls,
            # The leader collects; with TLS it calls the service by the name its certificate has.
            gc_every=config.gc_interval_seconds if self.unit.is_leader() else 0.0,
            gc_older_than=config.gc_older_than,
            gc_tracking_uri=self.tracking_uri(config, tls) if tls else "",
        )
        self._run_server(settings)
        if self.unit.is_leader():
            self._publish_pod_defaults(config, settings)

    def _settle_schema(self, settings: ServerSettings) -> None:
        """Serve the store as it is, migrate it (see ``migration``), or say why not yet."""
        database = self.databases.related()
        state, migrated = Workload(self.container).settle_schema(
            settings,
            leader=self.unit.is_leader(),
            approved=str(self._stored.migrate_approved),
            database_app=database[0].app.name if database and database[0].app else "the database",
            app=self.app.name,
        )
        if migrated:
            self._stored.migrate_approved = ""
        peer = self.model.get_relation(PEER_RELATION)
        if self.unit.is_leader() and state.tables and peer is not None:
            # Other units waiting for the migration wake on this change.
            peer.data[self.app][STORE_SCHEMA_KEY] = state.current or ""

    def approve_migration(self, step_name: str) -> None:
        """The operator's go (the migrate-store action) for exactly this migration."""
        self._stored.migrate_approved = step_name

    def store_schema(self) -> tuple[MetadataStore, SchemaState] | None:
        """The chosen store and where its schema stands; None when there is none to migrate."""
        store = self.stores().store
        if store is None:
            return None
        settings = ServerSettings(store=store, artifacts=LOCAL_ARTIFACTS)
        return store, Workload(self.container).schema_state(settings)

    def _ensure_bucket(self, artifacts: ArtifactStore) -> None:
        # MinIO creates no bucket for its clients; check once per bucket and endpoint.
        where = f"{artifacts.endpoint}/{artifacts.bucket}"
        if self._stored.bucket_ready != where:
            relation = self.minio.relation()
            app = relation.app.name if relation is not None and relation.app else "minio"
            Workload(self.container).ensure_bucket(artifacts, app)
            self._stored.bucket_ready = where

    def _publish_pod_defaults(self, config: CharmConfig, settings: ServerSettings) -> None:
        tls = settings.tls
        cas = client_ca_files(tls.ca if tls else "", settings.artifacts, settings.serve_artifacts)
        env = client_env(
            self.tracking_uri(config, tls),
            settings.artifacts,
            settings.serve_artifacts,
            login=self.notebook_login(config),
            ca_files=cas,
        )
        app = self.app.name
        for relation in self.manifests.relations():
            self.manifests.send(relation, manifests_for(relation.name, app, env, cas))
        applier = PodDefaultsApplier(app, self.model.uuid)
        if config.pod_defaults_namespace_selector:
            secret = client_secret(app, env, cas)
            wanted = [m for m in (secret, pod_default(app, env, cas)) if m]
            used_before = self._direct_mode_used()
            self._remember_direct_mode(True)
            try:
                applier.apply(config.pod_defaults_namespace_selector, wanted)
            except CharmError:
                if not used_before and not applier.applied:
                    # Refused before anything was made: nothing to clean up later.
                    self._remember_direct_mode(False)
                raise
        elif self._direct_mode_used():
            # The selector was unset: what it applied goes, wherever it went.
            applier.remove_all()
            self._remember_direct_mode(False)

    def _direct_mode_used(self) -> bool:
        """True when direct mode applied pod defaults that may still be in the cluster."""
        peer = self.model.get_relation(PEER_RELATION)
        recorded = peer is not None and peer.data[self.app].get(DIRECT_APPLIED_KEY) == "true"
        return recorded or bool(self._stored.direct_applied)

    def _remember_direct_mode(self, used: bool) -> None:
        """Record (leader) whether direct mode's objects may be in the cluster."""
        self._stored.direct_applied = used
        peer = self.model.get_relation(PEER_RELATION)
        if peer is not None:
            if used:
                peer.data[self.app][DIRECT_APPLIED_KEY] = "true"
            else:
                peer.data[self.app].pop(DIRECT_APPLIED_KEY, None)

    def _run_server(self, settings: ServerSettings) -> None:
        workload = Workload(self.container)
        push = workload.push_if_changed
        try:
            server_env_file = env_file(settings)
            gc_env = gc_env_file(settings, self._admin(settings)) if self.unit.is_leader() else ""
        except ValueError as err:
            # Relation values are checked where they are read; this is the last guard.
            raise CharmError(f"not starting the server: {err}") from None
        push(settings.env_file, server_env_file)
        for path, script in container_scripts(settings).items():
            push(path, script, 0o644)
        if settings.artifacts.ca_chain:
            push(settings.ca_file, settings.artifacts.ca_chain)
        if settings.store.ca_chain:
            push(settings.db_ca_file, settings.store.ca_chain)
        if settings.tls is not None:
            push(TLS_KEY_FILE, settings.tls.private_key)
            push(TLS_CERT_FILE, settings.tls.certificate, 0o644)
            push(TLS_CA_FILE, settings.tls.ca, 0o644)
        # Before a server starts (a new pod, a new image) or after a refresh: no
        # server serves a schema it does not match, and nothing writes to the
        # store (the users script neither) before its schema is settled.
        if self._stored.upgrade_pending or not self.service_running():
            self._settle_schema(settings)
        self._stored.upgrade_pending = False
        if settings.auth is not None:
            push(settings.auth_file, auth_ini(settings.auth))
            self._apply_users(settings)
        if self.unit.is_leader():
            # Read again before each run: a rotated admin password restarts nothing.
            push(settings.gc_env_file, gc_env)
        urls = loki_urls(self.model.relations[LOGGING_RELATION])
        targets = log_targets(
            urls,
            topology_labels(self) if urls else {},
            known=self.container.get_plan().log_targets,
        )
        workload.apply_layer(pebble_layer(settings, targets))
        self.unit.set_ports(PORT)

    def _apply_users(self, settings: ServerSettings) -> None:
        """Create or update the users before the server starts (leader; once per change).

        The server would create the admin itself from the config file, with the
        same generated password; this also creates the notebook user and
        applies a rotated password without a restart.
        """
        auth = settings.auth
        if auth is None or not self.unit.is_leader():
            return
        if self._stored.users_applied != users_digest(auth):
            Workload(self.container).apply_users(auth, settings.auth_file, settings.apps_dir)
            self.users_applied(auth)

    def users_applied(self, auth: AuthSettings) -> None:
        """Record that ``auth``'s users exist with its passwords: no re-apply until changed."""
        self._stored.users_applied = users_digest(auth)

    @staticmethod
    def _admin(settings: ServerSettings) -> tuple[str, str] | None:
        return (ADMIN_USER, settings.auth.admin_password) if settings.auth else None

    def service_running(self) -> bool:
        """True when the MLflow service runs."""
        return Workload(self.container).service_running()

    def store_reachable(self, store: MetadataStore) -> bool:
        """False when the store's host and port do not accept a connection."""
        return (
            store.host is None
            or store.port is None
            or self.probe.reachable(store.host, store.port)
        )

    # -- lifecycle -------------------------------------------------------

    def _forget_image(self, _event: ops.EventBase) -> None:
        # A new pod may run a new image: look at its modules again.
        self._stored.modules = None

    def _on_upgrade_charm(self, _event: ops.EventBase) -> None:
        self._stored.modules = None
        self._stored.upgrade_pending = True
        self.reconcile()

    def _on_remove(self, _event: ops.EventBase) -> None:
        used = self.config.get("pod-defaults-namespace-selector") or self._direct_mode_used()
        # Only when the application goes: a leader removed by scaling down leaves them.
        if self.unit.is_leader() and used and self.app.planned_units() == 0:
            try:
                PodDefaultsApplier(self.app.name, self.model.uuid).remove_all()
            except CharmError as err:
                logger.warning("could not remove pod defaults: %s", err)

    # -- status ----------------------------------------------------------

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        for status in unit_statuses(self):
            event.add_status(status)


if __name__ == "__main__":  # pragma: nocover
    ops.main(MlflowTrackingCharm)
