"""HTTPS for the S3 gateway, from the ``certificates`` relation (interface ``tls-certificates``).

``charmlibs-interfaces-tls-certificates`` speaks the protocol (each unit's key
in a Juju secret, its CSR, renewal before expiry). Each unit asks for the
names clients use: the application's service, and its own pod's stable name
(how the other units and a client pinned to one unit reach it). weed reads the
files again every ``TLS_REFRESH_INTERVAL``: a renewal needs no restart.
"""

from __future__ import annotations

from dataclasses import dataclass

import ops
from charmlibs.interfaces.tls_certificates import (
    CertificateRequestAttributes,
    Mode,
    TLSCertificatesRequiresV4,
)

from constants import TLS_RELATION

_CN_MAX = 64  # X.509's limit on a common name


@dataclass(frozen=True)
class GatewayTls:
    """The gateway's certificate (leaf, then chain), its key, and the CA clients trust."""

    certificate: str
    private_key: str
    ca: str


def certificate_request(
    app: str, model: str, cluster_domain: str, unit_address: str
) -> CertificateRequestAttributes:
    """The service's names, and the unit's own stable name."""
    service = f"{app}.{model}.svc.{cluster_domain}"
    names = (app, f"{app}.{model}", f"{app}.{model}.svc", service, unit_address)
    common_name = service if len(service) <= _CN_MAX else app[:_CN_MAX]
    return CertificateRequestAttributes(
        common_name=common_name, sans_dns=frozenset(n for n in names if n)
    )


class TlsRelation:
    """The unit's certificate from the ``certificates`` relation."""

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
        """True when the relation exists: the gateway must serve HTTPS only."""
        relation = self._charm.model.get_relation(TLS_RELATION)
        return relation is not None and relation.app is not None

    def provider(self) -> str:
        """The application that signs the certificates."""
        relation = self._charm.model.get_relation(TLS_RELATION)
        return relation.app.name if relation is not None and relation.app else TLS_RELATION

    def issued(self) -> GatewayTls | None:
        """The certificate issued for this unit's request, None until there is one."""
        provided, key = self._lib.get_assigned_certificate(self._request)
        if provided is None or key is None:
            return None
        leaf = str(provided.certificate).strip()
        rest = [str(c).strip() for c in provided.chain if str(c).strip() != leaf]
        return GatewayTls(
            certificate="\n".join(dict.fromkeys([leaf, *rest])) + "\n",
            private_key=str(key),
            ca=str(provided.ca).strip() + "\n",
        )
