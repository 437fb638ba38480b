"""The one door to commands run inside the workload container."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import cast

import ops

from auth import AuthSettings, users_argv, users_env
from constants import GC_SERVICE, IMAGE_MODULES, LAYER_LABEL, SERVICE
from exceptions import CharmError, WorkloadError
from migration import SchemaState, Step, next_step, sqlite_copy_path
from state import ArtifactStore, ImageCapabilities, MetadataStore, StoreKind
from workload import (
    BUCKET_ACCESS_DENIED,
    ServerSettings,
    bucket_env,
    cratedb_upgrade_argv,
    db_upgrade_argv,
    ensure_bucket_argv,
    probe_argv,
    schema_argv,
)

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 60.0
UPGRADE_TIMEOUT = 900.0
BUCKET_TIMEOUT = 60.0
USERS_TIMEOUT = 300.0
GC_TIMEOUT = 1800.0


class MigrationError(CharmError):
    """``mlflow db upgrade`` failed: the schema needs a person's attention."""


class Workload:
    """Commands in the MLflow container, with timeouts and error mapping."""

    def __init__(self, container: ops.Container):
        self._container = container

    def service_running(self, name: str = SERVICE) -> bool:
        """True when the Pebble service ``name`` (MLflow by default) runs."""
        services = self._container.get_services(name)
        return name in services and services[name].is_running()

    def push_if_changed(self, path: str, content: str, permissions: int = 0o600) -> None:
        """Write ``path`` unless it already holds ``content`` (no needless restarts)."""
        try:
            if self._container.pull(path).read() == content:
                return
        except (ops.pebble.PathError, FileNotFoundError):
            pass
        self._container.push(path, content, make_dirs=True, permissions=permissions)

    def apply_layer(self, layer: dict) -> bool:
        """Apply the layer when its services, checks or log targets differ; True if replanned.

        An unchanged layer still starts a stopped server. A gc service the
        layer disables (not the leader, or gc-interval=0) is stopped.
        """
        wanted = ops.pebble.Layer(cast(ops.pebble.LayerDict, layer))
        plan = self._container.get_plan()
        sections = (
            (wanted.services, plan.services),
            (wanted.checks, plan.checks),
            (wanted.log_targets, plan.log_targets),
        )
        if all(
            name in current and current[name].to_dict() == spec.to_dict()
            for specs, current in sections
            for name, spec in specs.items()
        ):
            if not self.service_running():
                self._container.replan()
            return False
        self._container.add_layer(LAYER_LABEL, wanted, combine=True)
        self._container.replan()
        if wanted.services[GC_SERVICE].startup == "disabled" and self.service_running(GC_SERVICE):
            self._container.stop(GC_SERVICE)
        logger.info("Pebble layer applied")
        return True

    def capabilities(self) -> ImageCapabilities:
        """Which optional modules the image's Python can import."""
        try:
            stdout, _ = self._container.exec(
                probe_argv(IMAGE_MODULES), timeout=PROBE_TIMEOUT
            ).wait_output()
        except (
            ops.pebble.ExecError,
            ops.pebble.ChangeError,
            ops.pebble.APIError,
            ops.pebble.TimeoutError,
        ) as err:
            logger.warning("could not probe the workload image: %s", err)
            raise WorkloadError("could not inspect the workload image; retrying") from None
        return ImageCapabilities(frozenset(m for m in stdout.strip().split(",") if m))

    def schema_state(self, settings: ServerSettings) -> SchemaState:
        """Where the store's schema stands against the image's MLflow (``schema.py``)."""
        store = settings.store
        try:
            process = self._container.exec(
                schema_argv(settings),
                environment={"MLFLOW_BACKEND_STORE_URI": store.uri},
                timeout=PROBE_TIMEOUT,
            )
            stdout, _ = process.wait_output()
            return SchemaState.parse(stdout)
        except ops.pebble.ExecError as err:
            tail = (str(err.stderr or "").strip().splitlines() or [""])[-1].replace(
                store.uri, "<uri>"
            )
            logger.warning("could not read the %s store's schema: %s", store.kind.label, tail)
        except (ValueError, ops.pebble.ChangeError, ops.pebble.APIError) as err:
            logger.warning("could not read the %s store's schema: %s", store.kind.label, err)
        except ops.pebble.TimeoutError:
            logger.warning("reading the %s store's schema timed out", store.kind.label)
        raise WorkloadError(f"could not read the {store.kind.label} store's schema; retrying")

    def settle_schema(
        self,
        settings: ServerSettings,
        *,
        leader: bool,
        approved: str,
        database_app: str,
        app: str,
    ) -> tuple[SchemaState, bool]:
        """Before a server starts: the store's state after ``next_step``, and if it migrated.

        Raises what ``next_step`` raises (Blocked / Waiting), or MigrationError.
        """
        state = self.schema_state(settings)
        step = next_step(
            state,
            settings.store.kind,
            leader=leader,
            approved=approved,
            database_app=database_app,
            app=app,
        )
        if step is Step.SERVE:
            return state, False
        self._migrate(settings, state, database_app)
        return replace(state, current=state.head), True

    def _migrate(self, settings: ServerSettings, state: SchemaState, database_app: str) -> None:
        store = settings.store
        if self.service_running():
            self._container.stop(SERVICE)
        copy = path = ""
        if store.kind is StoreKind.SQLITE:
            path = store.uri.removeprefix("sqlite:///")
            copy = sqlite_copy_path(path, state)
            self.copy_file(path, copy)
            logger.info("SQLite store copied to %s before migrating it", copy)
        logger.info("migrating the %s store: %s", store.kind.label, state.step_name)
        try:
            if store.kind is StoreKind.CRATEDB:
                self.upgrade_cratedb_tables(settings)
            else:
                self.upgrade_schema(store, settings.executable)
        except MigrationError as err:
            if store.kind is StoreKind.CRATEDB:
                raise MigrationError(
                    f"{err} ({state.step_name}); the tables not yet copied are as they were and "
                    "those copied keep their old rows as <table>__premigration: fix it and run "
                    "migrate-store again, or restore the backup you took "
                    f"({database_app}'s restore-backup) before the previous image serves again"
                ) from None
            if copy:
                self.copy_file(copy, path)
                raise MigrationError(
                    f"mlflow db upgrade failed on embedded SQLite ({state.step_name}); the "
                    f"store is back as it was (copy kept at {copy}); see juju debug-log"
                ) from None
            raise MigrationError(
                f"mlflow db upgrade failed on {store.kind.label} ({state.step_name}): restore "
                f"the backup you took ({database_app}'s restore action) before the previous "
                "image serves again; see juju debug-log"
            ) from None
        logger.info("the %s store is at %s", store.kind.label, state.head)

    def copy_file(self, source: str, target: str) -> None:
        """``cp -p source target`` in the container (a SQLite store set aside, or put back)."""
        try:
            self._container.exec(["cp", "-p", source, target], timeout=PROBE_TIMEOUT).wait()
        except (ops.pebble.ExecError, ops.pebble.ChangeError, ops.pebble.APIError) as err:
            logger.error("could not copy %s to %s: %s", source, target, err)
            raise MigrationError(
                f"could not copy {source} to {target} before migrating it; nothing was changed"
            ) from None

    def upgrade_cratedb_tables(self, settings: ServerSettings) -> None:
        """Bring a CrateDB store's tables to this image's layout (``cratedb_schema.py``)."""
        store = settings.store
        try:
            process = self._container.exec(
                cratedb_upgrade_argv(settings),
                environment={"MLFLOW_BACKEND_STORE_URI": store.uri},
                timeout=UPGRADE_TIMEOUT,
            )
            stdout, _ = process.wait_output()
        except ops.pebble.ExecError as err:
            tail = (str(err.stderr or "").strip().splitlines() or [""])[-1].replace(
                store.uri, "<uri>"
            )
            logger.error("the CrateDB tables could not be brought forward: %s", tail)
            raise MigrationError(f"CrateDB tables not brought forward: {tail[:160]}") from None
        except (ops.pebble.ChangeError, ops.pebble.APIError, ops.pebble.TimeoutError) as err:
            logger.warning("cratedb_schema.py could not run: %s", err)
            raise WorkloadError("could not bring the CrateDB tables forward; retrying") from None
        logger.info("CrateDB tables brought forward: %s", stdout.strip()[-300:])

    def upgrade_schema(self, store: MetadataStore, executable: str = "mlflow") -> None:
        """Run ``mlflow db upgrade`` against ``store`` (URI passed in the environment)."""
        try:
            process = self._container.exec(
                db_upgrade_argv(executable),
                environment={"MLFLOW_BACKEND_STORE_URI": store.uri},
                timeout=UPGRADE_TIMEOUT,
            )
            process.wait_output()
        except ops.pebble.ExecError as err:
            # stderr may echo the URI; keep only its last line, without it.
            tail = (str(err.stderr or "").strip().splitlines() or [""])[-1].replace(
                store.uri, "<uri>"
            )
            logger.error("mlflow db upgrade failed (exit %s): %s", err.exit_code, tail)
            raise MigrationError(
                f"mlflow db upgrade failed on {store.kind.label}; see juju debug-log"
            ) from None
        except (ops.pebble.ChangeError, ops.pebble.APIError, ops.pebble.TimeoutError) as err:
            logger.warning("mlflow db upgrade could not run: %s", err)
            raise WorkloadError("could not run mlflow db upgrade; retrying") from None
        logger.info("schema of the %s store is up to date", store.kind.label)

    def ensure_bucket(self, artifacts: ArtifactStore, app: str) -> None:
        """Create the artifact bucket if it is missing (for providers that create none)."""
        try:
            self._container.exec(
                ensure_bucket_argv(), environment=bucket_env(artifacts), timeout=BUCKET_TIMEOUT
            ).wait_output()
        except ops.pebble.ExecError as err:
            if err.exit_code == BUCKET_ACCESS_DENIED:
                raise CharmError(
                    f"{app} refused its own keys for bucket {artifacts.bucket!r}; "
                    f"check {app}'s access-key and secret-key"
                ) from None
            logger.warning("could not check bucket %s (exit %s)", artifacts.bucket, err.exit_code)
            raise WorkloadError(
                f"could not reach {artifacts.endpoint} to create bucket {artifacts.bucket!r}; "
                "retrying"
            ) from None
        except (ops.pebble.ChangeError, ops.pebble.APIError, ops.pebble.TimeoutError) as err:
            logger.warning("bucket check could not run: %s", err)
            raise WorkloadError("could not run the bucket check; retrying") from None
        logger.info("artifact bucket %s is ready", artifacts.bucket)

    def apply_users(self, auth: AuthSettings, config_file: str, apps_dir: str) -> None:
        """Create or update MLflow's admin and notebook users (passwords in the environment)."""
        try:
            stdout, _ = self._container.exec(
                users_argv(),
                environment=users_env(auth, config_file, apps_dir),
                timeout=USERS_TIMEOUT,
            ).wait_output()
        except ops.pebble.ExecError as err:
            # The traceback may hold the users' database URI: its last line, without it.
            last = (str(err.stderr or "").strip().splitlines() or [""])[-1]
            last = last.replace(auth.database_uri, "<uri>")
            logger.error("MLflow users not applied (exit %s): %s", err.exit_code, last[:200])
            raise WorkloadError("could not apply MLflow's users; retrying") from None
        except (ops.pebble.ChangeError, ops.pebble.APIError, ops.pebble.TimeoutError) as err:
            logger.warning("MLflow users could not be applied: %s", err)
            raise WorkloadError("could not apply MLflow's users; retrying") from None
        logger.info("MLflow users: %s", " ".join(stdout.split()) or "unchanged")

    def collect_garbage(self, argv: list[str]) -> str:
        """Run ``mlflow gc`` once (``workload.gc_argv``); what it printed, last lines first cut.

        The store URI and passwords are in the gc env file, not in argv, and
        never in what this returns (mlflow gc prints run ids and counts).
        """
        try:
            stdout, stderr = self._container.exec(argv, timeout=GC_TIMEOUT).wait_output()
        except ops.pebble.ExecError as err:
            last = (str(err.stderr or "").strip().splitlines() or [""])[-1]
            logger.error("mlflow gc failed (exit %s): %s", err.exit_code, last[:200])
            raise WorkloadError(f"mlflow gc failed: {_scrub(last)[:200]}") from None
        except (ops.pebble.ChangeError, ops.pebble.APIError, ops.pebble.TimeoutError) as err:
            logger.warning("mlflow gc could not run: %s", err)
            raise WorkloadError("mlflow gc could not run; try again") from None
        return "\n".join((stdout + (stderr or "")).strip().splitlines()[-20:])


def _scrub(line: str) -> str:
    # A driver's error may quote the URI it was given; keep its scheme, drop the rest.
    return re.sub(r"([a-z0-9+]+://)\S+", r"\1<redacted>", line)
