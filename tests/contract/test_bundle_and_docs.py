"""bundle.yaml and the documents cannot drift from the charms' charmcraft.yaml, or from the repo.

The charms' READMEs document every option and action; the root README stays a
front door that links every document; links and the commands the documents
name point at things that exist.
"""

from __future__ import annotations

import importlib.util
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


README = REPO / "README.md"
README_MAX_LINES = 300
DOCS = REPO / "docs"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
MAKEFILE = REPO / "Makefile"

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
BASH_SCRIPT = re.compile(r"\bbash\s+(\S*?)(scripts/[\w.-]+\.sh)\b")
PYTHON_MODULE = re.compile(r"\bpython3?\s+-m\s+([A-Za-z_][\w.]*)")
MAKE_TARGET = re.compile(r"(?:^|[\s;&|(])make\s+([A-Za-z_][\w-]*)")


def charm_readme(charm: str) -> Path:
    return REPO / "charms" / charm / "README.md"


def _heading_section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next second-level heading."""
    match = re.search(rf"^## {re.escape(heading)}[ \t]*$", text, re.MULTILINE)
    assert match, f"no '## {heading}' section"
    following = re.search(r"^## ", text[match.end() :], re.MULTILINE)
    return text[match.start() : match.end() + following.start() if following else None]


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
def test_charm_readme_documents_every_option_with_its_default(charm: str):
    rows = _table_rows(_heading_section(charm_readme(charm).read_text(), "Configuration"))
    for option, meta in charmcraft(charm)["config"]["options"].items():
        assert option in rows, f"{charm}'s README lacks option {option}"
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
def test_charm_readme_documents_every_action(charm: str):
    section = _heading_section(charm_readme(charm).read_text(), "Actions")
    for action in charmcraft(charm).get("actions") or {}:
        assert f"`{action}" in section, f"{charm}'s README lacks action {action}"


def _documents() -> list[Path]:
    """The hand-written documents: README, docs/*.md, CONTRIBUTING and the charms' READMEs."""
    return [
        README,
        *sorted(DOCS.glob("*.md")),
        CONTRIBUTING,
        *(charm_readme(charm) for charm in CHARMS),
    ]


def _relative_links(document: Path) -> list[str]:
    """Link targets outside code blocks that are not URLs or same-page anchors."""
    prose = FENCE.sub("", document.read_text())
    return [
        target
        for target in LINK.findall(prose)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def _code_blocks(document: Path) -> str:
    return "\n".join(FENCE.findall(document.read_text()))


def _make_targets() -> set[str]:
    """The Makefile's rule names (not its ``NAME := value`` variables)."""
    return set(re.findall(r"^([A-Za-z_][\w-]*)\s*:(?!=)", MAKEFILE.read_text(), re.MULTILINE))


def test_the_root_readme_is_a_front_door_of_at_most_300_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move depth into docs/"


def test_the_root_readme_links_every_document():
    linked = {(REPO / target.split("#")[0]).resolve() for target in _relative_links(README)}
    wanted = [
        *sorted(DOCS.rglob("*.md")),
        CONTRIBUTING,
        *(charm_readme(charm) for charm in CHARMS),
    ]
    missing = [str(path.relative_to(REPO)) for path in wanted if path.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_that_exists(document: Path):
    broken = [
        target
        for target in _relative_links(document)
        if not (document.parent / target.split("#")[0]).exists()
    ]
    assert not broken, f"{document.relative_to(REPO)} links to missing {broken}"


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_named_in_a_code_block_exists(document: Path):
    code = _code_blocks(document)
    missing = [
        f"bash {script}"
        for _, script in BASH_SCRIPT.findall(code)
        if not (REPO / script).is_file()
    ]
    for module in PYTHON_MODULE.findall(code):
        package = REPO / module.replace(".", "/")
        if (REPO / module.split(".")[0]).is_dir():
            # One of this repository's packages: it must be runnable with -m.
            if not (package / "__main__.py").is_file():
                missing.append(f"python -m {module}")
        elif importlib.util.find_spec(module) is None:
            # A tool from the venv (pytest, pip...): it must be installed there.
            missing.append(f"python -m {module}")
    targets = _make_targets()
    missing += [f"make {t}" for t in MAKE_TARGET.findall(code) if t not in targets]
    assert not missing, f"{document.relative_to(REPO)} names commands that do not exist: {missing}"


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


@pytest.mark.parametrize("charm", CHARMS)
def test_the_typed_configs_options_and_defaults_are_charmcraft_yamls(charm: str):
    from stack.charm_loader import charm_modules

    config: Any = charm_modules(charm, "config").config
    options = charmcraft(charm)["config"]["options"]
    assert set(config._OPTIONS) == set(options)
    for option, (_attribute, default, _check) in config._OPTIONS.items():
        assert default == options[option].get("default"), f"{charm} {option}"
    # The dataclass's own field defaults are the parsed charmcraft.yaml defaults.
    parsed = config.CharmConfig.from_mapping({o: m.get("default") for o, m in options.items()})
    assert config.CharmConfig() == parsed
