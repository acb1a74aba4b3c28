"""The layering in pyproject.toml ([tool.importlinter]) holds: data flows
source -> model <- zone <- engine <- transport, and the engine does no I/O."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_import_contracts_kept():
    # Beside the interpreter first: the venv's, whether or not it is activated.
    beside = Path(sys.executable).parent / "lint-imports"
    command = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert command, "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    result = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
