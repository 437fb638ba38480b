"""Typed, validated view of the charm's config options.

A frozen dataclass with explicit checks rather than a pydantic model: pydantic
would double what every hook of this charm pays in imports (measured by the
benchmark's hook-cost figures), and six options do not need it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster import replication_problem
from exceptions import InvalidConfigError
from workload import MAX_VOLUME_SIZE_MB, MIN_VOLUME_SIZE_MB

_DNS_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,30}[a-z0-9]")
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _region(value: Any) -> str:
    if not _REGION.fullmatch(_text(value)):
        raise ValueError("must be 2-32 lowercase letters, digits or hyphens, like us-east-1")
    return value


def _cluster_domain(value: Any) -> str:
    if not _DNS_NAME.fullmatch(_text(value)):
        raise ValueError("must be a DNS domain such as cluster.local")
    return value


def _endpoint(value: Any) -> str:
    if _text(value) and not _ENDPOINT.fullmatch(value):
        raise ValueError("must be empty or an http(s)://host[:port] URL without a path")
    return value.rstrip("/")


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _replication(value: Any) -> str:
    if problem := replication_problem(_text(value)):
        raise ValueError(problem)
    if value[:2] != "00":
        raise ValueError("the units share one data center and rack: use 00N (N other units)")
    return value


def _volume_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    if value != 0 and not MIN_VOLUME_SIZE_MB <= value <= MAX_VOLUME_SIZE_MB:
        raise ValueError(
            f"must be 0 (sized from storage) or {MIN_VOLUME_SIZE_MB}-{MAX_VOLUME_SIZE_MB}"
        )
    return value


# option name -> (attribute, default, check)
_OPTIONS: dict[str, tuple[str, Any, Callable[[Any], Any]]] = {
    "region": ("region", "us-east-1", _region),
    "cluster-domain": ("cluster_domain", "cluster.local", _cluster_domain),
    "endpoint": ("endpoint", "", _endpoint),
    "volume-size-limit-mb": ("volume_size_limit_mb", 0, _volume_size),
    "legacy-s3-requirers": ("legacy_s3_requirers", False, _flag),
    "replication": ("replication", "001", _replication),
}


@dataclass(frozen=True)
class CharmConfig:
    """The seaweedfs charm's options, parsed and checked."""

    region: str = "us-east-1"
    cluster_domain: str = "cluster.local"
    endpoint: str = ""
    volume_size_limit_mb: int = 0
    legacy_s3_requirers: bool = False
    replication: str = "001"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CharmConfig:
        """Parse Juju config; a bad value raises InvalidConfigError naming the option."""
        values = {}
        for option, (attribute, default, check) in _OPTIONS.items():
            try:
                values[attribute] = check(raw.get(option, default))
            except ValueError as err:
                raise InvalidConfigError(f"invalid config {option!r}: {err}") from None
        return cls(**values)
