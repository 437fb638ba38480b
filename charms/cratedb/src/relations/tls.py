"""HTTPS and PostgreSQL-wire SSL from the ``certificates`` relation (``tls-certificates``).

``charmlibs-interfaces-tls-certificates`` speaks the protocol (each unit's key
in a Juju secret, its CSR, renewal before expiry). CrateDB reads a keystore,
not PEM files: ``keystore`` builds a PKCS#12 one with ``cryptography``. Its
password is the unit's own Juju secret and never changes, because CrateDB
reloads a changed keystore (every ``TLS_POLL_INTERVAL``) with the password it
started with: a renewal needs no restart.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import ops
from charmlibs.interfaces.tls_certificates import (
    CertificateRequestAttributes,
    Mode,
    TLSCertificatesRequiresV4,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from constants import KEYSTORE_SECRET_LABEL, TLS_RELATION

_CN_MAX = 64  # X.509's limit on a common name
_PASSWORD_KEY = "keystore-password"  # noqa: S105 (a key name)


@dataclass(frozen=True)
class NodeTls:
    """The node's certificate chain (leaf first), its key, and the CA clients trust."""

    chain: tuple[str, ...]
    private_key: str
    ca: str

    def digest(self, password: str) -> str:
        """Changes when the keystore built from this and ``password`` would."""
        text = "\n".join((*self.chain, self.private_key, self.ca, password))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def certificate_request(
    app: str, model: str, cluster_domain: str, unit_address: str
) -> CertificateRequestAttributes:
    """The service's names (what clients use), and the unit's own stable name."""
    service = f"{app}.{model}.svc.{cluster_domain}"
    names = (app, f"{app}.{model}", f"{app}.{model}.svc", service, unit_address)
    return CertificateRequestAttributes(
        common_name=service if len(service) <= _CN_MAX else app[:_CN_MAX],
        sans_dns=frozenset(n for n in names if n),
    )


def keystore(tls: NodeTls, password: str) -> bytes:
    """A PKCS#12 keystore with the node's key and chain, as CrateDB's JVM reads it."""
    key = serialization.load_pem_private_key(tls.private_key.encode(), password=None)
    leaf, *rest = (x509.load_pem_x509_certificate(c.encode()) for c in tls.chain)
    return pkcs12.serialize_key_and_certificates(
        name=b"cratedb",
        key=key,  # type: ignore[arg-type]
        cert=leaf,
        cas=rest or None,
        encryption_algorithm=serialization.BestAvailableEncryption(password.encode()),
    )


class TlsRelation:
    """The unit's certificate from the ``certificates`` relation, and its keystore password."""

    def __init__(self, charm: ops.CharmBase, request: CertificateRequestAttributes):
        self._charm = charm
        self._request = request
        self._lib = TLSCertificatesRequiresV4(
            charm, TLS_RELATION, certificate_requests=[request], mode=Mode.UNIT
        )

    def events(self) -> list[ops.BoundEvent]:
        """Events after which the certificate may be new, or gone."""
        on = self._charm.on[TLS_RELATION]
        return [
            self._lib.on.certificate_available,
            on.relation_created,
            on.relation_changed,
            on.relation_broken,
        ]

    def wanted(self) -> bool:
        """True when the relation exists: clients must connect encrypted."""
        relation = self._charm.model.get_relation(TLS_RELATION)
        return relation is not None and relation.app is not None

    def provider(self) -> str:
        """The application that signs the certificates."""
        relation = self._charm.model.get_relation(TLS_RELATION)
        return relation.app.name if relation is not None and relation.app else TLS_RELATION

    def issued(self) -> NodeTls | None:
        """The certificate issued for this unit's request, None until there is one."""
        provided, key = self._lib.get_assigned_certificate(self._request)
        if provided is None or key is None:
            return None
        leaf = str(provided.certificate).strip()
        rest = [str(c).strip() for c in provided.chain if str(c).strip() != leaf]
        return NodeTls(
            chain=tuple(dict.fromkeys([leaf, *rest])),
            private_key=str(key),
            ca=str(provided.ca).strip() + "\n",
        )

    def keystore_password(self) -> str:
        """The unit's keystore password, created once (a unit-owned Juju secret)."""
        try:
            secret = self._charm.model.get_secret(label=KEYSTORE_SECRET_LABEL)
            return secret.get_content(refresh=True)[_PASSWORD_KEY]
        except ops.SecretNotFoundError:
            password = secrets.token_urlsafe(24)
            self._charm.unit.add_secret({_PASSWORD_KEY: password}, label=KEYSTORE_SECRET_LABEL)
            return password
