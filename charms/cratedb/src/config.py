"""Typed, validated view of the charm's config options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exceptions import InvalidConfigError
from workload import parse_heap

_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class CharmConfig(BaseModel):
    """The cratedb charm's options, parsed and checked."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    heap_size: str = Field("", alias="heap-size")
    allow_mmap: bool = Field(False, alias="allow-mmap")
    cluster_domain: str = Field("cluster.local", alias="cluster-domain")
    backup_bucket: str = Field("", alias="backup-bucket")
    backup_path: str = Field("", alias="backup-path")

    @field_validator("heap_size")
    @classmethod
    def _heap(cls, value: str) -> str:
        if value:
            parse_heap(value)
        return value

    @field_validator("cluster_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not _DNS_NAME.fullmatch(value):
            raise ValueError("must be a DNS domain such as cluster.local")
        return value

    @field_validator("backup_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if value and not _BUCKET.fullmatch(value):
            raise ValueError("must be empty or 3-63 lowercase letters, digits, hyphens")
        return value

    @field_validator("backup_path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip("/")
        if len(value) > 512 or ".." in value.split("/") or any(ord(c) < 32 for c in value):
            raise ValueError("must be a relative key prefix without '..' or control characters")
        return value

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
