"""``mcsdns serve``: flags and ``MCSDNS_*`` environment -> Config -> app.

Every flag can also come from the environment as ``MCSDNS_<FLAG>`` (dashes as
underscores, e.g. ``MCSDNS_LISTEN``); a flag on the command line wins. Bad
settings print one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys

from .config import (
    LOG_FORMATS,
    LOG_LEVELS,
    PRODUCERS,
    Config,
    ConfigError,
    bounded,
    choice,
    parse_address,
    parse_cluster_id,
    parse_flag,
    load_keys,
    parse_addresses,
    parse_ips,
    parse_networks,
    parse_reverse_zones,
    parse_zones,
)

EXIT_USAGE = 2
# (flag, metavar, help); the default shown is Config's.
_FLAGS = [
    ("--source", "PATH|kube", "a YAML/JSON file or folder of Kubernetes objects, or 'kube' for the Kubernetes API (required)"),
    ("--listen", "HOST:PORT", "UDP and TCP address to answer on; repeat or comma-separate for several (default 0.0.0.0:5353)"),
    ("--zone", "NAME[,NAME]", "the zone(s) to serve, each with its own SOA, the same names in each (default clusterset.local)"),
    ("--ttl", "SECONDS", "TTL of every record, and the negative-caching TTL (default 5)"),
    ("--dns-version", "TEXT", "the TXT at dns-version.<zone> (default 1.0.0, the MCS DNS schema)"),
    ("--http", "HOST:PORT|off", "address for /healthz, /readyz and /metrics (default 0.0.0.0:8080)"),
    ("--max-udp-payload", "BYTES", "largest UDP answer even if the client offers more (default 1232)"),
    ("--tcp-idle-timeout", "SECONDS", "close a TCP connection idle this long (default 10)"),
    ("--tcp-max-connections", "N", "TCP connections at once; one more closes the longest idle (default 1024)"),
    ("--tcp-read-timeout", "SECONDS", "close a TCP connection whose query has not all arrived this long after its first byte (default 3)"),
    ("--tcp-write-timeout", "SECONDS", "close a TCP connection that has not read its answers for this long (default 5)"),
    ("--tcp-max-in-flight", "N", "answers one TCP connection may leave unread before it is read no further (default 64)"),
    ("--tcp-max-buffered", "BYTES", "bytes of answers one TCP connection may leave unread, and of queries sent ahead (default 65536)"),
    ("--poll-interval", "SECONDS", "how often a folder source looks for edits (default 1)"),
    ("--lameduck", "SECONDS", "on SIGTERM, report not-ready this long before closing (default 0)"),
    ("--log-level", "LEVEL", "debug, info, warning or error (default info)"),
    ("--log-format", "FORMAT", "plain lines, or json: one object a line (default plain)"),
    ("--kubeconfig", "FILE", "with --source kube: kubeconfig to use (default: in-cluster, then ~/.kube/config)"),
    ("--context", "NAME", "with --source kube: kubeconfig context"),
    ("--cluster-id", "ID", "this cluster's id, as in the source-cluster label (for --local-first)"),
    ("--producer", "NAME", "with --source kube: auto, standard, karmada or lighthouse (default auto)"),
    ("--local-first", "BOOL", "answer ClusterSetIP names with this cluster's backends while it has ready ones"),
    ("--ns-address", "IP[,IP]", "addresses of ns.dns.<zone>, the server the apex NS names (e.g. the pod IP)"),
    ("--udp-batch", "BOOL", "read and answer UDP in batches (recvmmsg/sendmmsg, Linux); false: a call per datagram (default true)"),
    ("--workers", "N", "processes answering on the same port (SO_REUSEPORT), each with its own zone (default 1)"),
    ("--ptr", "BOOL", "answer PTR queries for the addresses the zone publishes (default true)"),
    ("--reverse-zone", "ZONE|CIDR[,...]", "reverse zones we are the authority for: NXDOMAIN, not REFUSED, for the rest of them"),
    ("--transfer-allow", "CIDR[,CIDR]", "source networks allowed AXFR/IXFR over TCP (default none: REFUSED to all)"),
    ("--tsig-key-file", "FILE", "TSIG keys, one a line: NAME ALGORITHM BASE64SECRET (hmac-sha256, -sha512, -sha1)"),
    ("--transfer-require-tsig", "BOOL", "transfers must be signed by a key of --tsig-key-file (default false)"),
    ("--notify", "HOST:PORT[,...]", "secondaries to send NOTIFY when the serial moves (signed with the first key, if any)"),
    ("--ixfr-history", "N", "zone versions kept for IXFR; older serials get the whole zone (default 32)"),
    ("--lighthouse-names", "BOOL", "also answer <cluster>.<svc>.<ns>.svc.<zone> (Submariner lighthouse's per-cluster names; reserved by the MCS spec) (default false)"),
    ("--debug-explain", "BOOL", "serve /debug/explain?name=&type= on the HTTP address; it shows object names (default false)"),
    ("--rrl-rate", "N", "UDP response rate limit: answers a second to one source prefix for one name and type; 0 turns RRL off (default 1000)"),
    ("--rrl-nxdomain-rate", "N", "NXDOMAIN answers a second to one source prefix, all names together (default: --rrl-rate)"),
    ("--rrl-error-rate", "N", "REFUSED, FORMERR, SERVFAIL... a second to one source prefix (default: --rrl-rate)"),
    ("--rrl-slip", "N", "send every Nth rate-limited answer as a tiny TC=1 one (the client retries over TCP); 0 drops all (default 2)"),
    ("--rrl-window", "SECONDS", "a source over the rate stays limited until it has kept under it this long; 0: only while over (default 0)"),
    ("--rrl-ipv4-prefix", "BITS", "IPv4 sources in one prefix of this length share a budget (default 24)"),
    ("--rrl-ipv6-prefix", "BITS", "IPv6 sources in one prefix of this length share a budget (default 56)"),
    ("--rrl-exempt", "CIDR[,CIDR]|none", "sources never rate-limited: list the CoreDNS pods (or the pod CIDR) here (default 127.0.0.0/8,::1/128)"),
]


# What ``zone`` and ``explain`` take: what shapes the zone, not how it is served.
_ZONE_FLAGS = ("--source", "--zone", "--ttl", "--dns-version", "--log-level", "--kubeconfig", "--context",
               "--cluster-id", "--producer", "--local-first", "--ns-address", "--ptr", "--reverse-zone",
               "--lighthouse-names")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every bad setting
        fail(message)


def fail(message: str) -> None:
    print(f"mcsdns: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mcsdns", description="Authoritative DNS for Kubernetes Multi-Cluster Services.")
    parser.add_argument("--version", action="version", version=f"mcsdns {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="answer DNS for the zone",
        description="Answer DNS for the zone. Every flag may also be set as MCSDNS_<FLAG> in the environment.",
    )
    zone = commands.add_parser(
        "zone",
        help="print the zone as RFC 1035 zone-file text",
        description="Read the source once (to its first full sync) and print the zone serve would answer from, "
        "as zone-file text that NSD, Knot or BIND load.",
    )
    explain = commands.add_parser(
        "explain",
        help="say which objects make a name's answer, or why it has none",
        description="Read the source once and explain the answer to one question: the objects found, "
        "the rules applied, and the records (or NXDOMAIN/NODATA and why).",
    )
    explain.add_argument("name", metavar="NAME", help="e.g. web.shop.svc.clusterset.local")
    explain.add_argument("type", metavar="TYPE", nargs="?", default="A", help="record type (default A)")
    for command in (zone, explain):
        command.add_argument("--sync-timeout", metavar="SECONDS", type=float, default=120.0,
                             help="how long to wait for the source's first full sync (default 120)")
    for command, flags in ((serve, None), (zone, _ZONE_FLAGS), (explain, _ZONE_FLAGS)):
        for flag, metavar, text in _FLAGS:
            if flags is not None and flag not in flags:
                continue
            env = "MCSDNS_" + flag[2:].upper().replace("-", "_")
            extra = {"--listen": {"action": "append"}, "--local-first": {"nargs": "?", "const": "true"},
                     "--debug-explain": {"nargs": "?", "const": "true"}, "--ptr": {"nargs": "?", "const": "true"},
                     "--transfer-require-tsig": {"nargs": "?", "const": "true"},
                     "--lighthouse-names": {"nargs": "?", "const": "true"}}.get(flag, {})
            command.add_argument(flag, metavar=metavar, help=f"{text} [env {env}]", **extra)
        command.add_argument("--version", action="version", version=f"mcsdns {version()}")
    return parser


def version() -> str:
    """The installed distribution's version (what pip installed, not a copy in the source)."""
    try:
        return importlib.metadata.version("mcsdns")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install .)"


def _value(args: argparse.Namespace, flag: str, environ: dict[str, str]):
    if not hasattr(args, flag[2:].replace("-", "_")):
        return None  # not a flag of this command (zone/explain take no --listen)
    value = getattr(args, flag[2:].replace("-", "_"))
    if value is None:
        value = environ.get("MCSDNS_" + flag[2:].upper().replace("-", "_"))
    return value


def config_from(argv: list[str], environ: dict[str, str]) -> Config:
    return _config(build_parser().parse_args(argv), environ)


def _config(args: argparse.Namespace, environ: dict[str, str]) -> Config:
    raw = {flag: _value(args, flag, environ) for flag, _, _ in _FLAGS}
    if not raw["--source"]:
        raise ConfigError("--source is required (a file or folder of YAML, or 'kube')")
    defaults = Config(source="")
    settings: dict = {"source": raw["--source"]}
    if raw["--listen"]:
        items = raw["--listen"] if isinstance(raw["--listen"], list) else [raw["--listen"]]
        parts = [part for item in items for part in item.split(",") if part.strip()]
        settings["listen"] = tuple(parse_address(part, "--listen") for part in parts)
    if raw["--http"] is not None:
        off = raw["--http"].strip().lower() in ("", "off", "none")
        settings["http"] = None if off else parse_address(raw["--http"], "--http")
    converters = {
        "--zone": ("zones", parse_zones),
        "--ttl": ("ttl", lambda v: bounded(v, "--ttl", 0, 2**31 - 1)),
        "--dns-version": ("dns_version", _dns_version),
        "--max-udp-payload": ("max_udp_payload", lambda v: bounded(v, "--max-udp-payload", 512, 65535)),
        "--tcp-idle-timeout": ("tcp_idle_timeout", lambda v: bounded(v, "--tcp-idle-timeout", 0.1, 3600, float)),
        "--tcp-max-connections": ("tcp_max_connections", lambda v: bounded(v, "--tcp-max-connections", 1, 65535)),
        "--poll-interval": ("poll_interval", lambda v: bounded(v, "--poll-interval", 0.05, 3600, float)),
        "--lameduck": ("lameduck", lambda v: bounded(v, "--lameduck", 0, 600, float)),
        "--log-level": ("log_level", lambda v: choice(v.lower(), "--log-level", LOG_LEVELS)),
        "--log-format": ("log_format", lambda v: choice(v.lower(), "--log-format", LOG_FORMATS)),
        "--kubeconfig": ("kubeconfig", str),
        "--context": ("context", str),
        "--cluster-id": ("cluster_id", parse_cluster_id),
        "--producer": ("producer", lambda v: choice(v.lower(), "--producer", PRODUCERS)),
        "--local-first": ("local_first", lambda v: parse_flag(v, "--local-first")),
        "--ns-address": ("ns_address", lambda v: parse_ips(v, "--ns-address")),
        "--udp-batch": ("udp_batch", lambda v: parse_flag(v, "--udp-batch")),
        "--workers": ("workers", lambda v: bounded(v, "--workers", 1, 256)),
        "--debug-explain": ("debug_explain", lambda v: parse_flag(v, "--debug-explain")),
        "--ptr": ("ptr", lambda v: parse_flag(v, "--ptr")),
        "--lighthouse-names": ("lighthouse_names", lambda v: parse_flag(v, "--lighthouse-names")),
        "--reverse-zone": ("reverse_zones", parse_reverse_zones),
        "--tcp-read-timeout": ("tcp_read_timeout", lambda v: bounded(v, "--tcp-read-timeout", 0.1, 3600, float)),
        "--tcp-write-timeout": ("tcp_write_timeout", lambda v: bounded(v, "--tcp-write-timeout", 0.1, 3600, float)),
        "--tcp-max-in-flight": ("tcp_max_in_flight", lambda v: bounded(v, "--tcp-max-in-flight", 1, 65535)),
        "--tcp-max-buffered": ("tcp_max_buffered", lambda v: bounded(v, "--tcp-max-buffered", 512, 2**24)),
        "--rrl-rate": ("rrl_rate", lambda v: bounded(v, "--rrl-rate", 0, 10**7)),
        "--rrl-nxdomain-rate": ("rrl_nxdomain_rate", lambda v: bounded(v, "--rrl-nxdomain-rate", 0, 10**7)),
        "--rrl-error-rate": ("rrl_error_rate", lambda v: bounded(v, "--rrl-error-rate", 0, 10**7)),
        "--rrl-slip": ("rrl_slip", lambda v: bounded(v, "--rrl-slip", 0, 10)),
        "--rrl-window": ("rrl_window", lambda v: bounded(v, "--rrl-window", 0, 3600)),
        "--rrl-ipv4-prefix": ("rrl_ipv4_prefix", lambda v: bounded(v, "--rrl-ipv4-prefix", 8, 32)),
        "--rrl-ipv6-prefix": ("rrl_ipv6_prefix", lambda v: bounded(v, "--rrl-ipv6-prefix", 16, 128)),
        "--rrl-exempt": ("rrl_exempt", lambda v: parse_networks(v, "--rrl-exempt")),
        "--transfer-allow": ("transfer_allow", lambda v: parse_networks(v, "--transfer-allow")),
        "--tsig-key-file": ("tsig_keys", load_keys),
        "--transfer-require-tsig": ("transfer_require_tsig", lambda v: parse_flag(v, "--transfer-require-tsig")),
        "--notify": ("notify", lambda v: parse_addresses(v, "--notify")),
        "--ixfr-history": ("ixfr_history", lambda v: bounded(v, "--ixfr-history", 0, 10_000)),
    }
    for flag, (field, convert) in converters.items():
        if raw[flag] is not None:
            settings[field] = convert(raw[flag])
    if "zones" in settings:
        settings["zone"], *rest = settings.pop("zones")
        settings["extra_zones"] = tuple(rest)
    for kind in ("rrl_nxdomain_rate", "rrl_error_rate"):  # unset: as --rrl-rate
        settings.setdefault(kind, settings.get("rrl_rate", defaults.rrl_rate))
    if settings.get("local_first") and not settings.get("cluster_id"):
        raise ConfigError("--local-first needs --cluster-id (which cluster is local?)")
    if settings.get("transfer_require_tsig") and not settings.get("tsig_keys"):
        raise ConfigError("--transfer-require-tsig needs --tsig-key-file (which keys?)")
    return Config(**{**{f: getattr(defaults, f) for f in defaults.__dataclass_fields__}, **settings})


def _dns_version(value: str) -> str:
    if not value or len(value) > 255:
        raise ConfigError("--dns-version: must be 1 to 255 characters")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        config = _config(args, dict(os.environ))
    except ConfigError as error:
        fail(str(error))
    if args.command == "serve":
        from . import workers  # imported late: --help and bad flags stay fast
        from .app import run

        role = workers.worker_role()
        if role is not None:
            return run(config, *role)
        if config.workers > 1:
            return workers.run(config, argv[argv.index("serve") + 1 :])
        return run(config)
    from .inspect.command import inspect

    return inspect(config, args.command, getattr(args, "name", None), getattr(args, "type", None), args.sync_timeout)


if __name__ == "__main__":
    raise SystemExit(main())
