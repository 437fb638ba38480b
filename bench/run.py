"""The benchmark: the stack the charms configure, beside upstream defaults and raw S3.

Everything on loopback, real programs under Pebble from the charms' builders,
all variants measured in the same run; figures are medians with min/max.

Variants:
  charm-proxied   mlflow-tracking's defaults (serve-artifacts=true)
  charm-direct    mlflow-tracking with serve-artifacts=false
  upstream        plain `mlflow server` with upstream defaults, as `pip install mlflow`
                  gets it: 4 workers, job consumers on, uvicorn without httptools/uvloop
                  (forced with --uvicorn-opts, which is what a plain install falls back to)
  raw-s3          boto3 straight to the same SeaweedFS bucket (the physical limit here)
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import crate_profile
from stack.cratedb import cr, cratedb_home, start_single_node
from stack.local import cratedb_store
from stack.mlflow_server import MlflowServer, generated_auth, mt, run_json_script
from stack.pebble import PebbleDaemon, descendants, free_port, rss_bytes
from stack.postgres import Postgres, pg_bin
from stack.seaweed import SeaweedStore

CLIENT = Path(__file__).with_name("client.py")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Profile:
    """How much to measure: the full run or the smoke run inside the test command."""

    sizes_mb: tuple[int, ...]
    reps: int
    metric_calls: int
    batches: int
    per_batch: int
    search_runs: int
    clients: int
    load_seconds: float
    stores: tuple[str, ...]
    restarts: bool


FULL = Profile((1, 64, 256), 3, 1000, 10, 1000, 1000, 8, 20.0, ("sqlite", "postgresql"), True)
# Where CRATEDB_HOME names an unpacked CrateDB, the tracking benchmark adds it.
CRATEDB = "cratedb"
SMOKE = Profile((1,), 1, 20, 2, 50, 20, 2, 2.0, ("sqlite",), False)


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def percentile(values: list[float], fraction: float) -> float:
    """A simple nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Bench:
    """Owns the daemons of one benchmark run and stops them all at the end."""

    def __init__(self, pebble: str, weed: str, venv: Path, root: Path, profile: Profile):
        self.pebble, self.weed, self.venv, self.root, self.profile = (
            pebble,
            weed,
            venv,
            root,
            profile,
        )
        self.daemons: list[PebbleDaemon] = []
        self.results: dict[str, Any] = {}
        self.sqlite_servers: dict[str, MlflowServer] = {}

    def daemon(self, name: str, env: dict[str, str] | None = None) -> PebbleDaemon:
        daemon = PebbleDaemon(self.pebble, self.root / name, env=env)
        self.daemons.append(daemon)
        daemon.start()
        return daemon

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()

    # -- helpers ----------------------------------------------------------

    def client(self, env: dict[str, str], *args: str, timeout: float = 1800) -> dict[str, Any]:
        return run_json_script(self.venv, CLIENT, args, env, self.root / "client-home", timeout)

    @contextmanager
    def rss_sampler(self, daemon: PebbleDaemon) -> Iterator[dict[str, float]]:
        """Sample the daemon's service tree RSS every 100 ms while the block runs."""
        assert daemon.process is not None
        found = {"before": rss_bytes(descendants(daemon.process.pid)) / MIB, "peak": 0.0}
        stop = threading.Event()

        def sample() -> None:
            assert daemon.process is not None
            while not stop.is_set():
                found["peak"] = max(
                    found["peak"], rss_bytes(descendants(daemon.process.pid)) / MIB
                )
                time.sleep(0.1)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield found
        finally:
            stop.set()
            thread.join()
            found["growth"] = found["peak"] - found["before"]

    # -- the stack ------------------------------------------------------

    def seaweedfs(self) -> SeaweedStore:
        path = os.pathsep.join([str(Path(self.weed).parent), os.environ.get("PATH", "")])
        started = time.monotonic()
        store = SeaweedStore.start(
            self.daemon("seaweedfs", env={"PATH": path}), self.weed, planned_buckets=8
        )
        answered = store.wait_serving()
        store.wait_ready()
        fresh = time.monotonic() - started
        figures = {"fresh_answers_s": answered, "fresh_checks_s": fresh, "restart_answers_s": 0.0}
        if self.profile.restarts:
            store.daemon.client.stop_services(["seaweedfs"], timeout=120)
            restarted = time.monotonic()
            store.daemon.client.start_services(["seaweedfs"], timeout=120)
            store.wait_serving()
            figures["restart_answers_s"] = time.monotonic() - restarted
        self.results["startup_seaweedfs"] = figures
        return store

    def charm_server(
        self, name: str, store: Any, artifacts: Any, serve: bool, auth: str = ""
    ) -> MlflowServer:
        """The charm's server; ``auth``: "" off, "cache" the default, "nocache" cache 0."""
        daemon = self.daemon(name)
        settings: Any = bool(auth)
        if auth == "nocache":
            generated = generated_auth(store, daemon.directory / "data")
            settings = dataclasses.replace(generated, cache_seconds=0)
        return MlflowServer.start(
            daemon, self.venv, store, artifacts, serve_artifacts=serve, auth=settings
        )

    def upstream_server(self, name: str, store: Any, artifacts: Any) -> MlflowServer:
        """Plain `mlflow server`, upstream defaults, proxied artifacts to the same S3."""
        daemon = self.daemon(name)
        port = free_port()
        creds = artifacts.credentials
        command = shlex.join(
            [
                str(self.venv / "bin" / "mlflow"),
                "server",
                "--backend-store-uri",
                store.uri,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--artifacts-destination",
                artifacts.s3_uri,
                # What a plain `pip install mlflow` runs: no httptools, no uvloop.
                "--uvicorn-opts",
                "--http h11 --loop asyncio",
            ]
        )
        daemon.apply(
            {
                "services": {
                    "mlflow-upstream": {
                        "override": "replace",
                        "command": command,
                        "working-dir": str(daemon.directory),
                        "startup": "enabled",
                        "environment": {
                            "MLFLOW_S3_ENDPOINT_URL": artifacts.endpoint,
                            "AWS_ACCESS_KEY_ID": creds.access_key,
                            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
                        },
                    }
                }
            },
            label="upstream",
        )
        server = MlflowServer(
            daemon=daemon,
            settings=mt.workload.ServerSettings(store=store, artifacts=artifacts, port=port),
        )
        started = time.monotonic()
        server.wait_ready(timeout=300)
        server.started_in = time.monotonic() - started
        return server

    # -- measurements -----------------------------------------------------

    def measure_artifacts(self, seaweed: SeaweedStore) -> None:
        variants: dict[str, Any] = {}
        servers: dict[str, MlflowServer] = {}
        for name, serve in (("charm-proxied", True), ("charm-direct", False)):
            creds = seaweed.relate(100 + len(servers), f"bench-{name}")
            artifacts = _artifacts(seaweed, f"bench-{name}", creds)
            store = mt.workload.sqlite_store(str(self.root / f"{name}.db"))
            servers[name] = self.charm_server(name, store, artifacts, serve)
        creds = seaweed.relate(110, "bench-upstream")
        upstream_artifacts = _artifacts(seaweed, "bench-upstream", creds)
        servers["upstream"] = self.upstream_server(
            "upstream-artifacts",
            mt.workload.sqlite_store(str(self.root / "upstream.db")),
            upstream_artifacts,
        )
        for size in self.profile.sizes_mb:
            for name, server in servers.items():
                env = (
                    server.notebook_env()
                    if name != "upstream"
                    else {"MLFLOW_TRACKING_URI": server.url}
                )
                with self.rss_sampler(server.daemon) as rss:
                    timings = self.client(env, "artifacts", str(size), str(self.profile.reps))
                variants.setdefault(name, {})[size] = {
                    "up_mbps": summary([size / t for t in timings["up_s"]]),
                    "down_mbps": summary([size / t for t in timings["down_s"]]),
                    "server_rss_growth_mib": rss["growth"],
                }
            raw_env = {
                "MLFLOW_S3_ENDPOINT_URL": seaweed.endpoint,
                "AWS_ACCESS_KEY_ID": creds.access_key,
                "AWS_SECRET_ACCESS_KEY": creds.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            timings = self.client(
                raw_env, "raw-s3", str(size), str(self.profile.reps), "bench-upstream"
            )
            variants.setdefault("raw-s3", {})[size] = {
                "up_mbps": summary([size / t for t in timings["up_s"]]),
                "down_mbps": summary([size / t for t in timings["down_s"]]),
            }
        self.results["artifacts"] = variants
        self.sqlite_servers = {"charm": servers["charm-proxied"], "upstream": servers["upstream"]}
        for name, server in servers.items():
            count, used = server.rss()
            self.results.setdefault("memory_after_artifacts", {})[name] = {
                "processes": count,
                "rss_mib": used / MIB,
            }

    def measure_tracking(self, seaweed: SeaweedStore) -> None:
        creds = seaweed.relate(120, "bench-tracking")
        artifacts = _artifacts(seaweed, "bench-tracking", creds)
        pg: Postgres | None = None
        crate_port: int | None = None
        stores = list(self.profile.stores)
        if self.profile is FULL and cratedb_home() is not None:
            stores.append(CRATEDB)
        for store_kind in stores:
            if store_kind == CRATEDB:
                crate_port = self._cratedb()
            if store_kind == "postgresql":
                binaries = pg_bin()
                if binaries is None:
                    self.results.setdefault("skipped", []).append(
                        "PostgreSQL: server binaries missing"
                    )
                    continue
                pg = Postgres.start(self.daemon("postgresql"), binaries)
            # Plain `mlflow server` cannot run on CrateDB: the charm's server only there.
            # On every store also the charm's default, MLflow's auth on (a login per
            # call, the login cache on); on SQLite also without the cache.
            names: tuple[str, ...] = (
                ("charm", "charm-auth")
                if store_kind == CRATEDB
                else ("charm", "charm-auth", "upstream")
            )
            if store_kind == "sqlite":
                names = ("charm", "charm-auth", "charm-auth-nocache", "upstream")
            for name in names:
                if store_kind == "sqlite" and name in self.sqlite_servers:
                    # The artifact benchmark's servers: SQLite, charm defaults / upstream.
                    server = self.sqlite_servers[name]
                elif name.startswith("charm"):
                    store = self._store(store_kind, name, pg, crate_port)
                    auth = {"charm-auth": "cache", "charm-auth-nocache": "nocache"}.get(name, "")
                    server = self.charm_server(
                        f"{store_kind}-{name}", store, artifacts, True, auth=auth
                    )
                else:
                    store = self._store(store_kind, name, pg, crate_port)
                    server = self.upstream_server(f"{store_kind}-{name}", store, artifacts)
                env = {"MLFLOW_TRACKING_URI": server.url}
                if server.settings.auth is not None:
                    user, password = server.notebook_login
                    env |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
                count, idle = server.rss()
                metric = self.client(env, "log-metric", str(self.profile.metric_calls))
                batch = self.client(
                    env, "log-batch", str(self.profile.batches), str(self.profile.per_batch)
                )
                search = self.client(env, "search", str(self.profile.search_runs))
                if store_kind == CRATEDB and crate_port is not None:
                    self._profile_cratedb(server, crate_port, env, name)
                with self.rss_sampler(server.daemon) as rss:
                    load = self._load(env)
                self.results.setdefault("tracking", {}).setdefault(store_kind, {})[name] = {
                    "start_s": server.started_in,
                    "log_metric_p50_ms": 1000 * percentile(metric["latency_s"], 0.5),
                    "log_metric_p95_ms": 1000 * percentile(metric["latency_s"], 0.95),
                    "log_metric_logged": metric["logged"],
                    "log_batch_metrics_per_s": batch["metrics"] / batch["seconds"],
                    "search_runs_s": summary(search["search_s"]),
                    "search_found": search["found"],
                    **load,
                    "rss_idle_mib": idle / MIB,
                    "rss_load_peak_mib": rss["peak"],
                    "processes": count,
                }
                # The charm's servers (the upstream one's service has another name).
                restarts = self.profile.restarts and name.startswith("charm")
                restart = server.restart() if restarts else 0.0
                self.results.setdefault("startup_mlflow", {})[f"{store_kind}-{name}"] = {
                    "fresh_s": server.started_in,
                    "restart_s": restart,
                }

    def measure_cluster(self, seaweed: SeaweedStore) -> None:
        """256 MB up and down: one unit against three (two copies) behind a service."""
        from stack.ingress_proxy import nginx_binary, start_service
        from stack.seaweed_cluster import SeaweedCluster

        if nginx_binary() is None:
            self.results.setdefault("skipped", []).append("cluster: nginx missing")
            return
        size = max(self.profile.sizes_mb)
        cluster = SeaweedCluster(
            self.weed,
            lambda name: self.daemon(
                name, env={"PATH": f"{Path(self.weed).parent}:/usr/bin:/bin"}
            ),
        )
        cluster.scale_to(3)
        cluster.wait_formed()
        creds = cluster.relate(1, "bench-cluster")
        backends = [f"127.0.0.1:{u.member.ports.s3}" for u in cluster.units.values()]
        port = start_service(self.daemon("s3-service"), backends)
        single = seaweed.relate(130, "bench-single")
        results = {}
        for name, endpoint, keys, bucket in (
            ("1 unit", seaweed.endpoint, single, "bench-single"),
            ("3 units (001) via service", f"http://127.0.0.1:{port}", creds, "bench-cluster"),
        ):
            env = {
                "MLFLOW_S3_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": keys.access_key,
                "AWS_SECRET_ACCESS_KEY": keys.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            timings = self.client(env, "raw-s3", str(size), str(self.profile.reps), bucket)
            results[name] = {
                "size_mb": size,
                "up_mbps": summary([size / t for t in timings["up_s"]]),
                "down_mbps": summary([size / t for t in timings["down_s"]]),
            }
        self.results["cluster"] = results
        cluster.stop()

    def _profile_cratedb(self, server: Any, port: int, env: dict[str, str], name: str) -> None:
        """Where a log_metric on CrateDB spends its time (``crate_profile``), into the results."""
        user = urlsplit(server.settings.store.uri).username or ""
        calls = max(10, self.profile.metric_calls // 10)
        found = crate_profile.profile(
            cr.sql.CrateSQL(port=port),
            user,
            calls,
            lambda: self.client(env, "log-metric", str(calls)),
        )
        found["client_p50_ms"] = 1000 * percentile(found.pop("client")["latency_s"], 0.5)
        self.results.setdefault("cratedb_profile", {})[name] = found

    def _cratedb(self) -> int:
        """One CrateDB node from the cratedb charm's layer (``CRATEDB_HOME``); its HTTP port."""
        home = cratedb_home()
        assert home is not None
        daemon, node = start_single_node(self.pebble, home, self.root / "cratedb")
        self.daemons.append(daemon)
        return int(node.ports.http)

    def _store(
        self, kind: str, name: str, pg: Postgres | None, crate_port: int | None = None
    ) -> Any:
        if kind == "sqlite":
            return mt.workload.sqlite_store(str(self.root / f"tracking-{name}.db"))
        if kind == CRATEDB:
            assert crate_port is not None
            slug = name.replace("-", "_")
            return cratedb_store(
                f"http://127.0.0.1:{crate_port}", f"bench_{slug}", f"bench_{slug}"
            )
        assert pg is not None
        database = user = f"bench_{name.replace('-', '_')}"
        pg.create_database(database, user, "bench-password")
        return mt.workload.build_store(
            mt.state.StoreKind.POSTGRESQL,
            database,
            user,
            "bench-password",
            f"127.0.0.1:{pg.port}",
            None,
        )

    def _load(self, env: dict[str, str]) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        lock = threading.Lock()

        def one() -> None:
            result = self.client(env, "load", str(self.profile.load_seconds))
            with lock:
                results.append(result)

        threads = [threading.Thread(target=one) for _ in range(self.profile.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        latencies = [x for r in results for x in r["latency_s"]]
        ok = sum(r["ok"] for r in results)
        return {
            "load_clients": self.profile.clients,
            "load_requests_per_s": ok / self.profile.load_seconds,
            "load_errors": sum(r["errors"] for r in results),
            "load_lost_writes": sum(r["lost"] for r in results),
            "load_p95_ms": 1000 * percentile(latencies, 0.95) if latencies else 0.0,
        }


def _artifacts(seaweed: SeaweedStore, bucket: str, creds: Any) -> Any:
    return mt.state.ArtifactStore(
        bucket=bucket,
        endpoint=seaweed.endpoint,
        region="us-east-1",
        credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
    )


def run(
    pebble: str,
    weed: str,
    venv: Path,
    root: Path,
    profile: Profile,
    log: Callable[[str], None],
    tracking_only: bool = False,
    cluster_only: bool = False,
) -> dict[str, Any]:
    """Measure everything (or only the tracking API, or the cluster); return the raw results."""
    bench = Bench(pebble, weed, venv, root, profile)
    try:
        log("start-up: SeaweedFS")
        seaweed = bench.seaweedfs()
        if cluster_only:
            log("SeaweedFS: 1 unit vs 3 units behind a service")
            bench.measure_cluster(seaweed)
            return bench.results
        if not tracking_only:
            log("artifacts: charm proxied / direct / upstream / raw S3")
            bench.measure_artifacts(seaweed)
            log("SeaweedFS: 1 unit vs 3 units behind a service")
            bench.measure_cluster(seaweed)
        crate = [CRATEDB] if profile is FULL and cratedb_home() is not None else []
        log("tracking API and memory: " + ", ".join([*profile.stores, *crate]))
        bench.measure_tracking(seaweed)
    finally:
        bench.stop()
    return bench.results
