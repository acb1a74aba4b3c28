#!/usr/bin/env bash
# Installs everything mcsdns, its tests and its benchmarks need on a fresh
# Debian machine: dig, dnsperf, NSD and Knot (Debian; the last two only for
# bench/peers.py), the package and its test tools (PyPI), and, where Go is
# installed, the real peers the end-to-end tests run against (built once, then
# cached by Go and by tests/e2e/peers/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dig >/dev/null || ! command -v dnsperf >/dev/null || ! command -v nsd >/dev/null ||
   ! command -v knotd >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsutils dnsperf nsd knot >/dev/null
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

if [ -x tests/e2e/peers/build.sh ] && command -v go >/dev/null; then
  tests/e2e/peers/build.sh
fi
