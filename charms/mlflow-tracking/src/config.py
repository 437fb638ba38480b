"""Typed, validated view of the charm's config options.

A frozen dataclass with explicit checks rather than a pydantic model: pydantic
costs every hook ~0.1 s of imports (measured by the benchmark's hook-cost
figures) and twelve options do not need it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from auth import Permission
from exceptions import InvalidConfigError

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_HOST_PATTERN = re.compile(r"[A-Za-z0-9*.:\[\]-]{1,253}")
_LABEL_SELECTOR = re.compile(
    r"([A-Za-z0-9./_-]{1,253})(=[A-Za-z0-9._-]{0,63})?"
    r"(,([A-Za-z0-9./_-]{1,253})(=[A-Za-z0-9._-]{0,63})?)*"
)
RESERVED_SCHEMAS = {
    "sys",
    "information_schema",
    "pg_catalog",
    "blob",
    "mysql",
    "performance_schema",
}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _bucket(value: Any) -> str:
    if _text(value) and not _BUCKET.fullmatch(value):
        raise ValueError(
            "must be empty (the provider chooses) or 3-63 lowercase letters, digits, hyphens"
        )
    return value


def _path(value: Any) -> str:
    value = _text(value).strip("/")
    if len(value) > 512 or ".." in value.split("/") or any(ord(c) < 32 for c in value):
        raise ValueError("must be a relative key prefix without '..' or control characters")
    return value


def _database(value: Any) -> str:
    if not _IDENTIFIER.fullmatch(_text(value)):
        raise ValueError("must be a lowercase identifier (letters, digits, _; max 63)")
    if value in RESERVED_SCHEMAS:
        raise ValueError(f"{value!r} is reserved by the database")
    return value


def _workers(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise ValueError("must be between 1 and 32")
    return value


def _allowed_hosts(value: Any) -> str:
    for host in filter(None, (h.strip() for h in _text(value).split(","))):
        if not _HOST_PATTERN.fullmatch(host):
            raise ValueError(f"{host[:40]!r} is not a host name or pattern")
    return value


def _cluster_domain(value: Any) -> str:
    if not _DNS_NAME.fullmatch(_text(value)):
        raise ValueError("must be a DNS domain such as cluster.local")
    return value


def _cache_seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3600:
        raise ValueError("must be between 0 (no cache) and 3600 seconds")
    return value


# MLflow's own duration format for ``mlflow gc --older-than``: #d#h#m#s.
_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?"
)
_SECONDS = (86400, 3600, 60, 1)


def duration_seconds(value: str) -> float:
    """Seconds in a ``#d#h#m#s`` duration ("30d", "1d12h", "90m"); ValueError otherwise."""
    match = _DURATION.fullmatch(value.strip())
    if not value.strip() or match is None:
        raise ValueError
    return sum(float(n) * unit for n, unit in zip(match.groups(), _SECONDS, strict=True) if n)


def _gc_interval(value: Any) -> float:
    text = _text(value)
    if text.strip() == "0":
        return 0.0
    try:
        seconds = duration_seconds(text)
    except ValueError:
        raise ValueError("must be 0 (off) or a duration such as 24h, 1d or 30m") from None
    if seconds < 60:
        raise ValueError("must be 0 (off) or at least 1m")
    return seconds


def _older_than(value: Any) -> str:
    try:
        duration_seconds(_text(value))
    except ValueError:
        raise ValueError("must be a duration such as 30d, 12h or 0s") from None
    return value.strip()


def _permission(value: Any) -> Permission:
    try:
        return Permission(_text(value))
    except ValueError:
        raise ValueError(f"must be one of {', '.join(p.value for p in Permission)}") from None


def _selector(value: Any) -> str:
    if _text(value) and not _LABEL_SELECTOR.fullmatch(value):
        raise ValueError("must be a label selector such as user.kubeflow.org/enabled=true")
    return value


# option name -> (attribute, default, check)
_OPTIONS: dict[str, tuple[str, Any, Callable[[Any], Any]]] = {
    "serve-artifacts": ("serve_artifacts", True, _flag),
    "bucket": ("bucket", "", _bucket),
    "bucket-path": ("bucket_path", "", _path),
    "database-name": ("database_name", "mlflow", _database),
    "workers": ("workers", 2, _workers),
    "enable-job-execution": ("enable_job_execution", False, _flag),
    "allowed-hosts": ("allowed_hosts", "", _allowed_hosts),
    "cluster-domain": ("cluster_domain", "cluster.local", _cluster_domain),
    "pod-defaults-namespace-selector": ("pod_defaults_namespace_selector", "", _selector),
    "auth": ("auth", True, _flag),
    "auth-default-permission": ("auth_default_permission", Permission.READ, _permission),
    "auth-cache-seconds": ("auth_cache_seconds", 30, _cache_seconds),
    "gc-interval": ("gc_interval_seconds", "24h", _gc_interval),
    "gc-older-than": ("gc_older_than", "30d", _older_than),
}


@dataclass(frozen=True)
class CharmConfig:
    """The mlflow-tracking charm's options, parsed and checked."""

    serve_artifacts: bool = True
    bucket: str = ""
    bucket_path: str = ""
    database_name: str = "mlflow"
    workers: int = 2
    enable_job_execution: bool = False
    allowed_hosts: str = ""
    cluster_domain: str = "cluster.local"
    pod_defaults_namespace_selector: str = ""
    auth: bool = True
    auth_default_permission: Permission = Permission.READ
    auth_cache_seconds: int = 30
    gc_interval_seconds: float = 86400.0
    gc_older_than: str = "30d"

    @property
    def extra_allowed_hosts(self) -> tuple[str, ...]:
        """Hosts from ``allowed-hosts``, split and trimmed."""
        return tuple(h.strip() for h in self.allowed_hosts.split(",") if h.strip())

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
