"""The README's quick start, run as written (ports swapped for free ones), with dig.

The set-up block is run on a fresh copy by tests/test_install.py; its last line
activates .venv, so the README's `mcsdns` and `python` are the ones next to the
interpreter running these tests.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, readyz_ok, wait_for

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def readme_command(prefix: str) -> list[str]:
    match = re.search(rf"^{re.escape(prefix)}.*$", README, re.MULTILINE)
    assert match, f"README.md has no line starting with {prefix!r}"
    return shlex.split(match.group(0))


def readme_block(after: str) -> list[str]:
    block = re.search(rf"{re.escape(after)}.*?```sh\n(.+?)\n```", README, re.DOTALL)
    assert block, f"README.md has no sh block after {after!r}"
    return block.group(1).splitlines()


def test_console_script_is_installed():
    script = BIN / "mcsdns"
    assert script.exists(), f"no console script 'mcsdns' beside {sys.executable} (./scripts/setup.sh installs it)"
    result = subprocess.run([script, "serve", "--help"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0 and "--source" in result.stdout


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (scripts/setup.sh installs dnsutils)")
def test_readme_quick_start_with_dig(tmp_path):
    serve = readme_command("mcsdns serve")
    dig = readme_command("dig @127.0.0.1")
    port, http = free_port(), free_port()
    serve[0] = str(BIN / serve[0])  # what `. .venv/bin/activate` puts first on PATH
    serve[serve.index("--listen") + 1] = f"127.0.0.1:{port}"
    serve[serve.index("--http") + 1] = f"127.0.0.1:{http}"
    dig[dig.index("-p") + 1] = str(port)
    log = open(tmp_path / "serve.log", "w+")
    server = subprocess.Popen(serve, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        wait_for(lambda: server.poll() is not None or readyz_ok(http), timeout=15, what="the README's server is ready")
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        result = subprocess.run([*dig, "+short"], capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert sorted(result.stdout.split("\n")[:-1]) == [
            f"0 25 5432 {host}.db.data.svc.clusterset.local."
            for host in ("10-2-0-22.west", "db-0.east", "db-0.west", "db-1.east")
        ]
        tcp = subprocess.run([*dig, "+tcp"], capture_output=True, text=True, timeout=20)
        assert "flags: qr aa;" in tcp.stdout and "status: NOERROR" in tcp.stdout
    finally:
        server.terminate()
        assert server.wait(10) == 0, (tmp_path / "serve.log").read_text()
        log.close()


def test_ci_runs_the_readme_set_up_then_test_commands():
    setup = readme_block("## Quick start")
    test = readme_block("Run the tests")
    assert setup[0] == "./scripts/setup.sh" and setup[1:] == [". .venv/bin/activate"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == setup + test
