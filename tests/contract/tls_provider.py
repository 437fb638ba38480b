"""A stand-in for the self-signed-certificates charm on its ``certificates`` endpoint.

Written from canonical/self-signed-certificates-operator's published source
(``src/charm.py``, read 2026-11): it instantiates the library's
``TLSCertificatesProvidesV4(self, "certificates")`` and, on relation-changed
(and update-status, config-changed...), the leader signs every outstanding
request (``get_outstanding_certificate_requests``) with its CA and answers it
through ``set_relation_certificate`` with ``chain=[certificate, ca]``. Here the
CA is ``stack.tls.TestCA`` (made with ``cryptography``) instead of one kept in
a Juju secret; everything on the relation is the library's own provider code.
"""

from __future__ import annotations

import ops
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    ProviderCertificate,
    TLSCertificatesProvidesV4,
)

from stack.tls import TestCA

META = {
    "name": "self-signed-certificates",
    "provides": {"certificates": {"interface": "tls-certificates"}},
}
CA = TestCA("self-signed-certificates stand-in CA")


class SelfSignedStandIn(ops.CharmBase):
    """Signs every outstanding CSR, the way self-signed-certificates does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.certificates = TLSCertificatesProvidesV4(self, "certificates")
        framework.observe(self.on["certificates"].relation_changed, self._sign)

    def _sign(self, _event: ops.EventBase) -> None:
        if not self.unit.is_leader():
            return
        ca = Certificate.from_string(CA.pem)
        for request in self.certificates.get_outstanding_certificate_requests():
            csr = request.certificate_signing_request
            certificate = Certificate.from_string(CA.sign_csr(str(csr)))
            self.certificates.set_relation_certificate(
                ProviderCertificate(
                    relation_id=request.relation_id,
                    certificate=certificate,
                    certificate_signing_request=csr,
                    ca=ca,
                    chain=[certificate, ca],
                )
            )
