"""The one door to network checks: the server's health, and reachability of its stores.

Explicit timeouts; unit tests stub ``Probe``, not the socket or HTTP library.
"""

from __future__ import annotations

import logging
import socket
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

TIMEOUT = 3.0


class Probe:
    """Network probes from the charm container (which shares the pod's network)."""

    def server_ready(self, port: int, ca: str | None = None) -> bool:
        """True when MLflow answers ``/health`` on the pod's loopback.

        With ``ca`` (PEM), over HTTPS: the certificate must chain to it; its
        names are not checked (they are the service's, this is loopback).
        """
        url = f"{'https' if ca else 'http'}://127.0.0.1:{port}/health"
        context = None
        if ca:
            context = ssl.create_default_context(cadata=ca)
            context.check_hostname = False
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT, context=context):  # noqa: S310
                return True
        except (OSError, urllib.error.URLError) as err:
            logger.debug("MLflow not ready: %s", err)
            return False

    def reachable(self, host: str, port: int) -> bool:
        """True when a TCP connection to ``host:port`` opens."""
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT):
                return True
        except OSError as err:
            logger.info("%s:%s unreachable: %s", host, port, err)
            return False

    def url_reachable(self, url: str) -> bool:
        """True when the host of an http(s) URL accepts TCP connections."""
        parts = urlsplit(url)
        if not parts.hostname:
            return False
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return self.reachable(parts.hostname, port)
