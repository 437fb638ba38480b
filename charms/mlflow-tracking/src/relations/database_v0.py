"""The legacy (v0) database protocol, requirer side: what today's database charms answer.

Every database charm published today (postgresql-k8s 14 and 16, mysql-k8s
8.0) is a v0 provider: ``charms.data_platform_libs.v0.data_interfaces``
``DatabaseProvides``. No PyPI library implements the v0 *requirer* (the
dpcharmlibs-interfaces requirer writes and reads v1 only), so this module
writes the request and reads the answer, beside the v1 handler in
``database.py``. Both requests sit in our databag at once; whichever answer
arrives is read.

Fields, their direction and their source (data-platform-libs v0
``data_interfaces.py`` LIBPATCH 41 as mysql-k8s pins it and 58-59 as
postgresql-k8s pins it; postgresql-k8s ``src/relations/postgresql_provider.py``,
mysql-k8s ``src/relations/mysql_provider.py``):

requirer -> provider (this application's databag, written by the leader):
    ``database``           the database to create. A v0 provider acts only
                           when this key is *added*; nothing else triggers it.
    ``requested-secrets``  JSON list of fields the provider must put in Juju
                           secrets rather than in plain data. Without it the
                           provider writes ``username`` and ``password`` in
                           clear, so it is written together with ``database``.

provider -> requirer (the provider application's databag):
    ``endpoints``          ``host:port[,host:port]`` of the primary
                           (mysql-k8s: an FQDN with a trailing dot).
    ``read-only-endpoints`` replicas (unused here).
    ``database``           the database it created.
    ``version``            the database *engine's* version (``14.15``): in v0
                           this is not a protocol tag. A v1 provider writes
                           ``v1`` here instead, which is how the two are told apart.
    ``secret-user``        Juju secret id; content ``username``, ``password``
                           and, on newer providers, ``uris``.
    ``secret-tls``         Juju secret id; content ``tls`` (``"True"`` /
                           ``"False"``) and ``tls-ca`` (PEM); absent when the
                           provider has no TLS (mysql-k8s never writes it).
    ``data``               the provider's copy of our databag, for its own
                           change tracking (ignored).
    ``username``/``password`` in plain data: only from a provider that ignored
                           ``requested-secrets``; refused here.

Rotation: the provider writes a new revision of ``secret-user``; Juju sends
``secret-changed`` and the next read (``refresh=True``) sees it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

DATABASE_FIELD = "database"
REQUESTED_SECRETS_FIELD = "requested-secrets"
# What data-platform-libs' own v0 requirer asks to receive in secrets.
REQUESTED_SECRETS = ("username", "password", "tls", "tls-ca", "uris", "read-only-uris")

ENDPOINTS_FIELD = "endpoints"
VERSION_FIELD = "version"
SECRET_USER_FIELD = "secret-user"  # noqa: S105 (a field name)
SECRET_TLS_FIELD = "secret-tls"  # noqa: S105 (a field name)
PLAIN_CREDENTIAL_FIELDS = ("username", "password")

V1_TAG = "v1"


def request_fields(database: str) -> dict[str, str]:
    """The v0 request for ``database``, as this application's databag carries it."""
    return {
        DATABASE_FIELD: database,
        REQUESTED_SECRETS_FIELD: json.dumps(list(REQUESTED_SECRETS)),
    }


def requested_database(local: Mapping[str, str]) -> str | None:
    """The database our v0 request named, if we wrote one."""
    return local.get(DATABASE_FIELD) or None


def speaks_v1(remote: Mapping[str, str]) -> bool:
    """True when the provider's databag carries the v1 tag."""
    return remote.get(VERSION_FIELD) == V1_TAG


class PlainCredentialsError(ValueError):
    """The provider put credentials in plain relation data."""


@dataclass(frozen=True)
class V0Answer:
    """A v0 provider's flat answer, before its secrets are read."""

    endpoints: str
    user_secret_id: str
    tls_secret_id: str | None = None
    engine_version: str = ""


def parse_answer(remote: Mapping[str, str]) -> V0Answer | None:
    """The answer in a v0 provider's databag; None while it has not answered.

    Raises PlainCredentialsError when a password sits in plain data: this
    charm takes credentials from Juju secrets only.
    """
    if any(remote.get(name) for name in PLAIN_CREDENTIAL_FIELDS):
        raise PlainCredentialsError("credentials in plain relation data")
    secret_id = remote.get(SECRET_USER_FIELD, "")
    endpoints = remote.get(ENDPOINTS_FIELD, "")
    if not (secret_id and endpoints):
        return None
    return V0Answer(
        endpoints=endpoints,
        user_secret_id=secret_id,
        tls_secret_id=remote.get(SECRET_TLS_FIELD) or None,
        engine_version=remote.get(VERSION_FIELD, ""),
    )


@dataclass(frozen=True)
class Credentials:
    """What ``secret-user`` and ``secret-tls`` hold. ``repr`` hides the password."""

    username: str
    password: str = field(repr=False)
    uris: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca: str = ""


def credentials(user: Mapping[str, str], tls: Mapping[str, str] | None = None) -> Credentials:
    """The typed content of the provider's secrets (TLS flag: ``"True"`` / ``"False"``)."""
    tls = tls or {}
    return Credentials(
        username=user.get("username", ""),
        password=user.get("password", ""),
        uris=user.get("uris") or None,
        tls=str(tls.get("tls", "")).lower() == "true",
        tls_ca=tls.get("tls-ca", ""),
    )
