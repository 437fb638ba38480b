"""A real reverse proxy standing in for traefik: nginx from Debian, run by a real Pebble.

Configured from what the ``ingress`` relation says (the route the traefik
stand-in reads from mlflow-tracking's databags: prefix, strip-prefix, port),
it does what traefik does for that route: forwards ``/<prefix>/...`` to the
backend, stripping the prefix when asked, and passes the client's ``Host``
header through (traefik's default). It binds 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stack.pebble import PebbleDaemon, free_port

SERVICE = "ingress-proxy"


def nginx_binary() -> str | None:
    """Debian's nginx, if installed."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def nginx_config(root: Path, port: int, prefix: str, backend: str, strip_prefix: bool) -> str:
    """An nginx.conf that routes ``/<prefix>`` to ``backend`` as traefik's per-app route does."""
    target = f"{backend.rstrip('/')}/" if strip_prefix else backend.rstrip("/")
    temp = {name: root / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    proxy = f"""
            proxy_pass {target};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Prefix /{prefix};
            proxy_http_version 1.1;
            proxy_read_timeout 300s;"""
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {root}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        location /{prefix}/ {{{proxy}
        }}
        location = /{prefix} {{{proxy}
        }}
        location / {{ return 404; }}
    }}
}}
"""


@dataclass
class IngressProxy:
    """nginx under Pebble, routing one prefix to one backend."""

    daemon: PebbleDaemon
    port: int
    prefix: str
    root: Path

    @classmethod
    def start(
        cls, daemon: PebbleDaemon, prefix: str, backend: str, strip_prefix: bool
    ) -> IngressProxy:
        """Write the config, run nginx in the foreground under Pebble, wait until it answers."""
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx not installed (apt-get install nginx-light)")
        root = daemon.directory / "nginx"
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = root / "nginx.conf"
        conf.write_text(nginx_config(root, port, prefix, backend, strip_prefix))
        daemon.apply(
            {
                "services": {
                    SERVICE: {
                        "override": "replace",
                        "command": f"{binary} -p {root} -c {conf} -g 'daemon off;'",
                        "startup": "enabled",
                    }
                }
            },
            label="ingress-proxy",
        )
        proxy = cls(daemon=daemon, port=port, prefix=prefix, root=root)
        daemon.wait_for(proxy.answers, timeout=30, what="nginx answering")
        return proxy

    def answers(self) -> bool:
        """True once nginx accepts connections (any HTTP status will do)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def url(self, host: str = "127.0.0.1") -> str:
        """The URL the ingress hands out, for a client that reaches it as ``host``."""
        return f"http://{host}:{self.port}/{self.prefix}"


def service_config(root: Path, port: int, backends: list[str]) -> str:
    """An nginx.conf that spreads requests over ``backends`` as a Kubernetes service would.

    A backend that refuses a connection is skipped for a few seconds (what
    readiness does for a pod); a request already sent to a backend that dies
    is not retried by the proxy (S3 PUTs are not idempotent): the client retries.
    """
    user = "user root;\n" if os.geteuid() == 0 else ""
    servers = "".join(
        f"        server {backend} max_fails=1 fail_timeout=5s;\n" for backend in backends
    )
    temp = {name: root / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""{user}worker_processes 1;
pid {root}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    client_max_body_size 0;
    upstream service {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://service;
            proxy_set_header Host $http_host;
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


def start_service(daemon: PebbleDaemon, backends: list[str]) -> int:
    """The application's service: nginx under Pebble in front of ``backends``; its port."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx not installed (apt-get install nginx-light)")
    root = daemon.directory / "service"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(service_config(root, port, backends))
    daemon.apply(
        {
            "services": {
                "service": {
                    "override": "replace",
                    "command": f"{binary} -p {root} -c {conf} -g 'daemon off;'",
                    "startup": "enabled",
                }
            }
        },
        label="service",
    )
    proxy = IngressProxy(daemon=daemon, port=port, prefix="", root=root)
    daemon.wait_for(proxy.answers, timeout=30, what="the service proxy answering")
    return port
