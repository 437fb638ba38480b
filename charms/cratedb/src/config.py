"""Typed, validated view of the charm's config options.

A frozen dataclass with explicit checks rather than a pydantic model: pydantic
costs every hook ~0.1 s of imports (measured by the benchmark's hook-cost
figures) and seven options do not need it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exceptions import InvalidConfigError
from in_container.schedule import parse_retention, parse_schedule
from workload import parse_heap

_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _heap(value: Any) -> str:
    if _text(value):
        parse_heap(value)
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _domain(value: Any) -> str:
    if not _DNS_NAME.fullmatch(_text(value)):
        raise ValueError("must be a DNS domain such as cluster.local")
    return value


def _bucket(value: Any) -> str:
    if _text(value) and not _BUCKET.fullmatch(value):
        raise ValueError("must be empty or 3-63 lowercase letters, digits, hyphens")
    return value


def _path(value: Any) -> str:
    value = _text(value).strip("/")
    if len(value) > 512 or ".." in value.split("/") or any(ord(c) < 32 for c in value):
        raise ValueError("must be a relative key prefix without '..' or control characters")
    return value


def _schedule(value: Any) -> str:
    parse_schedule(_text(value))
    return value.strip()


def _retention(value: Any) -> str:
    parse_retention(_text(value))
    return value.strip()


# option name -> (attribute, default, check)
_OPTIONS: dict[str, tuple[str, Any, Callable[[Any], Any]]] = {
    "heap-size": ("heap_size", "", _heap),
    "allow-mmap": ("allow_mmap", False, _flag),
    "cluster-domain": ("cluster_domain", "cluster.local", _domain),
    "backup-bucket": ("backup_bucket", "", _bucket),
    "backup-path": ("backup_path", "", _path),
    "backup-schedule": ("backup_schedule", "", _schedule),
    "backup-retention": ("backup_retention", "", _retention),
}


@dataclass(frozen=True)
class CharmConfig:
    """The cratedb charm's options, parsed and checked."""

    heap_size: str = ""
    allow_mmap: bool = False
    cluster_domain: str = "cluster.local"
    backup_bucket: str = ""
    backup_path: str = ""
    # Checked by the rules the runner uses (in_container/schedule.py); "" is off.
    backup_schedule: str = ""
    backup_retention: str = ""

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
