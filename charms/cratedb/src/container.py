"""The one door to commands run inside the CrateDB container."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal, cast

import ops

from constants import CRATE_BIN, CRATE_USER, LAYER_LABEL, SERVICE
from exceptions import WorkloadError
from workload import restart_relevant

logger = logging.getLogger(__name__)

TIMEOUT = 30.0
MEMORY_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
# cgroup v1 reports "no limit" as a huge number.
NO_LIMIT = 1 << 60


class Workload:
    """Commands in the CrateDB container, with timeouts and error mapping."""

    def __init__(self, container: ops.Container):
        self._container = container

    def _run(self, argv: list[str]) -> str:
        try:
            stdout, _ = self._container.exec(argv, timeout=TIMEOUT).wait_output()
        except ops.pebble.ExecError as err:
            raise WorkloadError(
                f"{argv[0]} failed in the container (exit {err.exit_code})"
            ) from None
        except (ops.pebble.ChangeError, ops.pebble.APIError, ops.pebble.TimeoutError) as err:
            logger.warning("could not run %s: %s", argv[0], err)
            raise WorkloadError("the CrateDB container does not answer; retrying") from None
        return stdout

    def memory_limit(self) -> int | None:
        """The container's memory limit in bytes, None when unlimited or unknown."""
        for path in MEMORY_LIMIT_FILES:
            try:
                raw = self._run(["cat", path]).strip()
            except WorkloadError:
                continue
            if raw.isdigit() and 0 < int(raw) < NO_LIMIT:
                return int(raw)
            return None
        return None

    def max_map_count(self) -> int | None:
        """The host kernel's vm.max_map_count (not namespaced: the node's value)."""
        try:
            raw = self._run(["cat", "/proc/sys/vm/max_map_count"]).strip()
        except WorkloadError:
            return None
        return int(raw) if raw.isdigit() else None

    def crate_version(self, crate_bin: str = CRATE_BIN) -> str:
        """What the image's ``crate -v`` prints (its version, build and JVM)."""
        return self._run([crate_bin, "-v"])

    def own_data_dir(self, path: str) -> None:
        """Give the data storage to the crate user (Kubernetes mounts it root-owned)."""
        self._run(["chown", "-R", f"{CRATE_USER}:{CRATE_USER}", path])

    def service_running(self) -> bool:
        """True when the CrateDB service runs."""
        services = self._container.get_services(SERVICE)
        return SERVICE in services and services[SERVICE].is_running()

    def apply_layer(self, layer: dict) -> Literal["unchanged", "deferred", "replanned"]:
        """Apply the layer; restart only when a flag that matters while running changed.

        ``deferred``: only start-time flags (seeds, bootstrap, gateway) changed;
        they are in the plan for the next start and the running node is left
        alone. That is how a cluster grows without restarting its nodes.
        """
        wanted = ops.pebble.Layer(cast(ops.pebble.LayerDict, layer))
        service = self._container.get_plan().services.get(SERVICE)
        current = _comparable(service.to_dict()) if service is not None else None
        spec = _comparable(wanted.services[SERVICE].to_dict())
        if current is not None and current == spec:
            if not self.service_running():
                self._container.replan()
                return "replanned"
            return "unchanged"
        self._container.add_layer(LAYER_LABEL, wanted, combine=True)
        same_when_running = (
            current is not None
            and restart_relevant(current["command"]) == restart_relevant(spec["command"])
            and {**current, "command": ""} == {**spec, "command": ""}
        )
        if same_when_running and self.service_running():
            logger.info("membership flags updated for the next start; no restart")
            return "deferred"
        self._container.replan()
        logger.info("Pebble layer applied")
        return "replanned"

    def push_scripts(self, files: Mapping[str, str]) -> bool:
        """Push each file whose content differs from what is there; True when any did."""
        changed = False
        for path, content in files.items():
            if self._container.exists(path) and self._container.pull(path).read() == content:
                continue
            self._container.push(path, content, make_dirs=True, permissions=0o644)
            changed = True
        return changed

    def apply_side_service(self, label: str, layer: dict, scripts_changed: bool = False) -> bool:
        """Run the one service of ``layer`` (exporter, backup runner); True when (re)started.

        Started or restarted by name, never by replan: a replan would also
        restart CrateDB for flags deferred to its next start.
        """
        wanted = ops.pebble.Layer(cast(ops.pebble.LayerDict, layer))
        [(name, spec)] = wanted.services.items()
        current = self._container.get_plan().services.get(name)
        same = current is not None and current.to_dict() == spec.to_dict()
        if not same:
            self._container.add_layer(label, wanted, combine=True)
        services = self._container.get_services(name)
        running = name in services and services[name].is_running()
        if same and not scripts_changed and running:
            return False
        self._container.restart(name)
        return True

    def retire_side_service(self, label: str, name: str) -> bool:
        """Stop a side service for good (Pebble cannot drop it from the plan); True if it ran."""
        current = self._container.get_plan().services.get(name)
        if current is None:
            return False
        if current.startup != "disabled":
            off = {"services": {name: {"override": "merge", "startup": "disabled"}}}
            self._container.add_layer(
                label, ops.pebble.Layer(cast(ops.pebble.LayerDict, off)), combine=True
            )
        services = self._container.get_services(name)
        if name in services and services[name].is_running():
            self._container.stop(name)
            return True
        return False

    def make_writable_dir(self, path: str) -> None:
        """A directory the crate user writes (the backup runner's state)."""
        if not self._container.exists(path):
            self._container.make_dir(path, make_parents=True, user=CRATE_USER, group=CRATE_USER)

    def read_text(self, path: str) -> str | None:
        """A file's content; None when it is not there."""
        try:
            return self._container.pull(path).read()
        except (ops.pebble.PathError, ops.pebble.APIError):
            return None

    def remove(self, path: str) -> None:
        """Delete a file if it is there."""
        with contextlib.suppress(ops.pebble.PathError):
            self._container.remove_path(path)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_DURATION_FIELDS = ("kill-delay", "backoff-delay", "backoff-limit")


def duration_seconds(value: str) -> float:
    """Seconds in a Pebble (Go) duration: ``60s`` and ``1m0s`` are the same."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


def _comparable(service: Mapping[str, Any]) -> dict[str, Any]:
    """A service as a plan or a layer gives it, with durations compared by value.

    Pebble reports durations in Go's canonical form (a layer's ``60s`` comes
    back as ``1m0s``, measured with Pebble 1.32.1): compared as text, the plan
    would never equal the layer, and every hook would replan.
    """
    return {
        key: duration_seconds(value)
        if key in _DURATION_FIELDS and isinstance(value, str)
        else value
        for key, value in service.items()
    }
