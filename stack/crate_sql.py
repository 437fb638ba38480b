"""A stand-in for CrateDB's HTTP SQL endpoint (``POST /_sql``), on loopback.

It answers the statements of the cratedb charm's exporter (``metrics.py``)
with rows a real CrateDB 6.4.0 gave on this machine (a one-node cluster built
from crate/crate at tag 6.4.0, one table of 2 shards with 1 replica, hence
YELLOW and 2 unassigned replicas; recorded 2026-11-23). It lets the exporter
run under a real Pebble where no CrateDB exists (CI); the same test also
runs against a real node when ``CRATEDB_HOME`` gives one.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

# Statement prefix -> rows, as CrateDB 6.4.0 answered them (the ``rows`` of /_sql).
RECORDED: dict[str, list[list[Any]]] = {
    "SELECT max(severity) FROM sys.health": [[2]],
    "SELECT health, count(*) FROM sys.health": [["YELLOW", 1]],
    "SELECT count(*) FROM sys.nodes": [[1]],
    'SELECT state, "primary", count(*) FROM sys.shards': [
        ["UNASSIGNED", False, 2],
        ["STARTED", True, 2],
    ],
    "SELECT heap['used'], heap['max']": [
        [185728400, 536870912, 270553174016, 78125551616, 142, 0.46]
    ],
    "SELECT classification['type'], sum(total_count)": [
        ["SELECT", 6, 0, 149],
        ["UNDEFINED", 1, 1, 0],
        ["INSERT", 1, 0, 49],
        ["DDL", 1, 0, 275],
    ],
}


class CrateSqlStandIn(http.server.ThreadingHTTPServer):
    """``/_sql`` on 127.0.0.1 answering ``answers`` (by statement prefix); 500 while failing."""

    def __init__(self, answers: dict[str, list[list[Any]]] | None = None) -> None:
        self.answers = dict(RECORDED if answers is None else answers)
        self.failing = False
        self.statements: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """Its loopback port (the node's HTTP port, to the exporter)."""
        return int(self.server_address[1])

    def __enter__(self) -> CrateSqlStandIn:
        """Serve in a thread."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, CrateSqlStandIn)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        server.statements.append({**body, "authorization": self.headers.get("Authorization")})
        rows = next(
            (rows for prefix, rows in server.answers.items() if body["stmt"].startswith(prefix)),
            None,
        )
        if self.path != "/_sql" or server.failing or rows is None:
            self._answer(500, {"error": {"message": "stand-in: no answer", "code": 5000}})
            return
        self._answer(200, {"cols": [], "rows": rows, "rowcount": len(rows)})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""
