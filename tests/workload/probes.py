"""Requests as an outsider makes them: from an address no white list names, with no key.

The outsider speaks from 127.0.0.9: loopback still (every server a test
starts binds 127.0.0.1), but in a pod this would be another pod's address.
"""

from __future__ import annotations

import http.client
import socket
import ssl

OUTSIDER = "127.0.0.9"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def outsider(method: str, port: int, path: str, body: bytes | None = None) -> int:
    """The HTTP status a client at ``OUTSIDER`` gets, with no key of any kind."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(OUTSIDER, 0))
    try:
        conn.request(method, path, body=body)
        return conn.getresponse().status
    finally:
        conn.close()


def grpc_without_a_certificate(port: int, ca: str) -> str:
    """What a gRPC port answers to a client with no certificate: "refused" or what it said."""
    context = ssl.create_default_context(cadata=ca)
    context.check_hostname = False
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            answer = tls.recv(64)
    except (ssl.SSLError, ConnectionError, TimeoutError) as err:
        return f"refused ({type(err).__name__})"
    return "refused (closed)" if not answer else f"answered {answer[:16]!r}"


def plaintext_grpc(port: int) -> str:
    """What a gRPC port answers to a plaintext HTTP/2 client."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            answer = raw.recv(64)
    except (ConnectionError, TimeoutError) as err:
        return f"refused ({type(err).__name__})"
    # A TLS server answers a plaintext client with a TLS alert record (0x15), never HTTP/2.
    return "refused (tls alert)" if not answer or answer[:1] == b"\x15" else "answered"
