"""The README's quick start, run as written (ports swapped for free ones), with dig."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from tests.helpers import ROOT, Server

README = (ROOT / "README.md").read_text()


def readme_command(prefix: str) -> list[str]:
    match = re.search(rf"^{re.escape(prefix)}.*$", README, re.MULTILINE)
    assert match, f"README.md has no line starting with {prefix!r}"
    return shlex.split(match.group(0))


def test_console_script_is_installed():
    script = shutil.which("mcsdns")
    assert script, "the console script 'mcsdns' is not on PATH (pip install -e .)"
    result = subprocess.run([script, "serve", "--help"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0 and "--source" in result.stdout


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (scripts/setup.sh installs dnsutils)")
def test_readme_quick_start_with_dig():
    serve = readme_command("python3 -m mcsdns serve")
    dig = readme_command("dig @127.0.0.1")
    source = serve[serve.index("--source") + 1]
    server = Server(ROOT / source).wait_ready()
    try:
        dig[dig.index("-p") + 1] = str(server.port)
        result = subprocess.run([*dig, "+short"], capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert sorted(result.stdout.split("\n")[:-1]) == [
            f"0 25 5432 {host}.db.data.svc.clusterset.local."
            for host in ("10-2-0-22.west", "db-0.east", "db-0.west", "db-1.east")
        ]
        tcp = subprocess.run([*dig, "+tcp"], capture_output=True, text=True, timeout=20)
        assert "flags: qr aa;" in tcp.stdout and "status: NOERROR" in tcp.stdout
    finally:
        server.stop()


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"Run the tests.*?```sh\n(.+?)\n```", README, re.DOTALL)
    assert block and block.group(1).strip() in ci.splitlines()
