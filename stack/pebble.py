"""A real Pebble daemon for workload tests, driven exactly as Juju's ops drives it.

``PebbleDaemon`` starts ``pebble run --create-dirs --hold`` with ``PEBBLE``
pointing at a temporary directory: like a workload container under Juju, no
service starts until someone adds a layer and replans. ``container`` is a real
``ops.Container`` bound to that daemon's socket, so charm code that takes a
container (``container.WeedShell``...) runs unchanged against it.

Teardown is by PID only: the services Pebble started are found among the
daemon's own descendants, stopped through Pebble, and anything left of them is
killed by PID.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import ops
from ops import pebble


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (see ``free_ports``)."""
    return free_ports(1)[0]


# Listening ports for servers the tests start: below the kernel's ephemeral
# range (32768-60999 here), where an outgoing connection of another test could
# take a port between the moment it is chosen and the moment the server binds.
LISTEN_RANGE = (12000, 22000)


def _listen_candidate() -> int:
    import random

    return random.randint(*LISTEN_RANGE)  # noqa: S311 (not for security)


def bindable(port: int) -> bool:
    """True when nothing listens on ``port`` on loopback now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Ports this process already handed out: free until their server binds, so a
# later call could draw them again (measured: two units of one SeaweedFS cluster
# got the same master port, and weed refused the doubled peer list).
_handed_out: set[int] = set()


def free_ports(count: int, spacing: int = 0) -> list[int]:
    """Distinct free ports; with ``spacing``, port+spacing must be free too (gRPC).

    Chosen below the ephemeral range (``LISTEN_RANGE``), so that with the
    gRPC offset of 10000 both stay clear of it; never one this process
    handed out before.
    """
    if len(_handed_out) > (LISTEN_RANGE[1] - LISTEN_RANGE[0]) // 2:
        _handed_out.clear()
    ports: list[int] = []
    while len(ports) < count:
        port = _listen_candidate()
        if port in ports or port in _handed_out or not bindable(port):
            continue
        if spacing:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + spacing))
                except OSError:
                    continue
        ports.append(port)
    _handed_out.update(ports)
    _handed_out.update(p + spacing for p in ports if spacing)
    return ports


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_bytes(pids: Iterable[int]) -> int:
    """Summed resident set size of the given processes."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (jiffies since boot), None if it is gone.

    A PID plus its start time names one process: a PID reused later by an
    unrelated process has another start time, so it is never signalled.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def kill_if_same(pid: int, started: int | None, sig: int = signal.SIGKILL) -> None:
    """Signal ``pid`` only if it is still the process that started at ``started``."""
    if started is not None and start_time(pid) == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class PebbleDaemon:
    """One ``pebble run`` in its own directory, with an ops client and container."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ):
        self.binary = binary
        self.directory = directory
        self.env = env or {}
        # Open-file limit for the daemon and its services (a pod's is usually 1M).
        self.nofile = nofile
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "pebble.log"
        self.socket_path = directory / ".pebble.socket"
        self.client = pebble.Client(socket_path=str(self.socket_path))
        self._service_pids: dict[int, int | None] = {}

    def start(self, timeout: float = 20.0) -> None:
        """Start the daemon with --hold and wait until its API answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PEBBLE": str(self.directory)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "run", "--create-dirs", "--hold"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._raise_nofile if self.nofile else None,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.get_system_info()
                return
            except (pebble.ConnectionError, FileNotFoundError, ConnectionRefusedError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pebble did not start; see {self.log_path}") from None
                time.sleep(0.05)

    def _raise_nofile(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.nofile or soft
        # Raising the hard limit needs root; otherwise go as high as allowed.
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    @property
    def container(self) -> ops.Container:
        """A real ``ops.Container`` talking to this daemon (what a charm holds)."""
        # ops only reads the Juju version from the backend when given a client.
        backend = SimpleNamespace(_juju_context=SimpleNamespace(version=ops.JujuVersion("3.6.0")))
        return ops.Container("workload", cast(Any, backend), pebble_client=self.client)

    def apply(self, layer: dict[str, Any], label: str = "charm") -> None:
        """Add the layer and replan, as the charm does."""
        self.client.add_layer(label, cast(pebble.LayerDict, layer), combine=True)
        self.client.replan_services(timeout=60.0)
        self._remember_services()

    def _remember_services(self) -> None:
        self.service_pids()

    def service_pids(self) -> list[int]:
        """PIDs of the processes Pebble runs for its services right now."""
        if self.process is None:
            return []
        pids = descendants(self.process.pid)
        for pid in pids:
            self._service_pids.setdefault(pid, start_time(pid))
        return pids

    def wait_for_checks(self, names: Iterable[str], timeout: float = 90.0) -> float:
        """Wait until every named check has succeeded and is up; return seconds waited.

        A Pebble check reports "up" until it has failed ``threshold`` times, so
        "up" alone proves nothing at start-up: this also wants a success.
        """
        start = time.monotonic()
        wanted = set(names)
        while True:
            checks = {c.name: c for c in self.client.get_checks(names=list(wanted))}
            if wanted <= checks.keys() and all(
                c.status == pebble.CheckStatus.UP and (c.successes or 0) > 0
                for c in checks.values()
            ):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                states = {n: (c.status, c.successes, c.failures) for n, c in checks.items()}
                raise TimeoutError(f"checks not up after {timeout}s: {states}")
            time.sleep(0.2)

    def wait_for(
        self, predicate: Any, timeout: float = 60.0, interval: float = 0.2, what: str = ""
    ) -> float:
        """Poll ``predicate`` until true; return seconds waited."""
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
            time.sleep(interval)
        return time.monotonic() - start

    def diagnose(self, log_lines: int = 60) -> str:
        """Services, checks, recent changes and the log tail: what a failed wait prints."""
        parts: list[str] = []
        try:
            for service in self.client.get_services():
                parts.append(f"service {service.name}: {service.current}")
            for check in self.client.get_checks():
                parts.append(
                    f"check {check.name}: {check.status} "
                    f"(failures {check.failures}, successes {check.successes})"
                )
            for change in self.client.get_changes(select=pebble.ChangeState.ALL)[-8:]:
                parts.append(
                    f"change {change.id} {change.kind} {change.status}: {change.err or ''}"
                )
        except (pebble.Error, OSError) as err:
            parts.append(f"pebble API: {err}")
        if self.log_path.exists():
            tail = self.log_path.read_text(errors="replace").splitlines()[-log_lines:]
            parts.append("--- pebble.log tail ---")
            parts.extend(tail)
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop services through Pebble, then the daemon; kill leftovers by PID."""
        if self.process is None:
            return
        self._remember_services()
        with contextlib.suppress(pebble.Error, OSError):
            running = [s.name for s in self.client.get_services() if s.is_running()]
            if running:
                self.client.stop_services(running, timeout=90.0)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid, started in self._service_pids.items():
            kill_if_same(pid, started)
        self.process = None
