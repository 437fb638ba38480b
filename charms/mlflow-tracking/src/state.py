"""Typed snapshot of what config, relations and secrets say. Plain models, no ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class StoreKind(StrEnum):
    """Where MLflow keeps its metadata."""

    SQLITE = "sqlite"
    CRATEDB = "cratedb"
    POSTGRESQL = "postgresql"
    MYSQL = "mysql"

    @property
    def label(self) -> str:
        """How the status names it."""
        return {
            StoreKind.SQLITE: "embedded SQLite",
            StoreKind.CRATEDB: "CrateDB",
            StoreKind.POSTGRESQL: "PostgreSQL",
            StoreKind.MYSQL: "MySQL",
        }[self]

    @property
    def driver_module(self) -> str | None:
        """The Python module the workload image needs for this store."""
        return {
            StoreKind.SQLITE: None,
            StoreKind.CRATEDB: "mlflow_cratedb",
            StoreKind.POSTGRESQL: "psycopg2",
            StoreKind.MYSQL: "pymysql",
        }[self]


@dataclass(frozen=True)
class MetadataStore:
    """The metadata store the server uses. ``uri`` holds credentials: never log it."""

    kind: StoreKind
    uri: str = field(repr=False)
    host: str | None = None
    port: int | None = None
    database: str = ""
    # The CA the server's certificate must chain to (PEM), when the relation gave one.
    ca_chain: str = ""


@dataclass(frozen=True)
class S3Credentials:
    """An S3 key pair. ``repr`` never shows the secret key."""

    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class ArtifactStore:
    """Where artifacts live: an S3 bucket, or the unit's own storage when ``s3`` is None."""

    bucket: str = ""
    path: str = ""
    endpoint: str = ""
    region: str = ""
    credentials: S3Credentials | None = None
    ca_chain: str = ""

    @property
    def is_s3(self) -> bool:
        """True when artifacts go to an S3 bucket."""
        return bool(self.bucket)

    @property
    def s3_uri(self) -> str:
        """``s3://bucket/path`` for the server's flags."""
        return f"s3://{self.bucket}/{self.path}".rstrip("/")


LOCAL_ARTIFACTS = ArtifactStore()


@dataclass(frozen=True)
class ImageCapabilities:
    """Which optional Python modules the workload image has."""

    modules: frozenset[str]

    def has(self, module: str | None) -> bool:
        """True when ``module`` (or no module at all) is available."""
        return module is None or module in self.modules
