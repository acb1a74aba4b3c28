"""Installing mcsdns: `--version`, the image's build steps, and scripts/setup.sh on a system Python.

No Docker engine runs here: the image test runs the Dockerfile's build-stage
steps on a copy of the build context (as .dockerignore leaves it) into a fresh
venv, then runs the run stage's ENTRYPOINT from that venv and asks it over DNS.
The set-up test runs scripts/setup.sh on a fresh copy of the repository with
Debian's own /usr/bin/python3, which is "externally managed" (PEP 668).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.helpers import DATA, ROOT, free_port, run_cli, wait_for
from tests.test_dockerfile import build_context, stages

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what points Python at this checkout or this venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.endswith("/.venv/bin"))
    return {**env, **extra}


@pytest.mark.parametrize("argv", [["--version"], ["serve", "--version"]], ids=["top", "serve"])
def test_version(argv):
    result = run_cli(*argv)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"mcsdns {VERSION}\n", "")


# ---- the image's install, without Docker -------------------------------------------


def copy_files(paths, source: Path, target: Path) -> None:
    for rel in paths:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)


def docker_copy(context: Path, rest: str, workdir: Path) -> None:
    """COPY SRC... DEST as Docker does it: a folder's contents, DEST relative to WORKDIR."""
    *sources, dest = rest.split()
    target = workdir / dest
    for source in sources:
        origin = context / source
        assert origin.exists(), f"COPY {source}: not in the build context"
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        elif dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory) -> Path:
    """The build stage's steps run here: its COPYs from the filtered context, then its RUNs."""
    tmp = tmp_path_factory.mktemp("image")
    context, src, venv = tmp / "context", tmp / "src", tmp / "venv"
    copy_files(build_context(), ROOT, context)
    build, _ = stages()
    (workdir,) = build.args("WORKDIR")
    for rest in build.args("COPY"):
        docker_copy(context, rest, src)
    # The build stage's ENV, but this venv for its /opt one, this interpreter
    # for its python3, and the pip cache allowed (for speed here only).
    env = clean_env(**{**build.env(), "VENV": str(venv), "PYTHON": sys.executable})
    env.pop("PIP_NO_CACHE_DIR", None)
    for command in build.args("RUN"):
        result = subprocess.run(
            ["/bin/sh", "-c", command], cwd=src, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"RUN {command} (WORKDIR {workdir}):\n{result.stdout}\n{result.stderr}"
    return venv


def test_image_venv_holds_the_package_not_the_source(image_venv):
    out = subprocess.run(
        [image_venv / "bin" / "python", "-c", "import mcsdns, importlib.util as u; "
         "print(mcsdns.__file__); print(u.find_spec('pip')); print(u.find_spec('pytest'))"],
        cwd="/", env=clean_env(), capture_output=True, text=True, timeout=30,
    )
    location, pip, pytest_spec = out.stdout.split("\n")[:3]
    assert Path(location).is_relative_to(image_venv), location
    assert (pip, pytest_spec) == ("None", "None"), "the image holds no installer and no test tools"


def test_image_entrypoint_serves_from_its_venv(image_venv, tmp_path):
    _, run = stages()
    entrypoint = run.exec_form("ENTRYPOINT")
    program = shutil.which(entrypoint[0], path=str(image_venv / "bin"))
    assert program, f"{entrypoint[0]} is not in the venv's bin"
    env = clean_env(PATH=f"{image_venv}/bin:/usr/bin:/bin")
    version = subprocess.run([program, "--version"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert (version.returncode, version.stdout) == (0, f"mcsdns {VERSION}\n")

    port, http = free_port(), free_port()
    # As the Deployment does: the image's ENTRYPOINT, its own args.
    argv = [program, *entrypoint[1:], "--source", str(DATA / "zone"), "--listen", f"127.0.0.1:{port}",
            "--http", f"127.0.0.1:{http}"]
    log = open(tmp_path / "server.log", "w+")
    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready():
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return dns.query.udp(dns.message.make_query("clusterset.local.", "SOA"), "127.0.0.1", port=port,
                                     timeout=0.5).rcode() == dns.rcode.NOERROR
            except dns.exception.Timeout:
                return False
            except OSError:
                return False

        wait_for(ready, timeout=20, what="the image's mcsdns answers")
        for transport in (dns.query.udp, dns.query.tcp):
            answer = transport(dns.message.make_query("web.shop.svc.clusterset.local.", "A"), "127.0.0.1",
                               port=port, timeout=3)
            assert answer.rcode() == dns.rcode.NOERROR and answer.answer, answer
    finally:
        server.terminate()
        assert server.wait(10) == 0, (tmp_path / "server.log").read_text()
        log.close()


# ---- scripts/setup.sh --------------------------------------------------------------


def fresh_copy(target: Path) -> Path:
    """The checkout's files as a fresh clone has them (tracked and new, not ignored): no .venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split("\0")
    copy_files([p for p in listed if p and (ROOT / p).is_file()], ROOT, target)
    return target


def setup(copy: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./scripts/setup.sh"], cwd=copy, env=clean_env(MCSDNS_SKIP_PEERS="1", **env),
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )


def system_site() -> dict[str, list[str]]:
    folders = [Path("/usr/lib/python3/dist-packages"), *Path("/usr/local/lib").glob("python3*/dist-packages")]
    return {str(f): sorted(os.listdir(f)) for f in folders if f.is_dir()}


@pytest.mark.skipif(
    not SYSTEM_PYTHON.exists()
    or subprocess.run([SYSTEM_PYTHON, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]).returncode,
    reason="no /usr/bin/python3 >= 3.11 (Debian 12 or newer) to set up with",
)
def test_setup_with_an_externally_managed_system_python(tmp_path):
    copy = fresh_copy(tmp_path / "repo")
    assert not (copy / ".venv").exists()
    before = system_site()

    first = setup(copy, PYTHON=str(SYSTEM_PYTHON))
    assert first.returncode == 0, first.stdout + first.stderr
    venv_python = copy / ".venv" / "bin" / "python"
    probe = subprocess.run(
        [venv_python, "-c", "import sys, mcsdns; print(sys.base_prefix); print(mcsdns.__file__)"],
        cwd="/", env=clean_env(), capture_output=True, text=True, timeout=30,
    )
    base, location = probe.stdout.split("\n")[:2]
    assert base == "/usr", "the venv is made from the system Python"
    assert Path(location).is_relative_to(copy), "mcsdns is installed editable from the checkout"
    for tool in ("mcsdns", "pytest", "lint-imports", "hadolint"):
        assert (copy / ".venv" / "bin" / tool).exists(), f"{tool} is not in .venv/bin"
    version = subprocess.run([copy / ".venv/bin/mcsdns", "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout == f"mcsdns {VERSION}\n"
    assert system_site() == before, "setup.sh installed into the system Python"
    if Path("/usr/lib/python3.11/EXTERNALLY-MANAGED").exists():  # what makes a system pip refuse
        refused = subprocess.run([SYSTEM_PYTHON, "-m", "pip", "install", "--dry-run", "dnslib"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr + refused.stdout

    start = time.monotonic()
    again = setup(copy, PYTHON=str(SYSTEM_PYTHON))
    took = time.monotonic() - start
    assert again.returncode == 0 and "is up to date" in again.stderr, again.stderr
    assert took < 10, f"a second run took {took:.1f}s"


BAD_PYTHONS = [
    ("missing", None, "not found"),
    ("too old", "#!/bin/sh\necho 3.9\n", "needs Python >= 3.11, but"),
    ("not python", "#!/bin/sh\nexit 1\n", "does not run as Python"),
]


@pytest.mark.parametrize("what,script,message", BAD_PYTHONS, ids=[b[0] for b in BAD_PYTHONS])
def test_setup_refuses_an_unusable_python(tmp_path, what, script, message):
    copy = tmp_path / "repo"
    copy_files(["scripts/setup.sh"], ROOT, copy)
    python = tmp_path / "python3"
    if script:
        python.write_text(script)
        python.chmod(0o755)
    result = setup(copy, PYTHON=str(python))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("setup.sh: error: ") and message in lines[0]
    assert not (copy / ".venv").exists()
