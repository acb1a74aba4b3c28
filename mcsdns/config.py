"""One validated, frozen Config, built from flags and ``MCSDNS_*`` environment.

Everything that can be wrong with the settings is found here, before anything
binds or connects, and reported as a ``ConfigError`` with one line of text.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field

from .engine.tsig import ALGORITHMS, Key
from .model.convert import Invalid, cluster_id, subdomain

PRODUCERS = ("auto", "standard", "karmada", "lighthouse")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("plain", "json")


class ConfigError(ValueError):
    """A setting is unusable; the text names it and says why."""


Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    listen: tuple[Address, ...] = (("0.0.0.0", 5353),)
    zone: str = "clusterset.local"
    extra_zones: tuple[str, ...] = ()  # --zone a,b: b onwards, served with the same objects
    ttl: int = 5
    dns_version: str = "1.0.0"
    http: Address | None = ("0.0.0.0", 8080)
    max_udp_payload: int = 1232
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 1024
    tcp_read_timeout: float = 3.0
    tcp_write_timeout: float = 5.0
    tcp_max_in_flight: int = 64
    tcp_max_buffered: int = 65536
    poll_interval: float = 1.0
    lameduck: float = 0.0
    log_level: str = "info"
    log_format: str = "plain"
    kubeconfig: str | None = None
    context: str | None = None
    cluster_id: str | None = None
    producer: str = "auto"
    local_first: bool = False
    ns_address: tuple[str, ...] = ()
    udp_batch: bool = True
    workers: int = 1
    debug_explain: bool = False
    ptr: bool = True
    lighthouse_names: bool = False
    reverse_zones: tuple[str, ...] = ()
    rrl_rate: int = 1000
    rrl_nxdomain_rate: int = 1000
    rrl_error_rate: int = 1000
    rrl_slip: int = 2
    rrl_window: int = 0
    rrl_ipv4_prefix: int = 24
    rrl_ipv6_prefix: int = 56
    rrl_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # loopback cannot be spoofed from off the host
    transfer_allow: tuple = ()  # networks allowed AXFR/IXFR; none: every transfer REFUSED
    tsig_keys: tuple[Key, ...] = field(default=(), repr=False)  # from --tsig-key-file; secrets stay out of logs
    transfer_require_tsig: bool = False
    notify: tuple[Address, ...] = ()
    ixfr_history: int = 32


def parse_address(text: str, what: str) -> Address:
    """``HOST:PORT`` with an IP literal; IPv6 as ``[::1]:5353``."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if not match:
        raise ConfigError(f"{what}: {text!r} is not HOST:PORT (IPv6 as [::1]:5353)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what}: {host!r} is not an IP address") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{what}: port {port} is not between 1 and 65535")
    return host, port


def parse_zone(text: str) -> str:
    try:
        return subdomain(text.strip().rstrip("."), "--zone")
    except Invalid:
        raise ConfigError(f"--zone: {text!r} is not a domain name") from None


def parse_zones(text: str) -> tuple[str, ...]:
    """``--zone a[,b...]``: the zones to serve, the first one primary; no repeats, none inside another
    would be ambiguous, so nesting is allowed (the longest match wins) but repeats are not."""
    zones = tuple(parse_zone(part) for part in text.split(",") if part.strip())
    if not zones:
        raise ConfigError("--zone: no zone given")
    if len(set(zones)) != len(zones):
        raise ConfigError(f"--zone: {text!r} names a zone twice")
    return zones


def parse_reverse_zones(text: str) -> tuple[str, ...]:
    """``--reverse-zone``: reverse zone names (10.in-addr.arpa) or the networks they
    cover (10.0.0.0/8, fd00::/8), on an octet (IPv4) or nibble (IPv6) boundary."""
    zones = []
    for part in (part.strip() for part in text.split(",") if part.strip()):
        if "/" in part:
            try:
                network = ipaddress.ip_network(part)
            except ValueError:
                raise ConfigError(f"--reverse-zone: {part!r} is not a network (e.g. 10.0.0.0/8)") from None
            step = 8 if network.version == 4 else 4
            if network.prefixlen % step or network.prefixlen == 0:
                raise ConfigError(f"--reverse-zone: {part} must end on a{'n octet' if step == 8 else ' nibble'} boundary (/{step}, /{2 * step}, ...)")
            name = network.network_address.reverse_pointer.split(".")
            keep = network.prefixlen // step
            zones.append(".".join(name[len(name) - 2 - keep:]))
        else:
            name = part.lower().rstrip(".")
            labels = name.split(".")
            tail, depth = (labels[-2:], (4 if labels[-2:] == ["in-addr", "arpa"] else 32))
            ok = tail in (["in-addr", "arpa"], ["ip6", "arpa"]) and 0 < len(labels) - 2 <= depth
            if ok and tail == ["in-addr", "arpa"]:
                ok = all(label.isdigit() and int(label) < 256 and str(int(label)) == label for label in labels[:-2])
            elif ok:
                ok = all(len(label) == 1 and label in "0123456789abcdef" for label in labels[:-2])
            if not ok:
                raise ConfigError(f"--reverse-zone: {part!r} is not a reverse zone (e.g. 10.in-addr.arpa or 10.0.0.0/8)")
            zones.append(name)
    return tuple(dict.fromkeys(zones))


def bounded(value: str | float, what: str, low: float, high: float, kind: type = int):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise ConfigError(f"{what}: {number} is not between {low:g} and {high:g}")
    return number


def choice(value: str, what: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{what}: {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_cluster_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return cluster_id(value, "--cluster-id")  # the same rule as the source-cluster label
    except Invalid:
        raise ConfigError(f"--cluster-id: {value!r} is not one or two DNS labels") from None


def parse_ips(value: str, what: str) -> tuple[str, ...]:
    """``IP[,IP]``: the addresses of the zone's nameserver (one per family, or more)."""
    ips = []
    for part in (part.strip() for part in value.split(",")):
        if not part:
            continue
        try:
            ips.append(str(ipaddress.ip_address(part)))
        except ValueError:
            raise ConfigError(f"{what}: {part!r} is not an IP address") from None
    return tuple(dict.fromkeys(ips))


def parse_networks(value: str, what: str) -> tuple[str, ...]:
    """``CIDR[,CIDR]`` (a bare address is its own /32 or /128); ``none`` or empty: no networks."""
    if value.strip().lower() in ("", "none", "off"):
        return ()
    networks = []
    for part in (part.strip() for part in value.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"{what}: {part!r} is not an IP network (CIDR) or address") from None
    return tuple(dict.fromkeys(networks))


def parse_flag(value: str | bool, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{what}: {value!r} is not true or false")


def parse_addresses(value: str, what: str) -> tuple[Address, ...]:
    return tuple(parse_address(part, what) for part in value.split(",") if part.strip())


def load_keys(path: str) -> tuple[Key, ...]:
    """``--tsig-key-file``: one key a line, ``NAME ALGORITHM BASE64SECRET``
    (``xfr-key hmac-sha256 c2VjcmV0...``); ``#`` starts a comment."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise ConfigError(f"--tsig-key-file: cannot read {path}: {error.strerror}") from None
    keys: dict[str, Key] = {}
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"--tsig-key-file: {path} line {number}"
        if len(words) != 3:
            raise ConfigError(f"{where}: expected NAME ALGORITHM BASE64SECRET")
        name, algorithm = words[0].lower().rstrip(".") + ".", words[1].lower().rstrip(".") + "."
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"{where}: algorithm {words[1]!r} is not one of {', '.join(a[:-1] for a in ALGORITHMS)}")
        try:
            secret = base64.b64decode(words[2], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: the secret is not base64") from None
        if name in keys:
            raise ConfigError(f"{where}: key {name} is defined twice")
        keys[name] = Key(name, algorithm, secret)
    if not keys:
        raise ConfigError(f"--tsig-key-file: {path} holds no key")
    return tuple(keys.values())
