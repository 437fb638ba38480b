"""The test command's last line: one count across every pytest process it ran.

    python scripts/summarize.py RESULTS_DIR

RESULTS_DIR holds one JUnit XML file per pytest process (``--junitxml``) and a
``steps.failed`` file listing steps that failed outside pytest (lint, a suite
that collected nothing, the benchmark smoke run). Prints the failed tests and
steps, then ``N passed, M failed, K skipped`` as the very last line. Exits 1
when anything failed or when no test ran at all. Standard library only: it
must run even when the venv could not be built.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    """Counts over every JUnit file, and the names of what failed."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    def add_junit(self, path: Path) -> None:
        """Count every test case of one JUnit file (an unreadable file is a failure)."""
        try:
            root = ET.parse(path).getroot()  # noqa: S314 (pytest wrote this file)
        except (ET.ParseError, OSError) as err:
            self.failed += 1
            self.failures.append(f"{path.name}: unreadable JUnit report ({err})")
            return
        for case in root.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            if case.find("failure") is not None or case.find("error") is not None:
                self.failed += 1
                self.failures.append(name)
            elif case.find("skipped") is not None:
                self.skipped += 1
            else:
                self.passed += 1

    def add_failed_steps(self, path: Path) -> None:
        """Each line of ``steps.failed`` is one failed step."""
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            if line.strip():
                self.failed += 1
                self.failures.append(f"step: {line.strip()}")

    def line(self) -> str:
        """The one-line verdict."""
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def main(results: Path) -> int:
    """Print the failures and the count; 1 when anything failed or nothing ran."""
    tally = Tally()
    for report in sorted(results.glob("*.xml")):
        tally.add_junit(report)
    tally.add_failed_steps(results / "steps.failed")
    if tally.passed + tally.failed == 0:
        tally.failed += 1
        tally.failures.append("step: no test ran at all")
    print("\n== summary ==")
    for failure in tally.failures:
        print(f"FAILED {failure}")
    print(tally.line())
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
