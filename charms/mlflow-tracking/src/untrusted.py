"""Checks for values another application wrote into a relation, before any of them is used.

Its source is ``common/untrusted.py``; the mlflow-tracking and cratedb charms
ship a copy (see ``common/README.md``). Every value read from relation data that reaches a
file, a URL, a command line or a statement passes one of these first: each
returns the value when it is what it must be and raises ``UntrustedValueError``
(a ValueError naming the field and the problem, never the value) otherwise.
Nothing here is clever: an allow-list per kind of value, no control
characters anywhere.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_HOST = 253
MAX_KEY = 256
MAX_SECRET = 1024
MAX_PATH = 512
MAX_PEM = 64 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
# What S3 keys are made of (AWS: letters, digits, / and +; MinIO and Ceph add a few).
_S3_KEY = re.compile(r"[A-Za-z0-9/+=._~@:-]+")
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_PATH = re.compile(r"[A-Za-z0-9._~=+@:/-]*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_USER = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_PEM_LINE = re.compile(r"-----(BEGIN|END) [A-Z0-9 ]+-----|[A-Za-z0-9+/=]{0,76}")


class UntrustedValueError(ValueError):
    """A relation value that is not what it must be (the message names the field)."""


def _refuse(field: str, problem: str) -> UntrustedValueError:
    return UntrustedValueError(f"{field} {problem}")


def text(field: str, value: object, limit: int = MAX_SECRET) -> str:
    """Any string without control characters, at most ``limit`` long."""
    if not isinstance(value, str):
        raise _refuse(field, "is not a string")
    if _CONTROL.search(value):
        raise _refuse(field, "contains control characters")
    if len(value) > limit:
        raise _refuse(field, f"is longer than {limit} characters")
    return value


def host(field: str, value: object) -> str:
    """A DNS name (a trailing dot allowed), an IPv4 address, or an IPv6 one (brackets allowed)."""
    name = text(field, value, MAX_HOST)
    if "%" in name:
        # ipaddress takes an IPv6 zone id (after %) of any characters: ? & = ] @.
        raise _refuse(field, "is not a host name (no zone ids)")
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return bare
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if not name or not all(_LABEL.fullmatch(label) for label in labels):
        raise _refuse(field, "is not a host name")
    return name


def port(field: str, value: object) -> int:
    """A TCP port, 1-65535, as an int or a string of digits."""
    if isinstance(value, bool):
        raise _refuse(field, "is not a TCP port")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        value = int(value)
    if not isinstance(value, int) or not 0 < value < 65536:
        raise _refuse(field, "is not a TCP port")
    return value


def host_port(field: str, value: object, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (IPv6 in brackets) as a checked pair."""
    raw = text(field, value, MAX_HOST + 7).strip()
    if raw.startswith("["):
        inside, bracket, rest = raw[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _refuse(field, "is not host:port")
        return host(field, inside), port(field, rest[1:]) if rest else default_port
    name, colon, number = raw.rpartition(":")
    if not colon:
        return host(field, raw), default_port
    return host(field, name), port(field, number)


def http_url(field: str, value: object) -> str:
    """An http(s) URL of a host and optional port and path: no user, query or fragment."""
    raw = text(field, value, MAX_HOST + 7 + MAX_PATH + 8)
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise _refuse(field, "is not an http(s) URL")
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise _refuse(field, "must not carry a user, a query or a fragment")
    host_port(field, parts.netloc, 443 if parts.scheme == "https" else 80)
    if not _PATH.fullmatch(parts.path) or ".." in parts.path.split("/"):
        raise _refuse(field, "has a path with characters a URL path must not have")
    return raw


def s3_key(field: str, value: object) -> str:
    """An S3 access or secret key: letters, digits and ``/+=._~@:-``."""
    key = text(field, value, MAX_KEY)
    if not _S3_KEY.fullmatch(key):
        raise _refuse(field, "has characters S3 keys do not have")
    return key


def region(field: str, value: object) -> str:
    """An S3 region name (``us-east-1``), or empty."""
    name = text(field, value, 63)
    if name and not _REGION.fullmatch(name):
        raise _refuse(field, "is not a region name")
    return name


def bucket(field: str, value: object) -> str:
    """An S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens."""
    name = text(field, value, 63)
    if not _BUCKET.fullmatch(name):
        raise _refuse(field, "is not a bucket name")
    return name


def object_path(field: str, value: object) -> str:
    """A key prefix in a bucket, without leading or trailing slashes or ``..`` segments."""
    path = text(field, value, MAX_PATH).strip("/")
    if not _PATH.fullmatch(path) or ".." in path.split("/"):
        raise _refuse(field, "has characters or segments a key prefix must not have")
    return path


def username(field: str, value: object) -> str:
    """A database user name: letters, digits and ``._@+-``."""
    name = text(field, value, 128)
    if not _USER.fullmatch(name):
        raise _refuse(field, "is not a user name")
    return name


def pem(field: str, value: object) -> str:
    """PEM text: BEGIN/END lines and base64 lines only."""
    if not isinstance(value, str) or len(value) > MAX_PEM:
        raise _refuse(field, "is not PEM text")
    lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n")]
    if not all(_PEM_LINE.fullmatch(line) for line in lines) or "-----BEGIN" not in value:
        raise _refuse(field, "is not PEM text")
    return value
