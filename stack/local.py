"""The local stack: SeaweedFS and MLflow under a real Pebble, from the charms' own builders.

What a Juju deployment of the bundle does, on one machine without Juju or
Kubernetes: SeaweedFS with the seaweedfs charm's layer and an identity scoped
to MLflow's bucket, then the MLflow server with the mlflow-tracking charm's
layer and env file, on embedded SQLite, or on CrateDB / PostgreSQL when a URL
is given. ``notebook_env`` is what the charm's pod default would inject.
Everything binds 127.0.0.1; ``stop`` stops every process by PID.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from stack.charm_loader import charm_modules
from stack.mlflow_server import MlflowServer, mt
from stack.pebble import PebbleDaemon
from stack.seaweed import SeaweedStore

BUCKET = "mlflow"


def _binary(env_var: str, name: str) -> str:
    path = os.environ.get(env_var) or shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} not found: run `source scripts/setup.sh` (sets {env_var})")
    return path


def cratedb_store(cratedb_url: str, user: str, schema: str) -> Any:
    """A CrateDB user made by the cratedb charm's own statements, and the store MLflow gets.

    ``cratedb_url`` names a CrateDB whose superuser is trusted from localhost.
    """
    cr = charm_modules("cratedb", "sql", "database")
    port = urlsplit(cratedb_url).port or 4200
    password = cr.database.generate_password()
    sql = cr.sql.CrateSQL(port=port)
    sql.execute(cr.sql.drop_user(user))
    sql.execute(cr.sql.create_user(user, password))
    sql.execute(cr.sql.grant_schema(user, schema))
    return mt.workload.build_store(
        mt.state.StoreKind.CRATEDB, schema, user, password, f"127.0.0.1:{port}", None
    )


def _store_from_urls(data_dir: Path, cratedb_url: str = "", postgresql_url: str = "") -> Any:
    """The metadata store: SQLite, or the database a URL names (as the charm builds it)."""
    if cratedb_url:
        return cratedb_store(cratedb_url, "relation_localstack", "mlflow")
    if postgresql_url:
        parts = urlsplit(postgresql_url)
        return mt.workload.build_store(
            mt.state.StoreKind.POSTGRESQL,
            parts.path.lstrip("/") or "mlflow",
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            f"{parts.hostname}:{parts.port or 5432}",
            None,
        )
    return mt.workload.sqlite_store(str(data_dir / "mlflow.db"))


def _start_cratedb(pebble: str, home: Path, root: Path, daemons: list[PebbleDaemon]) -> str:
    """One CrateDB node from the cratedb charm's layer (see ``stack.cratedb``); its SQL URL."""
    from stack.cratedb import start_single_node

    daemon, node = start_single_node(pebble, home, root / "cratedb")
    daemons.append(daemon)
    return f"http://127.0.0.1:{node.ports.http}"


@dataclass
class LocalStack:
    """A running SeaweedFS + MLflow pair."""

    root: Path
    seaweed: SeaweedStore
    mlflow: MlflowServer
    daemons: list[PebbleDaemon] = field(default_factory=list)
    # True when start() made ``root`` (a temporary directory): stop() removes it.
    owns_root: bool = False

    @classmethod
    def start(
        cls,
        root: Path | None = None,
        serve_artifacts: bool = True,
        cratedb_url: str = "",
        postgresql_url: str = "",
        cratedb_home: str = "",
        auth: bool | None = None,
    ) -> LocalStack:
        """Start SeaweedFS, CrateDB (given ``cratedb_home``), then MLflow, each once it answers.

        ``auth``: MLflow's basic-auth app; by default as deployed: on, on every
        store (the charm's default). The notebook environment carries the login.
        ``root``: where the daemons keep their state; by default a temporary
        directory that ``stop`` removes.
        """
        owns_root = root is None
        root = root or Path(tempfile.mkdtemp(prefix="mlflow-local-stack-"))
        pebble = _binary("PEBBLE_BIN", "pebble")
        weed = _binary("WEED_BIN", "weed")
        venv = Path(os.environ.get("MLFLOW_VENV", ""))
        if not (venv / "bin" / "mlflow").exists():
            raise RuntimeError("MLflow venv not found: run `source scripts/setup.sh`")
        path = os.pathsep.join([str(Path(weed).parent), os.environ.get("PATH", "")])
        daemons: list[PebbleDaemon] = []
        try:
            weed_daemon = PebbleDaemon(pebble, root / "seaweedfs", env={"PATH": path})
            daemons.append(weed_daemon)
            weed_daemon.start()
            seaweed = SeaweedStore.start(weed_daemon, weed, planned_buckets=1)
            seaweed.wait_serving()
            creds = seaweed.relate(1, BUCKET)
            artifacts = mt.state.ArtifactStore(
                bucket=BUCKET,
                endpoint=seaweed.endpoint,
                region="us-east-1",
                credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
            )
            if cratedb_home:
                cratedb_url = _start_cratedb(pebble, Path(cratedb_home), root, daemons)
            mlflow_daemon = PebbleDaemon(pebble, root / "mlflow")
            daemons.append(mlflow_daemon)
            mlflow_daemon.start()
            store = _store_from_urls(mlflow_daemon.directory / "data", cratedb_url, postgresql_url)
            if auth is None:
                auth = True
            mlflow = MlflowServer.start(
                mlflow_daemon, venv, store, artifacts, serve_artifacts=serve_artifacts, auth=auth
            )
        except BaseException:
            for daemon in reversed(daemons):
                daemon.stop()
            if owns_root:
                shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root=root, seaweed=seaweed, mlflow=mlflow, daemons=daemons, owns_root=owns_root)

    @property
    def venv(self) -> Path:
        """The MLflow environment (also what a notebook image would carry)."""
        return Path(os.environ["MLFLOW_VENV"])

    def notebook_env(self) -> dict[str, str]:
        """Exactly what the charm's PodDefault injects into a notebook."""
        return self.mlflow.notebook_env()

    def s3_env(self) -> dict[str, str]:
        """SeaweedFS settings for reading the bucket directly (MLflow's bucket-scoped keys)."""
        creds = self.mlflow.settings.artifacts.credentials
        return {
            "S3_ENDPOINT": self.seaweed.endpoint,
            "S3_BUCKET": BUCKET,
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self, keep: bool = False) -> None:
        """Stop MLflow, then SeaweedFS, by PID through their Pebble daemons.

        The state directory goes too when ``start`` made it, unless ``keep``.
        """
        for daemon in reversed(self.daemons):
            daemon.stop()
        if self.owns_root and not keep:
            shutil.rmtree(self.root, ignore_errors=True)
