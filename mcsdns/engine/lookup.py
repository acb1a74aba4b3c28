"""(snapshot, name, type) -> what kind of answer, and with which RRset.

The name grammar below the zone (MCS DNS specification 2.3, 2.4):

    <zone>                                       SOA, NS
    dns-version.<zone>                           TXT
    svc.<zone>                                   empty non-terminal
    <ns>.svc.<zone>                              empty non-terminal
    <svc>.<ns>.svc.<zone>                        A, AAAA, SRV
    _<port>._<proto>.<svc>.<ns>.svc.<zone>       SRV
    <host>.<cluster>.<svc>.<ns>.svc.<zone>       A, AAAA (headless; cluster is 1 or 2 labels)

``Snapshot.node`` walks it; this module only decides the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..zone.rrset import A, AAAA, NS, SOA, SRV, TXT, RRset
from ..zone.snapshot import Snapshot

CLASS_IN, CLASS_ANY = 1, 255
QTYPE_ANY = 255
# Transfers and meta types are not ours to serve (RFC 6895 3.1): refuse them.
REFUSED_QTYPES = frozenset({251, 252, 253, 254})  # IXFR, AXFR, MAILB, MAILA
FORMERR_QTYPES = frozenset({41, 249, 250})  # OPT, TKEY, TSIG never appear as a question type
ANY_PREFERENCE = (A, AAAA, SRV, TXT, SOA, NS)


class Outcome(Enum):
    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"
    SERVFAIL = "servfail"
    FORMERR = "formerr"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    rrset: RRset | None = None


REFUSED = Result(Outcome.REFUSED)
SERVFAIL = Result(Outcome.SERVFAIL)
NXDOMAIN = Result(Outcome.NXDOMAIN)
NODATA = Result(Outcome.NODATA)
FORMERR = Result(Outcome.FORMERR)


def lookup(snapshot: Snapshot, labels: tuple[bytes, ...], qtype: int, qclass: int) -> Result:
    origin = snapshot.origin
    cut = len(labels) - len(origin)
    if cut < 0 or labels[cut:] != origin or qclass not in (CLASS_IN, CLASS_ANY):
        return REFUSED  # not our zone: we are not a resolver
    if qtype in FORMERR_QTYPES:
        return FORMERR
    if qtype in REFUSED_QTYPES:
        return REFUSED
    if not snapshot.ready:
        return SERVFAIL  # before the first full sync we know nothing for sure
    node = snapshot.node(labels[:cut])
    if node is None:
        return NXDOMAIN
    if qtype == QTYPE_ANY:
        # RFC 8482: answer ANY with one RRset of the name, not all of them.
        rrset = next((node.rrsets[t] for t in ANY_PREFERENCE if t in node.rrsets), None)
    else:
        rrset = node.rrsets.get(qtype)
    return Result(Outcome.ANSWER, rrset) if rrset is not None else NODATA
