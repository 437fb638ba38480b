"""Typed, validated view of the charm's config options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exceptions import InvalidConfigError
from workload import MAX_VOLUME_SIZE_MB, MIN_VOLUME_SIZE_MB

_DNS_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,30}[a-z0-9]")
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")


class CharmConfig(BaseModel):
    """The seaweedfs charm's options, parsed and checked."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    region: str = "us-east-1"
    cluster_domain: str = Field("cluster.local", alias="cluster-domain")
    endpoint: str = ""
    volume_size_limit_mb: int = Field(0, alias="volume-size-limit-mb")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError("must be 2-32 lowercase letters, digits or hyphens, like us-east-1")
        return value

    @field_validator("cluster_domain")
    @classmethod
    def _cluster_domain(cls, value: str) -> str:
        if not _DNS_NAME.fullmatch(value):
            raise ValueError("must be a DNS domain such as cluster.local")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and not _ENDPOINT.fullmatch(value):
            raise ValueError("must be empty or an http(s)://host[:port] URL without a path")
        return value.rstrip("/")

    @field_validator("volume_size_limit_mb")
    @classmethod
    def _volume_size(cls, value: int) -> int:
        if value != 0 and not MIN_VOLUME_SIZE_MB <= value <= MAX_VOLUME_SIZE_MB:
            raise ValueError(
                f"must be 0 (sized from storage) or {MIN_VOLUME_SIZE_MB}-{MAX_VOLUME_SIZE_MB}"
            )
        return value

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CharmConfig:
        """Parse Juju config; a bad value raises InvalidConfigError naming the option."""
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as err:
            first = err.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "config"
            option = cls.model_fields[field].alias or field if field in cls.model_fields else field
            reason = str(first["msg"]).removeprefix("Value error, ")
            raise InvalidConfigError(f"invalid config {option!r}: {reason}") from None
