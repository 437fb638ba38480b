"""A certificate authority made in the test, and the provider side of ``tls-certificates``.

``TestCA`` is built with ``cryptography`` alone: the charms never make
certificates, they receive them, so the tests' CA must not come from the
library the charms use to ask for them.

``provider_answer`` is what a tls-certificates provider writes back for the
CSRs a requirer put in its databag. Facts from
canonical/self-signed-certificates-operator ``src/charm.py`` (it answers each
outstanding request through ``TLSCertificatesProvidesV4`` with
``chain=[certificate, ca]``) and from charmlibs-interfaces-tls-certificates
1.12.0 (requirer databag: ``certificate_signing_requests``, a JSON list of
``{"certificate_signing_request", "ca"}``; provider app databag:
``certificates``, a JSON list of ``{"certificate_signing_request",
"certificate", "ca", "chain"}``, PEM strings).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class Issued:
    """A server certificate (PEM), its private key (PEM) and the issuing CA (PEM)."""

    certificate: str
    private_key: str
    ca: str


class TestCA:
    """A self-signed root that issues server certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "charm-tests CA"):
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        """The CA certificate clients trust."""
        return _pem(self._cert)

    def _sign(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        dns: Iterable[str],
        ips: Iterable[str],
        days: float,
    ) -> str:
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return _pem(builder.sign(self._key, hashes.SHA256()))

    def issue(
        self,
        dns: Iterable[str] = ("localhost",),
        ips: Iterable[str] = ("127.0.0.1",),
        days: float = 7,
    ) -> Issued:
        """A new key and a certificate for ``dns`` and ``ips``."""
        key = ec.generate_private_key(ec.SECP256R1())
        dns = list(dns)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0] if dns else "server")])
        cert = self._sign(subject, key.public_key(), dns, ips, days)
        return Issued(certificate=cert, private_key=_key_pem(key), ca=self.pem)

    def sign_csr(self, csr_pem: str, days: float = 7) -> str:
        """A certificate for a CSR, with the names it asks for (as a provider signs it)."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        try:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = sans.get_values_for_type(x509.DNSName)
            ips = [str(i) for i in sans.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            dns, ips = [], []
        return self._sign(csr.subject, csr.public_key(), dns, ips, days)


def requested_csrs(requirer_databag: Mapping[str, str]) -> list[str]:
    """The CSRs (PEM) a requirer's databag asks to have signed."""
    requests = json.loads(requirer_databag.get("certificate_signing_requests") or "[]")
    return [r["certificate_signing_request"] for r in requests]


def provider_answer(ca: TestCA, *requirer_databags: Mapping[str, str]) -> dict[str, str]:
    """The provider's app databag signing every CSR in ``requirer_databags``."""
    certificates = []
    for databag in requirer_databags:
        for csr in requested_csrs(databag):
            cert = ca.sign_csr(csr)
            certificates.append(
                {
                    "certificate_signing_request": csr,
                    "certificate": cert,
                    "ca": ca.pem,
                    "chain": [cert, ca.pem],
                }
            )
    return {"certificates": json.dumps(certificates)}


def answered(ctx: Any, state: Any, relation: Any, ca: TestCA) -> Any:
    """An ops.testing ``state`` after the unit sent its CSR on ``relation`` and ``ca`` signed it.

    The unit's key and CSR are made by the library inside the charm, so the
    answer can only be written after a first hook (relation-created) has run.
    The returned state has the answer; no hook has seen it yet.
    """
    out = ctx.run(ctx.on.relation_created(relation), state)
    mine = out.get_relation(relation.id)
    signed = dataclasses.replace(mine, remote_app_data=provider_answer(ca, mine.local_unit_data))
    others = {r for r in out.relations if r.id != relation.id}
    return dataclasses.replace(out, relations={*others, signed})


def issued(ctx: Any, state: Any, relation: Any, ca: TestCA) -> Any:
    """The output state once the unit has seen its issued certificate (relation-changed)."""
    signed = answered(ctx, state, relation, ca)
    return ctx.run(ctx.on.relation_changed(signed.get_relation(relation.id)), signed)
