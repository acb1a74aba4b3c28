"""ISC's DNS compliance checks against mcsdns, NSD and Knot, side by side.

    python bench/ednscomp.py [--all]

Starts the three on the test zone (tests/peerdns.py), runs every check of
tests/ednscomp.py against each, and prints how many each passes, then each
check that some server fails with the tags genreport would give (--all: every
check). tests/test_ednscomp.py asserts the same; this prints it for
bench/RESULTS.md and the README.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import ednscomp  # noqa: E402
from tests.helpers import DATA  # noqa: E402
from tests.peerdns import side_by_side  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="print every check, not only those some server fails")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, side_by_side(Path(tmp), DATA / "zone") as ports:
        verdicts = {name: ednscomp.run_all("127.0.0.1", port) for name, port in ports.items()}
    servers = list(verdicts)
    groups = sorted({check.group for check in ednscomp.CHECKS})
    print(f"# {len(ednscomp.CHECKS)} checks (genreport groups {', '.join(groups)}), passed:")
    for name in servers:
        passed = sum(not tags for tags in verdicts[name].values())
        default = [c for c in ednscomp.CHECKS if c.group == "EDNS"]
        passed_default = sum(not verdicts[name][c.name] for c in default)
        print(f"{name:<8} {passed:>3}/{len(ednscomp.CHECKS)}   (genreport's default EDNS group: {passed_default}/{len(default)})")
    print(f"\n{'check':<12} {'group':<5} " + " ".join(f"{name:<14}" for name in servers))
    for check in ednscomp.CHECKS:
        row = [",".join(verdicts[name][check.name]) or "ok" for name in servers]
        if args.all or any(cell != "ok" for cell in row):
            print(f"{check.name:<12} {check.group:<5} " + " ".join(f"{cell:<14}" for cell in row))


if __name__ == "__main__":
    main()
