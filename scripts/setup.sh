#!/usr/bin/env bash
# Sets up this checkout on Debian/Ubuntu (or here) for running, testing and
# benchmarking mcsdns. Run it again at any time: it only does what is missing.
#
#   Debian packages  dig (dnsutils) and dnsperf for the quick start, the tests
#                    and bench/live.py; NSD and Knot for bench/peers.py and the
#                    zone-file checks (nsd-checkzone, kzonecheck); and
#                    python3.X-venv where the interpreter lacks ensurepip.
#                    Skipped when the tools are there; nothing is upgraded.
#   .venv            a virtualenv of ${PYTHON:-python3} (>= 3.11) holding the
#                    package (editable) and its test tools (pyproject's [test]).
#                    Never the system interpreter: a PEP 668 "externally
#                    managed" Python is fine. Skipped when pyproject.toml is
#                    unchanged since the last install into this .venv.
#   Go peers         where Go is installed, tests/e2e/peers/build.sh builds the
#                    kube-apiserver and CoreDNS the end-to-end tests run against
#                    (minutes the first time, then cached).
#
# Environment: PYTHON (interpreter for .venv, default python3),
# MCSDNS_SKIP_PEERS=1 (do not build the Go peers).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup.sh: $*" >&2; }
die() { echo "setup.sh: error: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "installing Debian packages needs root or sudo: $*"
  fi
}

python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "Python interpreter '$python' not found (set PYTHON=/path/to/python3.11 or newer)"
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
  die "'$python' does not run as Python (set PYTHON=/path/to/python3.11 or newer)"
[[ "$version" =~ ^([0-9]+)\.([0-9]+)$ ]] || die "'$python' reported version '$version', not MAJOR.MINOR"
if (( BASH_REMATCH[1] < 3 || (BASH_REMATCH[1] == 3 && BASH_REMATCH[2] < 11) )); then
  die "mcsdns needs Python >= 3.11, but '$python' is $version (set PYTHON=/path/to/python3.11 or newer)"
fi

root="$PWD"
venv="$root/.venv"
venv_ok() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

# Debian packages, only those missing.
packages=()
have dig || packages+=(dnsutils)
have dnsperf || packages+=(dnsperf)
have nsd || packages+=(nsd)
have knotd || packages+=(knot)
have kzonecheck || packages+=(knot-dnssecutils)
if ! venv_ok && ! "$python" -c 'import ensurepip' 2>/dev/null; then
  # Debian keeps ensurepip (what `python3 -m venv` needs) in python3.X-venv.
  packages+=("python$version-venv")
fi
if (( ${#packages[@]} )); then
  command -v apt-get >/dev/null 2>&1 || die "missing ${packages[*]} and no apt-get to install them with"
  say "installing Debian packages: ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade "${packages[@]}" >/dev/null
fi

# The virtualenv: made once, rebuilt only if its interpreter no longer runs.
if ! venv_ok; then
  [ -e "$venv" ] && { say "$venv does not run; making it again"; rm -rf "$venv"; }
  say "creating $venv with $python ($version)"
  "$python" -m venv "$venv" || die "'$python -m venv' failed (on Debian/Ubuntu: apt-get install python$version-venv)"
fi

# The package and its test tools. The stamp records which pyproject.toml was
# installed and where, so an unchanged checkout skips pip (a second run takes
# about a second); a moved checkout or an edited pyproject.toml installs again.
stamp="$venv/.mcsdns-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $root"
installed() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/hadolint" ] &&
    (cd / && "$venv/bin/python" -c 'import sys, mcsdns, pytest, dns, importlinter
sys.exit(not mcsdns.__file__.startswith(sys.argv[1] + "/"))' "$root") 2>/dev/null
}
if installed; then
  say "$venv is up to date"
else
  say "installing mcsdns[test] into $venv"
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$want" >"$stamp"
fi

# The end-to-end peers, where Go is installed.
if [ -n "${MCSDNS_SKIP_PEERS:-}" ]; then
  say "MCSDNS_SKIP_PEERS is set: not building the Go peers (the e2e tests will build them or skip)"
elif ! command -v go >/dev/null 2>&1; then
  say "no Go toolchain: the e2e peers are not built, and tests/e2e is skipped (with CI set, it fails)"
else
  status=0
  tests/e2e/peers/build.sh >/dev/null || status=$?
  case "$status" in
    0) ;;
    3) say "Go is too old for the e2e peers (see above); tests/e2e is skipped (with CI set, it fails)" ;;
    *) die "tests/e2e/peers/build.sh failed (exit $status)" ;;
  esac
fi
say "done: run '. .venv/bin/activate' to use mcsdns and pytest from .venv"
