"""bundle.yaml and the README cannot drift from the charms' charmcraft.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARMS = ("seaweedfs", "mlflow-tracking", "cratedb")


def charmcraft(charm: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "charms" / charm / "charmcraft.yaml").read_text())


def endpoints(charm: str) -> dict[str, tuple[str, str]]:
    """Endpoint -> (role, interface)."""
    spec = charmcraft(charm)
    found = {}
    for role in ("provides", "requires", "peers"):
        for name, meta in (spec.get(role) or {}).items():
            found[name] = (role, meta["interface"])
    return found


BUNDLE = yaml.safe_load((REPO / "bundle.yaml").read_text())


class TestBundle:
    def test_every_application_points_at_a_charm_of_this_repository(self):
        for app, spec in BUNDLE["applications"].items():
            charm = Path(spec["charm"]).parent.name
            assert charm in CHARMS, app
            assert spec["charm"] == f"./charms/{charm}/{charm}_amd64.charm"

    @pytest.mark.parametrize("relation", BUNDLE["relations"], ids=lambda r: " <-> ".join(r))
    def test_relation_endpoints_exist_with_matching_interfaces_and_opposite_roles(
        self, relation: list[str]
    ):
        sides = []
        for side in relation:
            app, endpoint = side.split(":")
            charm = Path(BUNDLE["applications"][app]["charm"]).parent.name
            assert endpoint in endpoints(charm), f"{charm} has no endpoint {endpoint}"
            sides.append(endpoints(charm)[endpoint])
        (role_a, iface_a), (role_b, iface_b) = sides
        assert iface_a == iface_b
        assert {role_a, role_b} == {"provides", "requires"}

    def test_options_resources_and_storage_exist(self):
        for app, spec in BUNDLE["applications"].items():
            charm = Path(spec["charm"]).parent.name
            meta = charmcraft(charm)
            assert set(spec.get("options", {})) <= set(meta["config"]["options"]), app
            assert set(spec.get("resources", {})) <= set(meta["resources"]), app
            assert set(spec.get("storage", {})) <= set(meta["storage"]), app
            for name, image in spec.get("resources", {}).items():
                assert image == meta["resources"][name]["upstream-source"], (
                    f"{app} pins another image"
                )

    def test_the_database_and_artifact_relations_are_wired(self):
        wired = {tuple(sorted(r)) for r in BUNDLE["relations"]}
        assert ("cratedb:database", "mlflow-tracking:cratedb") in wired
        assert ("mlflow-tracking:s3-credentials", "seaweedfs:s3-credentials") in wired
        assert ("cratedb:s3-parameters", "seaweedfs:s3-credentials") in wired


README = (REPO / "README.md").read_text()


def _section(charm: str) -> str:
    start = README.index(f"## The {charm} charm")
    end = README.find("\n## ", start + 5)
    return README[start : end if end != -1 else None]


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            line.startswith("|")
            and cells
            and (m := re.fullmatch(r"`([a-z0-9-]+)[^`]*`", cells[0]))
        ):
            rows[m.group(1)] = cells
    return rows


@pytest.mark.parametrize("charm", CHARMS)
def test_readme_documents_every_option_with_its_default(charm: str):
    rows = _table_rows(_section(charm))
    for option, meta in charmcraft(charm)["config"]["options"].items():
        assert option in rows, f"README's {charm} section lacks option {option}"
        default = meta.get("default")
        shown = rows[option][1].strip("`")
        # YAML booleans as the README writes them (true/false); other values as they are.
        expected = (
            '""'
            if default == ""
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        assert shown == expected, (
            f"{charm} {option}: README says {shown}, charmcraft.yaml {expected}"
        )


@pytest.mark.parametrize("charm", CHARMS)
def test_readme_documents_every_action(charm: str):
    section = _section(charm)
    for action in charmcraft(charm).get("actions") or {}:
        assert f"`{action}" in section, f"README's {charm} section lacks action {action}"


POLICIES = {
    doc["metadata"]["name"]: doc
    for doc in yaml.safe_load_all((REPO / "examples" / "networkpolicies.yaml").read_text())
    if doc
}


class TestNetworkPolicies:
    """examples/networkpolicies.yaml names the ports the charms listen on."""

    @staticmethod
    def _ports(policy: dict[str, Any]) -> tuple[set[int], set[int]]:
        """(open to all, open to the application's own pods)."""
        everyone: set[int] = set()
        own: set[int] = set()
        for rule in policy["spec"]["ingress"]:
            ports = {p["port"] for p in rule["ports"]}
            (own if rule.get("from") else everyone).update(ports)
        return everyone, own

    def test_seaweedfs_opens_s3_and_metrics_and_keeps_the_inner_ports_to_itself(self):
        from stack.charm_loader import charm_modules

        c = charm_modules("seaweedfs", "constants").constants
        everyone, own = self._ports(POLICIES["seaweedfs-inner-ports"])

        assert everyone == {c.S3_PORT, c.METRICS_PORT}
        inner = {c.MASTER_PORT, c.VOLUME_PORT, c.FILER_PORT}
        assert own == inner | {p + c.GRPC_OFFSET for p in inner | {c.S3_PORT}}

    def test_cratedb_keeps_the_transport_port_to_its_nodes(self):
        from stack.charm_loader import charm_modules

        c = charm_modules("cratedb", "constants").constants
        everyone, own = self._ports(POLICIES["cratedb-transport"])

        assert everyone == {c.HTTP_PORT, c.PG_PORT, c.METRICS_PORT}
        assert own == {c.TRANSPORT_PORT}
