"""The metadata-store relations: cratedb, postgresql, mysql, in both protocol versions.

Each relation carries two requests for one resource, the database
(PostgreSQL, MySQL) or schema (CrateDB) named by ``database-name``: the v1
request (dpcharmlibs-interfaces' requirer handler, one per endpoint) and the
v0 request (``database_v0``) that every database charm published today
answers. Whichever answer arrives is read: a provider's ``version`` field says
``v1`` for a v1 answer and holds the engine's version in a v0 one. The
reconcile reads the current answer of each relation with ``read()``; the
libraries' own events only trigger the reconcile.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ops

import untrusted
from constants import CRATEDB_RELATION, DB_CA_FILE, MYSQL_RELATION, POSTGRESQL_RELATION
from relations import database_v0 as v0
from state import MetadataStore, StoreKind
from workload import build_store

logger = logging.getLogger(__name__)

KINDS = {
    CRATEDB_RELATION: StoreKind.CRATEDB,
    POSTGRESQL_RELATION: StoreKind.POSTGRESQL,
    MYSQL_RELATION: StoreKind.MYSQL,
}

# A plain field the cratedb charm writes on a relation whose request it refuses.
REFUSAL_FIELD = "error"

# What dpcharmlibs-interfaces raises on an answer it cannot read: a legacy or
# malformed databag (pydantic's ValidationError is a ValueError), a stale
# secret id (ops).
UNREADABLE = (ops.ModelError, ValueError, TypeError, KeyError)


def _speaks_v1(relation: ops.Relation) -> bool:
    remote = relation.data[relation.app] if relation.app else {}
    return not remote or v0.speaks_v1(remote)


@functools.cache
def _library() -> Any:
    """dpcharmlibs-interfaces, imported on first use.

    It costs every hook ~0.25 s (pydantic models built at import, measured by
    the benchmark), so the charm imports it only while a database is related.
    """
    with warnings.catch_warnings():
        # dpcharmlibs-interfaces 1.2.2 triggers two harmless pydantic warnings on import.
        warnings.simplefilter("ignore")
        import dpcharmlibs.interfaces as lib
    return lib


@functools.cache
def _handler_class() -> type:
    base: Any = _library().ResourceRequirerEventHandler

    class RequirerHandler(base):
        """The library's requirer, minus its hook errors on answers it cannot read.

        dpcharmlibs-interfaces 1.2.2 raises from its own relation-changed and
        secret-changed handlers on a legacy (v0) provider, a malformed
        ``requests`` list or a stale secret id: the hook would fail before this
        charm could set a status. Here such input is logged;
        ``DatabaseRelations.read`` reports it.
        """

        def _on_relation_changed_event(self, event: ops.RelationChangedEvent) -> None:
            if not _speaks_v1(event.relation):
                # A v0 answer: DatabaseRelations.read takes it from here.
                return
            try:
                super()._on_relation_changed_event(event)
            except UNREADABLE as err:
                logger.warning(
                    "unreadable database answer on relation %s: %s",
                    event.relation.id,
                    type(err).__name__,
                )

        def _on_secret_changed_event(self, event: ops.SecretChangedEvent) -> None:
            try:
                super()._on_secret_changed_event(event)
            except UNREADABLE as err:
                logger.warning("unreadable database secret change: %s", type(err).__name__)

    return RequirerHandler


@dataclass(frozen=True)
class StoreReading:
    """What one related database offers right now."""

    endpoint: str
    app: str
    store: MetadataStore | None = None
    waiting: str | None = None
    problem: str | None = None


class DatabaseRelations:
    """The three metadata-store endpoints, asking for ``database`` and reading the answers."""

    def __init__(self, charm: ops.CharmBase, database: str):
        self._charm = charm
        self.database = database
        # A fixed salt keeps the request id stable across hooks and models
        # (a random one makes a cross-model provider see a new request).
        salt = hashlib.sha256(f"{charm.app.name}:{database}".encode()).hexdigest()[:16]
        self._salt = salt
        # Only endpoints with a relation get a handler (see _library).
        self.handlers: dict[str, Any] = {}
        for endpoint in KINDS:
            if charm.model.relations[endpoint]:
                lib = _library()
                self.handlers[endpoint] = _handler_class()(
                    charm,
                    relation_name=endpoint,
                    requests=[lib.RequirerCommonModel(resource=database, salt=salt)],
                    response_model=lib.ResourceProviderModel,
                )

    def events(self) -> list[ops.BoundEvent]:
        """Every library event that means "the answer may have changed"."""
        bound: list[ops.BoundEvent] = []
        for handler in self.handlers.values():
            bound += [
                handler.on.resource_created,
                handler.on.endpoints_changed,
                handler.on.authentication_updated,
            ]
        return bound

    def related(self) -> list[ops.Relation]:
        """Every metadata-store relation, across the three endpoints."""
        return [rel for endpoint in KINDS for rel in self._charm.model.relations[endpoint]]

    def ensure_requests(self) -> None:
        """Write both requests, v1 and v0, where they are missing (leader only).

        The v1 library writes its request on relation-created only; a relation
        that existed before an upgrade, or a leader change at the wrong
        moment, would otherwise never be asked anything. The v0 request
        (``database`` + ``requested-secrets``) is written once, in one go:
        a v0 provider acts when ``database`` appears and reads
        ``requested-secrets`` at that moment.
        """
        if not self._charm.unit.is_leader():
            return
        for rel in self.related():
            local = rel.data[self._charm.app]
            if "requests" not in local:
                lib = _library()
                request = lib.RequirerCommonModel(resource=self.database, salt=self._salt)
                request.request_id = lib.gen_hash(request.resource, request.salt)
                lib.write_model(
                    lib.OpsRelationRepository(self._charm.model, rel, self._charm.app),
                    lib.RequirerDataContractV1[lib.RequirerCommonModel](requests=[request]),
                )
                logger.info("wrote the v1 database request on relation %s", rel.id)
            if v0.requested_database(local) is None:
                local.update(v0.request_fields(self.database))
                logger.info("wrote the v0 database request on relation %s", rel.id)

    def _asked_for_another_database(self, relation: ops.Relation) -> bool:
        # Only the leader can read its own application databag.
        if not self._charm.unit.is_leader():
            return False
        local = relation.data[self._charm.app]
        try:
            sent = json.loads(local.get("requests", "[]"))
        except json.JSONDecodeError:
            sent = []
        resources = {r.get("resource") for r in sent if isinstance(r, dict)}
        if named := v0.requested_database(local):
            resources.add(named)
        return bool(resources) and self.database not in resources

    def read(self, relation: ops.Relation) -> StoreReading:
        """The store one relation offers, or why it offers none yet."""
        endpoint = relation.name
        app = relation.app.name if relation.app else "?"
        remote = relation.data[relation.app] if relation.app else {}
        if not remote:
            return StoreReading(endpoint, app, waiting=f"waiting for {app} to answer")
        if refusal := remote.get(REFUSAL_FIELD):
            # The cratedb charm says why it does not serve the request (another owns it).
            try:
                why = untrusted.text(REFUSAL_FIELD, refusal, 300)
            except untrusted.UntrustedValueError:
                why = "(an unreadable reason)"
            return StoreReading(endpoint, app, problem=f"{app} refused the request: {why}")
        if self._asked_for_another_database(relation):
            return StoreReading(
                endpoint,
                app,
                problem=(
                    f"database-name changed to {self.database!r} after relating; "
                    f"remove and re-add the {endpoint} relation to switch"
                ),
            )
        if v0.speaks_v1(remote):
            answer = self._read_v1(relation, app)
        else:
            answer = self._read_v0(relation, app, remote)
        if isinstance(answer, StoreReading):
            return answer
        try:
            store = build_store(
                KINDS[endpoint],
                self.database,
                answer.username,
                answer.password,
                answer.endpoints,
                answer.uris,
                tls=answer.tls,
                ca_chain=answer.tls_ca,
                ca_file=DB_CA_FILE,
            )
        except untrusted.UntrustedValueError as err:
            return StoreReading(endpoint, app, problem=f"{app} sent an unusable answer: {err}")
        except ValueError as err:
            return StoreReading(endpoint, app, waiting=f"{app}: {err}")
        return StoreReading(endpoint, app, store=store)

    def _read_v1(self, relation: ops.Relation, app: str) -> Answer | StoreReading:
        endpoint = relation.name
        handler = self.handlers.get(endpoint)
        if handler is None:
            return StoreReading(endpoint, app, waiting=f"waiting for {app} to answer")
        try:
            responses = handler.interface.build_model(relation.id, component=relation.app).requests
        except ops.SecretNotFoundError:
            return StoreReading(endpoint, app, waiting=f"waiting for {app}'s credentials secret")
        except UNREADABLE:
            return StoreReading(endpoint, app, problem=_unreadable(app, endpoint))
        response = next((r for r in responses if r.resource == self.database), None)
        if response is None or response.secret_user is None:
            return StoreReading(
                endpoint, app, waiting=f"waiting for {app} to create {self.database!r}"
            )
        return Answer(
            endpoints=response.endpoints,
            username=response.username,
            password=response.password,
            uris=response.uris,
            tls=bool(response.tls),
            tls_ca=response.tls_ca or "",
        )

    def _read_v0(
        self, relation: ops.Relation, app: str, remote: Mapping[str, str]
    ) -> Answer | StoreReading:
        endpoint = relation.name
        try:
            parsed = v0.parse_answer(remote)
        except v0.PlainCredentialsError:
            return StoreReading(
                endpoint,
                app,
                problem=(
                    f"{app} sent the password in plain relation data, which this charm "
                    f"refuses; upgrade {app} to a revision that uses Juju secrets"
                ),
            )
        if parsed is None:
            return StoreReading(
                endpoint, app, waiting=f"waiting for {app} to create {self.database!r}"
            )
        try:
            user = self._charm.model.get_secret(id=parsed.user_secret_id)
            tls = (
                self._charm.model.get_secret(id=parsed.tls_secret_id)
                if parsed.tls_secret_id
                else None
            )
            # refresh: a rotated password is read as soon as secret-changed says so.
            creds = v0.credentials(
                user.get_content(refresh=True), tls.get_content(refresh=True) if tls else None
            )
        except ops.SecretNotFoundError:
            return StoreReading(endpoint, app, waiting=f"waiting for {app}'s credentials secret")
        except ops.ModelError:
            return StoreReading(endpoint, app, problem=_unreadable(app, endpoint))
        return Answer(
            endpoints=parsed.endpoints,
            username=creds.username,
            password=creds.password,
            uris=creds.uris,
            tls=creds.tls,
            tls_ca=creds.tls_ca,
        )


def _unreadable(app: str, endpoint: str) -> str:
    return (
        f"{app} sent an answer this charm cannot read; see juju debug-log, then "
        f"remove and re-add the {endpoint} relation"
    )


@dataclass(frozen=True)
class Answer:
    """A provider's answer, whichever protocol version carried it. Holds credentials."""

    endpoints: str | None
    username: str | None
    password: str | None = field(repr=False)
    uris: str | None = field(repr=False)
    tls: bool = False
    tls_ca: str = ""
