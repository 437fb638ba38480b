"""Typed, validated view of the charm's config options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exceptions import InvalidConfigError

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_HOST_PATTERN = re.compile(r"[A-Za-z0-9*.:\[\]-]{1,253}")
_LABEL_SELECTOR = re.compile(
    r"([A-Za-z0-9./_-]{1,253})(=[A-Za-z0-9._-]{0,63})?(,([A-Za-z0-9./_-]{1,253})(=[A-Za-z0-9._-]{0,63})?)*"
)
RESERVED_SCHEMAS = {
    "sys",
    "information_schema",
    "pg_catalog",
    "blob",
    "mysql",
    "performance_schema",
}


class CharmConfig(BaseModel):
    """The mlflow-tracking charm's options, parsed and checked."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    serve_artifacts: bool = Field(True, alias="serve-artifacts")
    bucket: str = ""
    bucket_path: str = Field("", alias="bucket-path")
    database_name: str = Field("mlflow", alias="database-name")
    workers: int = 2
    enable_job_execution: bool = Field(False, alias="enable-job-execution")
    allowed_hosts: str = Field("", alias="allowed-hosts")
    cluster_domain: str = Field("cluster.local", alias="cluster-domain")
    pod_defaults_namespace_selector: str = Field("", alias="pod-defaults-namespace-selector")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if value and not _BUCKET.fullmatch(value):
            raise ValueError(
                "must be empty (the provider chooses) or 3-63 lowercase letters, digits, hyphens"
            )
        return value

    @field_validator("bucket_path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip("/")
        if len(value) > 512 or ".." in value.split("/") or any(ord(c) < 32 for c in value):
            raise ValueError("must be a relative key prefix without '..' or control characters")
        return value

    @field_validator("database_name")
    @classmethod
    def _database(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value):
            raise ValueError("must be a lowercase identifier (letters, digits, _; max 63)")
        if value in RESERVED_SCHEMAS:
            raise ValueError(f"{value!r} is reserved by the database")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        if not 1 <= value <= 32:
            raise ValueError("must be between 1 and 32")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: str) -> str:
        for host in filter(None, (h.strip() for h in value.split(","))):
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(f"{host[:40]!r} is not a host name or pattern")
        return value

    @field_validator("cluster_domain")
    @classmethod
    def _cluster_domain(cls, value: str) -> str:
        if not _DNS_NAME.fullmatch(value):
            raise ValueError("must be a DNS domain such as cluster.local")
        return value

    @field_validator("pod_defaults_namespace_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        if value and not _LABEL_SELECTOR.fullmatch(value):
            raise ValueError("must be a label selector such as user.kubeflow.org/enabled=true")
        return value

    @property
    def extra_allowed_hosts(self) -> tuple[str, ...]:
        """Hosts from ``allowed-hosts``, split and trimmed."""
        return tuple(h.strip() for h in self.allowed_hosts.split(",") if h.strip())

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CharmConfig:
        """Parse Juju config; a bad value raises InvalidConfigError naming the option."""
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as err:
            first = err.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "config"
            if field in cls.model_fields:
                field = cls.model_fields[field].alias or field
            reason = str(first["msg"]).removeprefix("Value error, ")
            raise InvalidConfigError(f"invalid config {field!r}: {reason}") from None
