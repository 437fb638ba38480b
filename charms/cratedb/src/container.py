"""The one door to commands run inside the CrateDB container."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Literal, cast

import ops

from constants import CRATE_USER, LAYER_LABEL, METRICS_LAYER_LABEL, SERVICE
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

    def apply_metrics(self, script: str, path: str, layer: dict) -> bool:
        """Push the exporter and run it as ``layer`` says; True when it was (re)started.

        Started or restarted by name, never by replan: a replan would also
        restart CrateDB for flags deferred to its next start.
        """
        wanted = ops.pebble.Layer(cast(ops.pebble.LayerDict, layer))
        [(name, spec)] = wanted.services.items()
        pushed = self._container.exists(path) and self._container.pull(path).read() == script
        if not pushed:
            self._container.push(path, script, make_dirs=True, permissions=0o644)
        current = self._container.get_plan().services.get(name)
        same = current is not None and current.to_dict() == spec.to_dict()
        if not same:
            self._container.add_layer(METRICS_LAYER_LABEL, wanted, combine=True)
        services = self._container.get_services(name)
        running = name in services and services[name].is_running()
        if same and pushed and running:
            return False
        self._container.restart(name)
        return True


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
