"""The MLflow server run by a real Pebble from the mlflow-tracking charm's own builders.

``MlflowServer.start`` does what the charm's reconcile does on a hook: it
renders ``ServerSettings`` into the env file (pushed with mode 0600) and the
Pebble layer, replans, and waits for ``/health``. ``notebook_env`` is what a
notebook pod receives: the env of the charm's PodDefault, with each
``secretKeyRef`` resolved from the charm's rendered Secret.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.charm_loader import charm_modules
from stack.pebble import PebbleDaemon, descendants, free_port, rss_bytes

mt = charm_modules(
    "mlflow-tracking",
    "auth",
    "tls",
    "workload",
    "client_env",
    "state",
    "manifests",
    "constants",
    "container",
    "migration",
    "exceptions",
)
APP = "mlflow-tracking"
NOTEBOOK = Path(__file__).with_name("notebook.py")


def mlflow_venv() -> Path | None:
    """The MLflow server environment scripts/setup.sh built from the rock's requirements."""
    venv = os.environ.get("MLFLOW_VENV")
    if venv and (Path(venv) / "bin" / "mlflow").exists():
        return Path(venv)
    return None


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def generated_auth(store: Any, data_dir: Path, default_permission: str = "READ") -> Any:
    """What the leader generates for MLflow's auth (``auth.AuthSecrets``), as settings."""
    values = mt.auth.AuthSecrets.generate()
    return mt.auth.AuthSettings(
        admin_password=values.admin_password,
        notebook_password=values.notebook_password,
        flask_secret_key=values.flask_secret_key,
        database_uri=mt.auth.users_database_uri(store, str(data_dir / "basic_auth.db")),
        default_permission=mt.auth.Permission(default_permission),
    )


def resolve_pod_default_env(pod_default: dict, secret: dict | None) -> dict[str, str]:
    """The environment Kubernetes would give a pod selected by ``pod_default``.

    Secret volumes are written where the PodDefault mounts them (only the
    listed keys), as the kubelet would: the tests give a local ``ca_dir``.
    """
    data = {k: base64.b64decode(v).decode() for k, v in ((secret or {}).get("data") or {}).items()}
    volumes = {v["name"]: v for v in pod_default["spec"].get("volumes", [])}
    for mount in pod_default["spec"].get("volumeMounts", []):
        source = volumes[mount["name"]]["secret"]
        assert secret is not None
        assert source["secretName"] == secret["metadata"]["name"]
        for item in source["items"]:
            target = Path(mount["mountPath"]) / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
    env: dict[str, str] = {}
    for item in pod_default["spec"]["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert secret is not None, f"{item['name']} refers to a Secret that was not rendered"
            assert ref["name"] == secret["metadata"]["name"], ref
            env[item["name"]] = data[ref["key"]]
    return env


def server_tls(issued: Any) -> Any:
    """What the charm reads from the certificates relation (``tls.ServerTls``)."""
    return mt.tls.ServerTls(
        certificate=mt.tls.pem_chain(issued.certificate, [issued.certificate, issued.ca]),
        private_key=issued.private_key,
        ca=issued.ca,
    )


@dataclass
class MlflowServer:
    """One MLflow server under Pebble, configured as the charm configures it."""

    daemon: PebbleDaemon
    settings: Any
    started_in: float = 0.0
    # The leader applies the users; another unit only pushes the config file.
    leader: bool = True

    @classmethod
    def configure(
        cls,
        daemon: PebbleDaemon,
        venv: Path,
        store: Any,
        artifacts: Any,
        serve_artifacts: bool = True,
        auth: Any = False,
        tls: Any = None,
        leader: bool = True,
        **overrides: Any,
    ) -> MlflowServer:
        """The server the charm would configure for this daemon (nothing started yet).

        ``auth``: MLflow's basic-auth app as the charm runs it by default (users
        from generated passwords, created by the charm's script before the start);
        True for generated settings, or the ``auth.AuthSettings`` to use.
        ``tls``: a certificate issued for ``localhost`` (``stack.tls.Issued``),
        served as the charm serves what the certificates relation gives.
        ``leader``: False for a second unit, which runs no users script.
        """
        root = daemon.directory
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        if auth is True:
            overrides["auth"] = generated_auth(store, data)
        elif auth:  # given settings (e.g. another cache)
            overrides["auth"] = auth
        defaults: dict[str, Any] = {
            "allowed_hosts": mt.workload.allowed_hosts(APP, "test-model", "cluster.local"),
            "host": "127.0.0.1",
            "port": free_port(),
            "data_dir": str(data),
            "local_artifacts_dir": str(data / "artifacts"),
            "env_file": str(root / "etc" / "server.env"),
            "ca_file": str(root / "etc" / "s3-ca.pem"),
            "db_ca_file": str(root / "etc" / "db-ca.pem"),
            "metrics_dir": str(root / "metrics"),
            "supervisor_file": str(root / "etc" / "supervise.py"),
            "supervisor_state": str(root / "supervise.pgid"),
            "pebble_bin": daemon.binary,
            "auth_file": str(root / "etc" / "basic_auth.ini"),
            "gc_file": str(root / "etc" / "mlflow_gc.py"),
            "metrics_file": str(root / "etc" / "metrics.py"),
            "metrics_host": "127.0.0.1",
            "metrics_port": free_port(),
            "gc_env_file": str(root / "etc" / "gc.env"),
            "tls_cert_file": str(root / "etc" / "tls" / "server.crt"),
            "tls_key_file": str(root / "etc" / "tls" / "server.key"),
            "tls_ca_file": str(root / "etc" / "tls" / "ca.crt"),
            "bin_dir": str(venv / "bin"),
        }
        if tls is not None:
            overrides["tls"] = server_tls(tls)
        settings = mt.workload.ServerSettings(
            store=store,
            artifacts=artifacts,
            serve_artifacts=serve_artifacts,
            **{**defaults, **overrides},
        )
        return cls(daemon=daemon, settings=settings, leader=leader)

    @classmethod
    def start(
        cls, daemon: PebbleDaemon, venv: Path, store: Any, artifacts: Any, **kwargs: Any
    ) -> MlflowServer:
        """``configure`` (same arguments), then apply as the charm does and wait for /health."""
        server = cls.configure(daemon, venv, store, artifacts, **kwargs)
        started = time.monotonic()
        server.apply()
        server.wait_ready()
        server.started_in = time.monotonic() - started
        return server

    def push_scripts(self) -> None:
        """The files the charm pushes into the container (schema.py among them)."""
        for path, script in mt.workload.container_scripts(self.settings).items():
            self.daemon.container.push(path, script, make_dirs=True)

    def settle_schema(self, approved: str = "", database_app: str = "db") -> tuple[Any, bool]:
        """What the charm does before a server starts: the store's schema, migrated if it may be.

        Raises the charm's errors (Blocked / Waiting / MigrationError) as the charm gets them.
        """
        self.push_scripts()
        return mt.container.Workload(self.daemon.container).settle_schema(
            self.settings,
            leader=self.leader,
            approved=approved,
            database_app=database_app,
            app=APP,
        )

    def schema_state(self) -> Any:
        """Where the store's schema stands, read as the charm reads it (schema.py)."""
        self.push_scripts()
        return mt.container.Workload(self.daemon.container).schema_state(self.settings)

    def apply(self) -> None:
        """Push the files and apply the layer the charm builds from ``self.settings``."""
        settings = self.settings
        container = self.daemon.container
        container.push(
            settings.env_file, mt.workload.env_file(settings), make_dirs=True, permissions=0o600
        )
        for path, script in mt.workload.container_scripts(settings).items():
            container.push(path, script, make_dirs=True)
        if settings.store.ca_chain:  # the database's CA, from the database relation's tls-ca
            container.push(settings.db_ca_file, settings.store.ca_chain, make_dirs=True)
        if settings.artifacts.ca_chain:  # the bucket's CA, from the s3 relation's tls-ca-chain
            container.push(settings.ca_file, settings.artifacts.ca_chain, make_dirs=True)
        if settings.tls is not None:  # what the charm pushes from the certificates relation
            tls = settings.tls
            container.push(
                settings.tls_key_file, tls.private_key, make_dirs=True, permissions=0o600
            )
            container.push(settings.tls_cert_file, tls.certificate, make_dirs=True)
            container.push(settings.tls_ca_file, tls.ca, make_dirs=True)
        if settings.auth is not None and self.leader:
            self.apply_users(settings.auth)
        elif settings.auth is not None:
            container.push(
                settings.auth_file,
                mt.auth.auth_ini(settings.auth),
                make_dirs=True,
                permissions=0o600,
            )
        # What the leader pushes for mlflow gc (the action and the mlflow-gc service).
        admin = (mt.auth.ADMIN_USER, settings.auth.admin_password) if settings.auth else None
        container.push(
            settings.gc_env_file,
            mt.workload.gc_env_file(settings, admin),
            make_dirs=True,
            permissions=0o600,
        )
        self.daemon.apply(mt.workload.pebble_layer(settings))

    def apply_users(self, auth: Any) -> str:
        """What the charm's leader does: config file, then its users script through Pebble."""
        container = self.daemon.container
        container.push(
            self.settings.auth_file, mt.auth.auth_ini(auth), make_dirs=True, permissions=0o600
        )
        bin_dir = Path(self.settings.python).parent
        env = {
            **mt.auth.users_env(auth, self.settings.auth_file, self.settings.apps_dir),
            "PATH": f"{bin_dir}:/usr/bin:/bin",
        }
        stdout, _ = container.exec(
            mt.auth.users_argv(), environment=env, timeout=300
        ).wait_output()
        return stdout

    def collect_garbage(self, older_than: str = "0s") -> str:
        """The gc action: ``mlflow_gc.py`` once, through Pebble, as the charm runs it."""
        settings = self.settings
        argv = mt.workload.gc_argv(
            older_than, 0, settings.python, settings.gc_file, settings.gc_env_file
        )
        stdout, stderr = self.daemon.container.exec(argv, timeout=600).wait_output()
        return stdout + (stderr or "")

    def renew_certificate(self, issued: Any) -> float:
        """A renewed certificate, applied as the charm applies it; seconds until it serves."""
        started = time.monotonic()
        self.settings = dataclasses.replace(self.settings, tls=server_tls(issued))
        self.apply()
        self.daemon.wait_for(
            lambda: self.served_certificate() == issued.certificate.strip(),
            timeout=120,
            what="the renewed certificate",
        )
        return time.monotonic() - started

    def served_certificate(self) -> str:
        """The leaf certificate the server presents now (PEM), '' when it does not answer."""
        try:
            pem = ssl.get_server_certificate(("127.0.0.1", self.settings.port), timeout=3)
        except OSError:
            return ""
        return pem.strip()

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """What a client trusting the server's CA uses; None for plain HTTP."""
        if self.settings.tls is None:
            return None
        return ssl.create_default_context(cadata=self.settings.tls.ca)

    def rotate_admin_password(self) -> tuple[str, str]:
        """The rotate-admin-password action: (old, new); the running server is not restarted."""
        old = self.settings.auth
        assert old is not None, "auth is off"
        new = dataclasses.replace(old, admin_password=mt.auth.new_password())
        self.apply_users(new)
        self.settings = dataclasses.replace(self.settings, auth=new)
        return old.admin_password, new.admin_password

    def api(
        self,
        path: str,
        login: tuple[str, str] | None = None,
        body: dict[str, Any] | None = None,
        method: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One REST call, as ``login`` (user, password) or anonymous: (status, JSON body)."""
        headers = {"Content-Type": "application/json"}
        if login is not None:
            token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers=headers,
            method=method or ("POST" if body is not None else "GET"),
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.ssl_context) as response:
                text = response.read().decode()
                try:
                    return response.status, json.loads(text) if text.strip() else {}
                except ValueError:  # /metrics, the UI: not JSON
                    return response.status, {"text": text[:500]}
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            try:
                return err.code, json.loads(text)
            except ValueError:
                return err.code, {"text": text[:500]}

    @property
    def admin(self) -> tuple[str, str]:
        """The admin's login (what get-admin-password prints)."""
        assert self.settings.auth is not None, "auth is off"
        return mt.auth.ADMIN_USER, self.settings.auth.admin_password

    @property
    def notebook_login(self) -> tuple[str, str]:
        """The notebook user's login (what the pod defaults' Secret carries)."""
        assert self.settings.auth is not None, "auth is off"
        return mt.auth.NOTEBOOK_USER, self.settings.auth.notebook_password

    @property
    def url(self) -> str:
        """The tracking URI on loopback (``localhost``, the name test certificates carry)."""
        if self.settings.tls is not None:
            return f"https://localhost:{self.settings.port}"
        return f"http://127.0.0.1:{self.settings.port}"

    def healthy(self) -> bool:
        """True when /health answers 200."""
        try:
            with urllib.request.urlopen(
                f"{self.url}/health", timeout=2, context=self.ssl_context
            ) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds until /health answers."""
        return self.daemon.wait_for(self.healthy, timeout=timeout, what="MLflow /health")

    def restart(self) -> float:
        """Restart the service through Pebble; seconds until it answers again."""
        started = time.monotonic()
        # The server only: the gc service is started by its own schedule, not here.
        self.daemon.client.restart_services([mt.constants.SERVICE], timeout=120)
        self.wait_ready()
        return time.monotonic() - started

    def rss(self) -> tuple[int, int]:
        """(process count, summed RSS) of the server's whole process tree."""
        assert self.daemon.process is not None
        pids = descendants(self.daemon.process.pid)
        return len(pids), rss_bytes(pids)

    # -- the notebook's side ---------------------------------------------

    def manifests(self) -> tuple[dict, dict | None]:
        """The PodDefault and Secret the charm would send, for this server's URL.

        The CA files are mounted in the notebook's own directory (``ca``).
        """
        auth, settings = self.settings.auth, self.settings
        cas = mt.client_env.client_ca_files(
            settings.tls.ca if settings.tls else "", settings.artifacts, settings.serve_artifacts
        )
        ca_dir = str(self.daemon.directory / "notebook-ca")
        env = mt.client_env.client_env(
            self.url,
            settings.artifacts,
            settings.serve_artifacts,
            login=(mt.auth.NOTEBOOK_USER, auth.notebook_password) if auth else None,
            ca_files=cas,
            ca_dir=ca_dir,
        )
        return (
            mt.manifests.pod_default(APP, env, cas, ca_dir),
            mt.manifests.client_secret(APP, env, cas),
        )

    def notebook_env(self) -> dict[str, str]:
        """Only what the pod default injects (resolved from the rendered manifests)."""
        return resolve_pod_default_env(*self.manifests())

    def spawn_notebook(self, venv: Path, *args: str) -> subprocess.Popen[str]:
        """Start notebook.py in the background, with only the injected environment."""
        home = self.daemon.directory / "notebook-home"
        home.mkdir(exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), **self.notebook_env()}
        return subprocess.Popen(
            [str(venv / "bin" / "python"), str(NOTEBOOK), *args],
            env=env,
            cwd=home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def main_pid(self) -> int:
        """The PID of the service's main process (the one Pebble started: the supervisor)."""
        assert self.daemon.process is not None
        supervisor = self.settings.supervisor_file.encode()
        children = [
            pid
            for pid in descendants(self.daemon.process.pid)
            if _parent(pid) == self.daemon.process.pid and supervisor in _cmdline(pid)
        ]
        if not children:
            raise LookupError("MLflow is not running")
        return children[0]

    def notebook(self, venv: Path, *args: str, timeout: float = 300) -> dict[str, Any]:
        """Run notebook.py with nothing but the injected environment (plus PATH/HOME)."""
        home = self.daemon.directory / "notebook-home"
        return run_json_script(venv, NOTEBOOK, args, self.notebook_env(), home, timeout)


def run_json_script(
    venv: Path, script: Path, args: Sequence[str], env: dict[str, str], home: Path, timeout: float
) -> dict[str, Any]:
    """Run SCRIPT in VENV with only ENV (plus PATH/HOME); its last stdout line, parsed."""
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(script), *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **env},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        what = " ".join([script.name, *args[:1]])
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
