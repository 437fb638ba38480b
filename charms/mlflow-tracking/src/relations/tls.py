"""HTTPS for the server, from the ``certificates`` relation (interface ``tls-certificates``).

``charmlibs-interfaces-tls-certificates`` speaks the protocol: it keeps each
unit's private key in a Juju secret, sends the unit's CSR, and asks for a new
certificate before the current one expires (90% of its validity). This module
says what to ask for (the service names notebooks use) and reads what came
back as one typed ``ServerTls``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import ops
from charmlibs.interfaces.tls_certificates import (
    CertificateRequestAttributes,
    Mode,
    TLSCertificatesRequiresV4,
)

from constants import TLS_RELATION

# X.509 limits a common name to 64 characters.
_CN_MAX = 64


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate (leaf, then chain), its private key, and the CA clients trust."""

    certificate: str
    private_key: str
    ca: str

    @property
    def digest(self) -> str:
        """Changes whenever any of the three does (a renewal restarts what cannot reload)."""
        text = "\n".join((self.certificate, self.private_key, self.ca))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TlsReading:
    """What the relation gives: nothing related, a certificate, or why not yet."""

    related: bool = False
    tls: ServerTls | None = None
    waiting: str = ""


def service_names(app: str, model: str, cluster_domain: str) -> tuple[str, ...]:
    """Every name the Kubernetes service of ``app`` answers to."""
    return (app, f"{app}.{model}", f"{app}.{model}.svc", f"{app}.{model}.svc.{cluster_domain}")


def certificate_request(app: str, model: str, cluster_domain: str) -> CertificateRequestAttributes:
    """What the unit asks for: the service's names (the ones in the tracking URI)."""
    names = service_names(app, model, cluster_domain)
    common_name = next((n for n in reversed(names) if len(n) <= _CN_MAX), app[:_CN_MAX])
    return CertificateRequestAttributes(common_name=common_name, sans_dns=frozenset(names))


def pem_chain(leaf: str, chain: list[str]) -> str:
    """The file a server presents: the leaf first, then the rest of the chain, once each."""
    ordered = [leaf, *(c for c in chain if c.strip() != leaf.strip())]
    return "".join(c.strip() + "\n" for c in dict.fromkeys(ordered))


class TlsRelation:
    """The unit's certificate from the ``certificates`` relation."""

    def __init__(self, charm: ops.CharmBase, request: CertificateRequestAttributes):
        self._charm = charm
        self._certificates = TLSCertificatesRequiresV4(
            charm,
            TLS_RELATION,
            certificate_requests=[request],
            mode=Mode.UNIT,
            refresh_events=[charm.on.config_changed],
        )
        self._request = request

    def events(self) -> list[ops.BoundEvent]:
        """Events that mean "the certificate may have changed"."""
        on = self._charm.on[TLS_RELATION]
        return [self._certificates.on.certificate_available, on.relation_broken]

    def wanted(self) -> bool:
        """True when the relation exists: the server must serve HTTPS only."""
        relation = self._charm.model.get_relation(TLS_RELATION)
        return relation is not None and relation.app is not None  # None: being removed

    def provider(self) -> str:
        """The application that signs the certificates."""
        relation = self._charm.model.get_relation(TLS_RELATION)
        return relation.app.name if relation is not None and relation.app else TLS_RELATION

    def issued(self) -> ServerTls | None:
        """The certificate issued for this unit's request, None until there is one."""
        provided, key = self._certificates.get_assigned_certificate(self._request)
        if provided is None or key is None:
            return None
        chain = [str(c) for c in provided.chain]
        return ServerTls(
            certificate=pem_chain(str(provided.certificate), chain),
            private_key=str(key),
            ca=str(provided.ca).strip() + "\n",
        )

    def read(self) -> TlsReading:
        """The relation in one reading: not there, a certificate, or what it waits for."""
        if not self.wanted():
            return TlsReading()
        tls = self.issued()
        if tls is None:
            return TlsReading(
                related=True, waiting=f"waiting for a certificate from {self.provider()}"
            )
        return TlsReading(related=True, tls=tls)
