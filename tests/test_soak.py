"""The soak of bench/soak.py, one minute long: the live server under steady load
while its folder zone changes, every sampled answer checked against the engine.

The rate is modest (2,000 queries/s of dnsperf, 100/s sampled) so that it holds
on a loaded 2-core machine; bench/soak.py runs the long one at 80% of capacity.
"""

from __future__ import annotations

import dns.message
import pytest

from bench.soak import Churn, Mirror, report, soak

SECONDS = 60


@pytest.fixture(scope="module")
def result():
    return soak(SECONDS, rate=2000, sample_rate=100, change_every=0.25)


def test_no_wrong_answers_while_the_zone_changes(result):
    text = report(result)
    assert result.problems == [], text
    assert result.sampled.wrong == 0 and result.sampled.unverifiable == 0, text
    assert result.sampled.answered > 1000 and result.sampled.lost <= result.sampled.sent // 100, text
    assert 0 < result.load["sent"] and result.load["lost"] <= result.load["sent"] // 100, text


def test_changes_were_applied_and_seen(result):
    text = report(result)
    assert result.applied >= 40 and result.seen == result.applied, text
    assert all(result.changes.values()), text  # every kind: flap, create, delete, move
    # the sampled answers came from many versions of the zone, not only the first
    assert len(result.sampled.versions) >= result.applied // 2, text


def test_rss_and_fds_stay_flat(result):
    text = report(result)
    assert result.rss_growth < 0.05, text
    assert result.fds_end <= result.fds_start, text


# (the version that answered, the versions around the query, accepted)
AROUND = [
    (0, (0, 0), True),
    (0, (0, 1), True),
    (1, (0, 1), True),
    (0, (1, 1), False),  # older than what the server was known to serve
    (1, (0, 0), False),  # newer than what was written when the answer came
]


@pytest.mark.parametrize("answered_by, around, accepted", AROUND)
def test_the_check_takes_only_the_versions_around_the_query(tmp_path, answered_by, around, accepted):
    churn = Churn(tmp_path)
    churn.seed_files()
    mirror = Mirror(["serve", "--source", str(tmp_path)], 1000)
    churn.change()
    mirror.record()
    query = dns.message.make_query("clusterset.local.", "SOA").to_wire()  # its serial differs by version
    answers = [mirror.engine.respond(query, snapshot) for _, snapshot in mirror.versions]
    assert (mirror.match(query, answers[answered_by], True, *around) is not None) == accepted
