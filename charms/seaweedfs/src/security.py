"""SeaweedFS's own locks on its inner ports: ``security.toml``, its keys, and who holds them.

Measured on the real ``weed`` 4.48 (three processes on loopback, and one):
without these, master (9333), volume (8080) and filer (8888) serve anyone who
reaches them - the filer reads and writes any bucket's objects at
``/buckets/<bucket>/...`` - and the S3 gateway's gRPC port, which listens
wherever S3 does, lets anyone add an Admin identity. With them:

- filer and volume HTTP refuse every read and write without a JWT signed with
  the keys below (401; ``[access] ui`` and the filer's directory listing off);
- every gRPC port (master, volume, filer, S3) wants a client certificate from
  the store's own CA (mutual TLS), and the S3 gateway's admin calls a filer
  token on top;
- with one unit, the master's HTTP API, which has no key of its own
  (``/dir/assign`` hands a write token to whoever asks), and the volume
  server's answer only the addresses in ``[guard] white_list``: loopback,
  ``@`` (weed's own Unix sockets, which it needs) and the pod's own address.
  With several units no white list holds: a master that is not the raft
  leader forwards every request to the leader under its own address, which
  the leader's list must name (measured: ``/dir/assign`` 200 and
  ``/col/delete`` 204 for an outsider through a follower). So none is set
  there, which also spares every unit a restart when another joins, and the
  README's NetworkPolicy is the lock on the master's HTTP port.

The leader generates the keys, a CA and one certificate the units share
(weed checks no host names; it wants both server and client use in it) into
one app-owned Juju secret; every unit reads it. weed reads the file once, at
start: going from one unit to two (the white list goes) restarts weed once.
The builders here are pure; ``SecurityStore`` is the secret.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

import ops

logger = logging.getLogger(__name__)

SECRET_LABEL = "weed-security"  # noqa: S105 (a label)
PEER_SECRET_KEY = "security-secret-id"  # noqa: S105 (a databag key)
COMMON_NAME = "seaweedfs"
# How long a JWT weed signs is valid: its own uploads and reads use them at once.
TOKEN_SECONDS = 10
CERT_YEARS = 10
GRPC_COMPONENTS = ("master", "volume", "filer", "s3")


@dataclass(frozen=True)
class SecurityMaterial:
    """What the secret holds: four JWT keys, the CA, the shared certificate and its key."""

    write_key: str = field(repr=False)
    read_key: str = field(repr=False)
    filer_write_key: str = field(repr=False)
    filer_read_key: str = field(repr=False)
    ca: str
    certificate: str
    private_key: str = field(repr=False)

    def content(self) -> dict[str, str]:
        """The Juju secret's content."""
        return {
            "jwt-write": self.write_key,
            "jwt-read": self.read_key,
            "jwt-filer-write": self.filer_write_key,
            "jwt-filer-read": self.filer_read_key,
            "ca-certificate": self.ca,
            "certificate": self.certificate,
            "private-key": self.private_key,
        }

    @classmethod
    def from_content(cls, content: dict[str, str]) -> SecurityMaterial:
        """Read the Juju secret's content back."""
        return cls(
            content["jwt-write"],
            content["jwt-read"],
            content["jwt-filer-write"],
            content["jwt-filer-read"],
            content["ca-certificate"],
            content["certificate"],
            content["private-key"],
        )


def generate_material(now: datetime.datetime | None = None) -> SecurityMaterial:
    """Fresh keys, a CA and a certificate for both ends of every gRPC connection."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=365 * CERT_YEARS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{COMMON_NAME} internal CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # Both: every component is a gRPC server and a client of the others.
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return SecurityMaterial(
        write_key=secrets.token_hex(32),
        read_key=secrets.token_hex(32),
        filer_write_key=secrets.token_hex(32),
        filer_read_key=secrets.token_hex(32),
        ca=ca.public_bytes(pem).decode(),
        certificate=certificate.public_bytes(pem).decode(),
        private_key=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


@dataclass(frozen=True)
class SecurityFiles:
    """Where the files weed reads live (``weed -config_dir=<config_dir>``)."""

    config_dir: str

    @property
    def toml(self) -> str:
        """``security.toml``."""
        return f"{self.config_dir}/security.toml"

    @property
    def ca(self) -> str:
        """The CA every gRPC peer must be signed by."""
        return f"{self.config_dir}/ca.crt"

    @property
    def certificate(self) -> str:
        """The certificate every component presents."""
        return f"{self.config_dir}/weed.crt"

    @property
    def private_key(self) -> str:
        """Its key."""
        return f"{self.config_dir}/weed.key"


def white_list(addresses: Iterable[str], units: int = 1) -> tuple[str, ...]:
    """Loopback, weed's own Unix sockets (``@``) and the given IP addresses (others dropped).

    Empty (no white list) for a store of several units: see the module's docstring.
    """
    if units > 1:
        return ()
    found = set()
    for address in addresses:
        try:
            found.add(str(ipaddress.ip_address(address)))
        except ValueError:
            logger.warning("not an IP address, left out of the white list: %r", address[:60])
    return ("127.0.0.1", "@", *sorted(found - {"127.0.0.1"}))


def security_toml(files: SecurityFiles, material: SecurityMaterial, allowed: Iterable[str]) -> str:
    """The ``security.toml`` weed reads at start (pushed with mode 0600: it holds the keys)."""

    def quoted(value: str) -> str:
        return json.dumps(value)  # a TOML basic string is a JSON string

    lines = []
    for table, key in (
        ("jwt.signing", material.write_key),
        ("jwt.signing.read", material.read_key),
        ("jwt.filer_signing", material.filer_write_key),
        ("jwt.filer_signing.read", material.filer_read_key),
    ):
        lines += [
            f"[{table}]",
            f"key = {quoted(key)}",
            f"expires_after_seconds = {TOKEN_SECONDS}",
            "",
        ]
    lines += [
        "[access]",
        "ui = false",
        "",
        "[filer.expose_directory_metadata]",
        "enabled = false",
        "",
        "[grpc]",
        f"ca = {quoted(files.ca)}",
        "",
    ]
    for component in GRPC_COMPONENTS:
        lines += [
            f"[grpc.{component}]",
            f"cert = {quoted(files.certificate)}",
            f"key = {quoted(files.private_key)}",
            f"allowed_commonNames = {quoted(COMMON_NAME)}",
            "",
        ]
    lines += [
        "[grpc.client]",
        f"cert = {quoted(files.certificate)}",
        f"key = {quoted(files.private_key)}",
        "",
    ]
    if allowed := tuple(allowed):
        lines += ["[guard]", f"white_list = {quoted(','.join(allowed))}", ""]
    return "\n".join(lines)


class SecurityStore:
    """The app's ``weed-security`` secret: the leader creates it, every unit reads it."""

    def __init__(self, model: ops.Model, peer: ops.Relation):
        self._model = model
        self._peer = peer

    def material(self, create: bool = False) -> SecurityMaterial | None:
        """The keys and certificates; None until the leader made them."""
        secret_id = self._peer.data[self._model.app].get(PEER_SECRET_KEY)
        if secret_id:
            try:
                content = self._model.get_secret(id=secret_id).get_content(refresh=True)
                return SecurityMaterial.from_content(content)
            except (ops.SecretNotFoundError, KeyError):
                logger.warning("the %s secret is gone or malformed", SECRET_LABEL)
        if not create:
            return None
        try:
            # Made in an earlier hook whose peer record did not land: use it.
            secret = self._model.get_secret(label=SECRET_LABEL)
            material = SecurityMaterial.from_content(secret.get_content(refresh=True))
        except (ops.SecretNotFoundError, KeyError):
            pass
        else:
            self._peer.data[self._model.app][PEER_SECRET_KEY] = str(secret.id)
            return material
        material = generate_material()
        secret = self._model.app.add_secret(
            material.content(),
            label=SECRET_LABEL,
            description="SeaweedFS's internal JWT keys and gRPC certificate",
        )
        self._peer.data[self._model.app][PEER_SECRET_KEY] = str(secret.id)
        logger.info("generated SeaweedFS's internal keys and gRPC certificate")
        return material
