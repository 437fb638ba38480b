"""Typed snapshot of what config, relations and secrets say.

Plain frozen models, no ops: the charm builds them at the edge (``s3.py``,
``config.py``) and everything inside works with them.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

_ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_KEY_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Credentials:
    """An S3 key pair. ``repr`` never shows the secret key."""

    access_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> Credentials:
        """A fresh random key pair, shaped like AWS keys (20 and 40 characters)."""
        return cls(
            access_key="".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(20)),
            secret_key="".join(secrets.choice(_SECRET_KEY_ALPHABET) for _ in range(40)),
        )

    def as_secret_content(self) -> dict[str, str]:
        """The content of the Juju secret that holds this key pair."""
        return {"access-key": self.access_key, "secret-key": self.secret_key}

    @classmethod
    def from_secret_content(cls, content: dict[str, str]) -> Credentials:
        """Read a key pair back from a Juju secret's content."""
        return cls(access_key=content["access-key"], secret_key=content["secret-key"])


@dataclass(frozen=True)
class ClientIdentity:
    """One related application's SeaweedFS identity, scoped to one bucket."""

    name: str
    bucket: str
    credentials: Credentials


@dataclass(frozen=True)
class BucketRequest:
    """What one ``s3-credentials`` relation asked for, once read and checked."""

    relation_id: int
    app: str
    bucket: str
    path: str
    problem: str | None = None
    # Legacy (v0) requirer: its keys travel in plain relation data.
    legacy: bool = False

    @property
    def valid(self) -> bool:
        """True when the request can be served."""
        return self.problem is None
