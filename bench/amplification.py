"""The worst response/query size ratio our zone allows over UDP, and under a flood.

    python bench/amplification.py [--flood 2000] [--rrl "SERVER FLAGS"]

For four zones (the examples, the test data, a generated clusterset, and a
"sweep" of headless services with 1..80 endpoints under the shortest names,
which finds the biggest answer that still fits), starts the server, asks every
name for nine types without EDNS and with EDNS 512/1232/4096 over real UDP
(tests/amplify.py), and prints the worst ratio per variant, the worst ANY,
and the worst REFUSED (outside the zone). Then floods the worst question of
all from one source (--flood copies, bounded) and prints bytes back / bytes
sent. With --rrl, the flood is repeated against a server started with those
extra flags (response rate limiting, once the server has it), side by side.
Not a test: it prints numbers for bench/RESULTS.md; tests/test_amplification.py
holds the examples zone to a bound.
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import amplify  # noqa: E402
from tests.conftest import load_store  # noqa: E402
from tests.helpers import DATA, Server  # noqa: E402

OUTSIDE = [(b"example", b"com"), (b"local",), (), (b"xclusterset", b"local"), (b"version", b"bind")]


def sweep_zone(path: Path, most: int = 80) -> Path:
    """Headless services h1..h<most> in namespace "a", service hK with K ready endpoints."""
    items = []
    for count in range(1, most + 1):
        name = f"h{count}"
        items.append({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
                      "metadata": {"name": name, "namespace": "a"}, "spec": {"type": "Headless", "ports": []}})
        items.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-east", "namespace": "a",
                         "labels": {"multicluster.kubernetes.io/service-name": name,
                                    "multicluster.kubernetes.io/source-cluster": "east"}},
            "addressType": "IPv4", "ports": [],
            "endpoints": [{"addresses": [f"10.9.{count}.{i + 1}"], "conditions": {"ready": True}} for i in range(count)],
        })
    path.mkdir(parents=True, exist_ok=True)
    (path / "sweep.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def generated_zone(path: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "bench" / "zonegen.py"), str(path), "--services", "300",
                    "--endpoints", "1500", "--headless-share", "0.1"], check=True, capture_output=True)
    return path


def measure(source: Path) -> tuple[list[amplify.Probe], list[amplify.Probe]]:
    """(probes in the zone, probes outside it) against a fresh server on ``source``."""
    server = Server(source, "--log-level", "warning").wait_ready()
    try:
        names = amplify.zone_names(load_store(source).snapshot)
        inside = amplify.walk(names, server.host, server.port)
        outside = amplify.walk([labels for labels in OUTSIDE], server.host, server.port)
        return inside, outside
    finally:
        server.stop()


def flood(source: Path, probe: amplify.Probe, count: int, extra: list[str]) -> tuple[int, int, int, int]:
    """(queries sent, answers, bytes sent, bytes back) for ``count`` copies from one socket, in bursts of 50."""
    server = Server(source, "--log-level", "warning", *extra).wait_ready()
    labels = tuple(label.encode() for label in probe.name.rstrip(".").split("."))
    sent = answers = out = back = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            deadline = time.monotonic() + 60
            while sent < count and time.monotonic() < deadline:
                for _ in range(min(50, count - sent)):
                    message = amplify.query(sent & 0xFFFF, amplify.wire_name(labels), amplify.QTYPES[probe.qtype],
                                            amplify.VARIANTS[probe.variant])
                    sock.sendto(message, (server.host, server.port))
                    sent, out = sent + 1, out + len(message)
                try:
                    while True:
                        back += len(sock.recv(65535))
                        answers += 1
                except socket.timeout:
                    pass
    finally:
        server.stop()
    return sent, answers, out, back


def describe(probe: amplify.Probe) -> str:
    return f"{probe.ratio:5.1f}x {probe.name} {probe.qtype} ({probe.query}->{probe.response} B{', TC' if probe.truncated else ''})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=2000, help="copies of the worst question to send from one source")
    parser.add_argument("--rrl", default="", help="server flags that turn response rate limiting on, to compare")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        zones = {"examples": ROOT / "examples" / "clusterset.yaml", "test data": DATA / "zone",
                 "generated 300 svc": generated_zone(Path(tmp) / "generated"), "sweep 1..80 endpoints": sweep_zone(Path(tmp) / "sweep")}
        overall: tuple[amplify.Probe, Path] | None = None
        print("# worst response/query size ratio over UDP, per zone and EDNS variant (9 types x every name)")
        for label, source in zones.items():
            inside, outside = measure(source)
            names = len({probe.name for probe in inside})
            print(f"\n## {label}: {names} names, {len(inside)} questions")
            for variant in amplify.VARIANTS:
                print(f"  {variant:<10} {describe(amplify.worst(inside, variant))}")
            print(f"  {'ANY':<10} {describe(max((p for p in inside if p.qtype == 'ANY'), key=lambda p: p.ratio))}")
            refused = max(outside, key=lambda p: p.ratio)
            assert all(probe.rcode == 5 for probe in outside), "outside the zone must be REFUSED"
            print(f"  {'outside':<10} {describe(refused)}, all REFUSED")
            worst = amplify.worst(inside, "EDNS 1232")
            if overall is None or worst.ratio > overall[0].ratio:
                overall = (worst, source)
        probe, source = overall
        print(f"\n# flood: {args.flood} copies of the worst question from one source: {describe(probe)}")
        runs = {"without RRL": []}
        if args.rrl:
            runs[f"with {args.rrl}"] = shlex.split(args.rrl)
        for name, extra in runs.items():
            sent, answers, out, back = flood(source, probe, args.flood, extra)
            print(f"  {name:<14} {sent} sent, {answers} answered, {out:,} B out, {back:,} B back: {back / max(out, 1):.1f}x")


if __name__ == "__main__":
    main()
