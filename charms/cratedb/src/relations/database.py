"""The ``database`` provider (cratedb_client, dpcharmlibs-interfaces): one user per relation.

Requests are read and checked here; the charm creates the user, grants it the
requested schema only, and answers with ``set_response`` (the library puts
username, password and uris in a Juju secret and speaks v0 or v1 as the
requirer does).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import secrets
import string
import warnings
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import ops

from constants import DATABASE_RELATION
from state import DatabaseRequest

logger = logging.getLogger(__name__)

SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED = {
    "sys": "is CrateDB's system schema",
    "information_schema": "is CrateDB's system schema",
    "pg_catalog": "is CrateDB's system schema",
    "blob": "is CrateDB's blob schema",
    "doc": "is the shared default schema; request a schema of its own",
}
_ALPHABET = string.ascii_letters + string.digits
# Written on a relation whose request is refused (another application owns the schema).
ERROR_FIELD = "error"
PASSWORD_LABEL_PREFIX = "client-password-"  # noqa: S105 (a label prefix)


@functools.cache
def _library() -> Any:
    """dpcharmlibs-interfaces, imported on first use.

    It costs every hook ~0.25 s (pydantic models built at import, measured by
    the benchmark), so the charm imports it only while a client is related.
    """
    with warnings.catch_warnings():
        # dpcharmlibs-interfaces 1.2.2 triggers two harmless pydantic warnings on import.
        warnings.simplefilter("ignore")
        import dpcharmlibs.interfaces as lib
    return lib


# What dpcharmlibs-interfaces raises on a request it cannot read (pydantic's
# ValidationError is a ValueError; a stale secret id is an ops ModelError).
UNREADABLE = (ops.ModelError, ValueError, TypeError, KeyError)


@functools.cache
def _provider_class() -> type:
    base: Any = _library().ResourceProviderEventHandler

    class ProviderHandler(base):
        """The library's provider, minus its hook errors on requests it cannot read.

        Its own relation-changed handler parses the requirer's databag; garbage
        there would fail the hook before this charm could report it (it does, in
        ``DatabaseProvider.read_requests``).
        """

        def _on_relation_changed_event(self, event: ops.RelationChangedEvent) -> None:
            try:
                super()._on_relation_changed_event(event)
            except UNREADABLE as err:
                logger.warning(
                    "unreadable request on relation %s: %s", event.relation.id, type(err).__name__
                )

    return ProviderHandler


def generate_password() -> str:
    """32 random letters and digits."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def schema_problem(schema: str) -> str | None:
    """Why ``schema`` cannot be served, or None."""
    if not SCHEMA.fullmatch(schema):
        return "must be a lowercase identifier (letters, digits, _; max 63)"
    if schema in RESERVED:
        return RESERVED[schema]
    return None


def crate_uri(user: str, password: str, host: str, port: int, schema: str) -> str:
    """``crate://USER:PASS@HOST:PORT/?schema=SCHEMA``, percent-encoded."""
    return (
        f"crate://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/?schema={schema}"
    )


class DatabaseProvider:
    """Reads client requests and answers them."""

    def __init__(self, charm: ops.CharmBase):
        self._charm = charm
        self.handler: Any = None
        if charm.model.relations[DATABASE_RELATION]:
            lib = _library()
            self.handler = _provider_class()(charm, DATABASE_RELATION, lib.RequirerCommonModel)

    def events(self) -> list[ops.BoundEvent]:
        """The library's request event, when a client is related."""
        return [self.handler.on.resource_requested] if self.handler is not None else []

    def relations(self) -> list[ops.Relation]:
        """Every client relation."""
        return list(self._charm.model.relations[DATABASE_RELATION])

    def read_requests(self) -> list[DatabaseRequest]:
        """Every relation's requests, each checked alone (who owns a schema: ``ownership``)."""
        found: list[DatabaseRequest] = []
        for relation in sorted(self.relations(), key=lambda r: r.id):
            app = relation.app.name if relation.app else "?"
            try:
                requests = list(self.handler.requests(relation))
            except UNREADABLE as err:
                logger.warning(
                    "unreadable request on relation %s: %s", relation.id, type(err).__name__
                )
                found.append(
                    DatabaseRequest(
                        relation.id, app, "", problem="sent a request this charm cannot read"
                    )
                )
                continue
            for request in requests:
                schema = str(getattr(request, "resource", "") or "")
                problem = None
                if getattr(request, "entity_type", None):
                    problem = "entity (user/group) requests are not supported; request a schema"
                elif (reason := schema_problem(schema)) is not None:
                    problem = f"schema {schema[:40]!r} {reason}"
                found.append(
                    DatabaseRequest(
                        relation.id,
                        app,
                        schema,
                        request_id=getattr(request, "request_id", None),
                        salt=str(getattr(request, "salt", "") or ""),
                        problem=problem,
                    )
                )
        return found

    def refuse(self, request: DatabaseRequest, why: str) -> None:
        """Say on the relation why its request is not served (a plain, non-secret field)."""
        relation = self._charm.model.get_relation(DATABASE_RELATION, request.relation_id)
        if relation is not None:
            relation.data[self._charm.app][ERROR_FIELD] = f"schema {request.schema!r}: {why}"

    def clear_refusal(self, relation_id: int) -> None:
        """Remove an earlier refusal from a relation that is served now."""
        relation = self._charm.model.get_relation(DATABASE_RELATION, relation_id)
        if relation is not None:
            relation.data[self._charm.app].pop(ERROR_FIELD, None)

    def answered(self, request: DatabaseRequest, tls_ca: str | None = None) -> bool:
        """True when this request already has credentials (and the TLS fields of now)."""
        relation = self._charm.model.get_relation(DATABASE_RELATION, request.relation_id)
        if relation is None:
            return False
        try:
            responses = self.handler.responses(relation, _library().ResourceProviderModel)
        except UNREADABLE:
            # An unreadable own databag means: answer again.
            return False
        return any(
            r.resource == request.schema and r.secret_user and bool(r.tls) == (tls_ca is not None)
            for r in responses
        )

    def respond(
        self,
        request: DatabaseRequest,
        password: str,
        endpoint_host: str,
        port: int,
        version: str,
        tls_ca: str | None = None,
    ) -> None:
        """Answer with the user's credentials (in a secret) and where to connect.

        ``tls_ca``: the CA clients must trust; the library sends it with
        ``tls: true`` in the relation's TLS secret.
        """
        self.handler.set_response(
            request.relation_id,
            _library().ResourceProviderModel(
                salt=request.salt,
                request_id=request.request_id,
                resource=request.schema,
                username=request.username,
                password=password,
                endpoints=f"{endpoint_host}:{port}",
                uris=crate_uri(request.username, password, endpoint_host, port, request.schema),
                version=version or None,
                tls=True if tls_ca is not None else None,
                tls_ca=tls_ca,
            ),
        )

    @staticmethod
    def gone(known: Iterable[int], live: Iterable[int]) -> list[int]:
        """Relation ids whose users must be dropped."""
        return sorted(set(known) - set(live))


class ClientPasswords:
    """One password per client relation, in an app-owned Juju secret the leader keeps.

    A relation's user is one CrateDB user whatever number of schemas it asks
    for, so every answer on that relation must carry the same password.
    """

    def __init__(self, model: ops.Model):
        self._model = model

    @staticmethod
    def _label(relation_id: int) -> str:
        return f"{PASSWORD_LABEL_PREFIX}{relation_id}"

    def get(self, relation_id: int) -> str | None:
        """The relation's password; None before it has one."""
        try:
            secret = self._model.get_secret(label=self._label(relation_id))
            return secret.get_content(refresh=True)["password"]
        except (ops.SecretNotFoundError, KeyError):
            return None

    def renew(self, relation_id: int) -> str:
        """A new password for the relation, kept (the caller sets it on the user)."""
        password = generate_password()
        try:
            secret = self._model.get_secret(label=self._label(relation_id))
        except ops.SecretNotFoundError:
            self._model.app.add_secret(
                {"password": password},
                label=self._label(relation_id),
                description=f"CrateDB password of relation {relation_id}'s user",
            )
        else:
            secret.set_content({"password": password})
        return password

    def remove(self, relation_id: int) -> None:
        """Forget the password of a relation whose user is dropped."""
        with contextlib.suppress(ops.SecretNotFoundError):
            self._model.get_secret(label=self._label(relation_id)).remove_all_revisions()
